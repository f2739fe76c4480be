"""The 15 model inputs, defined once and computed one event at a time.

Why incremental: the stream processor sees one transaction at a time and keeps a small state per
customer and per terminal in its tables; the batch trainer and the offline evaluator replay the
same events through the *same* functions, held in plain dicts (``FeatureEngine``). There is no
second, vectorised definition that could drift from this one (training/serving skew); the test
suite checks this code against an independent pandas computation instead.

Semantics (docs/contracts.md):

* customer windows cover ``(t - w days, t]`` and include the current transaction;
* terminal windows cover transactions with ``ts`` in ``(t - (d + w) days, t - d days]`` and
  count as fraud only labels already known at ``t`` (``known_at <= t``); the ratio is 0 when the
  window is empty.

State objects only grow with the events of their longest window and are pruned as event time
advances, so a table of them stays bounded. Both are JSON-serialisable (``to_dict``/``from_dict``).
"""

from __future__ import annotations

import gc
import math
from array import array
from bisect import bisect_right, insort
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

DAY = 86_400.0
"""One day in seconds (event time is float seconds since the epoch, UTC)."""

WINDOWS_DAYS: tuple[int, int, int] = (1, 7, 30)
MAX_WINDOW_DAYS = max(WINDOWS_DAYS)
PRUNE_SLACK_S = DAY
"""A terminal's state is pruned once its oldest entry is this far past its retention."""
DEFAULT_DELAY_DAYS = 7.0

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "is_weekend",
    "is_night",
    "cust_n_1d",
    "cust_mean_1d",
    "cust_n_7d",
    "cust_mean_7d",
    "cust_n_30d",
    "cust_mean_30d",
    "term_n_1d",
    "term_risk_1d",
    "term_n_7d",
    "term_risk_7d",
    "term_n_30d",
    "term_risk_30d",
)

_W1, _W7, _W30 = (w * DAY for w in WINDOWS_DAYS)


def time_features(ts: float) -> tuple[float, float]:
    """``(is_weekend, is_night)`` in UTC; night is hour <= 6 as in the handbook.

    Computed arithmetically (1970-01-01 was a Thursday) because ``datetime`` per event costs
    more than all the other features together.

    >>> time_features(1532822400.0)  # 2018-07-29 00:00 UTC, a Sunday
    (1.0, 1.0)
    >>> time_features(1532871000.0)  # 2018-07-29 13:30 UTC
    (1.0, 0.0)
    """
    days = math.floor(ts / DAY)
    weekday = (days + 3) % 7  # Monday = 0
    hour = int((ts - days * DAY) // 3600.0)
    return (1.0 if weekday >= 5 else 0.0, 1.0 if hour <= 6 else 0.0)


@dataclass(slots=True)
class CustomerState:
    """The last 30 days of one card: event times and running amount totals, in time order.

    ``cum[i + 1] - cum[i]`` is the amount of transaction ``i`` (``cum[0]`` is the total of
    everything already pruned), so any window's sum is one subtraction instead of a loop over
    the window: this halved the per-event cost of the customer features. The totals are
    re-based to zero whenever they exceed ``_REBASE``, which keeps the rounding error of a
    window mean around 1e-11 however long the card lives (the skew test checks 1e-9).
    A few dozen doubles per card, in arrays: 8 bytes each where a list of floats took 32 (the
    stream worker keeps a decoded state per card: 5,000 cards in the default world), and the
    card codec copies an array's memory as it is. Entries older than the longest window are
    dropped on update.
    """

    ts: array = field(default_factory=lambda: array("d"))
    cum: array = field(default_factory=lambda: array("d", (0.0,)))

    def add_transaction(self, ts: float, amount: float) -> None:
        """Record a transaction; out-of-order events are inserted in place (rare, O(n))."""
        tss = self.ts
        cum = self.cum
        if not tss or ts >= tss[-1]:
            tss.append(ts)
            cum.append(cum[-1] + amount)
        else:
            i = bisect_right(tss, ts)
            tss.insert(i, ts)
            cum.insert(i + 1, cum[i] + amount)
            for j in range(i + 2, len(cum)):
                cum[j] += amount
        if tss[0] <= tss[-1] - _W30:
            self.prune(tss[-1] - _W30)

    def prune(self, before: float) -> None:
        """Drop transactions at or before ``before`` (they can no longer enter any window)."""
        k = bisect_right(self.ts, before)
        if k:
            del self.ts[:k]
            del self.cum[:k]
            if self.cum[0] > _REBASE:
                base = self.cum[0]
                self.cum = array("d", [c - base for c in self.cum])

    @property
    def amounts(self) -> list[float]:
        """The amounts in the state (for inspection; the features use the totals)."""
        cum = self.cum
        return [cum[i + 1] - cum[i] for i in range(len(self.ts))]

    def to_dict(self) -> dict[str, Any]:
        return {"ts": list(self.ts), "cum": list(self.cum)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        return cls(ts=array("d", (float(x) for x in data["ts"])),
                   cum=array("d", (float(x) for x in data["cum"])))


_REBASE = 10_000.0


def customer_window_features(state: CustomerState, t: float) -> tuple[float, ...]:
    """Count and mean amount over the 1, 7 and 30 days ending at ``t`` (inclusive), read-only."""
    tss = state.ts
    cum = state.cum
    end = len(tss)
    if end and tss[-1] > t:
        end = bisect_right(tss, t)
    s30 = 0 if not end or tss[0] > t - _W30 else bisect_right(tss, t - _W30, 0, end)
    s7 = bisect_right(tss, t - _W7, s30, end)
    s1 = bisect_right(tss, t - _W1, s7, end)
    n1 = end - s1
    n7 = end - s7
    n30 = end - s30
    total = cum[end]
    return (
        float(n1),
        (total - cum[s1]) / n1 if n1 else 0.0,
        float(n7),
        (total - cum[s7]) / n7 if n7 else 0.0,
        float(n30),
        (total - cum[s30]) / n30 if n30 else 0.0,
    )


def customer_features(state: CustomerState, ts: float, amount: float) -> tuple[float, ...]:
    """Record the transaction in ``state`` and return its 6 customer features.

    The current transaction is part of its own windows, so recording comes first; this is the
    one call the stream processor makes per transaction for the card's state.
    """
    state.add_transaction(ts, amount)
    return customer_window_features(state, ts)


@dataclass(slots=True)
class TerminalState:
    """One terminal's transaction times, plus the fraud labels that have arrived for them.

    Transactions and labels are recorded independently, so the order in which they reach the
    state does not matter: in the stream a label may arrive (on its own partition) before the
    transaction it refers to has been processed, and the feature read at time ``t`` still only
    counts frauds with ``known_at <= t`` among transactions in the window. Fraud labels carry
    the transaction id when known so that a redelivered label is not counted twice.

    ``retention_days`` bounds the state: delay plus the longest window (37 days by default).
    """

    ts: list[float] = field(default_factory=list)
    frauds: list[tuple[float, float, int | None]] = field(default_factory=list)
    retention_days: float = DEFAULT_DELAY_DAYS + MAX_WINDOW_DAYS
    latest: float = -math.inf

    def add_transaction(self, ts: float) -> None:
        """Record a transaction time (kept sorted; late events are inserted in place)."""
        tss = self.ts
        if not tss or ts >= tss[-1]:
            tss.append(ts)
        else:
            insort(tss, ts)
        if ts > self.latest:
            self.latest = ts
            before = ts - self.retention_days * DAY
            # a day late: what is dropped is outside every window already (the features
            # bound their windows themselves), and pruning at almost every transaction was
            # 3% of a worker's time
            stale = before - PRUNE_SLACK_S
            if tss[0] <= stale or (self.frauds and self.frauds[0][0] <= stale):
                self.prune(before)

    def add_label(self, tx_ts: float, fraud: int | bool, known_at: float, tx_id: int | None = None) -> None:
        """Record a label for a transaction of this terminal made at ``tx_ts``.

        Genuine labels change nothing (the count includes every transaction, labelled or not);
        a fraud label is kept with the time it became known.
        """
        if not fraud:
            return
        if tx_id is not None and any(f[2] == tx_id for f in self.frauds):
            return
        if tx_ts <= self.latest - self.retention_days * DAY:
            return
        self.frauds.append((float(tx_ts), float(known_at), tx_id))

    def prune(self, before: float) -> None:
        """Drop transactions and fraud labels made at or before ``before``."""
        k = bisect_right(self.ts, before)
        if k:
            del self.ts[:k]
        if any(f[0] <= before for f in self.frauds):
            self.frauds = [f for f in self.frauds if f[0] > before]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": list(self.ts),
            "frauds": [list(f) for f in self.frauds],
            "retention_days": self.retention_days,
            "latest": self.latest if math.isfinite(self.latest) else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminalState:
        latest = data.get("latest")
        return cls(
            ts=[float(x) for x in data["ts"]],
            frauds=[(float(f[0]), float(f[1]), None if f[2] is None else int(f[2])) for f in data["frauds"]],
            retention_days=float(data.get("retention_days", DEFAULT_DELAY_DAYS + MAX_WINDOW_DAYS)),
            latest=-math.inf if latest is None else float(latest),
        )


def terminal_features(
    state: TerminalState, t: float, delay_days: float = DEFAULT_DELAY_DAYS
) -> tuple[float, ...]:
    """Count and known-fraud ratio over 1, 7 and 30-day windows ending ``delay_days`` before ``t``.

    Read-only: the caller records the current transaction (``state.add_transaction``) after
    reading, or before, it makes no difference since the window ends ``delay`` days ago
    (for ``delay_days > 0``).
    """
    tss = state.ts
    hi = t - delay_days * DAY
    lo1 = t - (delay_days + 1) * DAY
    lo7 = t - (delay_days + 7) * DAY
    lo30 = t - (delay_days + 30) * DAY
    end = bisect_right(tss, hi)
    if not end:
        return _EMPTY_TERMINAL
    s30 = bisect_right(tss, lo30, 0, end)
    s7 = bisect_right(tss, lo7, s30, end)
    s1 = bisect_right(tss, lo1, s7, end)
    n1 = end - s1
    n7 = end - s7
    n30 = end - s30
    k1 = k7 = k30 = 0
    for tx_ts, known_at, _ in state.frauds:  # one pass for the three nested windows
        if lo30 < tx_ts <= hi and known_at <= t:
            k30 += 1
            if tx_ts > lo7:
                k7 += 1
                if tx_ts > lo1:
                    k1 += 1
    return (
        float(n1),
        k1 / n1 if n1 else 0.0,
        float(n7),
        k7 / n7 if n7 else 0.0,
        float(n30),
        k30 / n30 if n30 else 0.0,
    )


_EMPTY_TERMINAL = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class FeatureEngine:
    """Per-key states in dicts, for the batch trainer and the offline evaluator.

    The stream processor does the same with Faust tables: ``features`` below is the whole
    per-transaction recipe, and ``add_label`` the whole per-label one.
    """

    __slots__ = ("customers", "delay_days", "terminals")

    def __init__(self, delay_days: float = DEFAULT_DELAY_DAYS) -> None:
        self.delay_days = float(delay_days)
        self.customers: dict[int, CustomerState] = {}
        self.terminals: dict[int, TerminalState] = {}

    def _terminal(self, terminal_id: int) -> TerminalState:
        state = self.terminals.get(terminal_id)
        if state is None:
            state = TerminalState(retention_days=self.delay_days + MAX_WINDOW_DAYS)
            self.terminals[terminal_id] = state
        return state

    def features(self, ts: float, customer_id: int, terminal_id: int, amount: float) -> tuple[float, ...]:
        """The 15 features of a transaction (in ``FEATURE_NAMES`` order); updates the states."""
        cust = self.customers.get(customer_id)
        if cust is None:
            cust = self.customers[customer_id] = CustomerState()
        term = self.terminals.get(terminal_id)
        if term is None:
            term = self._terminal(terminal_id)
        c = customer_features(cust, ts, amount)
        t = terminal_features(term, ts, self.delay_days)
        term.add_transaction(ts)
        return (amount, *time_features(ts), *c, *t)

    def add_label(
        self,
        terminal_id: int,
        tx_ts: float,
        fraud: int | bool,
        known_at: float,
        tx_id: int | None = None,
    ) -> None:
        """Deliver a label (only terminal features use labels)."""
        if fraud:
            self._terminal(terminal_id).add_label(tx_ts, fraud, known_at, tx_id)


def compute_features(
    ts: Any,
    customer_id: Any,
    terminal_id: Any,
    amount: Any,
    fraud: Any | None = None,
    label_ts: Any | None = None,
    delay_days: float = DEFAULT_DELAY_DAYS,
) -> Any:
    """Replay a whole data set (sorted by time) and return the ``(n, 15)`` feature matrix.

    Labels are delivered at ``label_ts`` (default ``ts + delay``), interleaved with the
    transactions in event time, exactly as the stream processor would see them. Only frauds need
    delivering, so the merged stream is built from the transactions plus the fraud labels.
    """
    import numpy as np

    ts_l = np.asarray(ts, dtype=np.float64)
    n = len(ts_l)
    out = np.empty((n, len(FEATURE_NAMES)), dtype=np.float64)
    cust_l = np.asarray(customer_id).tolist()
    term_l = np.asarray(terminal_id).tolist()
    amt_l = np.asarray(amount, dtype=np.float64).tolist()
    engine = FeatureEngine(delay_days)
    if fraud is None:
        fraud_idx = np.zeros(0, dtype=np.int64)
        known = np.zeros(0)
    else:
        fraud_idx = np.flatnonzero(np.asarray(fraud) != 0)
        lts = ts_l + delay_days * DAY if label_ts is None else np.asarray(label_ts, np.float64)
        known = lts[fraud_idx]
    # merged order of fraud labels (kind 0) and transactions (kind 1)
    times = np.concatenate([known, ts_l])
    kinds = np.concatenate([np.zeros(len(fraud_idx), np.int8), np.ones(n, np.int8)])
    idx = np.concatenate([fraud_idx, np.arange(n)])
    order = np.lexsort((idx, kinds, times))
    ts_py = ts_l.tolist()
    feats = engine.features
    add_label = engine.add_label
    rows: list[tuple[float, ...]] = [()] * n
    with gc_paused():
        for kind, i, at in zip(
            kinds[order].tolist(), idx[order].tolist(), times[order].tolist(), strict=True
        ):
            if kind:
                rows[i] = feats(ts_py[i], cust_l[i], term_l[i], amt_l[i])
            else:
                add_label(term_l[i], ts_py[i], 1, at, i)
        if n:
            out[:] = rows
    return out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a replay.

    A replay allocates millions of small tuples and dicts that contain no cycles; every
    generation-2 pass walks all of them, which made the full-world replay half again slower.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
