"""Replay speed: as fast as possible, a speed-up factor, or a target transaction rate.

The pacer only answers "not before when (monotonic clock) may this event go out?"; the sender
does the waiting, because while it waits it still has envelopes to flush on their deadline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Pacer:
    """``speedup``: simulated seconds per wall second; ``rate``: transactions per wall second.

    At most one of them is set; neither means as fast as possible. The clock starts at the
    first event, so a replay of 2018 data begins immediately.
    """

    speedup: float | None = None
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.speedup is not None and self.rate is not None:
            raise ValueError("choose a speed-up factor or a target rate, not both")
        for name, value in (("speed-up", self.speedup), ("rate", self.rate)):
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        self._wall0: float | None = None
        self._event0 = 0.0

    @property
    def unlimited(self) -> bool:
        return self.speedup is None and self.rate is None

    @property
    def description(self) -> str:
        if self.speedup is not None:
            return f"speed-up x{self.speedup:g}"
        if self.rate is not None:
            return f"target {self.rate:g} tx/s"
        return "as fast as possible"

    def start(self, wall: float, first_event_time: float) -> None:
        self._wall0, self._event0 = wall, first_event_time

    def due(self, event_time: float, tx_sent: int) -> float:
        """Monotonic time before which the next event must not be sent."""
        assert self._wall0 is not None, "call start() first"
        if self.speedup is not None:
            return self._wall0 + (event_time - self._event0) / self.speedup
        if self.rate is not None:
            return self._wall0 + tx_sent / self.rate
        return self._wall0
