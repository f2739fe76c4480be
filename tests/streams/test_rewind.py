"""The post-assignment seek, its rewind and the gate that holds the agents meanwhile
(``streams.rewind.install_rewind``, ``streams.seek_gate.SeekGate``).

Faust seeks from two places (its fetcher, finding the flow stopped; its recovery, after an
assignment), and the two overlap. The agents must wait until every seek begun has ended,
and use the read-back of the seek begun last: with a flag set by each seek's end, the first
read-back's end let the agents score with a map of two partitions while the second seek had
rewound four (171 duplicate scores in one run of ``tests/reliability/test_link_cut.py``,
2026-12-02). Seeks still overlap, as Faust runs them: queued one behind the other, a
fetcher's seek ran after the flow had resumed and a partition lost 63 transactions
(``tests/streams/test_two_workers.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.rewind import install_rewind
from streams.seek_gate import SeekGate


class FakeConsumer:
    """The parts of Faust's consumer that the rewind touches; its seek yields to the loop."""

    def __init__(self, committed: dict[str, int], seek_s: float = 0.01) -> None:
        self._committed_offset = dict(committed)
        self.seek_s = seek_s
        self.seeks: list[tuple[str, int]] = []

    def assignment(self) -> set[str]:
        return set(self._committed_offset)

    async def perform_seek(self) -> None:
        await asyncio.sleep(self.seek_s)

    async def seek(self, tp: str, offset: int) -> None:
        self.seeks.append((tp, offset))


class Topic(str):
    @property
    def topic(self) -> str:
        return self.split("-")[0]


def test_overlapping_seeks_hold_the_agents_until_both_end_and_the_last_map_wins() -> None:
    gate = SeekGate()
    used: list[int] = []
    seen_open: list[bool] = []

    async def read_back(starts: dict[Any, int], duration: float) -> None:
        ticket = gate.read_back_begins()
        await asyncio.sleep(duration)
        seen_open.append(gate.open.is_set())
        if gate.is_latest(ticket):
            used.append(ticket)

    async def scenario() -> None:
        durations = iter([0.02, 0.1])  # the first seek's read-back ends first
        consumer = FakeConsumer({Topic("tx-0"): 1500, Topic("tx-1"): 40})
        install_rewind(consumer, ["tx"], 1000,
                       on_rewound=lambda starts: read_back(starts, next(durations)),
                       on_seeking=gate.seek_begins, on_seek_done=gate.seek_ends)
        first = asyncio.create_task(consumer.perform_seek())
        await asyncio.sleep(0.005)
        second = asyncio.create_task(consumer.perform_seek())
        await first
        assert not gate.open.is_set()  # the second seek is still reading back
        await second
        assert gate.open.is_set()
        assert consumer.seeks == [("tx-0", 500), ("tx-1", 0)] * 2

    asyncio.run(scenario())
    assert seen_open == [False, False]
    assert used == [2]  # the first read-back ended after the second began: not used


def test_a_failed_seek_still_ends_and_opens_the_gate() -> None:
    gate = SeekGate()

    async def scenario() -> None:
        consumer = FakeConsumer({Topic("tx-0"): 10})

        async def failing() -> None:
            raise RuntimeError("No current assignment")

        consumer.perform_seek = failing  # type: ignore[method-assign]
        install_rewind(consumer, ["tx"], 1000, on_seeking=gate.seek_begins,
                       on_seek_done=gate.seek_ends)
        try:
            await consumer.perform_seek()
        except RuntimeError:
            pass
        else:
            raise AssertionError("the seek's error was swallowed")
        assert consumer.seeks == []

    asyncio.run(scenario())
    assert gate.open.is_set() and gate.running == 0
