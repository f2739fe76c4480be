"""``fraudstream bench feedback``: the three contenders through the pipeline on a small world.

A worker scores and alerts, ``fraudstream investigate`` turns its alerts into feedback labels,
the file is replayed in event time. Checked: the output's shape, every transaction scored,
feedback labels published only where investigators run, and each contender's AP within 0.03
of its offline twin (the feedback labels that reach the worker after their ``known_at`` are
learned a few event-time hours late: the only difference between the two).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.processes import bench_json, live_workers

pytestmark = pytest.mark.integration

# 200 cards over 35 days (about 16,000 transactions), evaluated from day 21, 1.5 s a day
WORLD = ["--customers", "200", "--days", "35", "--seed", "2", "--eval-from-day", "21",
         "--day-seconds", "1.5"]
NAMES = ["delayed only", "feedback + delayed, one model", "aggregation"]
PIPELINE_AP_BOUND = 0.03


def test_feedback_bench_through_the_pipeline(kafka_bootstrap: str, tmp_path: Path) -> None:
    r = bench_json("feedback", WORLD, kafka_bootstrap, tmp_path)
    assert r["source"] == "pipeline" and r["k"] == 4
    assert [run["name"] for run in r["runs"]] == NAMES
    for run in r["runs"]:
        assert {"name", "cp_at_100", "ap"} <= set(run)
        assert math.isfinite(run["cp_at_100"]) and math.isfinite(run["ap"]), run
        assert run["missing"] == 0  # every evaluated transaction was scored
        assert abs(run["ap"] - run["offline_ap"]) <= PIPELINE_AP_BOUND, run
    delayed, one, agg = r["runs"]
    assert delayed["feedback_labels_published"] == 0
    assert one["feedback_labels_published"] > 0 and agg["feedback_labels_published"] > 0
    assert one["feedback_frauds"] > 0
    assert 0 <= one["feedback_published_late"] <= one["feedback_labels_published"]
    offline = {o["name"]: o for o in r["offline"]}
    assert offline["delayed only"]["feedback_labels"] == 0
    assert offline["aggregation"]["feedback_labels"] > 0
    assert r["features_unchanged_by_feedback"] is True
    assert "CP@4" in (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "feedback.png").stat().st_size > 10_000
    assert not live_workers(tmp_path), "worker processes left running"
    print("bench feedback: " + ", ".join(
        f"{run['name']} CP {run['cp_at_100']:.3f} AP {run['ap']:.3f} (offline "
        f"{run['offline_ap']:.3f}, {run['feedback_labels_published']} feedback labels)"
        for run in r["runs"]))


def test_feedback_bench_offline_and_its_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", "feedback", "--customers", "100",
         "--days", "30", "--eval-from-day", "14", "--offline-only", "--json"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout)
    assert r["source"] == "offline" and [run["name"] for run in r["runs"]] == NAMES
    assert set(r["gain"]) == set(NAMES[1:])
    bad = subprocess.run([sys.executable, "-m", "fraudstream", "bench", "feedback", "--model",
                          "hat", "--offline-only"], capture_output=True, text=True, timeout=120,
                         check=False)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "sgd_logreg" in bad.stderr
    drifted = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", "feedback", "--customers", "100",
         "--days", "30", "--eval-from-day", "14", "--drift", "night_gang@20", "--offline-only",
         "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert drifted.returncode == 0, drifted.stderr[-2000:]
    assert json.loads(drifted.stdout)["runs"] != r["runs"]  # another world
    wrong = subprocess.run([sys.executable, "-m", "fraudstream", "bench", "feedback", "--drift",
                            "tsunami@3", "--offline-only"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert wrong.returncode == 2 and "--drift" in wrong.stderr
    assert wrong.stderr.strip().count("\n") == 0
