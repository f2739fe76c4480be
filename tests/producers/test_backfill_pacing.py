"""Backfill then live: ``produce --live-from DATE [--backfill-days N]``.

Events before the live start go out unpaced, later ones at the configured pace with the pace's
clock starting at the first live event; ``--backfill-days`` skips the simulated days before
the backfill (transactions and their labels).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from producers.pacing import Pacer
from producers.sender import Sender
from producers.simulator import Simulator
from producers.timeline import LABEL, TX, skip_before, timeline
from producers.world import WorldConfig
from tests.producers.fakes import RecordingProducer

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_clock_starts_at_the_first_live_event() -> None:
    clock = FakeClock(100.0)
    pacer = Pacer(rate=10, live_from=1_000.0, clock=clock)
    pacer.start(0.0, 900.0)
    assert pacer.due(900.0, 0) == -math.inf
    assert pacer.due(999.9, 5_000) == -math.inf  # however many went before: no waiting
    assert pacer.live_started_at is None
    clock.now = 250.0  # the backfill took 150 s of wall time
    assert pacer.due(1_000.0, 5_000) == pytest.approx(250.0)
    assert pacer.due(1_050.0, 5_010) == pytest.approx(251.0)  # 10 live tx at 10 tx/s
    assert pacer.due(990.0, 5_020) == pytest.approx(252.0)  # late label: still paced
    assert pacer.backfill_tx == 5_000
    assert pacer.live_started_at == 250.0
    assert "5,000 tx of backfill unpaced, then target 10 tx/s" in pacer.description


def test_speedup_clock_starts_at_the_first_live_event() -> None:
    clock = FakeClock(40.0)
    pacer = Pacer(speedup=3_600, live_from=DAY, clock=clock)
    pacer.start(0.0, 0.0)
    assert pacer.due(DAY - 1, 10) == -math.inf
    assert pacer.due(DAY + 60, 11) == pytest.approx(40.0)
    assert pacer.due(DAY + 60 + 7_200, 12) == pytest.approx(42.0)


def test_without_live_from_nothing_changes() -> None:
    pacer = Pacer(rate=500)
    pacer.start(10.0, 0.0)
    assert pacer.due(123.0, 1000) == pytest.approx(12.0)
    assert pacer.description == "target 500 tx/s"


def test_live_from_needs_a_pace() -> None:
    with pytest.raises(ValueError, match="needs a pace"):
        Pacer(live_from=1.0)
    with pytest.raises(ValueError, match="finite"):
        Pacer(rate=1, live_from=math.nan)


def test_sender_sends_the_backfill_at_once_and_paces_the_rest() -> None:
    frame = Simulator(WorldConfig(n_customers=100, n_terminals=200, n_days=4, seed=5)).frame()
    live_from = float(frame["ts"].iloc[0]) // DAY * DAY + 3 * DAY
    n_live = int((frame["ts"] >= live_from).sum())
    n_backfill = len(frame) - n_live
    assert n_backfill > 250 and 60 < n_live < 200
    rate = 200.0
    producer = RecordingProducer()
    pacer = Pacer(rate=rate, live_from=live_from)
    sender = Sender(producer, "tx", "lb", pacer=pacer)
    started = time.monotonic()
    report = sender.send(timeline([frame], labels=False))
    elapsed = time.monotonic() - started
    assert report.transactions == len(frame)
    assert pacer.backfill_tx == n_backfill
    assert pacer.live_started_at is not None
    backfill_s = pacer.live_started_at - started
    assert backfill_s < 0.5 * n_backfill / rate, "the backfill must not be paced"
    live_s = elapsed - backfill_s
    assert live_s == pytest.approx((n_live - 1) / rate, abs=0.25)


def test_backfill_goes_in_envelopes_and_live_traffic_one_message_per_event() -> None:
    frame = Simulator(WorldConfig(n_customers=100, n_terminals=200, n_days=3, seed=8)).frame()
    live_from = float(frame["ts"].iloc[0]) // DAY * DAY + 2 * DAY
    producer = RecordingProducer()
    sender = Sender(producer, "tx", "lb", envelope=1, max_wait_s=10.0,
                    pacer=Pacer(rate=5_000, live_from=live_from), backfill_envelope=50)
    report = sender.send(timeline([frame], labels=True, default_delay_s=DAY))
    events: list[dict] = []  # (topic, partition, body) in send order, envelopes unpacked
    kinds = []
    for topic, partition, _, value in producer.sent:
        body = json.loads(value)
        inner = body["events"] if body.get("type") == "envelope" else [body]
        when = min(e["ts"] if topic == "tx" else e["known_at"] for e in inner)
        kinds.append((body.get("type") == "envelope", when, topic))
        events.extend({**e, "topic": topic, "partition": partition} for e in inner)
    tx = [e for e in events if e["topic"] == "tx"]
    assert sorted(e["tx_id"] for e in tx) == frame["tx_id"].tolist()  # each exactly once
    assert report.transactions == len(frame)
    tx_msgs = [(packed, ts) for packed, ts, topic in kinds if topic == "tx"]
    assert all(packed for packed, ts in tx_msgs if ts < live_from), "backfill: envelopes"
    assert all(not packed for packed, ts in tx_msgs if ts >= live_from), "live: one per event"
    assert sum(packed for packed, _ in tx_msgs) < len(frame[frame["ts"] < live_from]) / 10
    label_msgs = [(packed, t) for packed, t, topic in kinds if topic == "lb"]
    assert all(packed for packed, t in label_msgs if t < live_from)
    assert any(not packed for packed, t in label_msgs if t >= live_from)
    by_card: dict[int, list[float]] = {}
    for e in tx:
        by_card.setdefault(e["customer_id"], []).append(e["ts"])
    assert all(ts == sorted(ts) for ts in by_card.values()), "per-card order kept"


def test_before_live_runs_once_after_the_backfill_is_flushed_and_delays_the_live_pace() -> None:
    frame = Simulator(WorldConfig(n_customers=100, n_terminals=200, n_days=3, seed=8)).frame()
    live_from = float(frame["ts"].iloc[0]) // DAY * DAY + 2 * DAY
    n_live = int((frame["ts"] >= live_from).sum())
    producer = RecordingProducer()
    calls: list[tuple[int, int, float]] = []  # (messages sent, flushes, monotonic time)

    def before_live() -> None:
        calls.append((len(producer.sent), producer.flushed, time.monotonic()))
        time.sleep(0.4)  # the workers need a while to consume the backfill

    pacer = Pacer(rate=1_000, live_from=live_from)
    sender = Sender(producer, "tx", "lb", envelope=1, pacer=pacer, backfill_envelope=100,
                    before_live=before_live)
    started = time.monotonic()
    sender.send(timeline([frame], labels=False))
    assert len(calls) == 1
    sent_before, flushes, called_at = calls[0]
    backfill_msgs = producer.sent[:sent_before]
    assert all(json.loads(v)["type"] == "envelope" for *_, v in backfill_msgs)
    assert sum(len(json.loads(v)["events"]) for *_, v in backfill_msgs) == len(frame) - n_live
    assert flushes == 1, "the backfill is flushed to the broker before the wait"
    assert pacer.live_started_at is not None and pacer.live_started_at >= called_at + 0.4
    live_s = time.monotonic() - pacer.live_started_at
    assert live_s == pytest.approx((n_live - 1) / 1_000, abs=0.25)  # paced after the wait
    assert time.monotonic() - started >= 0.4


def test_waiting_for_a_group_polls_until_its_commits_reach_the_end() -> None:
    from producers.catchup import behind, wait_until_consumed

    class Offsets:
        def __init__(self) -> None:
            self.commits = [{0: None, 1: None}, {0: 40, 1: 10}, {0: 100, 1: 60}]
            self.calls = 0

        def end_offsets(self, partitions: list[int]) -> dict[int, int]:
            return {0: 100, 1: 60}

        def committed(self, partition: int) -> int | None:
            step = self.commits[min(self.calls // 2, len(self.commits) - 1)]
            self.calls += 1
            return step[partition]

    clock = FakeClock(0.0)
    seen: list[int] = []

    def sleep(s: float) -> None:
        clock.now += s

    done = wait_until_consumed(Offsets(), [0, 1], max_s=30, poll_s=0.5, on_poll=seen.append,
                               clock=clock, sleep=sleep)
    assert seen == [160, 110, 0]
    assert done.behind == 0 and done.waited_s == pytest.approx(1.0)
    stuck = Offsets()
    stuck.commits = [{0: 5, 1: 0}]
    clock.now = 0.0
    done = wait_until_consumed(stuck, [0, 1], max_s=2, poll_s=0.5, clock=clock, sleep=sleep)
    assert done.behind == 155 and done.waited_s == pytest.approx(2.0)
    assert behind(Offsets(), [0, 1], {0: 3, 1: 0}) == 3


def test_backfill_envelope_needs_a_live_start() -> None:
    from fraudstream.errors import FraudstreamError

    with pytest.raises(FraudstreamError, match="needs --live-from"):
        Sender(RecordingProducer(), "tx", "lb", pacer=Pacer(rate=5), backfill_envelope=10)


def test_skipped_days_send_neither_transactions_nor_their_labels() -> None:
    sim = Simulator(WorldConfig(n_customers=80, n_terminals=160, n_days=5, seed=2))
    whole = sim.frame()
    cut = float(whole["ts"].iloc[0]) // DAY * DAY + 2 * DAY
    kept = whole[whole["ts"] >= cut]
    segments = list(timeline(skip_before(sim.days(), cut), labels=True))
    events = np.concatenate([s[["kind", "tx_id"]].to_numpy() for s in segments])
    tx_ids = events[events[:, 0] == TX, 1]
    label_ids = events[events[:, 0] == LABEL, 1]
    assert sorted(tx_ids.tolist()) == kept["tx_id"].tolist()  # ids unchanged: same world
    assert sorted(label_ids.tolist()) == kept["tx_id"].tolist()
    assert next(iter(skip_before(sim.days(), None)))["tx_id"].iloc[0] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--backfill-days", "3"], "needs --live-from"),
    (["--live-from", "2018-05-01", "--rate", "5"], "outside the simulated days"),
    (["--live-from", "2018-04-05", "--backfill-days", "9", "--rate", "5"], "at most 4 days"),
    (["--live-from", "2018-04-05"], "needs a pace"),
    (["--live-from", "5 April", "--rate", "5"], "is not YYYY-MM-DD"),
    (["--backfill-envelope", "100", "--rate", "5"], "needs --live-from"),
    (["--wait-for-group", "fraudstream", "--rate", "5"], "needs --live-from"),
])
def test_bad_backfill_arguments_give_one_line(args: list[str], message: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    proc = subprocess.run(
        [sys.executable, "-m", "fraudstream", "produce", "--days", "10", "--no-progress", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
