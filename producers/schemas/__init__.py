"""JSON Schemas (draft 2020-12) of the Kafka events: the documentation of record.

A package only so that the ``*.schema.json`` files ship with an installed fraudstream.
"""
