"""Investigators: they check alerted cards within hours and label what they find (feedback).

In a card-fraud system labels come two ways (Dal Pozzolo et al., IEEE TNNLS 2017): the day's
alerts go to investigators, who call the card holder and confirm or clear the card's recent
transactions within hours (*feedback*), while every other transaction is labelled days later by
a chargeback or by the feedback window passing (*delayed*, ``producers.delays``). This module
is the investigators' side of the simulator: given an alert, which transactions get a label,
with which truth, and when.

Rules (one definition, used live by ``fraudstream investigate`` and in event time by the
offline replays of ``benchmarks.feedback``):

- At most ``budget`` cards are investigated per event-time day (UTC), the capacity of the team;
  alerts of further cards that day are not investigated.
- An alert of a card not already under investigation opens a case, closed ``hours`` after the
  alerted transaction (event time): the card's transactions from ``lookback_days`` before the
  alert up to (not including) the close get their true label then (``known_at`` = close,
  ``source="feedback"``).
  Another alert of the same card before the close joins the open case (no new labels, no
  budget); after the close it opens a new case (its labels: what the first one did not cover).
- Each transaction is labelled by feedback at most once; the truth comes from the simulator's
  side channel (``CardHistory``), never from the scoring path.

>>> import pandas as pd
>>> data = pd.DataFrame({"tx_id": [1, 2, 3, 4], "ts": [100.0, 200.0, 300.0, 90_000.0],
...                      "customer_id": [7, 7, 8, 7], "terminal_id": [1, 2, 3, 4],
...                      "fraud": [0, 1, 1, 0]})
>>> team = Investigator(CardHistory.from_frame(data), budget=1, hours=1.0)
>>> [(label.tx_id, label.fraud, label.known_at, label.source) for label in team.alert(7, 200.0)]
[(1, 0, 3800.0, 'feedback'), (2, 1, 3800.0, 'feedback')]
>>> team.alert(7, 250.0), team.alert(8, 300.0)  # joins the open case; card 8: budget spent
([], [])
>>> [label.tx_id for label in team.alert(7, 90_000.0)]  # the next day, a new case
[4]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from producers.events import FEEDBACK, Label

DAY = 86_400.0
HOUR = 3_600.0


@dataclass(frozen=True)
class CardHistory:
    """The simulator's ground truth by card: every transaction's time, id, terminal and label.

    Arrays sorted by (card, time); ``starts[c]:starts[c+1]`` are card ``cards[c]``'s rows."""

    cards: np.ndarray
    starts: np.ndarray
    ts: np.ndarray
    tx_id: np.ndarray
    terminal_id: np.ndarray
    fraud: np.ndarray

    @classmethod
    def from_frame(cls, df: Any) -> CardHistory:
        """From a contract DataFrame (``tx_id``, ``ts``, ``customer_id``, ``terminal_id``,
        ``fraud``), in any order."""
        cust = df["customer_id"].to_numpy(np.int64)
        ts = df["ts"].to_numpy(np.float64)
        tx = df["tx_id"].to_numpy(np.int64)
        order = np.lexsort((tx, ts, cust))
        cust = cust[order]
        cards, starts = np.unique(cust, return_index=True)
        return cls(cards, np.append(starts, len(cust)), ts[order], tx[order],
                   df["terminal_id"].to_numpy(np.int64)[order],
                   df["fraud"].to_numpy(np.int8)[order])

    def rows(self, card_id: int, since: float, until: float) -> range:
        """Row positions of the card's transactions with ``since <= ts < until``."""
        c = int(np.searchsorted(self.cards, card_id))
        if c >= len(self.cards) or self.cards[c] != card_id:
            return range(0)
        lo, hi = int(self.starts[c]), int(self.starts[c + 1])
        ts = self.ts[lo:hi]
        first = lo + int(np.searchsorted(ts, since, side="left"))
        last = lo + int(np.searchsorted(ts, until, side="left"))
        return range(first, last)


class Investigator:
    """Alerts in, feedback labels out (the rules are in the module docstring)."""

    def __init__(self, history: CardHistory, budget: int = 100, hours: float = 4.0,
                 lookback_days: float = 1.0) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1 card per day, got {budget}")
        if not hours >= 0:
            raise ValueError(f"hours must be >= 0, got {hours}")
        self.history = history
        self.budget = int(budget)
        self.delay_s = float(hours) * HOUR
        self.lookback_s = float(lookback_days) * DAY
        self._day: int | None = None
        self._cases_today: set[int] = set()
        self._open_until: dict[int, float] = {}  # card -> close of its latest case
        self._covered_until: dict[int, float] = {}  # card -> newest transaction time labelled
        self.cases = 0
        self.refused = 0
        self.labels = 0

    def alert(self, card_id: int, ts: float) -> list[Label]:
        """An alert of ``card_id`` at event time ``ts``: the labels of the case it opens, if
        any (all ``known_at`` = ``ts + hours``)."""
        day = math.floor(ts / DAY)
        if self._day is None or day > self._day:
            self._day, self._cases_today = day, set()
        if ts <= self._open_until.get(card_id, -math.inf):
            return []  # the card's case is still open: this alert joins it
        if card_id not in self._cases_today and len(self._cases_today) >= self.budget:
            self.refused += 1
            return []
        self._cases_today.add(card_id)
        close = ts + self.delay_s
        self._open_until[card_id] = close
        since = max(ts - self.lookback_s, self._covered_until.get(card_id, -math.inf))
        h = self.history
        rows = [r for r in h.rows(card_id, since, close)
                if h.ts[r] > self._covered_until.get(card_id, -math.inf)]
        if rows:
            self._covered_until[card_id] = float(h.ts[rows[-1]])
        self.cases += 1
        self.labels += len(rows)
        return [Label(int(h.tx_id[r]), int(card_id), int(h.terminal_id[r]), float(h.ts[r]),
                      int(h.fraud[r]), close, 0.0, FEEDBACK) for r in rows]

    def stats(self) -> dict[str, int]:
        """Cases opened, alerts refused for lack of budget, feedback labels given."""
        return {"cases": self.cases, "refused": self.refused, "labels": self.labels}
