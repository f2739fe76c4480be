"""Drift changes fraud statistics from its start day on, and leaves earlier days untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from producers.drift import (
    AMOUNT_SHIFT,
    CARD_TESTING,
    NIGHT_GANG,
    NIGHT_S,
    TERMINAL_SHIFT,
    parse_drift,
)
from producers.scenarios import COMPROMISED_TERMINAL
from producers.simulator import Simulator
from producers.world import World, WorldConfig

DAYS = 16
START = 8
CONFIG = WorldConfig(n_days=DAYS)


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return Simulator(CONFIG).frame()


def _day(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["ts"] - CONFIG.start_ts) // 86_400).astype(int).to_numpy()


def _run(spec: str) -> pd.DataFrame:
    return Simulator(CONFIG, drifts=parse_drift(spec)).frame()


@pytest.mark.parametrize("kind", ["card_testing", "terminal_shift", "amount_shift", "night_gang"])
def test_days_before_the_drift_are_identical(baseline: pd.DataFrame, kind: str) -> None:
    drifted = _run(f"{kind}@{START}")
    before_b = baseline[_day(baseline) < START].drop(columns="label_ts")
    before_d = drifted[_day(drifted) < START].drop(columns="label_ts")
    pdt.assert_frame_equal(before_b, before_d)
    after_b = baseline[_day(baseline) >= START]
    after_d = drifted[_day(drifted) >= START]
    assert after_d["fraud"].sum() != after_b["fraud"].sum()


def test_card_testing_adds_small_then_large_bursts(baseline: pd.DataFrame) -> None:
    drifted = _run(f"card_testing@{START}")
    ct = drifted[drifted["scenario"] == CARD_TESTING]
    days = _day(ct)
    assert days.min() == START and set(days) == set(range(START, DAYS))
    assert len(drifted) == len(baseline) + len(ct)
    assert (ct["fraud"] == 1).all()
    for _, burst in ct.groupby([days, ct["customer_id"].to_numpy()]):
        amounts = burst["amount"].to_numpy()
        small = amounts < 5
        assert small[0], "a burst starts with a small test amount"
        assert small.sum() >= 3 or len(amounts) == small.sum()
        first_large = np.argmax(~small) if (~small).any() else len(amounts)
        assert small[:first_large].all() and not small[first_large:].any()


def test_terminal_shift_replaces_random_compromises_with_a_hotspot(baseline: pd.DataFrame) -> None:
    drifted = _run(f"terminal_shift@{START}")
    shifted = drifted[drifted["scenario"] == TERMINAL_SHIFT]
    assert len(shifted) > 0 and _day(shifted).min() >= START
    world = World(CONFIG)
    xy = world.terminal_xy[shifted["terminal_id"].unique()]
    spread = np.sqrt(((xy - xy.mean(axis=0)) ** 2).sum(axis=1)).max()
    assert spread <= 40.0, "compromised terminals should cluster in one area"
    # Scenario 2 gets no new terminals: at most the 2 per day drawn before START remain.
    def s2_terminals(frame: pd.DataFrame) -> set[int]:
        late = (frame["scenario"] == COMPROMISED_TERMINAL) & (_day(frame) >= START)
        return set(frame.loc[late, "terminal_id"])

    assert s2_terminals(drifted) <= s2_terminals(baseline)
    assert len(s2_terminals(drifted)) <= 2 * START < len(s2_terminals(baseline))


def test_amount_shift_lowers_the_amount_rule() -> None:
    drifted = _run(f"amount_shift@{START}")
    shifted = drifted[drifted["scenario"] == AMOUNT_SHIFT]
    assert len(shifted) > 0 and _day(shifted).min() >= START
    assert ((shifted["amount"] > 180) & (shifted["amount"] <= 220)).all()
    before = drifted[_day(drifted) < START]
    in_band = (before["amount"] > 180) & (before["amount"] <= 220)
    assert (in_band & (before["scenario"] == 0)).sum() > 0, "180-220 was genuine before"


def test_night_gang_works_one_district_at_night_and_moves_weekly() -> None:
    config = WorldConfig(n_days=START + 14)
    drifted = Simulator(config, drifts=parse_drift(f"night_gang@{START}")).frame()
    gang = drifted[drifted["scenario"] == NIGHT_GANG]
    day = ((gang["ts"] - config.start_ts) // 86_400).astype(int).to_numpy()
    assert day.min() == START and set(day) == set(range(START, START + 14))
    assert (gang["fraud"] == 1).all()
    seconds = (gang["ts"] - config.start_ts).to_numpy() % 86_400
    assert (seconds < NIGHT_S).all(), "the features' night: hour <= 6"
    per_card_night = gang.groupby([day, gang["customer_id"].to_numpy()]).size()
    assert per_card_night.between(2, 4).all()
    world = World(config)
    centres = []
    for week in (0, 1):
        terms = gang.loc[(day >= START + 7 * week) & (day < START + 7 * (week + 1)),
                         "terminal_id"].unique()
        xy = world.terminal_xy[terms]
        assert np.sqrt(((xy - xy.mean(axis=0)) ** 2).sum(axis=1)).max() <= 2 * 15.0
        centres.append(xy.mean(axis=0))
    assert not np.allclose(centres[0], centres[1], atol=1.0), "the gang moves every week"


def test_two_drifts_together() -> None:
    drifted = _run("card_testing@4,amount_shift@10")
    assert _day(drifted[drifted["scenario"] == CARD_TESTING]).min() == 4
    assert _day(drifted[drifted["scenario"] == AMOUNT_SHIFT]).min() >= 10


@pytest.mark.parametrize("spec", ["nope@3", "card_testing", "card_testing@-1",
                                  "card_testing@x", "card_testing@3,card_testing@5"])
def test_bad_drift_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_drift(spec)


def test_no_drift_by_default() -> None:
    assert parse_drift(None) == [] and parse_drift("") == []
    assert Simulator().drifts == []
