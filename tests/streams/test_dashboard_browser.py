"""The live dashboard in a real headless Chromium: it renders data, and we keep a screenshot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from reliability.harness import produce
from streams.demo_processes import WorkerProcess
from tests.streams.chromium import dump_dom, screenshot

pytestmark = pytest.mark.integration



def test_dashboard_renders_live_numbers(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "snapshot_every_labels": 500,
    })
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        produce(settings, "--customers", "200", "--terminals", "400", "--days", "20",
                "--max-tx", "4000", "--seed", "5")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and worker.stats()["totals"]["learned"] < 1000:
            time.sleep(1)
        time.sleep(3)  # a few more samples for the charts
        url = worker.url + "/dashboard"
        dom = dump_dom(url, "1400,900")
        assert 'data-ready="1"' in dom, "the page never rendered /api/stats"
        assert "worker w0" in dom and "labels learned" in dom
        assert 'id="rate">–<' not in dom  # the throughput tile shows a number
        shot = tmp_path / "dashboard.png"
        screenshot(url, shot, "1400,900")
    finally:
        worker.stop()
