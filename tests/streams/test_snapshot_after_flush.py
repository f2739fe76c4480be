"""A model snapshot is written only after a flush that began after it was captured.

Why it matters: the cards that mark a snapshot's labels learned must be on Kafka before the
snapshot that holds them, or a restart from it learns those labels again. The worker captures
the model when a snapshot is due and writes it after the next flush (whose first step sends
the staged cards); a flush already running when the capture was taken may have sent its cards
before they were staged, so it does not count. The broker is not needed: the producer's own
flush is replaced by one the test releases.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from infra.settings import Settings
from streams.app import FraudApp

FEATURES = [0.5] * 15


def test_a_capture_waits_for_a_flush_that_began_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fraud = FraudApp(Settings(model="logreg", state_dir=tmp_path / "state",
                              registry_dir=tmp_path / "registry", snapshot_every_labels=2),
                     worker_id="snap")
    registry, name = fraud.runtime.registry, fraud.runtime.snapshot_name
    release: dict[int, asyncio.Event] = {}

    async def held_flush(self: faust_aiokafka.Producer) -> None:
        await release[self.flushes_started].wait()  # type: ignore[attr-defined]

    monkeypatch.setattr(faust_aiokafka.Producer, "flush", held_flush)
    producer = fraud.app.producer

    async def scenario() -> None:
        release.update({1: asyncio.Event(), 2: asyncio.Event()})
        early = asyncio.ensure_future(producer.flush())  # begins before the capture
        await asyncio.sleep(0)
        fraud.runtime.learn(FEATURES, 1)
        assert fraud.runtime.learn(FEATURES, 0)  # a snapshot is due
        fraud._capture_snapshot()
        # after the capture: not in the snapshot, and no new one due until 2 more labels
        assert not fraud.runtime.learn(FEATURES, 1)
        release[1].set()
        await early
        assert registry.versions(name) == []  # that flush may not have sent the cards
        release[2].set()
        await producer.flush()
        assert registry.versions(name) == [1]
        assert registry.load(name).meta["learned"] == 2
        assert fraud.runtime.version == 1
        assert fraud.runtime.learned_since_snapshot == 1  # the label learned after capture

    asyncio.run(asyncio.wait_for(scenario(), 30))
