"""``fraudstream bench drift`` end to end on the session broker, on a small drifted world.

The output's shape is checked, the static model's drop is measured (a number, not NaN), and the
backlog-drained models agree week by week with the offline evaluator within issue 13's 0.02 AP:
one partition and one worker, labels released in event time, so the online model learns in the
evaluator's order and the static model is the very one the evaluator fitted. The trainer-fed
models run paced (3 s a simulated day here); their snapshots reach the worker some wall-clock
seconds after each refit, so they are held to the same bound against their offline twins as
served (the models rebuilt offline for the versions the worker scored with).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.processes import bench_json, live_workers

pytestmark = pytest.mark.integration

# 300 customers over 42 days (about 30,000 transactions): a drift on day 28 leaves the static
# model 21 days of labels and two weeks after the drift; two drains of about a minute each
WORLD = ["--customers", "300", "--days", "42", "--seed", "3", "--drift", "night_gang@28",
         "--day-seconds", "3"]
MODEL_KEYS = {"name", "pre_drift_ap", "worst_ap_after", "recovery_days"}


def test_drift_bench_through_the_pipeline(kafka_bootstrap: str, tmp_path: Path) -> None:
    r = bench_json("drift", WORLD, kafka_bootstrap, tmp_path)

    assert r["drift"] == "night_gang@28" and r["drift_day"] == 28
    names = [m["name"] for m in r["models"]]
    assert names == ["logreg (online)", "batch_hgb static", "batch_hgb retrained every 7 days",
                     "logreg (trainer, snapshot every 1,000 labels)"]
    assert [m["source"] for m in r["models"]] == ["pipeline", "pipeline", "pipeline, paced",
                                                  "pipeline, paced"]
    for m in r["models"]:
        assert set(m) >= MODEL_KEYS
        assert m["recovery_days"] is None or (isinstance(m["recovery_days"], int)
                                              and m["recovery_days"] >= 0)
        assert 0 < m["pre_drift_ap"] <= 1 and 0 < m["worst_ap_after"] <= 1
    assert isinstance(r["static_drop"], float) and math.isfinite(r["static_drop"])
    static = r["models"][1]
    assert r["static_drop"] == pytest.approx(
        1 - static["ap_two_weeks_after"] / static["ap_week_before"])
    assert r["fair_static"]["history_days"] == 21 and r["fair_static"]["fair"] is False

    weeks = r["week_diffs"]
    assert {w["model"] for w in weeks} == set(names)
    for w in weeks:  # paced contenders: against their twins as served (benchmarks.served)
        assert math.isfinite(w["pipeline_ap"]) and math.isfinite(w["offline_ap"]), w
        assert abs(w["diff"]) <= 0.02, w
    assert {w["model"] for w in r["serving_lag"]} == set(names[2:])
    for name in names[2:]:
        snaps = r["snapshots"][name]
        assert snaps["served"] >= 1 and snaps["median_lag_hours"] >= 0, snaps

    report = (tmp_path / "report" / "report.md").read_text()
    assert "Recovery" in report and "per week" in report and "offline evaluator" in report
    saved = json.loads((tmp_path / "report" / "result.json").read_text())
    assert saved["models"] == r["models"]
    assert (tmp_path / "report" / "drift.png").stat().st_size > 10_000
    assert not live_workers(tmp_path), "worker processes left running"
    print("bench drift: " + ", ".join(f"{m['name']} drop {m['drop']:+.1%}" for m in r["models"]))


def test_delay_bench_through_the_pipeline(kafka_bootstrap: str, tmp_path: Path) -> None:
    """``bench delay``: one parity run per label delay; the pipeline pays the evaluator's price."""
    env = dict(os.environ, TMPDIR=str(tmp_path), KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    data = tmp_path / "world.parquet"
    sim = subprocess.run([sys.executable, "-m", "fraudstream", "simulate", "--out", str(data),
                          "--customers", "300", "--terminals", "600", "--days", "18", "--seed",
                          "3"], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert sim.returncode == 0, sim.stderr[-2000:]
    done = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", "delay", "--data", str(data), "--delays",
         "1,7", "--out", str(tmp_path / "report"), "--json"],
        capture_output=True, text=True, timeout=900, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout)
    assert [r["label_delay_days"] for r in runs] == [1.0, 7.0]
    for r in runs:
        assert r["n_scored"] == r["n_tx"] and r["partitions"] == 1
        for key in ("auc", "ap", "cp_at_100"):
            assert math.isfinite(r["pipeline"][key]) and abs(r["diff"][key]) <= 0.005, r["diff"]
    assert runs[0]["offline"]["ap"] != runs[1]["offline"]["ap"], "the delay changed nothing"
    assert "| 1.00 |" in (tmp_path / "report" / "report.md").read_text()
    print("bench delay: " + ", ".join(f"{r['label_delay_days']:g} d AP {r['pipeline']['ap']:.3f}"
                                       for r in runs))
