"""No training/serving skew: the incremental features equal an independent pandas computation.

The reference below is written the straightforward, vectorised way (pandas time-based rolling
windows per customer, explicit masks per terminal), sharing nothing with ``models.features``
except the contract's definitions. It runs on 100,000 transactions from the project's simulator,
with the simulator's own (variable) label times, and with a short delay so that the
"label known at t" condition actually binds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.features import FEATURE_NAMES, compute_features

simulator = pytest.importorskip("producers.simulator")
world = pytest.importorskip("producers.world")

DAY = 86_400.0
N = 100_000


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    config = world.WorldConfig(n_customers=600, n_terminals=1_200, n_days=120, seed=7)
    df = simulator.Simulator(config).frame()
    df = df.sort_values(["ts", "tx_id"], kind="stable").head(N).reset_index(drop=True)
    assert len(df) == N
    assert df["fraud"].sum() > 500
    assert df["ts"].iloc[-1] - df["ts"].iloc[0] > 60 * DAY  # the 30-day windows fill up
    return df


def reference_features(df: pd.DataFrame, delay_days: float) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    out["amount"] = df["amount"]
    when = pd.to_datetime(df["ts"], unit="s", utc=True)
    out["is_weekend"] = (when.dt.day_of_week >= 5).astype(float)
    out["is_night"] = (when.dt.hour <= 6).astype(float)
    # per card in time order (stable: ties keep tx_id order), on a DatetimeIndex
    cards = df.assign(when=when, row=np.arange(len(df))).sort_values(
        ["customer_id", "ts", "tx_id"], kind="stable"
    )
    amounts = cards.set_index("when").groupby("customer_id", sort=True)["amount"]
    for w in (1, 7, 30):
        rolled = amounts.rolling(f"{w}D")
        for stat in ("count", "mean"):
            values = np.empty(len(df))
            values[cards["row"].to_numpy()] = getattr(rolled, stat)().to_numpy()
            out[f"cust_{'n' if stat == 'count' else 'mean'}_{w}d"] = values
    for w in (1, 7, 30):
        out[f"term_n_{w}d"] = 0.0
        out[f"term_risk_{w}d"] = 0.0
    for _, g in df.groupby("terminal_id", sort=False):
        t = g["ts"].to_numpy()
        fraud = g["fraud"].to_numpy() == 1
        known = g["label_ts"].to_numpy()
        now = t[:, None]  # one row per scored transaction, one column per candidate
        for w in (1, 7, 30):
            lo = now - (delay_days + w) * DAY
            hi = now - delay_days * DAY
            inside = (t[None, :] > lo) & (t[None, :] <= hi)
            n = inside.sum(axis=1)
            k = (inside & fraud[None, :] & (known[None, :] <= now)).sum(axis=1)
            out.loc[g.index, f"term_n_{w}d"] = n.astype(float)
            out.loc[g.index, f"term_risk_{w}d"] = np.where(n > 0, k / np.maximum(n, 1), 0.0)
    return out[list(FEATURE_NAMES)]


@pytest.mark.parametrize("delay_days", [7.0, 2.0])
def test_incremental_features_equal_the_pandas_reference(
    transactions: pd.DataFrame, delay_days: float
) -> None:
    df = transactions
    got = compute_features(
        df["ts"],
        df["customer_id"],
        df["terminal_id"],
        df["amount"],
        df["fraud"],
        df["label_ts"],
        delay_days=delay_days,
    )
    want = reference_features(df, delay_days).to_numpy()
    assert got.shape == want.shape == (N, 15)
    worst = np.abs(got - want).max(axis=0)
    assert dict(zip(FEATURE_NAMES, worst, strict=True)) == pytest.approx(
        dict.fromkeys(FEATURE_NAMES, 0.0), abs=1e-9
    )
    # the windows were exercised, not trivially empty
    assert (want[:, FEATURE_NAMES.index("term_risk_30d")] > 0).sum() > 1000
    assert want[:, FEATURE_NAMES.index("cust_n_30d")].max() > 50
