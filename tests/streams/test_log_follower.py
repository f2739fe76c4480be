"""``streams.log_follower`` against a real broker: every partition is read, from where asked.

The bug this guards: the followers once looked the partitions up with aiokafka's
``partitions_for_topic``, which answers None for a topic the consumer does not read yet, and
fell back to partition 0 only; a second worker's terminal deltas were never applied.
"""

from __future__ import annotations

import asyncio

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from streams.log_follower import follow_topic

pytestmark = pytest.mark.integration


def _produce(settings: Settings, topic: str, per_partition: int, partitions: int) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka.kafka_python_kwargs())
    for p in range(partitions):
        for i in range(per_partition):
            producer.send(topic, value=f"{p}:{i}".encode(), partition=p)
    producer.flush()
    producer.close()


def _follow(settings: Settings, topic: str, partitions: int, start: dict[int, int],
            expected: int) -> list[tuple[int, int, bytes]]:
    seen: list[tuple[int, int, bytes]] = []

    async def run() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(follow_topic(
            topic, partitions, settings.kafka.aiokafka_kwargs(),
            lambda p, o, v: seen.append((p, o, v)), ready, start.get))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            for _ in range(100):
                if len(seen) >= expected:
                    break
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    return seen


def test_every_partition_is_read_from_its_start(kafka_settings: Settings) -> None:
    topic = kafka_settings.topics.terminal_events
    ensure_topics(kafka_settings)
    partitions = kafka_settings.topics.partitions
    assert partitions == 4
    _produce(kafka_settings, topic, per_partition=5, partitions=partitions)

    seen = _follow(kafka_settings, topic, partitions, {}, expected=20)
    assert sorted((p, o) for p, o, _ in seen) == [(p, o) for p in range(4) for o in range(5)]
    assert all(v == f"{p}:{o}".encode() for p, o, v in seen)

    resumed = _follow(kafka_settings, topic, partitions, {1: 3, 2: 5}, expected=13)
    assert sorted((p, o) for p, o, _ in resumed) == sorted(
        [(0, o) for o in range(5)] + [(1, 3), (1, 4)] + [(3, o) for o in range(5)])
