"""Envelopes keep per-card order and partitions, flush on size or max wait; pacing works."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pytest

from fraudstream.errors import FraudstreamError
from producers.envelope import Packer
from producers.events import decode_transactions, transaction_prefix
from producers.pacing import Pacer
from producers.partitioning import murmur2_partition
from producers.sender import Sender
from producers.simulator import Simulator
from producers.timeline import limit_blocks, timeline
from producers.world import WorldConfig
from tests.producers.fakes import RecordingProducer


def test_partitions_agree_with_aiokafka_which_faust_uses() -> None:
    # aiokafka has its own murmur2 (Faust's client); both must put a card on one partition.
    from aiokafka.partitioner import DefaultPartitioner

    for n in (1, 4, 7):
        parts = list(range(n))
        for k in (0, 1, 1468, 4999, 123_456_789):
            key = str(k).encode()
            assert murmur2_partition(key, n) == DefaultPartitioner()(key, parts, parts)
    assert {murmur2_partition(str(k).encode(), 4) for k in range(100)} == {0, 1, 2, 3}


def test_envelopes_keep_per_card_order_and_partition() -> None:
    producer = RecordingProducer(partitions=3)
    blocks = limit_blocks(Simulator(WorldConfig(n_days=2)).days(), 5_000)
    report = Sender(producer, "tx", "lb", envelope=40).send(timeline(blocks, labels=False))
    assert report.transactions == 5_000
    assert report.messages == report.envelopes < 5_000 / 30
    order: dict[int, list[int]] = defaultdict(list)
    all_ids = []
    for _topic, partition, _key, value in producer.sent:
        events = decode_transactions(value)
        assert 1 <= len(events) <= 40
        for e in events:
            assert murmur2_partition(str(e.customer_id).encode(), 3) == partition
            order[e.customer_id].append(e.tx_id)
            all_ids.append(e.tx_id)
    assert sorted(all_ids) == list(range(5_000))
    assert all(ids == sorted(ids) for ids in order.values())


def test_packer_flushes_on_size_and_on_max_wait() -> None:
    out: list[tuple[int, int]] = []
    packer = Packer("transaction", 3, 0.05, lambda p, k, v, n, w: out.append((p, n)))
    prefix = transaction_prefix(1, 1.0, 2, 3, 4.0)
    for _ in range(3):
        packer.add(0, b"2", prefix, now=0.0, wall=1.0)
    assert out == [(0, 3)]
    packer.add(1, b"5", prefix, now=1.00, wall=1.0)
    packer.add(2, b"6", prefix, now=1.04, wall=1.0)
    assert out == [(0, 3)], "nothing has waited 50 ms yet"
    packer.add(2, b"6", prefix, now=1.06, wall=1.0)
    assert out == [(0, 3), (1, 1)], "partition 1 waited 60 ms: flushed alone"
    packer.flush_all(wall=2.0)
    assert out[-1] == (2, 2) and packer.pending == 0


def test_slow_stream_is_not_held_back_by_envelopes() -> None:
    producer = RecordingProducer()
    blocks = limit_blocks(Simulator(WorldConfig(n_days=1)).days(), 200)
    sender = Sender(producer, "tx", "lb", envelope=100, max_wait_s=0.02, pacer=Pacer(rate=2_000))
    started = time.monotonic()
    report = sender.send(timeline(blocks, labels=False))
    elapsed = time.monotonic() - started
    assert 0.08 <= elapsed < 2.0, "200 tx at 2,000 tx/s take ~0.1 s"
    sizes = [len(json.loads(v)["events"]) for *_, v in producer.sent]
    assert sum(sizes) == report.transactions == 200
    assert max(sizes) < 50, "at 2,000 tx/s, 20 ms of waiting never fills 100 slots"


def test_pacer_modes() -> None:
    assert Pacer().unlimited
    speed = Pacer(speedup=3600)
    speed.start(100.0, 1_000_000.0)
    assert speed.due(1_000_000.0 + 7200, 0) == pytest.approx(102.0)
    rate = Pacer(rate=500)
    rate.start(10.0, 0.0)
    assert rate.due(123.0, 1000) == pytest.approx(12.0)
    with pytest.raises(ValueError):
        Pacer(speedup=2, rate=3)
    with pytest.raises(ValueError):
        Pacer(rate=0)


def test_speedup_replay_takes_simulated_time_over_factor() -> None:
    producer = RecordingProducer()
    blocks = limit_blocks(Simulator(WorldConfig(n_days=1)).days(), 300)
    sender = Sender(producer, "tx", "lb", pacer=Pacer(speedup=86_400 / 2))  # 1 day in 2 s
    first_last = []
    started = time.monotonic()
    report = sender.send(timeline(blocks, labels=False))
    first_last = [report.first_event_time, report.last_event_time]
    expected = (first_last[1] - first_last[0]) / (86_400 / 2)
    assert expected > 0.05
    assert time.monotonic() - started == pytest.approx(expected, abs=0.3)


def test_envelope_size_limits() -> None:
    with pytest.raises(FraudstreamError):
        Sender(RecordingProducer(), "tx", "lb", envelope=0)
    with pytest.raises(FraudstreamError):
        Sender(RecordingProducer(), "tx", "lb", envelope=100_000)
