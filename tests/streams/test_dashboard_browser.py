"""The live dashboard in a real headless Chromium: it renders data, and we keep a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from reliability.harness import produce
from streams.demo_processes import WorkerProcess

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1400,900", "--virtual-time-budget=4000",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is required for this test: `make browser` installs it"
    return path


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
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(
                [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                capture_output=True, text=True, timeout=60, check=True,
            ).stdout
        assert 'data-ready="1"' in dom, "the page never rendered /api/stats"
        assert "worker w0" in dom and "labels learned" in dom
        assert 'id="rate">–<' not in dom  # the throughput tile shows a number
        shot = tmp_path / "dashboard.png"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--screenshot={shot}", url],
                capture_output=True, timeout=60, check=True,
            )
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        from matplotlib.image import imread

        pixels = imread(str(shot))
        assert pixels.std() > 0.05, "the screenshot is blank"
    finally:
        worker.stop()
