"""Packing consecutive events of one partition into envelopes.

Why: a Faust agent's cost is per Kafka message, not per byte (see ``docs/contracts.md`` and the
measurements behind it), so sending up to N transactions per message multiplies what the
stream processor can drain. Rules:

* one buffer per partition, filled in arrival order and emitted whole, so every card's events
  (one key, hence one partition) stay in order across and within envelopes;
* a buffer is emitted when it holds N events, or when its oldest event has waited
  ``max_wait_s`` - a slow stream (a rate-limited replay, a quiet hour) is delayed by at most
  that, never held back indefinitely;
* the envelope's key is its first event's key; the partition is the one all its events share.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from producers.events import envelope

# emit(partition, key, value, n_events, produced_at)
Emit = Callable[[int, bytes, bytes, int, float], None]


class Packer:
    """Per-partition buffers of event prefixes (``events.*_prefix``) for one event kind."""

    def __init__(self, kind: str, size: int, max_wait_s: float, emit: Emit) -> None:
        if size < 2:
            raise ValueError("an envelope packs at least 2 events; size 1 means no envelope")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.kind, self.size, self.max_wait_s, self._emit = kind, size, max_wait_s, emit
        self._buf: dict[int, list[str]] = {}
        self._key: dict[int, bytes] = {}
        self._since: dict[int, float] = {}
        self.next_deadline = math.inf

    def add(self, partition: int, key: bytes, prefix: str, now: float, wall: float) -> None:
        """Queue one event; ``now`` is the monotonic clock, ``wall`` the epoch clock."""
        buf = self._buf.get(partition)
        if buf is None:
            self._buf[partition] = buf = []
            self._key[partition] = key
            self._since[partition] = now
            deadline = now + self.max_wait_s
            if deadline < self.next_deadline:
                self.next_deadline = deadline
        buf.append(prefix)
        if len(buf) >= self.size:
            self._flush(partition, wall)
        if now >= self.next_deadline:
            self.flush_expired(now, wall)

    def _flush(self, partition: int, wall: float) -> None:
        buf = self._buf.pop(partition)
        key = self._key.pop(partition)
        del self._since[partition]
        self._emit(partition, key, envelope(self.kind, buf, wall).encode(), len(buf), wall)

    def flush_expired(self, now: float, wall: float) -> None:
        """Emit every buffer whose oldest event has waited ``max_wait_s``."""
        limit = now - self.max_wait_s
        for partition in [p for p, t in self._since.items() if t <= limit]:
            self._flush(partition, wall)
        self.next_deadline = (
            min(self._since.values()) + self.max_wait_s if self._since else math.inf
        )

    def flush_all(self, wall: float) -> None:
        for partition in list(self._buf):
            self._flush(partition, wall)
        self.next_deadline = math.inf

    @property
    def pending(self) -> int:
        return sum(len(b) for b in self._buf.values())
