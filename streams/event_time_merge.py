"""Fetched transactions of several partitions handed on in event time, as one log.

Why: the offline evaluator reads one log in event time; a worker reads four partitions, each
in its own event time, in whatever order the fetches return. Kept in step only by small
fetches (64 KiB: about one 500-transaction envelope per partition and round trip), a drain
was paced by its round trips; with 1 MiB fetches it ran 37-45% faster and its accuracy fell
(AP -0.057 against the evaluator, half its rows with a feature off), because a fetch brings
days of one partition's event time ahead of the others (README, "Fetch size: throughput
against parity", 2026-12-02).

Here the worker's consumer keeps what it fetched of the merged topics and hands a message on
only when no partition can still bring an earlier one, which is what Kafka Streams does for
the partitions of one task (``max.task.idle.ms``). A partition's next message is no earlier
than what it holds at its head, or, holding nothing, than the last message it gave while the
broker has more of it (``lagging``); a partition at its log's end does not hold the others
back (live traffic is handed on as it comes). A partition that keeps the others waiting past
``max_wait_s`` (a slow broker, a partition paused too long) is passed over: the earliest
held message goes on anyway, so the wait is bounded. The worker no longer pauses its own
partitions against each other when they are merged (``FraudApp._align_event_time``): a
partition paused for being ahead held the others back until the wait ran out.

Each partition's messages keep their order (a message without a readable time takes its
predecessor's), so what a card sees is what it saw before; only the interleaving of
partitions changes. Nothing held is acked, so no committed offset passes it; the consumer
drops what it holds of a partition that is revoked or sought (it is fetched again).

>>> from types import SimpleNamespace as Msg  # a fetched record: only ``value`` is read
>>> merge = EventTimeMerge(lambda raw: float(raw))
>>> merge.add("p0", [Msg(value=b"1"), Msg(value=b"5")])
>>> merge.add("p1", [Msg(value=b"3")])
>>> [(tp, m.value) for tp, m in merge.release(["p0", "p1"], lambda tp: True, now=0.0)]
[('p0', b'1'), ('p1', b'3')]
>>> merge.held()
1
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

MAX_WAIT_S = 1.0
"""How long held messages wait for a lagging partition that holds nothing before the earliest
goes on anyway: the bound this order puts on a message's delay. In a drain a lagging
partition's next fetch comes in milliseconds; what can hold one back for longer is the
worker's own pause of transactions that run ahead of the labels read, and waiting for the
labels is then what keeps the order (passed over after 0.25 s, the merge lost it: 12-26% of
rows with a feature off against the offline evaluator)."""


class EventTimeMerge:
    """Messages of several partitions, held until no partition can bring an earlier one.

    ``event_time(value)`` gives a message's time (None: unknown). ``add`` takes what a fetch
    returned for one partition, in offset order; ``release`` gives back, in event time, every
    message that may go now. Not thread-safe: the worker's event loop alone uses it.
    """

    def __init__(self, event_time: Callable[[bytes], float | None],
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self.event_time = event_time
        self.max_wait_s = max_wait_s
        self._held: dict[Hashable, deque[tuple[float, Any]]] = {}
        self._last: dict[Hashable, float] = {}
        """Per partition, the time of the last message added: what it brings next is no
        earlier (its messages are in event time; one that is not is treated as this)."""
        self._blocked_since: float | None = None
        self.forced = 0
        """Messages handed on past ``max_wait_s`` rather than in order."""

    def add(self, tp: Hashable, records: Iterable[Any]) -> None:
        held = self._held.get(tp)
        if held is None:
            held = self._held[tp] = deque()
        last = self._last.get(tp, -math.inf)
        event_time = self.event_time
        for record in records:
            t = event_time(record.value)
            if t is None or t < last:
                t = last
            last = t
            held.append((t, record))
        self._last[tp] = last

    def release(self, partitions: Iterable[Hashable], lagging: Callable[[Hashable], bool],
                now: float) -> list[tuple[Hashable, Any]]:
        """``(partition, message)`` pairs that may go, earliest first.

        ``partitions``: the merged partitions this worker owns; ``lagging(tp)``: whether the
        broker has messages of ``tp`` not fetched yet; ``now``: a monotonic clock.
        """
        held = self._held
        bounds: dict[Hashable, float] = {}
        for tp in partitions:
            queue = held.get(tp)
            if queue:
                bounds[tp] = queue[0][0]
            elif lagging(tp):
                bounds[tp] = self._last.get(tp, -math.inf)
        out: list[tuple[Hashable, Any]] = []
        forced = (self._blocked_since is not None
                  and now - self._blocked_since >= self.max_wait_s)
        while True:
            best, head = None, math.inf
            for tp, queue in held.items():
                if queue and queue[0][0] < head:
                    best, head = tp, queue[0][0]
            if best is None:
                break
            others = min((b for tp, b in bounds.items() if tp != best), default=math.inf)
            if head > others:
                if not forced:
                    break
                # past the wait: the partitions holding nothing no longer hold the others back
                self.forced += 1
                bounds = {tp: b for tp, b in bounds.items() if held.get(tp)}
                forced = False
            queue = held[best]
            out.append((best, queue.popleft()[1]))
            if queue:
                bounds[best] = queue[0][0]
            elif lagging(best):
                bounds[best] = self._last[best]
            else:
                bounds.pop(best, None)
        self._blocked_since = (None if out or not self.held()
                               else self._blocked_since if self._blocked_since is not None
                               else now)
        return out

    def wait_s(self, now: float) -> float | None:
        """How long until held messages go on regardless (None: none held)."""
        if not self.held():
            return None
        if self._blocked_since is None:
            return self.max_wait_s
        return max(0.0, self._blocked_since + self.max_wait_s - now)

    def held(self, tp: Hashable | None = None) -> int:
        if tp is not None:
            queue = self._held.get(tp)
            return len(queue) if queue else 0
        return sum(len(queue) for queue in self._held.values())

    def drop(self, tps: Iterable[Hashable] | None = None) -> int:
        """Forget what is held of ``tps`` (default: all): revoked or sought, it is fetched
        again. Returns how many messages were dropped."""
        targets = list(self._held) if tps is None else list(tps)
        dropped = 0
        for tp in targets:
            queue = self._held.pop(tp, None)
            dropped += len(queue) if queue else 0
            self._last.pop(tp, None)
        if not self.held():
            self._blocked_since = None
        return dropped
