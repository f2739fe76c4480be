"""Whether the agents may process: no post-assignment seek, nor its read-back, is running.

Why a count and not a flag each seek sets when it ends: Faust seeks from two places after
an assignment (its fetcher, finding the flow stopped, and its recovery), and the two
overlap. With a flag, the first seek's end let the agents go on while the second was still
reading back what is already out, and they scored again, with the new owner's model, 171
and 487 re-read transactions whose scores were out (``tests/reliability/test_link_cut.py``,
2026-12-02, here and in CI). Why tickets: of overlapping read-backs, the one begun last saw
the newest assignment, so only its map may be used, whichever ends last.

>>> gate = SeekGate()
>>> gate.seek_begins(); gate.seek_begins()
>>> first, second = gate.read_back_begins(), gate.read_back_begins()
>>> gate.seek_ends(); gate.open.is_set(), gate.is_latest(first), gate.is_latest(second)
(False, False, True)
>>> gate.seek_ends(); gate.open.is_set()
True
"""

from __future__ import annotations

import asyncio


class SeekGate:
    """Counts the seeks under way; ``open`` is set while there are none."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.running = 0
        self.begun = 0

    def seek_begins(self) -> None:
        self.running += 1
        self.open.clear()

    def seek_ends(self) -> None:
        self.running = max(0, self.running - 1)
        if not self.running:
            self.open.set()

    def read_back_begins(self) -> int:
        """A ticket for a read-back: its result is used only if it is still the latest."""
        self.begun += 1
        return self.begun

    def is_latest(self, ticket: int) -> bool:
        return ticket == self.begun
