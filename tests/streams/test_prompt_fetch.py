"""The worker's fetch loop wakes when a held-back partition is handed back, not a second later.

No broker: the consumer is built but never started, and the call into its consumer thread is
replaced by a stub that records what was asked; the scenarios run on the app's own loop (the
consumer's stop event belongs to it). Faust's own loop, in the same situation, sleeps
``timeout`` (one second in its fetcher) or waits that long for records of idle partitions.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.types import TP

from infra.settings import Settings
from streams.app import FraudApp
from streams.prompt_fetch import (
    FETCH_MAX_WAIT_MS,
    HELD_WAIT_S,
    PromptConsumer,
    PromptConsumerThread,
)

TIMEOUT = 20.0  # what the loop is given; every wait below must end long before it


class _Thread:
    """Stands in for Faust's consumer thread: no records, remembers each call's timeout."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    async def getmany(self, active: Any, timeout: float) -> dict:
        self.timeouts.append(timeout)
        return {}


def _consumer() -> tuple[PromptConsumer, _Thread]:
    app = FraudApp(Settings()).app
    consumer = app.consumer
    assert isinstance(consumer, PromptConsumer)
    thread = _Thread()
    consumer._thread = thread  # type: ignore[assignment]
    return consumer, thread


def test_the_app_fetches_with_the_prompt_consumer() -> None:
    assert isinstance(FraudApp(Settings()).app.consumer, PromptConsumer)


def test_the_broker_holds_the_worker_s_fetch_briefly() -> None:
    """Faust's 1.5 s hold made each of recovery's offset requests wait for it."""
    app = FraudApp(Settings()).app
    thread = app.consumer._thread
    assert isinstance(thread, PromptConsumerThread)

    async def build() -> Any:  # aiokafka wants a running loop
        return thread._create_worker_consumer(app.transport)

    kafka = app.loop.run_until_complete(build())
    assert kafka._fetch_max_wait_ms == FETCH_MAX_WAIT_MS < 1500


def test_no_partition_to_fetch_waits_only_until_one_is_handed_back() -> None:
    consumer, thread = _consumer()
    tp = TP("transactions", 0)

    async def scenario() -> float:
        consumer._set_active_tps({tp})
        consumer.on_buffer_full(tp)  # the stream's buffer is full: nothing left to fetch
        assert not consumer._get_active_partitions()
        began = time.monotonic()
        waiting = asyncio.ensure_future(consumer._wait_next_records(TIMEOUT))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # it does wait while the partition is held
        consumer.on_buffer_drop(tp)  # the agent took the buffer down
        records, active = await asyncio.wait_for(waiting, TIMEOUT)
        assert records == {} and active == {tp}
        return time.monotonic() - began

    elapsed = consumer.loop.run_until_complete(scenario())
    assert elapsed < TIMEOUT / 4, elapsed
    assert thread.timeouts == [TIMEOUT]  # then it fetched the partition handed back


def test_with_a_partition_held_the_others_are_not_waited_on() -> None:
    consumer, thread = _consumer()
    held, idle = TP("transactions", 0), TP("labels", 0)

    async def scenario() -> None:
        consumer._set_active_tps({held, idle})
        consumer.on_buffer_full(held)
        await asyncio.wait_for(consumer._getmany({idle}, TIMEOUT), TIMEOUT)
        consumer.on_buffer_drop(held)
        await asyncio.wait_for(consumer._getmany({held, idle}, TIMEOUT), TIMEOUT)

    consumer.loop.run_until_complete(scenario())
    # held back: the idle partitions are asked without waiting (their next records are looked
    # for again after at most HELD_WAIT_S); nothing held: Faust's own timeout
    assert thread.timeouts == [0, TIMEOUT]
    assert HELD_WAIT_S < 1.0


def test_the_app_registers_its_tables_without_faust_s_one_second_sleep() -> None:
    from streams.prompt_tables import PromptTableManager

    assert isinstance(FraudApp(Settings()).app.tables, PromptTableManager)
