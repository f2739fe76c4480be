"""The worker's stream queues keep what they hold when Faust resumes a running flow after a
seek, and lose what was fetched while a rebalance had the flow suspended."""

from __future__ import annotations

import asyncio

from streams.flow_control import QueueKeepingFlowControl
from streams.prompt_fetch import PromptFetchApp


def test_app_queues_survive_a_resume_and_are_emptied_by_a_rebalance() -> None:
    async def run() -> tuple[int, int, int, int]:
        app = PromptFetchApp("flow-control-test", broker="kafka://127.0.0.1:1")
        assert isinstance(app.flow_control, QueueKeepingFlowControl)
        queue = app.channel().queue  # what Faust creates for every agent's topic
        flow = app.flow_control
        flow.resume()
        for i in range(3):
            await queue.put(i)  # fetched while the post-assignment seek reads back
        flow.resume()  # Faust's recovery, once the seek is done
        kept = queue.qsize()
        flow.suspend()  # a rebalance begins: Faust suspends, then clears
        flow.clear()
        emptied = queue.qsize()
        queue.put_nowait(7)  # fetched from the old positions while the group rebalances
        flow.resume()  # the recovery of the new assignment begins
        stale = queue.qsize()
        await queue.put(9)
        return kept, emptied, stale, queue.qsize()

    assert asyncio.run(run()) == (3, 0, 0, 1)
