"""The investigator's console on the live dashboard, in a real headless Chromium: the alert
queue (newest first, with reasons and labels), the investigators' feedback arriving, and the
champion/challenger table; we keep a screenshot of the whole page."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from infra.settings import Settings, child_env
from infra.topics import ensure_topics
from reliability.harness import produce
from streams.demo_processes import FRAUDSTREAM, WorkerProcess
from tests.streams.chromium import dump_dom, screenshot

pytestmark = pytest.mark.integration

WORLD = ["--customers", "200", "--terminals", "400", "--days", "20", "--max-tx", "4000",
         "--seed", "5"]


def _tbody(dom: str, tbody_id: str) -> str:
    found = re.search(rf'<tbody id="{tbody_id}">(.*?)</tbody>', dom, re.S)
    assert found, f"no tbody {tbody_id!r} in the page"
    return found.group(1)


def _investigate(settings: Settings, tmp_path: Path) -> str:
    """The investigators (``fraudstream investigate``) read the worker's alerts and send
    feedback labels, from the same simulated world the producer sent."""
    world = tmp_path / "world.parquet"
    env = child_env(settings)
    subprocess.run([*FRAUDSTREAM, "simulate", "--out", str(world), *WORLD], env=env,
                   capture_output=True, text=True, timeout=120, check=True)
    done = subprocess.run(
        [*FRAUDSTREAM, "investigate", "--data", str(world), "--idle-exit", "3",
         "--group", f"inv-{settings.app_id}"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    return done.stdout


def test_console_shows_alerts_feedback_and_models(kafka_settings: Settings,
                                                 tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "snapshot_every_labels": 500,
        "alert_policy": "threshold", "alert_threshold": 0.3,  # alerts at once, untrained or not
        "challengers": "agg_sgd_logreg",  # a shadow model beside the champion
    })
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        produce(settings, *WORLD)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            stats = worker.stats()
            if stats["totals"]["learned"] >= 1000 and stats["alert_queue"]:
                break
            time.sleep(1)
        assert worker.stats()["alert_queue"], "the worker raised no alert at threshold 0.3"
        report = _investigate(settings, tmp_path)
        assert "feedback labels" in report
        deadline = time.monotonic() + 60
        while (time.monotonic() < deadline
               and not worker.stats()["investigations"]["feedback_labels"]):
            time.sleep(1)
        stats = worker.stats()
        assert stats["investigations"]["feedback_labels"] > 0, report
        time.sleep(2)  # a few more samples for the charts

        url = worker.url + "/dashboard"
        dom = dump_dom(url, "1400,1750")
        assert 'data-ready="1"' in dom, "the page never rendered /api/stats"
        assert "worker w0" in dom  # the existing dashboard is still there

        # The alert queue: rows with a time, a card, a score and a label status.
        assert 'id="alert-queue"' in dom
        alerts = _tbody(dom, "alert-rows")
        rows = re.findall(r"<tr\b.*?</tr>", alerts, re.S)
        assert rows and "no alerts yet" not in alerts
        scores = re.findall(r'class="num score-(?:hi|mid)"[^>]*>([01]\.\d{3})<', alerts)
        assert scores, "no alert row shows a score"
        assert all(float(s) >= 0.3 for s in scores)  # every alert scored at least the threshold
        assert re.search(r"<td>20\d\d-\d\d-\d\d \d\d:\d\d:\d\d</td>", alerts)  # UTC event time
        assert re.search(r">(pending|fraud \((feedback|delayed)\)|genuine \((feedback|delayed)\))<",
                         alerts)

        # The investigators' feedback: tiles with numbers and the recent feedback list.
        assert 'id="feedback"' in dom
        tile = re.search(r'id="fb-labels">([^<]*)<', dom)
        assert tile and tile.group(1).isdigit() and int(tile.group(1)) > 0
        feedback = _tbody(dom, "feedback-rows")
        assert "no feedback yet" not in feedback
        assert re.search(r">(fraud|genuine)</td>", feedback)

        # Champion vs challengers: one row each, with the challenger's name.
        assert 'id="models"' in dom
        models = _tbody(dom, "model-rows")
        assert 'class="role-champion">champion<' in models
        assert 'class="role-challenger">challenger<' in models and "agg_sgd_logreg" in models
        assert "no challengers configured" not in models

        shot = tmp_path / "console.png"
        screenshot(url, shot, "1400,1750")
    finally:
        worker.stop()
