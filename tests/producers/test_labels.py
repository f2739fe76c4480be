"""Labels: one per transaction, after it, with the configured delay distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from producers.delays import parse_delay
from producers.simulator import Simulator
from producers.timeline import LABEL, TX, limit_blocks, split_days, timeline
from producers.world import WorldConfig

DAY = 86_400.0


def test_every_transaction_gets_exactly_one_label_after_it() -> None:
    blocks = Simulator(WorldConfig(n_days=12)).days()
    segments = list(timeline(blocks))
    stream = pd.concat(segments, ignore_index=True)
    assert (np.diff(stream["time"].to_numpy()) >= 0).all(), "stream not in event-time order"
    tx = stream[stream["kind"] == TX]
    labels = stream[stream["kind"] == LABEL]
    assert len(tx) > 100_000
    assert labels["tx_id"].is_unique
    assert sorted(labels["tx_id"]) == sorted(tx["tx_id"])
    position = pd.Series(np.arange(len(stream)), index=stream.index)
    tx_pos = position[tx.index].to_numpy()[np.argsort(tx["tx_id"].to_numpy())]
    label_pos = position[labels.index].to_numpy()[np.argsort(labels["tx_id"].to_numpy())]
    assert (label_pos > tx_pos).all(), "a label came before its transaction"


def test_limit_keeps_labels_of_the_kept_transactions() -> None:
    blocks = limit_blocks(Simulator(WorldConfig(n_days=5)).days(), 12_345)
    stream = pd.concat(list(timeline(blocks)), ignore_index=True)
    assert (stream["kind"] == TX).sum() == 12_345
    assert (stream["kind"] == LABEL).sum() == 12_345


def test_fraud_delays_follow_the_default_distribution(handbook_run: pd.DataFrame) -> None:
    delay = (handbook_run["label_ts"] - handbook_run["ts"]) / DAY
    fraud = handbook_run["fraud"] == 1
    assert np.allclose(delay[~fraud], 7.0)
    d = delay[fraud].to_numpy()
    assert d.min() >= 0 and d.max() <= 7.0
    # gamma(shape 2, scale 1) truncated at 7 days
    cap = stats.gamma.cdf(7.0, 2, scale=1)
    result = stats.kstest(d, lambda x: stats.gamma.cdf(np.minimum(x, 7.0), 2, scale=1) / cap)
    assert result.pvalue > 1e-3, result


def test_configured_delay_distribution_and_feedback_window() -> None:
    sim = Simulator(WorldConfig(n_days=40), fraud_delay="exponential:mean=3", feedback_days=10)
    frame = sim.frame()
    delay = (frame["label_ts"] - frame["ts"]) / DAY
    fraud = frame["fraud"] == 1
    assert np.allclose(delay[~fraud], 10.0)
    d = delay[fraud].to_numpy()
    assert len(d) > 1_000
    assert stats.kstest(d, stats.expon(scale=3).cdf).pvalue > 1e-3
    assert d.max() > 10, "an untruncated fraud delay can exceed the feedback window"


def test_replayed_file_without_label_ts_uses_the_default_delay() -> None:
    frame = pd.DataFrame({
        "tx_id": [0, 1, 2], "ts": [10.0, 20.0, 86_500.0], "customer_id": [1, 2, 1],
        "terminal_id": [5, 6, 7], "amount": [1.0, 2.0, 3.0], "fraud": [0, 1, 0],
    })
    stream = pd.concat(list(timeline(split_days(frame), default_delay_s=100.0)))
    labels = stream[stream["kind"] == LABEL]
    assert labels["time"].tolist() == [110.0, 120.0, 86_600.0]
    assert labels["fraud"].tolist() == [0, 1, 0]


@pytest.mark.parametrize("spec", [
    "weibull:k=1", "gamma:shape=2", "gamma:shape=2,scale=-1", "exponential:mean=x",
    "uniform:low=5,high=1", "fixed:days=9,max=3", "lognormal:median=2,sigma=1,extra=3",
])
def test_bad_delay_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_delay(spec)


def test_delay_truncation_redraws_instead_of_clipping() -> None:
    dist = parse_delay("exponential:mean=5,max=2")
    d = dist.sample(np.random.default_rng(1), 20_000)
    assert d.max() <= 2
    assert (d > 1.99).mean() < 0.01, "mass piled up at the cap"
