"""Transaction sources for fraudstream: the handbook-world simulator, bring-your-own-data
replay, and the Kafka producer that sends both as versioned JSON events.

Modules, one job each:
``world`` (customers, terminals, who can reach what), ``scenarios`` (the handbook's three fraud
patterns), ``drift`` (fraud behaviour that changes from a given day), ``delays`` (when a label
becomes known), ``simulator`` (day-by-day generation), ``timeline`` (transactions and labels
merged in event-time order), ``events`` (encode and validate events), ``envelope`` (several
events per Kafka message), ``pacing`` (replay speed), ``sender`` (kafka-python producer),
``reader`` (CSV/Parquet in), ``writer`` (CSV/Parquet out), ``cli`` (the commands).
"""
