"""Shared learning (``streams.shared_learning``): every worker learns every label once.

Two processors own one partition each, as two workers do; their examples travel between them
as the ``learned-examples`` messages would. With shared learning both models learn every label
and score close to the offline replay; with local learning each learns its half.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.catalog import make_model
from models.evaluate import prepare, replay_online
from models.features import FEATURE_NAMES
from models.registry import Registry
from producers.events import Label, Transaction, encode_label, encode_transaction
from producers.partitioning import murmur2_partition
from producers.simulator import Simulator
from producers.world import WorldConfig
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.shared_learning import SharedExamples, decode_examples, encode_examples
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica

N = len(FEATURE_NAMES)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    df = Simulator(WorldConfig(n_customers=150, n_terminals=300, n_days=35, seed=5)).frame()
    return df.sort_values(["ts", "tx_id"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def offline(world: pd.DataFrame) -> dict[int, float]:
    data = prepare(world, delay_days=7.0, labels="data")
    scores, _, _ = replay_online(make_model("logreg", 0), data)
    return dict(zip(world.tx_id.tolist(), scores.tolist(), strict=True))


def _proc(tmp_path: Path, worker: str, replica: TerminalReplica, shared: bool) -> Processor:
    runtime = ModelRuntime("logreg", Registry(tmp_path / worker, "k"), f"t-{worker}",
                           snapshot_every=10**9)
    runtime.start()
    proc = Processor({}, replica, runtime, Telemetry(worker), alert_threshold=2.0,
                     worker_id=worker, partitions=2)
    if shared:
        proc.shared = SharedExamples(N)
    return proc


def _two_workers(tmp_path: Path, df: pd.DataFrame, shared: bool
                 ) -> tuple[list[Processor], dict[int, float]]:
    """Both partitions in event time, labels two days ahead of the transactions; after every
    call a worker's examples are read by the other one."""
    replica = TerminalReplica(7.0)  # every worker's replica holds every terminal
    procs = [_proc(tmp_path, f"w{i}", replica, shared) for i in range(2)]
    offsets = [0, 0]

    def exchange(src: int) -> None:
        if not shared:
            return
        for value in procs[src].shared.take_outgoing():  # type: ignore[union-attr]
            procs[1 - src].shared.add_message(src, offsets[src], value)  # type: ignore[union-attr]
            offsets[src] += 1

    known = np.maximum(df.label_ts.to_numpy(), df.ts.to_numpy())
    labels = sorted(zip(known.tolist(), df.itertuples(index=False), strict=True),
                    key=lambda item: item[0])
    scores: dict[int, float] = {}
    i = 0
    for r in df.itertuples(index=False):
        key = str(int(r.customer_id)).encode()
        part = murmur2_partition(key, 2)
        while i < len(labels) and labels[i][0] <= float(r.ts) + 2 * 86_400:
            k, lr = labels[i]
            lkey = str(int(lr.customer_id)).encode()
            lp = murmur2_partition(lkey, 2)
            label = Label(int(lr.tx_id), int(lr.customer_id), int(lr.terminal_id), float(lr.ts),
                          int(lr.fraud), float(k), 0.0)
            procs[lp].learn([Record(lkey, encode_label(label), "labels", lp, i)])
            exchange(lp)
            i += 1
        tx = Transaction(int(r.tx_id), float(r.ts), int(r.customer_id), int(r.terminal_id),
                         float(r.amount), 0.0)
        for _, value in procs[part].score([Record(key, encode_transaction(tx), "transactions",
                                                  part, 0)]).scores:
            body = json.loads(value)
            scores[body["tx_id"]] = body["score"]
        exchange(part)
    return procs, scores


def test_every_worker_learns_every_label_and_scores_near_offline(
    tmp_path: Path, world: pd.DataFrame, offline: dict[int, float]
) -> None:
    procs, scores = _two_workers(tmp_path / "shared", world, shared=True)
    local, local_scores = _two_workers(tmp_path / "local", world, shared=False)
    assert len(scores) == len(local_scores) == len(world)
    own = [p.telemetry.labels_released._value.get() + p.telemetry.labels_late._value.get()
           for p in local]
    # local: each model learned its own partition's labels; shared: both learned all of them
    assert [p.runtime.learned for p in local] == own
    total = sum(own)
    waiting = [p.shared.waiting() for p in procs]  # type: ignore[union-attr]
    assert [p.runtime.learned + w for p, w in zip(procs, waiting, strict=True)] == [total] * 2
    assert all(w < 50 for w in waiting)  # only the last hours' examples still wait
    ids = world.tx_id.tolist()
    err_shared = np.abs([scores[t] - offline[t] for t in ids])
    err_local = np.abs([local_scores[t] - offline[t] for t in ids])
    print(f"mean abs score error vs offline: shared {err_shared.mean():.5f}, "
          f"local {err_local.mean():.5f}")
    assert err_shared.mean() < err_local.mean() / 5, (err_shared.mean(), err_local.mean())


def _rows(*tx_ids: int) -> array:
    rows = array("d")
    for tx_id in tx_ids:
        rows.extend([tx_id, 100.0 * tx_id, tx_id % 2, *([float(tx_id)] * N)])
    return rows


def test_a_restart_from_a_checkpoint_learns_each_example_once() -> None:
    """Messages 0..2 hold examples known at 100..600; the model is snapshotted after learning
    up to t=300 (message 1 is half learned). A worker restored from that checkpoint and
    reading from its offsets learns exactly the rest."""
    log = [encode_examples(_rows(1, 2)), encode_examples(_rows(3, 4)),
           encode_examples(_rows(5, 6))]
    first = SharedExamples(N)
    for offset, value in enumerate(log):
        first.add_message(0, offset, value)
    before = [int(f[0]) for f, _ in first.due(300.0)]
    assert before == [1, 2, 3]
    checkpoint = json.loads(json.dumps(first.checkpoint()))  # it travels in a JSON header
    assert checkpoint["offsets"] == {"0": 1}

    restarted = SharedExamples(N)
    start = restarted.restore(checkpoint)
    for offset in range(start[0], len(log)):
        restarted.add_message(0, offset, log[offset])
    after = [int(f[0]) for f, _ in restarted.due(1e9)]
    assert after == [4, 5, 6]


def test_own_examples_read_back_and_republished_ones_are_skipped() -> None:
    sx = SharedExamples(N)
    sx.record_local(7, 700.0, 1, [0.0] * N)
    [own] = sx.take_outgoing()
    assert sx.take_outgoing() == []
    assert sx.add_message(0, 0, own) == 0
    assert sx.add_message(1, 0, encode_examples(_rows(8))) == 1
    assert [y for _, y in sx.due(1e9)] == [0]
    assert sx.add_message(1, 1, encode_examples(_rows(8, 7))) == 0  # a restarted peer's resend
    # a checkpoint taken before the read-back still names the own example as learned
    other = SharedExamples(N)
    other.record_local(9, 900.0, 0, [0.0] * N)
    assert 9 in other.checkpoint()["done"]


def test_a_large_release_is_split_into_messages_under_the_producers_limit() -> None:
    """A replay's end releases thousands of labels at once (one 2.5 MB message once stopped
    a worker: the producer refuses requests over 1 MB)."""
    sx = SharedExamples(N)
    for tx_id in range(10_000):
        sx.record_local(tx_id, float(tx_id), tx_id % 2, [float(tx_id)] * N)
    values = sx.take_outgoing()
    assert len(values) == 3 and all(len(v) < 1_000_000 for v in values)
    peer = SharedExamples(N)
    assert sum(peer.add_message(0, i, v) for i, v in enumerate(values)) == 10_000
    assert [int(f[0]) for f, _ in peer.due(1e9)] == list(range(10_000))


def test_a_malformed_message_is_skipped_and_reading_goes_on() -> None:
    sx = SharedExamples(N)
    assert sx.add_message(0, 0, b"not examples") == 0
    assert sx.add_message(0, 1, encode_examples(_rows(3))) == 1
    assert sx.positions == {0: 2}
    with pytest.raises(ValueError, match="not a learned-examples message"):
        decode_examples(b"FSX1" + b"\0" * 9, N)
