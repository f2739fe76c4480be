"""Faust's flow control of its stream queues, emptying them only on a resume after a suspend.

Why: Faust (``mode.utils.queues.FlowControlEvent``) empties every stream queue each time the
flow *resumes*. After an assignment Faust's recovery resumes the flow twice: once when it
starts (the flow was suspended by the rebalance) and once more after it has sought the stream
partitions to their committed offsets (``Consumer.perform_seek``), when the flow is already
running. Here ``perform_seek`` is slow on purpose: it rewinds the partitions and reads back
what is already out before any is processed (``streams.rewind``, ``FraudApp._before_reread``,
about 0.4 s). Everything fetched in that time was queued, then emptied by the second resume
while the consumer's position had moved past it: those messages never reached the agents and
their committed offset stopped moving. Measured with ``tests/streams/test_two_workers.py`` (a
graceful fail-over at 500 tx/s), 2026-12-03: 73 to 265 transactions of one or two partitions
never scored in about one run of four under load (CI's full suite, a busy core here); a log of
each offset fetched beside each offset the agent received showed a partition fetched from 0
while its agent went from offset 268 to 373.

Why the first resume still empties them: what was queued while the flow was suspended was
fetched under the old assignment, from the old positions. Keeping it too (80a35e4 kept every
queue on every resume) let a worker that rejoined after a cut link score 3 and 13 such
transactions the other worker had scored meanwhile, before its own seek and read-back began
(``tests/reliability/test_link_cut.py``, in two full suites of 2026-12-03). The queues are
also emptied when a rebalance suspends the flow (``clear``), as Faust does.

>>> import asyncio
>>> from mode.utils.queues import FlowControlQueue
>>> async def show():
...     flow = QueueKeepingFlowControl()
...     queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)  # as Faust's streams
...     flow.suspend()  # a rebalance
...     queue.put_nowait("fetched under the old assignment")
...     flow.resume()  # the recovery starts
...     stale = queue.qsize()
...     queue.put_nowait("fetched while the seek reads back")
...     flow.resume()  # after the seek: the flow was running
...     return stale, queue.qsize()
>>> asyncio.run(show())
(0, 1)
"""

from __future__ import annotations

from mode.utils.queues import FlowControlEvent


class QueueKeepingFlowControl(FlowControlEvent):
    """``FlowControlEvent`` whose ``resume`` empties the queues only if the flow was suspended."""

    def resume(self) -> None:
        was_suspended = not self.is_active()
        self._suspend.clear()
        self._resume.set()
        if was_suspended:
            self.clear()
