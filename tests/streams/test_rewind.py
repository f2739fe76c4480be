"""The post-assignment seek and its rewind (``streams.rewind.install_rewind``).

Faust seeks from two places (its fetcher, finding the flow stopped; its recovery, after an
assignment), and the two can run at once. Each seek's read-back must end before the next
seek begins: interleaved, the first read-back's end let the agents score with a map of two
partitions while the second seek had rewound four (171 duplicate scores in one run of
``tests/reliability/test_link_cut.py``, 2026-12-02).
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.rewind import install_rewind


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


def test_concurrent_seeks_run_one_after_the_other_each_with_its_read_back() -> None:
    events: list[Any] = []

    async def read_back(starts: dict[Any, int]) -> None:
        events.append(("read-back begins", sorted(starts.items())))
        await asyncio.sleep(0.05)
        events.append(("read-back ends",))

    async def scenario() -> None:
        consumer = FakeConsumer({Topic("tx-0"): 1500, Topic("tx-1"): 40})
        install_rewind(consumer, ["tx"], 1000, on_rewound=read_back,
                       on_seeking=lambda: events.append(("seeking",)))
        await asyncio.gather(consumer.perform_seek(), consumer.perform_seek())
        assert consumer.seeks == [("tx-0", 500), ("tx-1", 0)] * 2

    asyncio.run(scenario())
    kinds = [event[0] for event in events]
    assert kinds == ["seeking", "read-back begins", "read-back ends"] * 2
    assert events[1] == ("read-back begins", [("tx-0", 500), ("tx-1", 0)])


def test_a_failed_seek_lets_the_next_one_run() -> None:
    async def scenario() -> None:
        consumer = FakeConsumer({Topic("tx-0"): 10})
        calls = []

        async def failing_once() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("No current assignment")

        consumer.perform_seek = failing_once  # type: ignore[method-assign]
        install_rewind(consumer, ["tx"], 1000)
        results = await asyncio.gather(consumer.perform_seek(), consumer.perform_seek(),
                                       return_exceptions=True)
        assert isinstance(results[0], RuntimeError) and results[1] is None
        assert consumer.seeks == [("tx-0", 0)]  # only the second seek got to its rewind
        assert len(calls) == 2

    asyncio.run(scenario())
