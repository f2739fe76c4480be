"""Which scored transactions become alerts: a daily card budget, or a fixed score threshold.

Why a budget: investigators check about ``k = 100`` cards per day, whatever the model's scores
look like. A fixed threshold on an online model's scores is not a budget: the scores move as
the model learns (and under-sampled models are not calibrated), so the same threshold can raise
a handful of alerts one week and far more than anyone can check the next. ``AlertBudget`` keeps
the number of alerted cards per event-time day at or below the budget, and chooses its threshold
so that the alerts arrive throughout the day instead of going to the first cards of the morning.

The threshold method (``AlertBudget``)
--------------------------------------
For every event-time day the policy keeps the ``k`` largest *card maxima* (the highest score of
each card that day). When the day ends, the ``k``-th largest of them is the score from which
exactly ``k`` cards would have been alerted that day. The next day's threshold is the mean of
that value over the last ``window`` days (7 by default: a whole week, so weekday and weekend
traffic both count). On a stationary stream, about ``k`` cards cross it per day, at whatever
time of day their suspicious transaction comes; the hard cap refuses any further card on the
days with more crossings.

Why card maxima and not transaction scores: the budget counts cards, and a card with many
transactions would otherwise weigh more in the quantile than the one case it makes.

Error, measured (``tests/streams/test_alert_policy.py``: 30 simulated days, 5,000 cards,
about 2 transactions per card and day, scores ~ Beta(1, 12), k = 100; days 9-30, i.e. with a
full week of history): 96.7 cards alerted per day for seed 0 (min 86, max 100); over seeds 0-9
the means are 94.0-96.7 (95.6 overall, worst single day 73). So about 4 % under the budget, never
over it. The shortfall is not a bias of the estimate but the cap: the number of cards crossing
even an exact quantile varies by about ``sqrt(k)`` from day to day (binomial); the cap cuts the
days above ``k`` and nothing fills the days below. With yesterday's value alone (``window=1``)
the overall mean is 94.7 (the estimate's own noise adds to the day's). A worker with a quarter
of the cards and ``share=0.25`` (cap 25) alerts 22.0-23.2 cards per day: the relative spread
``sqrt(k)/k`` grows as the budget shrinks. 52 % of the alerts come before noon and 22 % in the
last quarter of the day: the threshold does not depend on the time of day. Under drift (a model
still learning) the threshold lags: for a linear trend, the mean of the last ``window`` daily
values is the value of ``(window + 1) / 2`` days ago (4 days for a week); the cap holds anyway,
and a shorter window follows faster at the cost of noise.

Bookkeeping rules: event time decides the day (``floor(ts / 86400)``, UTC); the worker's day is
the latest day seen, and a late transaction of an earlier day counts towards the current one
(the budget is spent when the alert is raised). A card alerted today that scores above the
threshold again alerts again (its case gets the new transaction) but costs no budget. Memory:
the ``k`` card maxima of today, the set of cards alerted today (at most ``k``) and ``window``
floats of history; a day's sets are dropped when it ends. The threshold only changes at
midnight, so within a day a re-delivered transaction gets its first decision again (its card is
in today's set, or the cap still refuses it); across a restart it may not (the state is in
memory only).

Cost: 0.7-1.9 µs per ``decide`` (most scores are below the day's k-th card maximum: a few dict
look-ups and comparisons), measured on the loaded 2-core machine by timing ``decide`` over
the test's 10-day stream (100,456 calls) minus the bare loop.

``share`` is the fraction of the card space this worker owns (assigned partitions / total): its
budget is ``ceil(k * share)``. The threshold does not depend on the share (a worker with half
the cards and half the budget needs the same quantile), so a partition move only changes the
cap; the day of the move is left out of the history, because its card maxima come from two
populations.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Protocol

DAY = 86_400.0
"""One day in seconds; event time is float seconds since the epoch, UTC."""


class AlertPolicy(Protocol):
    """What the stream processor needs from an alert policy."""

    threshold: float

    def decide(self, card_id: int, ts: float, score: float) -> bool: ...

    def set_share(self, share: float) -> None: ...

    def stats(self) -> dict[str, float | int]: ...


class FixedThreshold:
    """Every transaction scoring at least ``threshold`` alerts (no budget, no day).

    >>> policy = FixedThreshold(0.9)
    >>> policy.decide(card_id=7, ts=0.0, score=0.95), policy.decide(card_id=7, ts=1.0, score=0.5)
    (True, False)
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self.alerts = 0

    def decide(self, card_id: int, ts: float, score: float) -> bool:
        if score >= self.threshold:
            self.alerts += 1
            return True
        return False

    def set_share(self, share: float) -> None:
        """Nothing to do: a threshold does not depend on how many cards the worker owns."""

    def stats(self) -> dict[str, float | int]:
        return {"threshold": self.threshold, "alerts": self.alerts}


class _TopCardMax:
    """The ``capacity`` largest card maxima of one day, in O(capacity) memory.

    A card outside the top whose new score beats the smallest kept maximum enters with that
    score: its earlier scores were all at most that minimum (they were evicted or never
    entered, and the minimum only rises), so the new score is its maximum.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.best: dict[int, float] = {}
        self._heap: list[tuple[float, int]] = []  # (max, card), with stale entries skipped lazily

    def floor(self) -> float:
        """The smallest kept maximum (``-inf`` while fewer than ``capacity`` cards were seen)."""
        if len(self.best) < self.capacity:
            return -math.inf
        heap, best = self._heap, self.best
        while best.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0]

    def add(self, card_id: int, score: float) -> None:
        best = self.best
        old = best.get(card_id)
        if old is not None:
            if score > old:
                best[card_id] = score
                self._push(score, card_id)
            return
        if len(best) >= self.capacity:
            if score <= self.floor():
                return
            del best[heapq.heappop(self._heap)[1]]  # floor() left a valid entry on top
        best[card_id] = score
        self._push(score, card_id)

    def _push(self, score: float, card_id: int) -> None:
        heapq.heappush(self._heap, (score, card_id))
        if len(self._heap) > 4 * self.capacity + 16:  # drop stale entries now and then
            self._heap = [(s, c) for c, s in self.best.items()]
            heapq.heapify(self._heap)

    def kth(self, k: int) -> float | None:
        """The ``k``-th largest card maximum (the smallest one if fewer cards were seen)."""
        if not self.best:
            return None
        ranked = heapq.nlargest(k, self.best.values())
        return ranked[-1]


class AlertBudget:
    """At most ``ceil(budget_per_day * share)`` cards alerted per event-time day.

    Call ``decide`` for *every* scored transaction, not only the high ones: the threshold is
    learned from all cards' daily maxima. The method and its measured error are in the module
    docstring.

    >>> policy = AlertBudget(budget_per_day=2, initial_threshold=0.9)
    >>> day1 = 19_000 * 86_400.0  # seconds since the epoch, at midnight UTC
    >>> [policy.decide(card, day1 + 60.0 * card, score)
    ...  for card, score in [(1, 0.95), (1, 0.97), (2, 0.5), (3, 0.91), (4, 0.99)]]
    [True, True, False, True, False]
    >>> policy.alerted_today  # card 1 counted once; card 4 came after the budget was spent
    2
    >>> policy.decide(5, day1 + 86_400.0, 0.2)  # the next day: threshold = 2nd best card max of day 1
    False
    >>> policy.stats()
    {'day': 19001, 'threshold': 0.97, 'alerted': 0, 'budget': 2, 'capped': 0}
    """

    def __init__(
        self,
        budget_per_day: int = 100,
        share: float = 1.0,
        initial_threshold: float = 0.9,
        window: int = 7,
    ) -> None:
        if budget_per_day < 1:
            raise ValueError(f"budget_per_day must be at least 1, got {budget_per_day}")
        if window < 1:
            raise ValueError(f"window must be at least 1 day, got {window}")
        self.budget_per_day = int(budget_per_day)
        self.threshold = float(initial_threshold)
        self.day: int | None = None
        self.budget = 0
        self._share = 1.0
        self.set_share(share)
        self._history: deque[float] = deque(maxlen=window)
        self._alerted: set[int] = set()
        self._previous: set[int] = set()  # yesterday's alerted cards, for late events
        self._previous_threshold = self.threshold
        self._top = _TopCardMax(self.budget_per_day)  # enough for any share <= 1
        self._mixed = False  # the share changed today: keep this day out of the history
        self._capped = 0

    @property
    def alerted_today(self) -> int:
        """Distinct cards alerted in the current event-time day."""
        return len(self._alerted)

    def set_share(self, share: float) -> None:
        """Partitions moved: this worker now owns ``share`` of the cards (0 < share <= 1).

        The cap changes at once; cards already alerted today keep counting against it.
        """
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if share != self._share and self.day is not None:
            self._mixed = True
        self._share = float(share)
        self.budget = math.ceil(self.budget_per_day * share - 1e-9)  # 100 * 0.07 is 7.000000000000001

    def decide(self, card_id: int, ts: float, score: float) -> bool:
        """True when this transaction raises an alert; updates today's card maxima."""
        if score != score:  # NaN: no alert, and kept out of the maxima (it would break the heap)
            return False
        day = math.floor(ts / DAY)
        if self.day is None:
            self.day = day
        elif day > self.day:
            self._roll(day)
        alerted = self._alerted
        if day < self.day:  # a late event (partitions are up to ~1 h apart in event time)
            if day < self.day - 1 or score < self._previous_threshold:
                return False  # that day's budget is closed
            alerted = self._previous  # counted against its own day's budget, not today's
        else:
            self._top.add(card_id, score)
            if score < self.threshold:
                return False
        if card_id in alerted:
            return True  # same card, same day: its case gets this transaction, no budget spent
        if len(alerted) >= self.budget:
            self._capped += 1
            return False
        alerted.add(card_id)
        return True

    def _roll(self, day: int) -> None:
        """The day ended: record its k-th card maximum, start the next day's sets."""
        self._previous_threshold = self.threshold  # the ending day's, for its late events
        kth = self._top.kth(self.budget)
        if kth is not None and not self._mixed:
            self._history.append(kth)
        if self._history:
            self.threshold = sum(self._history) / len(self._history)
        self._previous = self._alerted if day == self.day + 1 else set()
        self.day = day
        self._alerted = set()
        self._top = _TopCardMax(self.budget_per_day)
        self._mixed = False
        self._capped = 0

    def stats(self) -> dict[str, float | int]:
        """The current day, threshold, cards alerted and budget, and cards refused by the cap."""
        return {
            "day": -1 if self.day is None else self.day,
            "threshold": self.threshold,
            "alerted": self.alerted_today,
            "budget": self.budget,
            "capped": self._capped,
        }


def make_alert_policy(policy: str, budget: int, threshold: float, share: float = 1.0) -> AlertPolicy:
    """The policy named by ``Settings.alert_policy``: ``"budget"`` or ``"threshold"``.

    With ``"budget"``, ``threshold`` is only the first day's threshold (no history yet).
    """
    if policy == "budget":
        return AlertBudget(budget_per_day=budget, share=share, initial_threshold=threshold)
    if policy == "threshold":
        return FixedThreshold(threshold)
    raise ValueError(f"unknown alert policy {policy!r}; choose 'budget' or 'threshold'")
