"""Micro-batches and envelopes keep exactly one result per transaction, like event mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from producers.events import decode_transactions
from reliability.harness import collect_scores, produce
from streams.demo_processes import WorkerProcess, read_topic

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("mode", "envelope"), [("microbatch", 1), ("envelope", 25)])
def test_one_score_per_transaction(kafka_settings: Settings, tmp_path: Path, mode: str,
                                   envelope: int) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "processing_mode": mode, "microbatch_size": 100,
    })
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        produce(settings, "--customers", "500", "--terminals", "1000", "--days", "20",
                "--max-tx", "8000", "--seed", "3", "--envelope", str(envelope))
        expected: set[int] = set()
        messages = 0
        for record in read_topic(settings, settings.topics.transactions, idle_s=2.0):
            messages += 1
            expected.update(tx.tx_id for tx in decode_transactions(record.value))
        assert len(expected) == 8000
        if envelope > 1:
            assert messages < 8000 / 5  # really packed
        scores = collect_scores(settings, expected, timeout_s=180)
        assert set(scores.counts) == expected
        assert scores.duplicates == 0
        assert worker.stats()["mode"] == mode
    finally:
        worker.stop()
