"""Against the real broker: 100,000 transactions and their labels, all consumed back, each
card's events in order and under its key, in both message layouts."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from producers.events import decode_labels, decode_transactions
from producers.sender import Sender, close_producer, make_producer
from producers.simulator import Simulator
from producers.timeline import LABEL, TX, limit_blocks, timeline
from producers.world import WorldConfig

pytestmark = pytest.mark.integration

N_TX = 100_000


def _consume(settings: Settings, topic: str, expected_events: int) -> list[tuple[bytes, int, bytes]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", enable_auto_commit=False,
        consumer_timeout_ms=15_000, max_poll_records=5_000,
        **settings.kafka.kafka_python_kwargs(),
    )
    out: list[tuple[bytes, int, bytes]] = []
    events = 0
    try:
        for message in consumer:
            out.append((message.key, message.partition, message.value))
            events += len(json.loads(message.value).get("events", [None]))
            if events >= expected_events:
                break
    finally:
        consumer.close()
    return out


@pytest.mark.parametrize("envelope", [1, 100])
def test_produce_and_consume_back(kafka_settings: Settings, envelope: int) -> None:
    ensure_topics(kafka_settings)
    topics = kafka_settings.topics
    producer = make_producer(kafka_settings.kafka.kafka_python_kwargs())
    try:
        blocks = limit_blocks(Simulator(WorldConfig(n_days=30, seed=11)).days(), N_TX)
        sender = Sender(producer, topics.transactions, topics.labels, envelope=envelope)
        report = sender.send(timeline(blocks))
    finally:
        close_producer(producer)
    assert report.failed == 0, report.first_error
    assert report.transactions == report.labels == N_TX

    # What was sent, per card and kind, in sending order (the timeline is deterministic).
    sent_order: dict[int, dict[int, list[int]]] = {TX: defaultdict(list), LABEL: defaultdict(list)}
    blocks = limit_blocks(Simulator(WorldConfig(n_days=30, seed=11)).days(), N_TX)
    for segment in timeline(blocks):
        columns = (segment[c].tolist() for c in ("kind", "customer_id", "tx_id"))
        for kind, cust, tx_id in zip(*columns, strict=True):
            sent_order[kind][cust].append(tx_id)

    for kind, topic, decode in ((TX, topics.transactions, decode_transactions),
                                (LABEL, topics.labels, decode_labels)):
        got: dict[int, list[int]] = defaultdict(list)
        partition_of: dict[int, set[int]] = defaultdict(set)
        for key, partition, value in _consume(kafka_settings, topic, N_TX):
            events = decode(value)
            assert key == str(events[0].customer_id).encode()
            for event in events:
                got[event.customer_id].append(event.tx_id)
                partition_of[event.customer_id].add(partition)
        assert sorted(i for ids in got.values() for i in ids) == list(range(N_TX)), topic
        assert all(len(p) == 1 for p in partition_of.values()), "a card spans partitions"
        assert dict(got) == dict(sent_order[kind]), f"{topic}: per-card order broken"
