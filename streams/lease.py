"""A worker's lease on its partitions: valid while its group coordinator keeps answering.

Why: a worker cut off from the brokers keeps running. The coordinator stops hearing its
heartbeats, its session expires after ``session.timeout.ms`` and its partitions go to another
member, but nothing tells the cut-off worker. When its link comes back it goes on scoring its
old partitions from its old position until a heartbeat finally says it is out of the group;
those scores repeat, with another model's numbers, what the new owner has published in the
meantime, and its card writes land in a changelog the new owner now writes. Measured with
``reliability.link_cut`` (two workers on hosts of their own, one cut off for 20 s at 200 tx/s):
126 transactions scored twice with different scores, 121 of them scored by the cut-off worker
after its link was back.

A lease is the usual answer (Chubby's, ZooKeeper's sessions): the member stops itself before
the coordinator can have given its work away. It holds while a heartbeat succeeded less than
``session - heartbeat`` seconds ago (the coordinator evicts ``session`` after the last one
it received, which is before the answer came back). While it does not hold, the worker's
agents wait before they process anything; when the heartbeat answers again they go on, and
when a rebalance starts instead they process what they held (the rebalance waits for it; a
first version dropped it and a link-cut run lost one transaction), so a cut-off worker
scores at most one held batch after its lease ran out. What the lease cannot stop is output
handed to the producer *before* the cut and delivered after it: that needs Kafka's
transactional fencing (measured, not built: see the chaos report).

>>> now = [100.0]
>>> lease = Lease(session_s=10.0, heartbeat_s=3.0, clock=lambda: now[0])
>>> lease.held()
True
>>> now[0] += 7.5
>>> lease.held()
False
>>> lease.renew()
>>> lease.held()
True
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Lease:
    """When this worker last heard its coordinator, and whether it may still act on that."""

    def __init__(self, session_s: float, heartbeat_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s = max(heartbeat_s, session_s - heartbeat_s)
        self.clock = clock
        self.renewed = clock()
        self.installed = False
        self.waits = 0
        """Times an agent had to wait for the lease (a cut, a broker outage, a slow coordinator)."""
        self.released = 0
        """Held events processed because a rebalance started while the lease was out."""

    def renew(self) -> None:
        self.renewed = self.clock()

    def held(self) -> bool:
        return self.clock() - self.renewed < self.limit_s

    async def allows(self, rebalancing: Callable[[], bool], n_events: int = 1,
                     poll_s: float = 0.05) -> None:
        """Return at once while the lease holds; else once a heartbeat answers again, or
        once a rebalance starts. Then the caller processes what it holds: a rebalance waits
        for it (Faust's revoke waits for the agents), and dropping the events instead lost
        one transaction in a link-cut run, so at most this batch can be scored by a worker
        whose partitions may have moved (a duplicate, never a loss)."""
        if self.held():
            return
        self.waits += 1
        log.warning("no heartbeat answered for %.1f s: holding %d event(s) until the group "
                    "coordinator answers", self.clock() - self.renewed, n_events)
        while not self.held():
            if rebalancing():
                self.released += n_events
                log.warning("rebalance while cut off from the coordinator: processing the "
                            "%d event(s) held so that the rebalance can go on", n_events)
                return
            await asyncio.sleep(poll_s)
        log.info("group coordinator answers again: processing goes on")

    def install(self, faust_consumer: Any) -> bool:
        """Renew the lease at every successful heartbeat of the consumer's group coordinator.

        aiokafka has no heartbeat callback, so this wraps its coordinator's ``_do_heartbeat``
        (aiokafka 0.14, in Faust's consumer thread); a heartbeat answered while the member
        must rejoin does not count. Where that is not found the lease is off
        (always held) and a warning says so: the worker behaves as without it.
        """
        try:
            coordinator = faust_consumer._thread._ensure_consumer()._coordinator
            beat = coordinator._do_heartbeat
        except AttributeError:
            coordinator = beat = None
        if coordinator is None or beat is None:
            log.warning("could not hook the group coordinator's heartbeats: lease off")
            self.limit_s = float("inf")
            return False
        if getattr(beat, "_fraudstream_lease", None) is self:
            return True

        @functools.wraps(beat)
        async def beat_and_renew(*args: Any, **kwargs: Any) -> Any:
            ok = await beat(*args, **kwargs)
            # aiokafka also answers True to "rebalance in progress" (go on heartbeating while
            # rejoining); a member evicted while cut off hears exactly that when its link
            # comes back, so only a plain success renews (measured: without this, a cut-off
            # worker scored its lost partitions for 6 s after its link came back)
            rejoining = getattr(coordinator, "_rejoin_needed_fut", None)
            if ok and not (rejoining is not None and rejoining.done()):
                self.renew()
            return ok

        beat_and_renew._fraudstream_lease = self  # type: ignore[attr-defined]
        coordinator._do_heartbeat = beat_and_renew
        self.installed = True
        return True
