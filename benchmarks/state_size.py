"""How the worker's state grows: bytes per card and per terminal, against days and cards.

Issue 12 asks that the state kept per card and per terminal stay bounded, and that the report
say how it grows with cards. This feeds simulated worlds through the worker's own ``Processor``
(a dict in place of the RocksDB table and no broker: the values are the bytes the table and its
changelog would hold), with each label fed as it becomes known, and measures at checkpoints:

* **stored cards**: the encoded ``CardState`` values (RocksDB and the changelog hold these);
* **decoded cards**: the processor's cache of decoded cards, which keeps every card it touched
  until partitions move (Python objects, measured with ``deep_size``);
* **terminals**: the terminal replica every worker keeps whole, and the transaction ids it
  remembers to apply each delta once (bounded by time, not by terminals).

Run: ``python -m benchmarks.state_size [--customers 1000] [--days 120] [--every 15]
[--sweep 250,500,1000,2000] [--sweep-days 60] [--out reports/state]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from array import array
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.features import DAY
from models.registry import Registry
from producers.events import Label, Transaction, encode_label, encode_transaction
from producers.simulator import Simulator
from producers.timeline import TX, split_days, timeline
from producers.world import WorldConfig
from streams.card_state import CardState
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica

LABEL_WAIT_DAYS = 8
"""Days simulated past the last checkpoint (the simulator's labels come 7 days late)."""
_ATOMS = (int, float, str, bytes, bytearray, bool, type(None), array)  # arrays: getsizeof counts their buffer


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it holds (containers, arrays, slotted dataclasses).

    Why hand-written: ``sys.getsizeof`` counts one object, and no library of this project's
    stack walks ``__slots__`` dataclasses and ``array`` together. Shared objects count once.

    >>> deep_size([1.5, 2.5]) > deep_size([]) > 0
    True
    """
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, _ATOMS):
        return size
    if isinstance(obj, dict):
        return size + sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        return size + sum(deep_size(x, seen) for x in obj)
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(obj, name):
                size += deep_size(getattr(obj, name), seen)
    if hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen)
    return size


@dataclass
class Checkpoint:
    """The state after ``day`` simulated days of one world."""

    customers: int
    day: int
    transactions: int
    cards: int
    stored_bytes: int
    stored_p99: float
    stored_max: int
    decoded_bytes: int
    pending_rows: float  # per card: scored transactions waiting for a label
    held_labels: int
    terminals: int
    terminal_bytes: int
    remembered_ids: int
    remembered_bytes: int


def _processor(registry_dir: Path) -> Processor:
    runtime = ModelRuntime("logreg", Registry(registry_dir, "state-size"), "state-size",
                           snapshot_every=10**9)
    runtime.start()
    return Processor({}, TerminalReplica(), runtime, Telemetry("state-size"),
                     alert_threshold=2.0, partitions=1)


def _measure(proc: Processor, customers: int, day: int, n_tx: int) -> Checkpoint:
    values = list(proc.cards.values())
    sizes = np.array([len(v) for v in values]) if values else np.zeros(1)
    pending = [CardState.from_bytes(v).n_pending() for v in values]
    replica = proc.replica
    return Checkpoint(
        customers=customers, day=day, transactions=n_tx, cards=len(values),
        stored_bytes=int(sizes.sum()), stored_p99=float(np.percentile(sizes, 99)),
        stored_max=int(sizes.max()), decoded_bytes=deep_size(proc._cache),
        pending_rows=float(np.mean(pending)) if pending else 0.0,
        held_labels=proc.clock.held(), terminals=len(replica.states),
        terminal_bytes=deep_size(replica.states),
        remembered_ids=replica.remembered_ids(),
        remembered_bytes=deep_size(replica._ids) + deep_size(replica._id_days),
    )


def _record(row: Any, offset: int) -> Record:
    """A timeline row (``producers.timeline``) as the record the worker would read."""
    key = str(int(row.customer_id)).encode()
    if row.kind == TX:
        tx = Transaction(int(row.tx_id), float(row.ts), int(row.customer_id),
                         int(row.terminal_id), float(row.amount), 0.0)
        return Record(key, encode_transaction(tx), "transactions", 0, offset)
    label = Label(int(row.tx_id), int(row.customer_id), int(row.terminal_id), float(row.ts),
                  int(row.fraud), float(row.time), 0.0)
    return Record(key, encode_label(label), "labels", 0, offset)


def replay(world: pd.DataFrame, customers: int, checkpoints: list[int],
           work: Path) -> list[Checkpoint]:
    """Feed ``world`` as the producer sends it (``producers.timeline``: transactions and
    labels merged in event time, a day at a time) and measure the state after each day of
    ``checkpoints``."""
    proc = _processor(work / f"registry-{customers}")
    frame = world.sort_values(["ts", "tx_id"], kind="stable")
    first_day = int(frame.ts.iloc[0] // DAY)
    due = sorted(checkpoints)
    out: list[Checkpoint] = []
    offset = n_tx = 0
    for segment in timeline(split_days(frame, DAY)):
        day = int(segment.ts[segment.kind == TX].iloc[0] // DAY) - first_day + 1
        if day > due[-1]:
            break
        kinds = segment.kind.to_numpy()
        # consecutive events of one kind go as one batch, as the two agents take them
        starts = [0, *(np.flatnonzero(np.diff(kinds)) + 1).tolist(), len(segment)]
        rows = list(segment.itertuples(index=False))
        for lo, hi in pairwise(starts):
            for i in range(lo, hi, 200):
                batch = [_record(r, offset + j) for j, r in enumerate(rows[i:min(i + 200, hi)])]
                offset += len(batch)
                if kinds[lo] == TX:
                    proc.score(batch)
                    n_tx += len(batch)
                else:
                    proc.learn(batch)
        proc.replica.take_outgoing()  # the worker publishes its deltas every 200 ms
        while due and day >= due[0]:
            out.append(_measure(proc, customers, due.pop(0), n_tx))
        if not due:
            break
    return out


def world(customers: int, days: int, seed: int) -> pd.DataFrame:
    return Simulator(WorldConfig(n_customers=customers, n_terminals=2 * customers,
                                 n_days=days, seed=seed)).frame()


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def render(by_day: list[Checkpoint], by_cards: list[Checkpoint], command: str) -> str:
    """The report as Markdown."""
    lines = ["# How the worker's state grows", "", f"Measured by `{command}` (offline: the "
             "worker's `Processor` fed simulated worlds, no broker; see the module docstring).",
             "", "## Against time (one world)", "",
             "| day | tx | cards | stored B/card (mean / p99 / max) | decoded B/card | "
             "pending rows/card | held labels | terminals | replica B/terminal | ids remembered "
             "| ids MB |", "|" + "---|" * 11]
    for c in by_day:
        lines.append(
            f"| {c.day} | {c.transactions:,} | {c.cards:,} | {c.stored_bytes / c.cards:,.0f} / "
            f"{c.stored_p99:,.0f} / {c.stored_max:,} | {c.decoded_bytes / c.cards:,.0f} | "
            f"{c.pending_rows:.1f} | {c.held_labels:,} | {c.terminals:,} | "
            f"{c.terminal_bytes / max(c.terminals, 1):,.0f} | {c.remembered_ids:,} | "
            f"{_mb(c.remembered_bytes)} |")
    lines += ["", "## Against cards (same days)", "",
              "| customers | tx | cards | stored MB | stored B/card | decoded MB | decoded B/card "
              "| terminals | replica MB | ids remembered | ids MB |", "|" + "---|" * 11]
    for c in by_cards:
        lines.append(
            f"| {c.customers:,} | {c.transactions:,} | {c.cards:,} | {_mb(c.stored_bytes)} | "
            f"{c.stored_bytes / c.cards:,.0f} | {_mb(c.decoded_bytes)} | "
            f"{c.decoded_bytes / c.cards:,.0f} | {c.terminals:,} | {_mb(c.terminal_bytes)} | "
            f"{c.remembered_ids:,} | {_mb(c.remembered_bytes)} |")
    first, last = by_day[0], by_day[-1]
    small, large = by_cards[0], by_cards[-1]

    def growth(a: float, b: float) -> str:
        return f"x{b / a:.2f}" if a else "n/a"

    lines += ["", "## What it says (from the figures above)", "",
              f"- Stored bytes per card: {first.stored_bytes / first.cards:,.0f} after day "
              f"{first.day}, {last.stored_bytes / last.cards:,.0f} after day {last.day} "
              f"({growth(first.stored_bytes / first.cards, last.stored_bytes / last.cards)} "
              f"while the days grew {growth(first.day, last.day)}).",
              f"- From {small.cards:,} to {large.cards:,} cards "
              f"({growth(small.cards, large.cards)}): stored state "
              f"{growth(small.stored_bytes, large.stored_bytes)}, decoded cache "
              f"{growth(small.decoded_bytes, large.decoded_bytes)}, terminal replica "
              f"{growth(small.terminal_bytes, large.terminal_bytes)}, remembered ids "
              f"{growth(small.remembered_bytes, large.remembered_bytes)}.",
              "- The decoded cache keeps every card touched since partitions last moved; the "
              "terminal replica keeps every terminal's last 38 days on every worker, and the "
              "transaction ids of that period (bounded by time and transaction rate).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--every", type=int, default=15)
    parser.add_argument("--sweep", default="250,500,1000,2000")
    parser.add_argument("--sweep-days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        sweep = sorted(int(x) for x in args.sweep.split(","))
    except ValueError:
        parser.error(f"--sweep must be customer counts separated by commas, got {args.sweep!r}")
    if args.days < args.every or min(sweep) < 10:
        parser.error("--days must be at least --every, and every --sweep count at least 10")
    with tempfile.TemporaryDirectory(prefix="fraudstream-state-") as tmp:
        work = Path(tmp)
        # worlds a label wait longer than measured: at a file's end the timeline sends every
        # label still to come at once, which the last day would otherwise hold
        extra = LABEL_WAIT_DAYS
        by_day = replay(world(args.customers, args.days + extra, args.seed), args.customers,
                        list(range(args.every, args.days + 1, args.every)), work)
        by_cards = [replay(world(n, args.sweep_days + extra, args.seed), n, [args.sweep_days],
                           work)[0] for n in sweep]
    command = "python -m benchmarks.state_size " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
    text = render(by_day, by_cards, command.strip())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
