"""The worker's processor alone, without Kafka or Faust: CPU per transaction by stage.

    python -m benchmarks.processor_alone [--model sgd_logreg] [--tx 200000] [--customers 2000]
                                         [--terminals 4000] [--days 120] [--seed 7]
                                         [--envelope 500] [--batch 8]

``python -m benchmarks.drain_one`` measures a real worker; its CPU per transaction mixes the
processor (features, model, card state, label bookkeeping, score messages) with Faust, the
Kafka client and the broker sharing the machine, and it moves by a few percent from run to
run. This feeds the drain's world to ``streams.processor.Processor`` in the same shape, in one
process: envelopes of 500 per partition over 4 partitions in event time, scored in batches of
8 envelopes (``--envelope 1 --batch 1``: event mode, one message per transaction and one
score message each), with the labels read one day of event time ahead of the transactions (a
backlog), cards staged and encoded every ``FLUSH_TX`` transactions whatever the layout, as
``CardTable`` does at each flush, the worker's default alert policy. What it prints is the
processor's own cost, the part of the worker a code change to the hot path moves; a sampling
profiler can be attached to it (``py-spy record -- python -m benchmarks.processor_alone``)
without ptrace rights over a worker.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

DAY = 86_400.0
PARTITIONS = 4
ENVELOPE = 500
BATCH = 8
FLUSH_TX = BATCH * BATCH * ENVELOPE
"""Transactions between two flushes of the staged cards: every 8 batches of the default
layout, also with one transaction per message (flushing every 8 calls there would encode
each card far more often than a worker does)."""


class StagedCards(dict):
    """Cards staged as objects and encoded at each ``flush``, as ``CardTable`` writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.dirty: dict[bytes, Any] = {}

    def stage(self, key: bytes, partition: int, card: Any) -> None:
        self.dirty[key] = card

    def read(self, key: bytes, partition: int) -> bytes | None:
        return self.get(key)

    def flush(self) -> None:
        for key, card in self.dirty.items():
            self[key] = card.to_bytes()
        self.dirty.clear()


def _messages(
    args: argparse.Namespace, size: int
) -> tuple[list[tuple[float, Any]], list[tuple[float, Any]], int]:
    """(first event time, record) of the transaction and label envelopes, in event time, and
    how many transactions they hold."""
    from producers.events import envelope, label_prefix, transaction_prefix
    from producers.partitioning import murmur2_partition
    from producers.simulator import Simulator
    from producers.world import WorldConfig
    from streams.processor import Record

    world = WorldConfig(n_customers=args.customers, n_terminals=args.terminals,
                        n_days=args.days, seed=args.seed)
    df = Simulator(world).frame().sort_values(["ts", "tx_id"], kind="stable").head(args.tx)
    events = []
    for r in df.itertuples(index=False):
        key = str(int(r.customer_id)).encode()
        p = murmur2_partition(key, PARTITIONS)
        tx, cust, term = int(r.tx_id), int(r.customer_id), int(r.terminal_id)
        events.append((float(r.ts), 0, p, key,
                       transaction_prefix(tx, float(r.ts), cust, term, float(r.amount))))
        events.append((float(r.label_ts), 1, p, key,
                       label_prefix(tx, cust, term, float(r.ts), int(r.fraud), float(r.label_ts))))
    events.sort(key=lambda e: (e[0], e[1]))
    packed: dict[int, list[tuple[float, Any]]] = {0: [], 1: []}
    open_: dict[tuple[int, int], list[Any]] = {}

    def close(kind: int, p: int, buf: list[Any]) -> None:
        topic, name = ("transactions", "transaction") if kind == 0 else ("labels", "label")
        value = envelope(name, buf[2], 0.0).encode()
        packed[kind].append((buf[0], Record(buf[1], value, topic, p, len(packed[kind]))))

    for t, kind, p, key, prefix in events:
        buf = open_.setdefault((kind, p), [t, key, []])
        buf[2].append(prefix)
        if len(buf[2]) == size:
            close(kind, p, open_.pop((kind, p)))
    for (kind, p), buf in open_.items():
        close(kind, p, buf)
    for kind in packed:
        packed[kind].sort(key=lambda m: m[0])
    return packed[0], packed[1], len(df)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.processor_alone",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sgd_logreg")
    parser.add_argument("--tx", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--terminals", type=int, default=4000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--envelope", type=int, default=ENVELOPE,
                        help="transactions per message (1: event mode)")
    parser.add_argument("--batch", type=int, default=BATCH, help="messages per processor call")
    args = parser.parse_args(argv)

    from models.registry import Registry
    from streams.alert_policy import make_alert_policy
    from streams.model_runtime import ModelRuntime
    from streams.processor import Processor
    from streams.telemetry import Telemetry
    from streams.terminal_replica import TerminalReplica

    txs, labels, n = _messages(args, args.envelope)
    batch_size = args.batch
    runtime = ModelRuntime(args.model, Registry(Path(tempfile.mkdtemp()) / "registry", "bench"),
                           f"alone-{args.model}", snapshot_every=10**9)
    runtime.start()
    cards = StagedCards()
    proc = Processor(cards, TerminalReplica(7.0), runtime, Telemetry("w0"),
                     partitions=PARTITIONS, alert_policy=make_alert_policy("budget", 100, 0.9))
    proc.pack_scores = args.envelope > 1  # as the worker: one score message a tx in event mode
    proc.clock.reading = set(range(PARTITIONS))
    started = time.process_time()
    li = messages = since_flush = 0
    flush_every = max(1, FLUSH_TX // args.envelope)  # in messages
    for i in range(0, len(txs), batch_size):
        ahead = txs[i][0] + DAY
        batch = []
        while li < len(labels) and labels[li][0] <= ahead:
            batch.append(labels[li][1])
            li += 1
        if batch:
            proc.learn(batch)
        chunk = [record for _, record in txs[i:i + batch_size]]
        messages += len(proc.score(chunk).scores)
        since_flush += len(chunk)
        if since_flush >= flush_every:
            cards.flush()
            since_flush = 0
    cpu = time.process_time() - started
    stages = {k: v / n * 1e6 for k, v in proc.stages.seconds().items()}
    print(f"{args.model}: {n:,} tx, {cpu:.2f} CPU-s, {cpu / n * 1e6:.1f} CPU-us/tx ["
          + " ".join(f"{k}={v:.1f}" for k, v in stages.items()) + "]")
    return {"cpu_us_per_tx": cpu / n * 1e6, "tx": n, "score_messages": messages, **stages}


if __name__ == "__main__":
    main()
