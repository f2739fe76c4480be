"""``read_published`` against the real broker: the scores a re-reading worker must keep."""

from __future__ import annotations

import asyncio
import json
import time
from typing import NamedTuple

from infra.settings import Settings
from infra.topics import ensure_topics
from producers.partitioning import murmur2_partition
from streams.published import read_published


class TP(NamedTuple):
    topic: str
    partition: int


def _card_in(partition: int, n: int, start: int = 1) -> int:
    return next(c for c in range(start, 10_000) if murmur2_partition(str(c).encode(), n) == partition)


def test_scores_of_reread_partitions_since_the_first_reread_transaction(
    kafka_settings: Settings,
) -> None:
    from kafka import KafkaProducer

    ensure_topics(kafka_settings)
    t, n = kafka_settings.topics, kafka_settings.topics.partitions
    mine, other = _card_in(0, n), _card_in(1, n)
    now_ms = int(time.time() * 1000)
    producer = KafkaProducer(**kafka_settings.kafka.kafka_python_kwargs())

    def score(tx_id: int, card: int, age_s: float) -> None:
        body = {"tx_id": tx_id, "customer_id": card, "score": tx_id / 100, "features": [1.0]}
        producer.send(t.scores, key=str(tx_id).encode(), value=json.dumps(body).encode(),
                      timestamp_ms=now_ms - int(age_s * 1000))

    # Partition 0 of the transactions: offset 0 long ago, offset 1 is where the re-read starts.
    for age_s in (600.0, 10.0):  # offsets 0 and 1
        producer.send(t.transactions, key=str(mine).encode(), value=b"{}", partition=0,
                      timestamp_ms=now_ms - int(age_s * 1000))
    score(1, mine, 590.0)  # long before the re-read starts: not needed
    score(2, mine, 9.0)
    score(3, other, 8.0)  # another partition's card: another worker's business
    score(4, mine, 1.0)
    producer.send(t.scores, key=b"5", value=b"not json", timestamp_ms=now_ms)
    producer.flush()
    producer.close()

    read_back = asyncio.run(read_published(
        kafka_settings.kafka.aiokafka_kwargs(), t.scores, {TP(t.transactions, 0): 1}, n,
        slack_s=60.0))
    assert read_back.scores == {2: (0.02, [1.0]), 4: (0.04, [1.0])}
    assert read_back.source_ends == {(t.transactions, 0): 2}  # the re-read ends there

    # Nothing to re-read (the start is the log end): nothing is read back.
    assert asyncio.run(read_published(
        kafka_settings.kafka.aiokafka_kwargs(), t.scores, {TP(t.transactions, 0): 2}, n)
    ).scores == {}
