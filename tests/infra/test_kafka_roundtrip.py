"""Both Python clients against the real Kafka 4.x broker: keys, partitions and per-key order."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest

from infra.settings import Settings, TopicSpec
from infra.topics import ensure_topics

pytestmark = pytest.mark.integration

N_MESSAGES = 10_000
N_KEYS = 97
PARTITIONS = 4


def _make_topic(settings: Settings) -> str:
    name = f"roundtrip-{uuid.uuid4().hex[:8]}"
    report = ensure_topics(settings, [TopicSpec(name, PARTITIONS)])
    assert report.created == [name]
    return name


def _check(received: list[tuple[str, int, int]]) -> None:
    """All messages arrived once, each key on one partition, in the order it was sent."""
    assert len(received) == N_MESSAGES
    by_key: dict[str, list[int]] = defaultdict(list)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for key, partition, seq in received:
        by_key[key].append(seq)
        partitions_of_key[key].add(partition)
    assert sorted(s for seqs in by_key.values() for s in seqs) == list(range(N_MESSAGES))
    for key, seqs in by_key.items():
        assert seqs == sorted(seqs), f"order broken for key {key}"
        assert len(partitions_of_key[key]) == 1
    used = {p for parts in partitions_of_key.values() for p in parts}
    assert used == set(range(PARTITIONS))


def test_kafka_python_round_trip(kafka_settings: Settings) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = _make_topic(kafka_settings)
    kwargs = kafka_settings.kafka.kafka_python_kwargs()
    producer = KafkaProducer(linger_ms=5, acks="all", **kwargs)
    for seq in range(N_MESSAGES):
        producer.send(topic, key=f"card-{seq % N_KEYS}".encode(), value=str(seq).encode())
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", enable_auto_commit=False,
        consumer_timeout_ms=10_000, group_id=f"rt-{uuid.uuid4().hex[:6]}", **kwargs,
    )
    received = []
    for msg in consumer:
        received.append((msg.key.decode(), msg.partition, int(msg.value)))
        if len(received) == N_MESSAGES:
            break
    consumer.close()
    _check(received)


def test_aiokafka_round_trip(kafka_settings: Settings) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = _make_topic(kafka_settings)
    kwargs = kafka_settings.kafka.aiokafka_kwargs()

    async def run() -> list[tuple[str, int, int]]:
        producer = AIOKafkaProducer(linger_ms=5, acks="all", **kwargs)
        await producer.start()
        try:
            batch = []
            for seq in range(N_MESSAGES):
                batch.append(producer.send(
                    topic, key=f"card-{seq % N_KEYS}".encode(), value=str(seq).encode()))
            await asyncio.gather(*batch)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, auto_offset_reset="earliest", enable_auto_commit=False,
            group_id=f"rt-{uuid.uuid4().hex[:6]}", **kwargs,
        )
        await consumer.start()
        received: list[tuple[str, int, int]] = []
        try:
            while len(received) < N_MESSAGES:
                batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for records in batches.values():
                    received.extend((r.key.decode(), r.partition, int(r.value)) for r in records)
        finally:
            await consumer.stop()
        return received

    _check(asyncio.run(run()))


def test_topic_creation_is_idempotent(kafka_settings: Settings) -> None:
    from infra.topics import partition_counts

    first = ensure_topics(kafka_settings)
    names = [spec.name for spec in kafka_settings.topics.specs()]
    assert sorted(first.created) == sorted(names)
    second = ensure_topics(kafka_settings)
    assert second.created == []
    assert sorted(second.existing) == sorted(names)
    counts = partition_counts(kafka_settings, names)
    assert counts[kafka_settings.topics.transactions] == kafka_settings.topics.partitions
