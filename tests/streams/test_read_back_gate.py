"""The agents' wait for a running read-back (``FraudApp._await_read_back``).

A read-back of the scores already out must be seen done before a batch is scored: in one
run of ``tests/reliability/test_link_cut.py`` (2026-12-02) a waiter woken by the end of one
read-back resumed after the next had begun, 25 ms later, and its batch was scored without the
scores that next one was reading (391 duplicate score messages).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streams.app import FraudApp


def test_a_waiter_woken_by_one_read_back_waits_for_the_next() -> None:
    async def scenario() -> None:
        gate = SimpleNamespace(_reread_known=asyncio.Event())
        waiter = asyncio.create_task(FraudApp._await_read_back(gate, 1))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        gate._reread_known.set()  # one read-back ends...
        gate._reread_known.clear()  # ...and the next begins before the waiter resumes
        await asyncio.sleep(0.05)
        assert not waiter.done()
        gate._reread_known.set()
        await asyncio.wait_for(waiter, 1.0)

    asyncio.run(scenario())


def test_an_open_gate_does_not_wait() -> None:
    async def scenario() -> None:
        gate = SimpleNamespace(_reread_known=asyncio.Event())
        gate._reread_known.set()
        await asyncio.wait_for(FraudApp._await_read_back(gate, 1), 0.1)  # type: ignore[arg-type]

    asyncio.run(scenario())
