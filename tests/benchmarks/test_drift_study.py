"""``bench drift`` and ``bench delay`` without a broker: argument errors, the drop and recovery
arithmetic, and the offline study on a small drifted world."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmarks import offline
from benchmarks.delay import parse_delays
from benchmarks.drift import DriftArgs, simulate
from fraudstream.errors import FraudstreamError
from models.evaluate import prepare


@pytest.mark.parametrize(("update", "message"), [
    ({"drift": "nope@40"}, "unknown drift 'nope'"),
    ({"drift": "night_gang@40,card_testing@45"}, "exactly one KIND@DAY"),
    ({"drift": "night_gang@10"}, "the drift day must be >= 14"),
    ({"days": 50}, "needs at least two weeks after the drift (>= 56)"),
    ({"online": "batch_hgb"}, "--online 'batch_hgb' is not an online model"),
    ({"batch": "logreg"}, "--batch 'logreg' is not a batch model"),
    ({"customers": 10}, "--customers must be at least 50"),
    ({"eval_from_day": 40}, "--eval-from-day must be in [0, 35)"),
])
def test_bad_drift_arguments(update: dict, message: str) -> None:
    DriftArgs().validate()
    with pytest.raises(FraudstreamError, match=re.escape(message)):
        DriftArgs(**update).validate()


@pytest.mark.parametrize("text", ["", "1,x", "-1", "7,,-3"])
def test_bad_delays(text: str) -> None:
    with pytest.raises(FraudstreamError, match="--delays"):
        parse_delays(text)


def test_delays_parse() -> None:
    assert parse_delays("1, 7,14") == (1.0, 7.0, 14.0)


def test_recovery_needs_a_drop_first() -> None:
    days = np.arange(20, 40)
    ap = np.where(days < 30, 0.6, 0.6)
    assert offline.recovery_days(pd.DataFrame({"day": days, "ap": ap}), 30)[2] == 0
    ap = np.where(days < 30, 0.6, np.where(days < 33, 0.2, 0.6))
    pre, worst, rec = offline.recovery_days(pd.DataFrame({"day": days, "ap": ap}), 30)
    assert pre == pytest.approx(0.6) and worst == pytest.approx(0.2)
    assert rec == 5  # the trailing 3-day mean is back above 0.54 on day 35
    ap = np.where(days < 30, 0.6, 0.3)
    assert offline.recovery_days(pd.DataFrame({"day": days, "ap": ap}), 30)[2] is None


def test_offline_study_on_a_small_drifted_world() -> None:
    """The static model is scored from its fit day on only; the drop is the pooled-AP ratio."""
    args = DriftArgs(drift="night_gang@21", days=35, customers=200, seed=1)
    frame = simulate(args)
    assert (frame["scenario"] == 7).any()
    data = prepare(frame, 7.0, "data")
    scores, seconds, static = offline.drift_scores(data, 21)
    assert list(scores) == ["logreg (online)", "batch_hgb static",
                            "batch_hgb retrained every 7 days"]
    day0 = np.floor(data.ts[0] / 86_400) * 86_400
    fitted_at = day0 + 14 * 86_400
    s = scores["batch_hgb static"]
    assert np.isnan(s[data.ts < fitted_at]).all() and not np.isnan(s[data.ts >= fitted_at]).any()
    assert static.predict_proba_many(data.X[-5:]) == pytest.approx(s[-5:])
    summary = offline.drift_summary(data, scores, 21, 7, seconds, log=lambda _: None)["summary"]
    for row in summary:
        before = offline.period_ap(data, scores[row["model"]], 14, 7)
        after = offline.period_ap(data, scores[row["model"]], 21, 14)
        assert row["drop"] == pytest.approx(1 - after / before)
        assert math.isfinite(row["pre_drift_ap"]) and math.isfinite(row["replay_s"])


def test_a_bad_drift_argument_is_one_line_and_exit_2() -> None:
    done = subprocess.run([sys.executable, "-m", "fraudstream", "bench", "drift", "--drift",
                           "nope@40"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("fraudstream: error: unknown drift 'nope' (known: "
                                   "amount_shift, card_testing, night_gang, terminal_shift)")
