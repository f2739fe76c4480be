"""Faust's flow control of its stream queues, without the clearing of every queue on resume.

Why: Faust (``mode.utils.queues.FlowControlEvent``) empties every stream queue each time the
flow *resumes*, besides when a rebalance suspends it. After an assignment Faust's recovery
resumes the flow twice: once before it seeks the stream partitions to their committed offsets
(``Consumer.perform_seek``) and once after. The partitions are fetched again in between, and
here ``perform_seek`` is slow on purpose: it rewinds the partitions and reads back what is
already out before any is processed (``streams.rewind``, ``FraudApp._before_reread``, about
0.4 s). Everything fetched in that time was queued, then emptied by the second resume while
the consumer's position had moved past it: those messages never reached the agents and their
committed offset stopped moving. Measured with ``tests/streams/test_two_workers.py`` (a
graceful fail-over at 500 tx/s), 2026-12-03: 73 to 265 transactions of one or two partitions
never scored in about one run of four under load (CI's full suite, a busy core here); a log of
each offset fetched beside each offset the agent received showed a partition fetched from 0
while its agent went from offset 268 to 373.

What is kept is safe to process: the queues are still emptied when a rebalance suspends the
flow (``clear``), a message fetched under an older assignment is skipped by Faust's stream
(its generation differs), and one fetched before the seek is read again after it and
recognised by its transaction id (``CardState.seen``, the published scores read back).

>>> import asyncio
>>> from mode.utils.queues import FlowControlQueue
>>> async def show():
...     flow = QueueKeepingFlowControl()
...     queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)  # as Faust's streams
...     queue.put_nowait("fetched while a seek read back")
...     flow.resume()
...     kept = queue.qsize()
...     flow.suspend(); flow.clear()  # what a rebalance does
...     return kept, queue.qsize(), flow.is_active()
>>> asyncio.run(show())
(1, 0, False)
"""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent


class QueueKeepingFlowControl(FlowControlEvent):
    """``FlowControlEvent`` whose ``resume`` lets the queues keep what they hold."""

    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()
