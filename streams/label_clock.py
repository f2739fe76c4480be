"""Event time across the two input topics: when may a label be learned?

Faust fetches and delivers each topic partition on its own, so the ``labels`` consumer and
the ``transactions`` consumer run at their own pace. Live, a label arrives about when the
transaction stream reaches its ``known_at``; in a replay, a backfill or a catch-up after a
lag, the labels consumer can be days of event time ahead of (or behind) the transactions. A
model that learns a label the moment it is read then learns from the future, and the
pipeline's accuracy stops matching the offline evaluator's (measured: AP 0.602 against
0.668 on the handbook's data before this module).

The rule, per partition (transactions and labels are co-partitioned by card):

* the partition's **watermark** is the largest ``ts`` of a transaction seen on it;
* a label whose ``known_at`` is at or below the watermark is *late*: learned at once;
* a label ahead of it is *held* and released just before the first transaction with
  ``ts >= known_at`` is scored: the offline evaluator's order (labels known at ``t`` come
  before transactions at ``t``);
* a caught-up, idle transaction partition (the end of a replay, a quiet partition) moves its
  watermark to its newest held label after ``idle`` seconds, as Kafka Streams'
  ``max.task.idle.ms`` does, so held labels are never stuck behind a stream that has ended.

This class is the index of held labels only; the labels themselves are kept in their card's
state (``CardState.early``), which is changelog-backed, so a crash loses none: the index is
rebuilt from the cards of the assigned partitions (``rebuild``). The watermark is not
persisted: after a restart it is learnt again from the re-read transactions, and until then
labels wait, which is exactly what keeps labels from overtaking a re-read.

>>> clock = LabelClock()
>>> clock.advance(0, 100.0)
>>> clock.is_late(0, 90.0), clock.is_late(0, 150.0)
(True, False)
>>> clock.hold(0, 150.0, tx_id=7, key=b"42")
>>> clock.due(0, 120.0), clock.held(0)
([], 1)
>>> clock.due(0, 150.0)
[(150.0, 7, b'42')]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

Held = tuple[float, int, bytes]  # (known_at, tx_id, card key)


class LabelClock:
    """Per-partition watermark of the transaction stream and the labels waiting for it."""

    def __init__(self) -> None:
        self._watermark: dict[int, float] = {}
        self._heaps: dict[int, list[Held]] = {}
        self._highest = -math.inf  # the largest watermark: nothing is due before it
        self._next = math.inf  # no held label is known before this
        self.labels_read: dict[int, float] = {}
        """Per partition, the largest ``known_at`` read on the labels topic."""
        self._reading: set[int] = set()
        self._floor: float | None = None
        """The slowest reading watermark, kept until it can have changed: it was computed
        for every scored transaction (measured: 8% of an envelope-mode worker, py-spy,
        2026-12-02)."""

    @property
    def reading(self) -> set[int]:
        """Partitions whose transactions are still being read (a backlog, a catch-up): the
        worker sets it; their slowest watermark bounds when any label may be learned."""
        return self._reading

    @reading.setter
    def reading(self, partitions: set[int]) -> None:
        self._reading = set(partitions)
        self._floor = None

    def read_label(self, partition: int, known_at: float) -> None:
        if known_at > self.labels_read.get(partition, -math.inf):
            self.labels_read[partition] = known_at

    def watermark(self, partition: int) -> float:
        """Event time the partition's transactions have reached (-inf: none seen yet)."""
        return self._watermark.get(partition, -math.inf)

    def advance(self, partition: int, ts: float) -> None:
        before = self._watermark.get(partition, -math.inf)
        if ts > before:
            self._watermark[partition] = ts
            if ts > self._highest:
                self._highest = ts
            floor = self._floor  # only the slowest reading partition moves the floor
            if floor is not None and before <= floor and partition in self._reading:
                self._floor = None

    def learn_time(self, partition: int) -> float:
        """Event time up to which labels of ``partition`` may be learned.

        Its own watermark, and no later than the slowest partition still reading: one model
        serves every partition of a worker, so a label learned because a fast partition
        passed its ``known_at`` would be used on a slow partition's earlier transactions
        (measured with two partitions: AP 0.253 in the pipeline against 0.154 offline).
        Live, every partition is caught up and this is the partition's own watermark.
        """
        return min(self._watermark.get(partition, -math.inf), self._reading_floor())

    def _reading_floor(self) -> float:
        floor = self._floor
        if floor is None:
            wm, floor = self._watermark, math.inf
            for p in self._reading:
                floor = min(floor, wm.get(p, -math.inf))
            self._floor = floor
        return floor

    def is_late(self, partition: int, known_at: float) -> bool:
        """True when the transaction stream is already at or past ``known_at``."""
        return known_at <= self.learn_time(partition)

    def due_everywhere(self) -> list[tuple[int, list[Held]]]:
        """Pop, per partition, the held labels whose learn time has come (called once per
        scored transaction): nothing is looked at while every held label is known after the
        highest watermark; otherwise the floor is computed once and each heap peeked once."""
        if self._next > self._highest:
            return []
        floor = self._reading_floor()
        if self._next > floor:  # held back by a partition still reading
            return []
        out = []
        wm, pop = self._watermark, heapq.heappop
        for partition, heap in self._heaps.items():
            if not heap:
                continue
            until = wm.get(partition, -math.inf)
            if floor < until:
                until = floor
            if heap[0][0] <= until:
                labels = [pop(heap)]
                while heap and heap[0][0] <= until:
                    labels.append(pop(heap))
                out.append((partition, labels))
        if out:
            self._next_again()
        return out

    def hold(self, partition: int, known_at: float, tx_id: int, key: bytes) -> None:
        heapq.heappush(self._heaps.setdefault(partition, []), (known_at, tx_id, key))
        if known_at < self._next:
            self._next = known_at

    def due(self, partition: int, until: float) -> list[Held]:
        """Pop the held labels with ``known_at <= until``, oldest first (ties: by tx id)."""
        heap = self._heaps.get(partition)
        if not heap or heap[0][0] > until:
            return []
        out = []
        while heap and heap[0][0] <= until:
            out.append(heapq.heappop(heap))
        self._next_again()
        return out

    def _next_again(self) -> None:
        nxt = math.inf
        for heap in self._heaps.values():
            if heap and heap[0][0] < nxt:
                nxt = heap[0][0]
        self._next = nxt

    def newest_held(self, partition: int) -> float | None:
        heap = self._heaps.get(partition)
        return max(h[0] for h in heap) if heap else None

    def held(self, partition: int | None = None) -> int:
        """Labels waiting on one partition, or on all of them."""
        if partition is not None:
            return len(self._heaps.get(partition, ()))
        return sum(len(h) for h in self._heaps.values())

    def partitions(self) -> list[int]:
        return [p for p, heap in self._heaps.items() if heap]

    def clear(self) -> None:
        """Forget everything (partitions moved: the index is rebuilt from card state)."""
        self._watermark.clear()
        self._heaps.clear()
        self._highest, self._next = -math.inf, math.inf
        self.labels_read.clear()
        self.reading = set()

    def rebuild(self, partition: int, entries: Iterable[Held]) -> None:
        heap = list(entries)
        heapq.heapify(heap)
        self._heaps[partition] = heap
        self._next_again()


def event_time_limit(
    tx_floor: float, label_floor: float, tx_slack: float, label_slack: float
) -> float:
    """The event time no transaction partition should pass before the others catch up.

    Why: the terminal features of a transaction at ``t`` count the transactions of *every*
    partition up to ``t - delay`` and the frauds known at ``t``. In a replay the partitions
    advance at their own speeds, so a partition running days ahead of another scores with
    windows the slow one has not filled yet (measured: 62% of rows with a terminal feature
    off, four partitions). ``tx_floor`` is the smallest watermark of the partitions still
    reading (any worker's), ``label_floor`` the smallest ``known_at`` read on a labels
    partition still reading; a partition ahead of ``tx_floor + tx_slack`` or
    ``label_floor + label_slack`` is paused until they catch up. The slack must stay below the
    label delay (terminal windows exact); it is much smaller in practice, because one model
    serves all of a worker's partitions: a label released by a partition that runs ahead is
    learned before the slower partitions' earlier transactions are scored (measured with two
    partitions and no alignment: AP 0.253 in the pipeline against 0.154 offline).

    >>> event_time_limit(100.0, 500.0, tx_slack=50.0, label_slack=10.0)
    150.0
    >>> import math; event_time_limit(math.inf, math.inf, 50.0, 10.0)  # everyone caught up
    inf
    """
    return min(tx_floor + tx_slack, label_floor + label_slack)
