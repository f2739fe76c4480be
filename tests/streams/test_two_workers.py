"""Two workers share a 4-partition topic; when one stops, the other takes over its partitions."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest

from infra.settings import Settings, child_env
from infra.topics import ensure_topics
from reliability.harness import collect_scores
from streams.demo_processes import FRAUDSTREAM, WorkerProcess, read_topic

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


def _tx_ids(settings: Settings) -> set[int]:
    from producers.events import decode_transactions

    ids: set[int] = set()
    for record in read_topic(settings, settings.topics.transactions, idle_s=2.0):
        ids.update(tx.tx_id for tx in decode_transactions(record.value))
    return ids


def _wait(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_share_then_fail_over(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
    })
    assert settings.topics.partitions == 4
    ensure_topics(settings)
    w1 = WorkerProcess(settings, "w1", tmp_path).start()
    w2 = WorkerProcess(settings, "w2", tmp_path).start()
    try:
        w1.wait_ready()
        w2.wait_ready()
        # One producer run at a steady rate, so that the fail-over happens under load.
        producer = subprocess.Popen(
            [*FRAUDSTREAM, "produce", "--no-progress", "--customers", "800", "--terminals",
             "1500", "--days", "16", "--max-tx", "12000", "--seed", "21", "--no-labels",
             "--rate", "500"],
            env=child_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

        def both_busy() -> bool:
            a, b = w1.stats()["totals"]["transactions"], w2.stats()["totals"]["transactions"]
            return a > 500 and b > 500

        _wait(both_busy, 120, "both workers to score transactions")
        first = {w.worker_id: w.stats()["totals"]["transactions"] for w in (w1, w2)}
        log.warning("share before the fail-over: %s", first)
        beats = {b["worker"] for b in w1.stats()["workers"]}
        assert beats == {"w1", "w2"}

        w2.stop()  # graceful: leaves the group, w1 takes its partitions
        assert producer.wait(timeout=180) == 0, producer.stderr.read() if producer.stderr else ""
        expected = _tx_ids(settings)
        assert len(expected) == 12000
        scores = collect_scores(settings, expected, timeout_s=180)
        missing = expected - set(scores.counts)
        assert not missing, f"{len(missing)} transactions never scored after fail-over"
        by_worker = {}
        for body in scores.bodies.values():
            by_worker[body["worker"]] = by_worker.get(body["worker"], 0) + 1
        log.warning("last score per tx by worker: %s; duplicates %d", by_worker,
                    scores.duplicates)
        after = {b["worker"] for b in scores.bodies.values() if b["tx_id"] > max(expected) - 500}
        assert after == {"w1"}, "the last transactions were not all scored by the survivor"
        silent = [b for b in w1.stats()["workers"] if b["worker"] == "w2"]
        assert silent and (not silent[0]["alive"] or silent[0]["age_s"] > 2)
    finally:
        w1.stop()
        w2.stop()
