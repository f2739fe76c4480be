"""Faust's fetcher, woken as soon as a partition it stopped fetching may be fetched again.

Faust stops fetching a partition when its stream's buffer is under pressure (four fifths full)
and fetches it again once the agent has taken the buffer down to two fifths. Between the two,
Faust's fetch loop (``Consumer._wait_next_records``) does one of two things, and neither
notices the buffer going down:

- no partition left to fetch: it sleeps **one second**;
- some left (in a scoring-only drain, the idle labels partitions): it waits up to **one
  second** for records of those.

The agent empties a buffer of 16 envelopes in a few tens of milliseconds, then waits for the
rest of that second. Measured (``python -m benchmarks.drain_one --bootstrap 127.0.0.1:9092
--model logreg --envelope 10 --tx 40000 --no-labels``, 2026-12-01): 407 tx/s with the worker
idle most of the time, 1,554 tx/s with the buffer never taken for full.

This consumer keeps Faust's flow control (the buffer bound, the pause while full) and removes
the waits: with no partition to fetch it waits for one to be handed back, not a fixed second;
with some partitions held back it takes what the others have without waiting and, if nothing,
waits for a held one to be handed back (at most ``HELD_WAIT_S``). The aiokafka consumer runs
in Faust's consumer thread, so a fetch in flight there cannot be cancelled without losing what
it returns: the waits that can be woken are this loop's own.

It also hands the transactions of its partitions on in event time (``EventTimeMerge``), so
that fetches can be large without the partitions running ahead of each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import faust
from faust.transport import by_url
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP
from mode.utils.objects import cached_property

from producers.wire import first_event_time
from streams.event_time_merge import EventTimeMerge
from streams.flow_control import QueueKeepingFlowControl
from streams.idempotent_producer import IdempotentProducer

FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold the worker's fetch when its partitions have nothing new
(Faust hard-codes 1,500 ms). An offsets request of the consumer (Faust's recovery asks for
the changelog's high-water marks, then for its earliest offsets) waits for the fetch in
flight: with the changelog partitions at their end, each waited up to 1.5 s, and a restarted
worker's recovery took 3 s instead of 0.01 s in three of five restarts (``fraudstream chaos
--seed 7``, 2026-12-02 04:58, worker log "Highwater for active changelog partitions" and
"active offsets at start of reading"). With data to read, a fetch returns at once whatever
this is."""

HELD_WAIT_S = 0.05
"""While some partition is held back by its buffer and the others have nothing, how long the
fetch loop waits for a held one to come back before it looks at the others again: the bound
on how late their next records (labels, while the transactions' buffer is full) are seen."""


class PromptConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, its aiokafka consumer fetching with ``FETCH_MAX_WAIT_MS``."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by aiokafka when the consumer starts (its fetcher is built then)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class MergedRecords(dict):
    """A fetch's records by partition, plus the order to deliver them in (``order``)."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[TP, Any]] = []


class EventTimeScheduler(DefaultSchedulingStrategy):
    """Faust's delivery order (round robin over topics and partitions), except for
    ``MergedRecords``, which are delivered in the order the merge gave them."""

    def iterate(self, records: Any) -> Any:
        order = getattr(records, "order", None)
        if order is not None:
            return iter(order)
        return super().iterate(records)


class PromptConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop never sleeps past a freed buffer, and
    which hands the app's ``event_time_topics`` on in event time."""

    def _new_consumer_thread(self) -> PromptConsumerThread:
        return PromptConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetchable = asyncio.Event()
        self.merged_topics: frozenset[str] = frozenset(
            getattr(self.app, "event_time_topics", ()))
        self.merge = EventTimeMerge(first_event_time)
        self.max_held = max(1, int(self.app.conf.stream_buffer_maxsize))
        """Messages of one partition held before it is fetched no more: a fetch adds what it
        brings on top, so this is a floor on memory, not a cap on what one fetch returns."""

    def on_buffer_drop(self, tp: TP) -> None:
        super().on_buffer_drop(tp)
        self._fetchable.set()

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        super().resume_partitions(tps)
        self._fetchable.set()

    async def _wait_next_records(self, timeout: float) -> Any:
        if (self.flow_active and not self.app.client_only
                and not self._get_active_partitions()):
            self._fetchable.clear()  # Faust would sleep ``timeout`` whatever happens meanwhile
            await self._wait_fetchable(timeout)
        return await super()._wait_next_records(timeout)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        merged = self.merged_topics
        if not merged or active_partitions is None:
            return await self._fetch(active_partitions, timeout)
        merge = self.merge
        fetch_from = {tp for tp in active_partitions
                      if tp.topic not in merged or merge.held(tp) < self.max_held}
        wait = merge.wait_s(time.monotonic())
        if wait is not None:
            timeout = min(timeout, wait)
        records = await self._fetch(fetch_from, timeout) if fetch_from else {}
        out = MergedRecords()
        order = out.order
        for tp, batch in records.items():
            if not batch:
                continue
            if tp.topic in merged:
                merge.add(tp, batch)
            else:
                out[tp] = batch
                order.extend((tp, record) for record in batch)
        if merge.held():
            owned = [tp for tp in self.assignment() if tp.topic in merged]
            for tp, record in merge.release(owned, self._lagging, time.monotonic()):
                out.setdefault(tp, []).append(record)
                order.append((tp, record))
        if not order and not fetch_from:  # waiting on a partition held back elsewhere
            self._fetchable.clear()
            await self._wait_fetchable(merge.wait_s(time.monotonic()) or HELD_WAIT_S)
        return out

    def _lagging(self, tp: TP) -> bool:
        """Whether the broker has messages of ``tp`` this consumer has not been given yet:
        the aiokafka consumer's position (the next offset it returns) below the high-water
        mark of its last fetch; no fetch answered yet, or no position: yes (the merge then
        waits for it, at most ``MAX_WAIT_S``). Read from the consumer thread's state without
        a call into it: two integers, each written whole."""
        try:
            consumer = self._thread._ensure_consumer()
            state = consumer._subscription.subscription.assignment.state_value(tp)
        except Exception:  # no consumer, no assignment
            return False
        if state is None:
            return False  # no longer assigned
        if state.highwater is None or not state.has_valid_position:
            return True
        return bool(state.position < state.highwater)

    async def seek(self, partition: TP, offset: int) -> None:
        self.merge.drop([partition])
        await super().seek(partition, offset)

    async def seek_to_committed(self) -> Any:
        self.merge.drop()
        return await super().seek_to_committed()

    async def seek_wait(self, partitions: Any) -> None:
        self.merge.drop(list(partitions))
        await super().seek_wait(partitions)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.merge.drop(revoked)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.merge.drop()
        await super().on_partitions_assigned(assigned, generation_id)

    async def _fetch(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        if not self._buffered_partitions:
            return await super()._getmany(active_partitions, timeout)
        # Some partition is held back: take what the others have, and if nothing, wait for
        # a held one to come back (or ``HELD_WAIT_S``), not for the others' next records.
        self._fetchable.clear()
        records = await super()._getmany(active_partitions, 0)
        if not records:
            await self._wait_fetchable(min(timeout, HELD_WAIT_S))
        return records

    async def _wait_fetchable(self, timeout: float) -> None:
        """Until a partition is handed back to the fetcher, the consumer stops, or ``timeout``."""
        stopped = asyncio.ensure_future(self._stopped.wait())
        fetchable = asyncio.ensure_future(self._fetchable.wait())
        try:
            await asyncio.wait({stopped, fetchable}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            fetchable.cancel()


class PromptTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`PromptConsumer` and an idempotent producer."""

    Consumer = PromptConsumer
    Producer = IdempotentProducer


class PromptFetchApp(faust.App):
    """A Faust app whose ``kafka://`` consumer is :class:`PromptConsumer`, and whose
    monitor is not called for every event.

    ``event_time_topics``: topics whose partitions' messages are handed on in event time
    (``streams.event_time_merge``).

    Faust's ``Monitor`` (the statistics of its own ``/stats`` pages, which this worker does
    not serve: its metrics are ``streams.telemetry``'s) is a sensor: Faust calls it, through
    a dict built per call, when every event enters and leaves a stream (py-spy of an
    event-mode drain, 2026-12-02: 5% of the worker's time). It stays the app's monitor, so
    the consumer's direct calls to it (end offsets, commits) still work; it is only taken
    out of the sensors called per event.

    Its flow control keeps the stream queues' messages when a running flow resumes
    (``streams.flow_control``: Faust's emptied them after the post-assignment seek, and a
    graceful fail-over lost what had been fetched during the seek's read-back); a resume
    after a rebalance still empties them.
    """

    def __init__(self, *args: Any, event_time_topics: Iterable[str] = (), **kwargs: Any) -> None:
        self.event_time_topics = frozenset(event_time_topics)
        kwargs.setdefault("ConsumerScheduler", EventTimeScheduler)
        super().__init__(*args, **kwargs)

    @cached_property
    def flow_control(self) -> QueueKeepingFlowControl:
        return QueueKeepingFlowControl(loop=self.loop)

    def on_init_dependencies(self) -> Iterable[Any]:
        services = super().on_init_dependencies()
        self.sensors.remove(self.monitor)
        return services

    def _new_transport(self) -> Any:
        transport = by_url(self.conf.broker_consumer[0])
        if transport is faust_aiokafka.Transport:
            transport = PromptTransport
        return transport(self.conf.broker_consumer, self)
