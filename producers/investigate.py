"""``fraudstream investigate``: the investigators as a Kafka service, alerts in, feedback out.

Reads the ``alerts`` topic (consumer group ``fraudstream-investigators``), applies the
investigators' rules (``producers.investigation``) and publishes each case's labels on the
``labels`` topic with ``source: feedback``, keyed and partitioned by card like every label.
The truth comes from the simulator's side channel (the world's file, ``--data``), never from the
scores.

A label is published as soon as its case is opened, with ``known_at`` = alert time + hours in
event time; the worker holds it until its event time reaches ``known_at``
(``streams.label_clock``), so in a replay the labels are learned where the offline evaluator
learns them, however fast the replay runs. Offsets are committed after the labels of a batch
are acknowledged (at least once): an alert read again after a restart may open its case again,
and the worker learns a repeated label once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from producers.events import encode_label
from producers.investigation import Investigator
from producers.partitioning import murmur2_partition

GROUP = "fraudstream-investigators"


@dataclass
class InvestigateReport:
    """What the service read and sent (cases and refusals: ``Investigator.stats``)."""

    alerts: int = 0
    malformed: int = 0
    labels: int = 0
    frauds: int = 0


def investigate(settings: Any, investigator: Investigator, *, group: str = GROUP,
                idle_exit_s: float | None = None, stop: Callable[[], bool] = lambda: False,
                ) -> InvestigateReport:
    """Consume alerts until ``stop()`` or ``idle_exit_s`` without one; returns the counts.

    A malformed alert (not JSON, no card or time) is counted and skipped: alerts are the
    workers' own output, not outside input, so there is no dead-letter topic for them."""
    import json

    import msgspec
    from kafka import KafkaConsumer

    from infra.settings import READ_COMMITTED
    from infra.topics import ensure_topics
    from producers.sender import close_producer, make_producer

    ensure_topics(settings)
    kwargs = settings.kafka.kafka_python_kwargs()
    topics = settings.topics
    consumer = KafkaConsumer(topics.alerts, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", **READ_COMMITTED, **kwargs)
    producer = make_producer(kwargs)  # acks=all, idempotent, as every producer here
    report = InvestigateReport()
    n_partitions = topics.partitions
    last = time.monotonic()
    try:
        while not stop():
            batches = consumer.poll(timeout_ms=200, max_records=2000)
            if not batches:
                if idle_exit_s is not None and time.monotonic() - last > idle_exit_s:
                    break
                continue
            last = time.monotonic()
            for records in batches.values():
                for record in records:
                    report.alerts += 1
                    try:
                        body = json.loads(record.value)
                        card, ts = int(body["customer_id"]), float(body["ts"])
                    except (ValueError, TypeError, KeyError):
                        report.malformed += 1
                        continue
                    now = time.time()
                    for label in investigator.alert(card, ts):
                        key = str(card).encode()
                        value = encode_label(msgspec.structs.replace(label, produced_at=now))
                        producer.send(topics.labels, key=key, value=value,
                                      partition=murmur2_partition(key, n_partitions))
                        report.labels += 1
                        report.frauds += label.fraud
            producer.flush()
            consumer.commit()
    finally:
        close_producer(producer)
        consumer.close()
    return report
