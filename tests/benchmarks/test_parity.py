"""``fraudstream bench parity`` without a broker: which rows are judged, the metrics on them,
the JSON shape, the argument errors and the /proc readings.

The broker run is in ``test_parity_integration.py``; everything that decides what the figures
mean is checked here on synthetic data, in a second or two.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.parity import ParityArgs, jsonable, load, result_dict
from benchmarks.parity_eval import (
    Parity,
    Protocol,
    align,
    check_model_fits,
    choose_protocol,
    compare,
    covers_handbook,
)
from benchmarks.parity_run import Drain
from benchmarks.procstat import cpu_seconds, descendants, peak_rss_bytes
from fraudstream.errors import FraudstreamError
from models.evaluate import Prepared, handbook_test_mask
from models.features import DAY, FEATURE_NAMES
from models.metrics import score_all

HANDBOOK_START = datetime(2018, 7, 25, tzinfo=UTC).timestamp()


def _data(first: float, days: int, per_day: int = 40, seed: int = 0) -> Prepared:
    """A synthetic prepared data set: ``per_day`` transactions a day, 10% fraud, 50 cards."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    ts = np.sort(first + rng.uniform(0, days * DAY, n))
    fraud = (rng.uniform(size=n) < 0.1).astype(np.int8)
    cust = rng.integers(0, 50, n)
    return Prepared(ts, cust, rng.integers(0, 80, n), rng.uniform(1, 100, n), fraud,
                    ts + 7 * DAY, rng.normal(size=(n, 15)), 7.0, 0.0)


def test_handbook_protocol_when_the_file_covers_the_handbook_weeks() -> None:
    data = _data(HANDBOOK_START - 3 * DAY, days=26)
    assert covers_handbook(data)
    p = choose_protocol(data)
    assert p.name == "handbook"
    np.testing.assert_array_equal(p.mask, handbook_test_mask(data, HANDBOOK_START))
    assert "2018-08-08..2018-08-14" in p.window


def test_prequential_over_the_last_seven_days_otherwise() -> None:
    # starts two days into the training week: the handbook weeks are not all there
    data = _data(HANDBOOK_START + 2 * DAY, days=30)
    assert not covers_handbook(data)
    p = choose_protocol(data)
    assert p.name == "prequential"
    last_day = np.floor(data.ts[-1] / DAY)
    days = np.floor(data.ts[p.mask] / DAY)
    assert set(days.tolist()) == set(np.arange(last_day - 6, last_day + 1).tolist())
    assert p.n == int(np.sum(np.floor(data.ts / DAY) >= last_day - 6))


def test_a_short_file_is_judged_whole() -> None:
    data = _data(HANDBOOK_START - 40 * DAY, days=3)
    assert choose_protocol(data).mask.all()


def test_batch_models_need_the_handbook_protocol() -> None:
    pre = Protocol("prequential", np.ones(3, bool), "x")
    check_model_fits("logreg", pre)
    check_model_fits("batch_rf", Protocol("handbook", np.ones(3, bool), "x"))
    with pytest.raises(FraudstreamError, match="refitted weekly"):
        check_model_fits("batch_rf", pre)


def test_same_scores_give_zero_differences_on_exactly_the_protocol_rows() -> None:
    data = _data(HANDBOOK_START - 30 * DAY, days=20)
    p = choose_protocol(data)
    rng = np.random.default_rng(1)
    offline = rng.uniform(size=len(data)) + data.fraud  # informative scores
    pipeline = offline.copy()
    pipeline[~p.mask] = np.nan  # rows outside the protocol need no pipeline score
    features = data.X.copy()
    parity = compare(data, p, pipeline, offline, features)
    assert parity.diff() == {"auc": 0.0, "ap": 0.0, "cp_at_100": 0.0}
    expected = score_all(data.ts[p.mask], data.customer_id[p.mask], data.fraud[p.mask],
                         offline[p.mask])
    assert parity.offline.ap == pytest.approx(expected.ap)
    assert parity.pipeline.n == p.n and parity.offline.n == p.n
    assert parity.score_max_abs_diff == 0.0 and parity.feature_max_abs_diff == 0.0
    assert parity.feature_diff_share == 0.0 and parity.feature_worst is None
    features[np.flatnonzero(p.mask)[:2], 4] += 3.0  # two evaluated rows, one input
    features[np.flatnonzero(~p.mask)[:5], 2] += 9.0  # not evaluated: not counted
    parity = compare(data, p, pipeline, offline, features)
    assert parity.feature_max_abs_diff == pytest.approx(3.0)
    assert parity.feature_diff_share == pytest.approx(2 / p.n)
    assert parity.feature_worst == FEATURE_NAMES[4]


def test_a_worse_pipeline_shows_as_a_negative_difference() -> None:
    data = _data(HANDBOOK_START - 30 * DAY, days=20)
    p = choose_protocol(data)
    rng = np.random.default_rng(2)
    offline = rng.uniform(size=len(data)) + data.fraud
    pipeline = rng.uniform(size=len(data))  # noise
    parity = compare(data, p, pipeline, offline)
    assert parity.diff()["ap"] < -0.3 and parity.diff()["auc"] < -0.3
    assert parity.feature_max_abs_diff is None  # scores without features
    assert parity.score_max_abs_diff > 0.5


def test_an_unscored_evaluated_row_is_an_error_not_a_smaller_sample() -> None:
    data = _data(HANDBOOK_START - 30 * DAY, days=20)
    p = choose_protocol(data)
    pipeline = np.ones(len(data))
    pipeline[np.flatnonzero(p.mask)[0]] = np.nan
    with pytest.raises(FraudstreamError, match="1 evaluated transactions have no pipeline"):
        compare(data, p, pipeline, np.ones(len(data)))


def test_scores_are_aligned_by_transaction_id() -> None:
    assert align(np.array([5, 7, 6]), {6: 0.6, 5: 0.5, 7: 0.7}).tolist() == [0.5, 0.7, 0.6]


def test_load_sets_fixed_label_times_and_keeps_tx_ids_in_prepared_order(tmp_path: Path) -> None:
    t0 = HANDBOOK_START
    df = pd.DataFrame({  # not in time order, with the simulator's own label times
        "tx_id": [10, 11, 12, 13], "ts": [t0 + 300, t0 + 100, t0 + 200, t0 + 100],
        "customer_id": [1, 2, 3, 4], "terminal_id": [1, 1, 2, 2],
        "amount": [5.0, 6.0, 7.0, 8.0], "fraud": [0, 1, 0, 1],
        "label_ts": [t0 + 400, t0 + 150, t0 + 900, t0 + 100],
    })
    path = tmp_path / "tx.parquet"
    df.to_parquet(path)
    frame, data, tx_ids = load(ParityArgs(path, label_delay_days=2.0))
    assert tx_ids.tolist() == [11, 13, 12, 10]
    np.testing.assert_array_equal(data.ts, [t0 + 100, t0 + 100, t0 + 200, t0 + 300])
    np.testing.assert_array_equal(data.label_ts, data.ts + 2 * DAY)
    np.testing.assert_array_equal(frame["label_ts"], frame["ts"] + 2 * DAY)  # what is replayed


def test_result_has_the_json_shape_and_nan_becomes_null() -> None:
    data = _data(HANDBOOK_START - 30 * DAY, days=20)
    p = choose_protocol(data)
    s = np.random.default_rng(3).uniform(size=len(data))
    parity: Parity = compare(data, p, s, s)
    drained = Drain(started_at=100.0, first_score_at=110.0, last_score_at=120.0, cpu_s=4.0,
                    cpu_total_s=9.0, peak_rss_bytes=[200 * 2**20, 300 * 2**20], duplicates=0)
    r = result_dict(ParityArgs(Path("x"), workers=2, envelope=10), parity, drained,
                    n_scored=1001, n_tx=1001, replay_s=1.0)
    for side in ("pipeline", "offline", "diff"):
        assert set(r[side]) == {"auc", "ap", "cp_at_100"}
    for key in ("tx_per_s", "cpu_us_per_tx", "peak_rss_mb", "n_tx", "n_scored", "protocol",
                "model", "partitions", "workers", "envelope"):
        assert key in r
    assert r["tx_per_s"] == pytest.approx(100.0)  # 1,000 intervals in 10 s
    assert r["cpu_us_per_tx"] == pytest.approx(4.0 / 1001 * 1e6)
    assert r["peak_rss_mb"] == 300.0 and r["startup_s"] == 10.0
    assert (r["workers"], r["envelope"], r["partitions"]) == (2, 10, 4)
    r["diff"]["ap"] = float("nan")
    assert json.loads(json.dumps(jsonable(r)))["diff"]["ap"] is None


@pytest.mark.parametrize(("update", "message"), [
    ({"data": Path("/no/such/file.parquet")}, "no such file"),
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"workers": 3, "partitions": 2}, "--workers 3 > --partitions 2"),
    ({"envelope": 0}, "--envelope must be at least 1"),
    ({"partitions": 0}, "--partitions must be at least 1"),
    ({"preset": "nope"}, "unknown preset 'nope'"),
    ({"label_delay_days": -1.0}, "--label-delay-days must be a number >= 0"),
])
def test_bad_arguments_are_refused_before_anything_starts(tmp_path: Path, update: dict,
                                                          message: str) -> None:
    data = tmp_path / "tx.csv"
    data.write_text("ts,customer_id,terminal_id,amount,fraud\n1,1,1,1.0,0\n")
    ParityArgs(data).validate()
    with pytest.raises(FraudstreamError, match=re.escape(message)):
        ParityArgs(**{"data": data, **update}).validate()


def test_a_bad_argument_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    """The CLI's contract, through the real entry point (one subprocess: start-up is slow)."""
    data = tmp_path / "tx.csv"
    data.write_text("ts,customer_id,terminal_id,amount,fraud\n1,1,1,1.0,0\n")
    done = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", "parity", "--data", str(data),
         "--workers", "2", "--partitions", "1"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("fraudstream: error: --workers 2 > --partitions 1: a worker "
                                   "without a partition would only idle (Kafka gives each "
                                   "partition to one group member)")
    assert done.stdout == ""


def test_bench_without_a_sub_command_is_still_the_full_benchmark() -> None:
    from typer.testing import CliRunner

    from fraudstream.cli import app

    done = CliRunner().invoke(app, ["bench", "--help"])
    assert done.exit_code == 0
    assert "--quick" in done.output and "parity" in done.output
    assert "--envelope" in CliRunner().invoke(app, ["bench", "parity", "--help"]).output


def test_procstat_reads_cpu_memory_and_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while child.pid not in descendants(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in descendants(os.getpid())
        assert peak_rss_bytes(os.getpid()) > peak_rss_bytes(child.pid) > 0
    finally:
        child.kill()
        child.wait()
    sum(i * i for i in range(300_000))  # burn a little CPU
    assert cpu_seconds(os.getpid()) > 0
    assert cpu_seconds(2**22 + 12345) == 0.0 and peak_rss_bytes(2**22 + 12345) == 0
