"""Reliability tooling: the chaos scenarios and the harness that drives the real pipeline.

None of this runs in production. It starts real ``fraudstream worker`` and ``produce``
processes against a real broker, does unpleasant things to them and reads back what came out
of Kafka, for ``fraudstream chaos``, the tests and the benchmarks. It lives apart from the
product's runtime packages (``streams``, ``producers``, ``models``, ``infra``) so that the
product never imports its own test tooling: ``reliability`` may import the product, never
the other way round.
"""
