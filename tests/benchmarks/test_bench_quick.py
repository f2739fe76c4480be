"""``fraudstream bench --quick`` end to end on the session broker: the report has its shape.

Quick mode is the CI guard for the benchmark: every measurement (ceilings, drain per mode,
latency, two workers, model x mode with labels, drift, label delay) runs on tiny data and the
command itself fails when a table or chart is missing or a cell is NaN. This test runs the real
command and checks the same things from the outside, plus that no worker is left behind.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.processes import live_workers

pytestmark = pytest.mark.integration

CHARTS = ("drain.png", "latency.png", "pareto.png", "drift.png", "label_delay.png")
TABLES = ("Issue 12 targets", "Headline figures", "Drain rates",
          "Envelope mode with labels, against the offline evaluator",
          "CPU-µs per transaction by stage", "End-to-end latency",
          "Model x mode", "Scaling", "Worker memory after a whole world", "AP by label delay",
          "Recovery after drift",
          "Per day (AP, CP@100)", "Machine")


def test_bench_quick_report_has_every_table_and_chart(kafka_bootstrap: str,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "report"
    env = dict(os.environ, TMPDIR=str(tmp_path))  # the bench's work dir lands under tmp_path
    done = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", "--quick", "--bootstrap",
         kafka_bootstrap, "--out", str(out), "--keep-work"],  # its logs stay in tmp_path
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for chart in CHARTS:
        png = out / chart
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG", chart
        assert f"]({chart})" in md and f'src="{chart}"' in html
    for title in TABLES:
        assert f"**{title}" in md, title
        assert f"<h3>{title}" in html, title
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table_lines) > 40
    for line in table_lines:
        cells = [c.strip().lower() for c in line.strip("|").split("|")]
        assert not {"nan", "inf", "none", ""} & set(cells[:1] + cells[2:]), line
    ceilings = [line for line in table_lines if "(ceiling)" in line]
    assert len(ceilings) >= 4  # aiokafka and bare Faust, one message per tx and an envelope
    for line in ceilings:  # each reader's own CPU per million tx, measured
        assert float(line.strip("|").split("|")[-1].strip().replace(",", "")) > 0, line
    assert "the bare Faust agent of the drain table" in md
    assert "fraudstream bench --quick" in md  # the exact command
    assert re.search(r"\d+ cores", md) and "faust-streaming" in md
    for number in re.findall(r"\| (-?[0-9][0-9,]*(?:\.[0-9]+)?) \|", md):
        assert math.isfinite(float(number.replace(",", "")))
    assert not live_workers(tmp_path), "benchmark processes left running"
