"""Labels in event time: however the two topics interleave, the worker learns like the offline
evaluator (``streams.label_clock``, ``Processor.learn``/``score``).

The parity tests feed one small simulated world to the processor with its labels arriving far
ahead of the transactions (a backfill: the labels consumer is faster), a few days ahead, or
exactly on time, and require every score to equal the offline prequential replay's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.catalog import make_model
from models.evaluate import prepare, replay_online
from models.registry import Registry
from producers.events import Label, Transaction, encode_label, encode_transaction
from producers.simulator import Simulator
from producers.world import WorldConfig
from streams.card_state import CardState
from streams.label_clock import LabelClock
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica

DAY = 86_400.0


def make_proc(tmp_path: Path, cards: dict | None = None, name: str = "logreg",
              hold_max: int = 50_000) -> Processor:
    runtime = ModelRuntime(name, Registry(tmp_path / "reg", "k"), f"t-{name}",
                           snapshot_every=10**9)
    runtime.start()
    return Processor({} if cards is None else cards, TerminalReplica(7.0), runtime,
                     Telemetry("w0"), alert_threshold=2.0, partitions=1, hold_max=hold_max)


def tx_rec(r: object, offset: int = 0) -> Record:
    tx = Transaction(int(r.tx_id), float(r.ts), int(r.customer_id), int(r.terminal_id),
                     float(r.amount), 0.0)
    return Record(str(int(r.customer_id)).encode(), encode_transaction(tx), "transactions", 0,
                  offset)


def label_rec(tx_id: int, customer: int, terminal: int, tx_ts: float, fraud: int,
              known_at: float, offset: int = 0) -> Record:
    label = Label(tx_id, customer, terminal, tx_ts, fraud, known_at, 0.0)
    return Record(str(customer).encode(), encode_label(label), "labels", 0, offset)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    df = Simulator(WorldConfig(n_customers=150, n_terminals=300, n_days=35, seed=5)).frame()
    return df.sort_values(["ts", "tx_id"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def offline(world: pd.DataFrame) -> np.ndarray:
    data = prepare(world, delay_days=7.0, labels="data")
    scores, _, _ = replay_online(make_model("logreg", 0), data)
    return scores


def _labels(df: pd.DataFrame) -> list[tuple[float, Record]]:
    known = np.maximum(df.label_ts.to_numpy(), df.ts.to_numpy())
    out = [(float(k), label_rec(int(r.tx_id), int(r.customer_id), int(r.terminal_id),
                                float(r.ts), int(r.fraud), float(k)))
           for r, k in zip(df.itertuples(index=False), known, strict=True)]
    out.sort(key=lambda item: item[0])
    return out


def _stream(proc: Processor, df: pd.DataFrame, lead_days: float | None) -> dict[int, float]:
    """Score every transaction in order; labels arrive ``lead_days`` of event time ahead of
    the transactions (None: all of them before the first transaction)."""
    labels = _labels(df)
    scores: dict[int, float] = {}
    i = 0
    if lead_days is None:
        for start in range(0, len(labels), 500):
            proc.learn([rec for _, rec in labels[start:start + 500]])
        i = len(labels)
    for offset, r in enumerate(df.itertuples(index=False)):
        if lead_days is not None:
            batch = []
            while i < len(labels) and labels[i][0] <= float(r.ts) + lead_days * DAY:
                batch.append(labels[i][1])
                i += 1
            if batch:
                proc.learn(batch)
        for _, value in proc.score([tx_rec(r, offset)]).scores:
            body = json.loads(value)
            scores[body["tx_id"]] = body["score"]
    return scores


@pytest.mark.parametrize("lead_days", [None, 3.0, 0.0])
def test_scores_equal_the_offline_replay_however_labels_lead(
    tmp_path: Path, world: pd.DataFrame, offline: np.ndarray, lead_days: float | None
) -> None:
    proc = make_proc(tmp_path)
    got = _stream(proc, world, lead_days)
    expected = dict(zip(world.tx_id.tolist(), offline.tolist(), strict=True))
    assert len(got) == len(world)
    np.testing.assert_allclose([got[t] for t in world.tx_id], [expected[t] for t in world.tx_id],
                               rtol=0, atol=1e-9)
    # every label whose time came was learned, the rest wait
    known = np.maximum(world.label_ts, world.ts)
    assert proc.runtime.learned == int((known <= world.ts.max()).sum())
    fed = known <= world.ts.max() + (np.inf if lead_days is None else lead_days * DAY)
    assert proc.clock.held() == int((fed & (known > world.ts.max())).sum())


def test_labels_learned_on_arrival_would_differ(tmp_path: Path, world: pd.DataFrame,
                                                offline: np.ndarray) -> None:
    """The test above has teeth: learning every label the moment its transaction is scored
    (the old behaviour with labels ahead) gives other scores."""
    proc = make_proc(tmp_path)
    labels = {int(rec_tx): rec for rec_tx, rec in
              ((json.loads(r.value)["tx_id"], r) for _, r in _labels(world))}
    got = []
    for r in world.itertuples(index=False):
        got.append(json.loads(proc.score([tx_rec(r)]).scores[0][1])["score"])
        card = proc._card(str(int(r.customer_id)).encode(), 0)
        proc.clock.advance(0, float("inf"))
        proc.learn([labels[int(r.tx_id)]])
        proc.clock.clear()
        card.early.clear()
    assert np.max(np.abs(np.array(got) - offline)) > 1e-3


def test_held_labels_survive_a_restart_from_card_state(tmp_path: Path) -> None:
    """A new processor over the same card store (a restarted worker) finds the held labels
    in the cards and releases them at their time; none lost, none learned twice."""
    cards: dict[bytes, bytes] = {}
    first = make_proc(tmp_path, cards)
    t0 = 1e9
    rows = [(i, t0 + i * 3600.0) for i in range(10)]
    for i, ts in rows:
        first.score([tx_rec(_Row(i, ts, customer=1 + i % 3))])
    first.learn([label_rec(i, 1 + i % 3, 5, ts, i % 2, ts + DAY) for i, ts in rows])
    assert first.clock.held() == 10 and first.runtime.learned == 0

    second = make_proc(tmp_path, cards)  # the crash lost the index and the watermark
    second.runtime = first.runtime
    second.learn([label_rec(i, 1 + i % 3, 5, ts, i % 2, ts + DAY) for i, ts in rows[:4]])
    assert second.telemetry.label_dupes._value.get() == 4  # re-read while held: once
    second.score([tx_rec(_Row(100, t0 + DAY + 4.5 * 3600.0, customer=7))])
    assert second.runtime.learned == 5  # labels 0..4 are known by then
    assert second.clock.held() == 5
    second.invalidate({0})  # a rebalance: rebuilt again from the cards
    second.score([tx_rec(_Row(101, t0 + 3 * DAY, customer=7))])
    assert second.runtime.learned == 10 and second.clock.held() == 0


def test_unknown_label_is_held_then_expired(tmp_path: Path) -> None:
    proc = make_proc(tmp_path)
    proc.score([tx_rec(_Row(1, 1e9))])
    proc.learn([label_rec(999, 1, 5, 1e9, 1, 1e9 + DAY)])  # no such transaction
    for k in range(70):  # the card keeps trading; the label's time passes, then its TTL
        proc.score([tx_rec(_Row(2 + k, 1e9 + 2 * DAY + k * 0.8 * DAY))])
    card = proc._card(b"1", 0)
    assert 999 not in card.early
    assert proc.telemetry.labels_expired._value.get() == 1
    assert proc.runtime.learned == 0


def test_malformed_label_goes_to_the_dlq_and_holds_nothing(tmp_path: Path) -> None:
    proc = make_proc(tmp_path)
    out = proc.learn([Record(b"1", b'{"v":1,"type":"label"}', "labels", 0, 3)])
    assert len(out.dead) == 1 and "missing" in json.loads(out.dead[0][1])["reason"].lower()
    assert proc.clock.held() == 0


def test_idle_partition_releases_its_held_labels(tmp_path: Path) -> None:
    proc = make_proc(tmp_path)
    proc.score([tx_rec(_Row(1, 1e9))])
    proc.learn([label_rec(1, 1, 5, 1e9, 1, 1e9 + 7 * DAY)])
    assert proc.runtime.learned == 0
    proc.release_idle(0)
    assert proc.runtime.learned == 1 and proc.clock.held() == 0
    assert proc.telemetry.labels_released._value.get() == 1


def test_a_partition_holding_too_many_labels_is_paused_then_resumed(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, hold_max=100)
    proc.score([tx_rec(_Row(i, 1e9 + i, customer=1 + i % 20)) for i in range(150)])
    out = proc.learn([label_rec(i, 1 + i % 20, 5, 1e9 + i, 0, 1e9 + DAY + i)
                      for i in range(150)])
    assert out.pause == [0] and proc.paused == {0}
    assert proc.learn([label_rec(500, 1, 5, 1e9, 0, 1e9 + 2 * DAY)]).pause == [0]  # again
    out = proc.score([tx_rec(_Row(1000, 1e9 + DAY + 100, customer=99))])
    assert out.resume == [0] and not proc.paused
    assert proc.runtime.learned == 101


def test_a_seen_transaction_without_its_score_is_rescored(tmp_path: Path) -> None:
    """Its label was learned and its row dropped (LEARNED_KEEP), the score never reached
    Kafka: the re-read transaction is scored again and counted, not answered with nothing."""
    proc = make_proc(tmp_path)
    first = json.loads(proc.score([tx_rec(_Row(1, 1e9))]).scores[0][1])
    card = proc._card(b"1", 0)
    card.pop_pending(1)
    card.mark_done(1)
    card.pending = card.pending[:0]  # the kept row is gone
    proc._sent_here.clear()  # re-read after an assignment (the cached card stands for the stored)
    out = proc.score([tx_rec(_Row(1, 1e9))])
    assert len(out.scores) == 1
    body = json.loads(out.scores[0][1])
    assert body["rescored"] is True and body["features"] == first["features"]
    assert proc.telemetry.rescored._value.get() == 1
    assert len(card.customer.ts) == 1  # not counted twice


def test_has_early_reads_the_header_only() -> None:
    card = CardState()
    assert not CardState.has_early(card.to_bytes())
    card.early[3] = [1, 5.0]
    assert CardState.has_early(card.to_bytes())


class _Row:
    """A transaction row for ``tx_rec``."""

    def __init__(self, tx_id: int, ts: float, customer: int = 1, terminal: int = 5,
                 amount: float = 10.0) -> None:
        self.tx_id, self.ts, self.customer_id = tx_id, ts, customer
        self.terminal_id, self.amount = terminal, amount


def test_a_label_waits_for_the_slowest_partition_still_reading(tmp_path: Path) -> None:
    """One model serves every partition: a label whose own partition has passed its time is
    not learned while another partition still reading is behind it."""
    proc = make_proc(tmp_path)
    proc.partitions = 2
    proc.clock.reading = {0, 1}
    p0, p1 = _Row(1, 1e9, customer=1), _Row(2, 1e9, customer=2)
    proc.score([tx_rec(p0)])
    proc.score([tx_rec(p1)._replace(partition=1)])
    proc.learn([label_rec(1, 1, 5, 1e9, 1, 1e9 + DAY)])
    proc.score([tx_rec(_Row(3, 1e9 + 2 * DAY, customer=1))])  # partition 0 passes it
    assert proc.runtime.learned == 0  # partition 1 is still at 1e9
    proc.score([tx_rec(_Row(4, 1e9 + 2 * DAY, customer=2))._replace(partition=1)])
    assert proc.runtime.learned == 1
    proc.clock.reading = set()  # live: every partition caught up, own watermark decides
    proc.learn([label_rec(3, 1, 5, 1e9 + 2 * DAY, 0, 1e9 + 2 * DAY)])
    assert proc.runtime.learned == 2


def test_the_cached_reading_floor_releases_what_a_fresh_computation_would() -> None:
    """``LabelClock`` keeps the slowest reading watermark between changes; a clock driven by
    random advances, holds and reading sets releases exactly what one that recomputes it
    every time releases."""
    class Fresh(LabelClock):
        def _reading_floor(self) -> float:
            self._floor = None
            return super()._reading_floor()

    rng = random.Random(3)
    cached, fresh = LabelClock(), Fresh()
    released = 0
    for step in range(5_000):
        roll, p, jitter = rng.random(), rng.randrange(4), rng.uniform(-20, 20)
        for clock in (cached, fresh):
            if roll < 0.02:
                clock.reading = {q for q in range(4) if (step >> q) & 1}
            elif roll < 0.3:
                clock.hold(p, step + 10 * jitter + 50, step, b"k")
            else:
                clock.advance(p, step + jitter)
        due = cached.due_everywhere()
        assert due == fresh.due_everywhere()
        assert cached.learn_time(p) == fresh.learn_time(p)
        released += sum(len(labels) for _, labels in due)
    assert cached.held() == fresh.held()
    assert released > 500  # the reading sets held labels back and let them go, many times
