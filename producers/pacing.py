"""Replay speed: as fast as possible, a speed-up factor, or a target transaction rate.

The pacer only answers "not before when (monotonic clock) may this event go out?"; the sender
does the waiting, because while it waits it still has envelopes to flush on their deadline.

``live_from`` splits a run into a backfill and a live part: events before that event time go
out unpaced (history that warms the workers' card and terminal state and keeps their models
learning), later ones at the configured pace, with the pace's clock starting at the first live
event. That is how a deployment catches up on the last weeks and then follows real time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Pacer:
    """``speedup``: simulated seconds per wall second; ``rate``: transactions per wall second.

    At most one of them is set; neither means as fast as possible. The clock starts at the
    first event, so a replay of 2018 data begins immediately. With ``live_from`` (epoch
    seconds of event time) the clock starts at the first event at or after it instead, and
    every earlier event is due at once.
    """

    speedup: float | None = None
    rate: float | None = None
    live_from: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if self.speedup is not None and self.rate is not None:
            raise ValueError("choose a speed-up factor or a target rate, not both")
        for name, value in (("speed-up", self.speedup), ("rate", self.rate)):
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.live_from is not None:
            if not math.isfinite(self.live_from):
                raise ValueError(f"live-from must be a finite event time, got {self.live_from}")
            if self.speedup is None and self.rate is None:
                raise ValueError("a live start needs a pace (a rate or a speed-up) for after it")
        self._wall0: float | None = None
        self._event0 = 0.0
        self._tx0 = 0
        self._live = self.live_from is None
        self.live_started_at: float | None = None
        """Monotonic time of the first live event (None until then, or without live_from)."""
        self.backfill_tx = 0
        """Transactions sent before the first live event."""

    @property
    def unlimited(self) -> bool:
        return self.speedup is None and self.rate is None

    @property
    def description(self) -> str:
        if self.speedup is not None:
            pace = f"speed-up x{self.speedup:g}"
        elif self.rate is not None:
            pace = f"target {self.rate:g} tx/s"
        else:
            return "as fast as possible"
        if self.live_from is None:
            return pace
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(self.live_from, UTC).strftime("%Y-%m-%d %H:%M")
        if not self._live:
            return f"as fast as possible (no event reached the live start, {when} UTC)"
        return f"{self.backfill_tx:,} tx of backfill unpaced, then {pace} from {when} UTC"

    def start(self, wall: float, first_event_time: float) -> None:
        self._wall0, self._event0 = wall, first_event_time

    def due(self, event_time: float, tx_sent: int) -> float:
        """Monotonic time before which the next event must not be sent."""
        assert self._wall0 is not None, "call start() first"
        if not self._live:
            if event_time < self.live_from:  # type: ignore[operator]
                return -math.inf  # backfill: now
            self._live = True
            self.backfill_tx = tx_sent
            self._wall0 = self.live_started_at = self.clock()
            self._event0, self._tx0 = event_time, tx_sent
        if self.speedup is not None:
            return self._wall0 + (event_time - self._event0) / self.speedup
        if self.rate is not None:
            return self._wall0 + (tx_sent - self._tx0) / self.rate
        return self._wall0
