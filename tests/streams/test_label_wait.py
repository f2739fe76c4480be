"""A batch of transactions waits, bounded, for its partitions' labels to be read up to its time
(``streams.label_wait``, ``FraudApp._await_labels``)."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter

import streams.app
from streams.app import FraudApp


def _event(partition: int, ts: list[float]) -> SimpleNamespace:
    events = ",".join(f'{{"tx_id":{i},"ts":{t}}}' for i, t in enumerate(ts))
    raw = f'{{"type":"envelope","events":[{events}]}}'.encode()
    return SimpleNamespace(message=SimpleNamespace(partition=partition, value=raw))


def _worker(labels_read: dict[int, float], caught_up: set[int] = frozenset(),
            paused: set[int] = frozenset()) -> SimpleNamespace:
    registry = CollectorRegistry()
    worker = SimpleNamespace(
        settings=SimpleNamespace(topics=SimpleNamespace(labels="labels")),
        processor=SimpleNamespace(clock=SimpleNamespace(labels_read=labels_read), paused=paused),
        _caught_up=lambda tp: tp.partition in caught_up,
        telemetry=SimpleNamespace(label_waits=Counter("w", "", registry=registry),
                                  label_waits_expired=Counter("x", "", registry=registry)),
        _labels_progress=asyncio.Event(),
    )
    worker._labels_behind = lambda events: FraudApp._labels_behind(worker, events)  # type: ignore[arg-type]
    return worker


def _count(counter: Counter) -> float:
    return counter._value.get()


def test_behind_is_read_from_each_partitions_last_event() -> None:
    worker = _worker({0: 100.0, 1: 500.0, 2: 10.0}, caught_up={2})
    batch = [_event(0, [50.0, 90.0]), _event(1, [60.0]), _event(0, [95.0, 130.0]),
             _event(2, [400.0]), _event(3, [7.0])]
    assert FraudApp._labels_behind(worker, batch) == {0: 130.0, 3: 7.0}  # type: ignore[arg-type]


def test_a_batch_goes_on_once_the_labels_agent_has_read_far_enough() -> None:
    async def scenario() -> float:
        worker = _worker({0: 100.0})
        batch = [_event(0, [120.0])]

        async def labels_agent() -> None:
            await asyncio.sleep(0.02)
            worker.processor.clock.labels_read[0] = 110.0  # not yet far enough
            worker._labels_progress.set()
            await asyncio.sleep(0.02)
            worker.processor.clock.labels_read[0] = 125.0
            worker._labels_progress.set()

        reader = asyncio.create_task(labels_agent())
        began = asyncio.get_running_loop().time()
        await FraudApp._await_labels(worker, batch)  # type: ignore[arg-type]
        waited = asyncio.get_running_loop().time() - began
        await reader
        assert (_count(worker.telemetry.label_waits),
                _count(worker.telemetry.label_waits_expired)) == (1, 0)
        return waited

    assert 0.03 <= asyncio.run(scenario()) < 0.5


def test_the_wait_is_bounded_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams.app, "LABEL_WAIT_S", 0.12)

    async def scenario() -> tuple[float, float, float]:
        worker = _worker({0: -math.inf})
        began = asyncio.get_running_loop().time()
        await FraudApp._await_labels(worker, [_event(0, [120.0])])  # type: ignore[arg-type]
        return (asyncio.get_running_loop().time() - began,
                _count(worker.telemetry.label_waits), _count(worker.telemetry.label_waits_expired))

    waited, waits, expired = asyncio.run(scenario())
    assert 0.12 <= waited < 1.0 and (waits, expired) == (1, 1)


def test_no_wait_when_labels_are_read_paused_or_all_read() -> None:
    async def scenario() -> None:
        for worker in (_worker({0: 200.0}), _worker({}, paused={0}), _worker({}, caught_up={0})):
            await asyncio.wait_for(
                FraudApp._await_labels(worker, [_event(0, [120.0])]), 0.01)  # type: ignore[arg-type]
            assert _count(worker.telemetry.label_waits) == 0

    asyncio.run(scenario())
