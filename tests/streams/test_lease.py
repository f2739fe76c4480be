"""The partition lease (``streams.lease``): a worker that has not heard its coordinator for a
session holds its events; a heartbeat or a rebalance lets them through."""

from __future__ import annotations

import asyncio

from streams.lease import Lease


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_lease_lets_events_through_at_once() -> None:
    lease = Lease(10.0, 3.0, clock=Clock())
    asyncio.run(lease.allows(lambda: False))
    assert lease.waits == 0


def test_an_expired_lease_holds_until_a_heartbeat_answers() -> None:
    clock = Clock()
    lease = Lease(10.0, 3.0, clock=clock)
    clock.now += 8.0  # past session - heartbeat = 7 s

    async def scenario() -> None:
        waiting = asyncio.create_task(lease.allows(lambda: False, poll_s=0.01))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # held
        lease.renew()  # what a successful heartbeat does
        await asyncio.wait_for(waiting, 1.0)

    asyncio.run(scenario())
    assert lease.waits == 1 and lease.released == 0


def test_a_rebalance_while_the_lease_is_out_lets_the_held_events_through() -> None:
    clock = Clock()
    lease = Lease(10.0, 3.0, clock=clock)
    clock.now += 30.0
    rebalancing = [False]

    async def scenario() -> None:
        waiting = asyncio.create_task(lease.allows(lambda: rebalancing[0], 5, poll_s=0.01))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        rebalancing[0] = True  # Faust's revoke waits for the agents: never hold it up
        await asyncio.wait_for(waiting, 1.0)

    asyncio.run(scenario())
    assert lease.released == 5


def test_the_lease_hooks_the_coordinators_heartbeat() -> None:
    class Coordinator:
        async def _do_heartbeat(self) -> bool:
            return self.ok

    coordinator = Coordinator()

    class Thread:
        def _ensure_consumer(self) -> object:
            return type("C", (), {"_coordinator": coordinator})()

    consumer = type("Consumer", (), {"_thread": Thread()})()
    clock = Clock()
    lease = Lease(10.0, 3.0, clock=clock)
    assert lease.install(consumer) and lease.install(consumer)  # twice: wrapped once
    clock.now += 8.0
    coordinator.ok = False
    assert asyncio.run(coordinator._do_heartbeat()) is False
    assert not lease.held()
    coordinator.ok = True
    coordinator._rejoin_needed_fut = type("Fut", (), {"done": lambda self: True})()
    assert asyncio.run(coordinator._do_heartbeat()) is True  # "rebalance in progress"
    assert not lease.held()  # an evicted member hears that: it does not renew
    coordinator._rejoin_needed_fut = type("Fut", (), {"done": lambda self: False})()
    assert asyncio.run(coordinator._do_heartbeat()) is True
    assert lease.held()


def test_without_a_coordinator_to_hook_the_lease_is_off() -> None:
    lease = Lease(10.0, 3.0, clock=Clock())
    assert lease.install(object()) is False
    lease.clock = lambda: 1e12
    assert lease.held()  # off: the worker behaves as without it
