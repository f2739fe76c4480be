"""The simulator reproduces the handbook's world: determinism, fraud shares, streaming."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pandas.testing as pdt

from producers.scenarios import (
    AMOUNT_OVER_THRESHOLD,
    COMPROMISED_CUSTOMER,
    COMPROMISED_TERMINAL,
    GENUINE,
)
from producers.simulator import COLUMNS, DTYPES, Simulator
from producers.world import World, WorldConfig


def test_same_seed_same_events_other_seed_other_events() -> None:
    config = WorldConfig(n_days=4, seed=7)
    a = Simulator(config).frame()
    b = Simulator(config).frame()
    pdt.assert_frame_equal(a, b)
    c = Simulator(WorldConfig(n_days=4, seed=8)).frame()
    assert len(a) > 10_000
    assert not (len(a) == len(c) and np.array_equal(a["amount"], c["amount"]))


def test_columns_types_order_and_ids(small_run: pd.DataFrame) -> None:
    assert tuple(small_run.columns) == COLUMNS
    assert {c: str(t) for c, t in small_run.dtypes.items()} == DTYPES
    assert (np.diff(small_run["ts"].to_numpy()) >= 0).all()
    assert np.array_equal(small_run["tx_id"].to_numpy(), np.arange(len(small_run)))
    start = WorldConfig().start_ts
    assert small_run["ts"].min() >= start
    assert small_run["ts"].max() < start + 20 * 86_400
    amounts = small_run["amount"].to_numpy()
    assert np.isfinite(amounts).all() and (amounts >= 0).all()


def test_default_world_matches_the_handbook(handbook_run: pd.DataFrame) -> None:
    # Published: 1,754,155 transactions, 0.84% fraud. Our draws differ, the law does not.
    assert 1_650_000 < len(handbook_run) < 1_850_000
    share = handbook_run["fraud"].mean()
    assert 0.006 <= share <= 0.010, share
    assert ((handbook_run["fraud"] == 1) == (handbook_run["scenario"] > 0)).all()


def test_scenario_shares_are_plausible(handbook_run: pd.DataFrame) -> None:
    counts = handbook_run["scenario"].value_counts()
    assert set(counts.index) == {GENUINE, AMOUNT_OVER_THRESHOLD, COMPROMISED_TERMINAL,
                                 COMPROMISED_CUSTOMER}
    frauds = counts.drop(GENUINE).sum()
    # Handbook run: scenario 1 ~ 7%, 2 ~ 62%, 3 ~ 31% of frauds.
    assert 0.03 < counts[AMOUNT_OVER_THRESHOLD] / frauds < 0.12
    assert 0.50 < counts[COMPROMISED_TERMINAL] / frauds < 0.75
    assert 0.20 < counts[COMPROMISED_CUSTOMER] / frauds < 0.40
    s1 = handbook_run[handbook_run["scenario"] == AMOUNT_OVER_THRESHOLD]
    assert (s1["amount"] > 220).all()


def test_genuine_transactions_use_reachable_terminals(small_run: pd.DataFrame) -> None:
    world = World(WorldConfig())
    sample = small_run.iloc[::97]
    c = world.customer_xy[sample["customer_id"].to_numpy()]
    t = world.terminal_xy[sample["terminal_id"].to_numpy()]
    assert (((c - t) ** 2).sum(axis=1) < 25.0).all()


def test_reachability_index_matches_brute_force() -> None:
    world = World(WorldConfig(n_customers=300, n_terminals=2_000, radius=7.5, seed=3))
    for customer in (0, 150, 299):
        d2 = ((world.terminal_xy - world.customer_xy[customer]) ** 2).sum(axis=1)
        expected = np.nonzero(d2 < 7.5**2)[0]
        start, end = world.reach_offsets[customer], world.reach_offsets[customer + 1]
        assert np.array_equal(world.reach_terminals[start:end], expected)


def test_streams_day_by_day_without_materialising_the_run() -> None:
    # A million days would never fit; the first day still comes out at once.
    started = time.perf_counter()
    first = next(Simulator(WorldConfig(n_days=1_000_000)).days())
    assert time.perf_counter() - started < 5
    assert 5_000 < len(first) < 15_000
