"""The commands as a user runs them: output files, one-line errors, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fraudstream.cli import app
from producers.reader import read_transactions

ROOT = Path(__file__).resolve().parents[2]


def test_simulate_writes_parquet_with_drift(tmp_path: Path) -> None:
    out = tmp_path / "sim.parquet"
    result = CliRunner().invoke(app, [
        "simulate", "--out", str(out), "--days", "6", "--customers", "500", "--terminals", "1000",
        "--drift", "card_testing@3", "--seed", "3",
    ])
    assert result.exit_code == 0, result.output
    frame = read_transactions(out)
    assert "wrote" in result.output and f"{len(frame):,}" in result.output
    assert (frame["scenario"] == 4).any()
    days = (frame["ts"] - frame["ts"].min()) // 86_400
    assert days[frame["scenario"] == 4].min() >= 3
    assert isinstance(pd.read_parquet(out), pd.DataFrame)


@pytest.mark.parametrize(("args", "message"), [
    (["simulate", "--out", "x.txt", "--days", "1"], "unknown output format"),
    (["simulate", "--out", "x.csv", "--drift", "zigzag@3"], "unknown drift"),
    (["simulate", "--out", "x.csv", "--days", "5", "--drift", "card_testing@9"], "after the last"),
    (["simulate", "--out", "x.csv", "--fraud-delay", "gamma:shape=-1,scale=1"], "shape"),
    (["replay", "missing.csv"], "no such file"),
    (["produce", "--linger-ms", "-1"], "--linger-ms"),
])
def test_bad_arguments_give_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "fraudstream", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_linger_reaches_the_kafka_producer_settings() -> None:
    from producers.sender import LINGER_MS, producer_config

    assert producer_config()["linger_ms"] == LINGER_MS == 20
    assert producer_config("none", 2)["linger_ms"] == 2
