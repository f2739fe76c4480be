"""The post-assignment seek, its rewind and the gate that holds the agents meanwhile
(``streams.rewind.install_rewind``, ``streams.seek_gate.SeekGate``).

Faust seeks from two places (its fetcher, finding the flow stopped; its recovery, after an
assignment), and their read-backs overlap. The agents must wait for the read-back begun
last and use its map: with a flag set by each read-back's end, the first read-back's end let
the agents score with a map of two partitions while the second seek had rewound four (171
duplicate scores in one run of ``tests/reliability/test_link_cut.py``, 2026-12-02).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.rewind import install_rewind
from streams.seek_gate import SeekGate


class FakeConsumer:
    """The parts of Faust's consumer that the rewind touches; its seek yields to the loop."""

    def __init__(self, committed: dict[str, int]) -> None:
        self._committed_offset = dict(committed)
        self.seeks: list[tuple[str, int]] = []

    def assignment(self) -> set[str]:
        return set(self._committed_offset)

    async def perform_seek(self) -> None:
        await asyncio.sleep(0.01)

    async def seek(self, tp: str, offset: int) -> None:
        self.seeks.append((tp, offset))


class Topic(str):
    @property
    def topic(self) -> str:
        return self.split("-")[0]


def test_overlapping_read_backs_hold_the_agents_until_the_last_begun_ends() -> None:
    gate = SeekGate()
    used: list[int] = []
    open_at_end: list[bool] = []

    async def read_back(starts: dict[Any, int], duration: float) -> None:
        ticket = gate.read_back_begins()
        try:
            await asyncio.sleep(duration)
            if gate.is_latest(ticket):
                used.append(ticket)
        finally:
            gate.read_back_ends(ticket)
            open_at_end.append(gate.open.is_set())

    async def scenario() -> None:
        durations = iter([0.02, 0.1])  # the first seek's read-back ends first
        consumer = FakeConsumer({Topic("tx-0"): 1500, Topic("tx-1"): 40})
        install_rewind(consumer, ["tx"], 1000,
                       on_rewound=lambda starts: read_back(starts, next(durations)),
                       on_seeking=gate.seek_begins)
        first = asyncio.create_task(consumer.perform_seek())
        await asyncio.sleep(0.005)
        second = asyncio.create_task(consumer.perform_seek())
        await first
        assert not gate.open.is_set()  # the second read-back is still running
        await second
        assert gate.open.is_set()
        assert consumer.seeks == [("tx-0", 500), ("tx-1", 0)] * 2

    asyncio.run(scenario())
    assert open_at_end == [False, True]
    assert used == [2]  # the first read-back ended after the second began: not used


def test_a_seek_closes_the_gate_before_its_read_back_begins() -> None:
    gate = SeekGate()
    gate.seek_begins()
    assert not gate.open.is_set()
    gate.read_back_ends(gate.read_back_begins())
    assert gate.open.is_set()
