"""Backpressure: a producer three times faster than the worker, then the lag drains.

``reliability.backpressure.run_backpressure`` first measures what this worker scores flat out (a backlog
of 6,000 transactions with their labels, timed from its own counter), then produces at three
times that rate for 15 s here (60 s in ``fraudstream chaos``), sampling
``fraudstream_consumer_lag`` in /metrics and the ``lag`` series of /api/stats (what the
dashboard draws) every half second, until the lag is back to zero. Nothing may be lost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from reliability.backpressure import run_backpressure

pytestmark = pytest.mark.integration


def test_lag_grows_is_visible_and_drains_without_loss(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    report = run_backpressure(kafka_settings, tmp_path, burst_s=15.0, factor=3.0)
    print("\n".join(report.lines()))
    f = report.figures
    assert f["producer rate (tx/s)"] >= 2.9 * f["worker capacity (tx/s)"]
    assert f["max lag in /metrics (messages)"] > f["worker capacity (tx/s)"]
    assert f["max lag in /api/stats series"] > f["worker capacity (tx/s)"]
    assert f["lag drained after (s)"] is not None
    assert f["transactions lost"] == 0
    assert not report.problems, report.problems
