"""Whether the agents may process: the newest read-back of what is already out has ended.

Why tickets and not a flag each read-back sets when it ends: Faust seeks from two places
after an assignment (its fetcher, finding the flow stopped, and its recovery), and their
read-backs overlap. With a flag, the first read-back's end let the agents go on while the
second was still reading, and they scored again, with the new owner's model, 171 and 487
re-read transactions whose scores were out (``tests/reliability/test_link_cut.py``,
2026-12-02, here and in CI). The read-back begun last saw the newest assignment: only its
map is used, and only its end lets the agents go on.

Why not wait for every seek to end (a count), nor queue the seeks one behind the other:
both were tried on 2026-12-02 and a graceful fail-over then lost transactions in
``tests/streams/test_two_workers.py`` (with the queue in 3 of 4 runs, 63 and 92 where
counted; with the count 169 and 265, in 2 of 6); each time a partition's messages from its
committed offset on were never handed to the agents. That loss was Faust's emptying of its
stream queues when the flow resumed after the seek (``streams.flow_control``, found on
2026-12-03), which this gate made rarer but not impossible; this gate keeps the agents' timing
of the code before both (a seek closes it, a read-back's end opens it).

>>> gate = SeekGate()
>>> gate.seek_begins()
>>> first, second = gate.read_back_begins(), gate.read_back_begins()
>>> gate.read_back_ends(first); gate.open.is_set(), gate.is_latest(first)
(False, False)
>>> gate.read_back_ends(second); gate.open.is_set()
True
"""

from __future__ import annotations

import asyncio


class SeekGate:
    """``open`` is clear from a seek's start until the read-back begun last has ended."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.begun = 0

    def seek_begins(self) -> None:
        self.open.clear()

    def read_back_begins(self) -> int:
        """A ticket for a read-back: its result is used only if it is still the latest."""
        self.begun += 1
        self.open.clear()
        return self.begun

    def is_latest(self, ticket: int) -> bool:
        return ticket == self.begun

    def read_back_ends(self, ticket: int) -> None:
        if self.is_latest(ticket):
            self.open.set()
