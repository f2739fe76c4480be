"""Transactions and their labels merged into one event-time-ordered stream.

A label is an event of its own, due at ``label_ts`` (when the bank learns it), possibly many
days after its transaction. The timeline takes blocks of transactions (one simulated day, or
a slice of a replayed file), keeps the labels not yet due in a pending buffer, and yields
segments in which transactions and due labels are interleaved by time. The pending buffer holds
at most "max label delay" worth of transactions, so memory stays bounded however long the run.

A segment for block k contains block k's transactions and every pending label due before the
first transaction of block k+1 (one block of look-ahead); after the last block all remaining
labels are flushed, so every transaction gets exactly one label. On a tie a transaction comes
before a label, so no label ever precedes its own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd

TX = 0
LABEL = 1

SEGMENT_COLUMNS = (
    "kind", "time", "tx_id", "ts", "customer_id", "terminal_id", "amount", "fraud",
)


def limit_blocks(blocks: Iterable[pd.DataFrame], max_tx: int | None) -> Iterator[pd.DataFrame]:
    """Stop after ``max_tx`` transactions in total (None: no limit)."""
    if max_tx is None:
        yield from blocks
        return
    left = max_tx
    for block in blocks:
        if left <= 0:
            return
        if len(block) > left:
            block = block.iloc[:left]
        left -= len(block)
        yield block


def skip_before(blocks: Iterable[pd.DataFrame], ts: float | None) -> Iterator[pd.DataFrame]:
    """Drop the transactions before event time ``ts`` (None: keep all).

    The simulator still has to generate those days (its world and fraud state evolve day by
    day), but a backfill sends only the recent ones; the skipped transactions' labels are not
    sent either, since the timeline builds labels from the blocks it is given.
    """
    for block in blocks:
        if ts is not None and len(block) and block["ts"].iloc[0] < ts:
            block = block[block["ts"].to_numpy() >= ts]
        if len(block):
            yield block


def split_days(frame: pd.DataFrame, day_s: float = 86_400.0) -> Iterator[pd.DataFrame]:
    """Cut an in-memory, time-sorted frame into per-day blocks (for replayed files)."""
    if frame.empty:
        return
    day = np.floor(frame["ts"].to_numpy() / day_s)
    bounds = np.flatnonzero(np.diff(day)) + 1
    start = 0
    for end in [*bounds.tolist(), len(frame)]:
        yield frame.iloc[start:end]
        start = end


def _tx_part(block: pd.DataFrame) -> pd.DataFrame:
    n = len(block)
    return pd.DataFrame({
        "kind": np.full(n, TX, np.int8),
        "time": block["ts"].to_numpy(),
        "tx_id": block["tx_id"].to_numpy(),
        "ts": block["ts"].to_numpy(),
        "customer_id": block["customer_id"].to_numpy(),
        "terminal_id": block["terminal_id"].to_numpy(),
        "amount": block["amount"].to_numpy(),
        "fraud": np.zeros(n, np.int8),
    })


def _label_part(block: pd.DataFrame, default_delay_s: float) -> pd.DataFrame:
    ts = block["ts"].to_numpy()
    known = block["label_ts"].to_numpy() if "label_ts" in block else ts + default_delay_s
    return pd.DataFrame({
        "kind": np.full(len(block), LABEL, np.int8),
        "time": known,
        "tx_id": block["tx_id"].to_numpy(),
        "ts": ts,
        "customer_id": block["customer_id"].to_numpy(),
        "terminal_id": block["terminal_id"].to_numpy(),
        "amount": block["amount"].to_numpy(),
        "fraud": block["fraud"].to_numpy().astype(np.int8),
    })


def timeline(
    blocks: Iterable[pd.DataFrame],
    labels: bool = True,
    default_delay_s: float = 7 * 86_400.0,
) -> Iterator[pd.DataFrame]:
    """Segments with ``SEGMENT_COLUMNS``, sorted by (time, kind, tx_id).

    ``time`` is the event's own time: ``ts`` for a transaction, ``label_ts`` for a label.
    Labels need a ``fraud`` column; without one (``labels=False`` or a file with no ground
    truth) only transactions are emitted.
    """
    pending: pd.DataFrame | None = None
    it = iter(blocks)
    current = next(it, None)
    while current is not None:
        following = next(it, None)
        while following is not None and following.empty:
            following = next(it, None)
        parts = [_tx_part(current)]
        if labels and "fraud" in current:
            new = _label_part(current, default_delay_s)
            pending = new if pending is None else pd.concat([pending, new], ignore_index=True)
        if pending is not None and len(pending):
            horizon = following["ts"].iloc[0] if following is not None else np.inf
            due = pending["time"].to_numpy() < horizon
            if due.any():
                parts.append(pending[due])
                pending = pending[~due]
        segment = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        segment = segment.sort_values(["time", "kind", "tx_id"], kind="stable", ignore_index=True)
        if len(segment):
            yield segment
        current = following
