"""A live worker with a challenger: shadow scores on their own topic, never an alert;
``fraudstream promote`` swaps the champion without a restart."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from infra.settings import Settings, child_env
from infra.topics import ensure_worker_topics
from reliability.harness import produce
from streams.demo_processes import FRAUDSTREAM, WorkerProcess, read_topic

pytestmark = pytest.mark.integration


def _wait(check: object, timeout_s: float, what: str, worker: WorkerProcess) -> dict:
    deadline = time.monotonic() + timeout_s
    stats: dict = {}
    while time.monotonic() < deadline:
        stats = worker.stats()
        if check(stats):  # type: ignore[operator]
            return stats
        time.sleep(1)
    raise AssertionError(f"{what} not seen in {timeout_s:.0f} s: {stats.get('models')}; "
                         f"{worker.tail()}")


def test_a_challenger_shadows_then_is_promoted_without_a_restart(
        kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "model": "sgd_logreg", "challengers": "agg_sgd_logreg", "alert_policy": "threshold",
        "alert_threshold": 0.5, "label_delay_days": 1.0})
    ensure_worker_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        produce(settings, "--customers", "100", "--terminals", "200", "--days", "30",
                "--max-tx", "3000", "--seed", "5", "--fraud-delay", "fixed:days=0.5",
                "--feedback-days", "1")
        stats = _wait(lambda s: len(s["models"]) == 2 and s["models"][1]["labels"] > 300,
                      120, "challenger labels", worker)
        roles = {m["role"]: m["name"] for m in stats["models"]}
        assert roles == {"champion": "sgd_logreg", "challenger": "agg_sgd_logreg"}
        pid = worker.process.pid  # type: ignore[union-attr]
        done = subprocess.run([*FRAUDSTREAM, "promote", "agg_sgd_logreg"],
                              env=child_env(settings), capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        stats = _wait(lambda s: s["model"].startswith("agg_sgd_logreg"), 60, "promotion",
                      worker)
        assert worker.alive() and worker.process.pid == pid  # type: ignore[union-attr]
        assert {m["role"]: m["name"] for m in stats["models"]} == {
            "champion": "agg_sgd_logreg", "challenger": "sgd_logreg"}
        metrics = worker.get("/metrics").decode()
        assert 'fraudstream_model_rolling_auc{model="agg_sgd_logreg",role="champion"}' in metrics
        assert "fraudstream_promotions_total 1.0" in metrics
        _wait(lambda s: s["totals"]["transactions"] >= 3000, 120, "every transaction", worker)
    finally:
        worker.stop()
    shadows = [json.loads(r.value) for r in read_topic(settings, settings.topics.shadow_scores)]
    alerts = [json.loads(r.value) for r in read_topic(settings, settings.topics.alerts)]
    assert len({s["tx_id"] for s in shadows}) == 3000  # every transaction shadow-scored
    assert alerts and all(a["model"].split(":")[0] in ("sgd_logreg", "agg_sgd_logreg")
                          for a in alerts)
    champions = {s["champion"] for s in shadows}
    assert champions == {"sgd_logreg"} or champions == {"sgd_logreg", "agg_sgd_logreg"}
