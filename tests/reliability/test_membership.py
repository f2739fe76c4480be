"""Group membership against the real broker: static members and a graceful leave.

The timings asserted here tell two mechanisms apart, with wide margins; they are not speed
targets (those are measured by ``fraudstream chaos``). The session timeout is set to 90 s (the
longest Faust accepts), so anything that waits for a session to expire takes that long:

* a worker killed and restarted with the same ``--worker-id`` scores again long before that
  (static membership: the broker hands it its old assignment);
* a worker stopped by SIGTERM leaves the group and its partitions move to the other worker
  long before that.
* a malformed message re-read after the kill is not dead-lettered a second time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from reliability.harness import produce
from reliability.scenario import (
    dead_letter_sources,
    metric,
    scenario_settings,
    send_malformed,
    wait_first_score,
)
from streams.demo_processes import WorkerProcess

pytestmark = pytest.mark.integration

LONG_SESSION = {"KAFKA_SESSION_TIMEOUT_MS": "90000", "KAFKA_HEARTBEAT_INTERVAL_MS": "3000"}
WORLD = ["--customers", "300", "--terminals", "600", "--days", "20", "--seed", "5"]
MALFORMED = 30


def _wait(check, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def test_killed_worker_restarted_with_its_id_resumes_and_dead_letters_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = scenario_settings(Settings().with_bootstrap(kafka_bootstrap), tmp_path, "static")
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path, extra_env=LONG_SESSION).start()
    try:
        worker.wait_ready(120)
        send_malformed(settings, MALFORMED)
        produce(settings, *WORLD, "--max-tx", "1500")
        _wait(lambda: len(dead_letter_sources(settings)) >= MALFORMED, 60, "first dead letters")
        _wait(lambda: worker.stats()["totals"]["scores"] > 0, 60, "first scores")
        worker.kill()
        worker = WorkerProcess(settings, "w0", tmp_path, extra_env=LONG_SESSION).start()
        restarted = time.monotonic()
        worker.wait_ready(120)
        produce(settings, *WORLD, "--max-tx", "300", "--seed", "6")
        resumed = wait_first_score(worker, restarted, timeout_s=40.0)
        # a dynamic member waits for the killed one's 90 s session (measured: it does)
        assert resumed is not None and resumed < 45.0, f"scoring resumed after {resumed} s"
        # the re-read covered the malformed messages: their letters were out, none is re-sent
        repeats = metric(worker.get("/metrics").decode(), "fraudstream_dlq_repeats_total")
        assert repeats == MALFORMED
    finally:
        worker.stop()
    sources = dead_letter_sources(settings)
    assert len(sources) == MALFORMED and len(set(sources)) == MALFORMED


def test_worker_stopped_by_sigterm_hands_its_partitions_over_at_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = scenario_settings(Settings().with_bootstrap(kafka_bootstrap), tmp_path, "leave")
    ensure_topics(settings)
    w0 = WorkerProcess(settings, "w0", tmp_path, extra_env=LONG_SESSION).start()
    w1 = WorkerProcess(settings, "w1", tmp_path, extra_env=LONG_SESSION).start()
    try:
        w0.wait_ready(120)
        w1.wait_ready(120)

        def assignments() -> float:
            return metric(w0.get("/metrics").decode(), "fraudstream_partition_assignments_total")

        _wait(lambda: assignments() >= 1, 60, "w0 assigned")
        time.sleep(5)  # the group settles: both workers own partitions
        before = assignments()
        w1.stop()
        assert w1.process is not None and w1.process.returncode == 0
        # w0 is assigned again (all partitions) well before a 90 s session could expire
        _wait(lambda: assignments() > before, 30, "w0 reassigned after w1 left")
        assert "left group" in w1.log_path.read_text()
    finally:
        w0.stop()
        w1.stop()
