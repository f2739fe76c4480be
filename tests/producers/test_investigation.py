"""The investigators' rules: a daily card budget, cases closed hours later, each transaction
labelled by feedback once, with the simulator's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from producers.investigation import DAY, HOUR, CardHistory, Investigator
from producers.simulator import Simulator
from producers.world import WorldConfig


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return Simulator(WorldConfig(n_customers=200, n_terminals=400, n_days=10, seed=3)).frame()


def test_labels_carry_the_truth_and_close_hours_after_the_alert(world: pd.DataFrame) -> None:
    team = Investigator(CardHistory.from_frame(world), budget=1000, hours=4.0)
    truth = world.set_index("tx_id")
    given = 0
    for row in world.sample(300, random_state=1).itertuples():
        for label in team.alert(int(row.customer_id), float(row.ts)):
            given += 1
            tx = truth.loc[label.tx_id]
            assert (label.fraud, label.customer_id, label.terminal_id, label.tx_ts) == (
                int(tx.fraud), int(tx.customer_id), int(tx.terminal_id), float(tx.ts))
            assert label.source == "feedback"
            assert label.known_at - DAY - 4 * HOUR <= label.tx_ts < label.known_at
    assert given > 300 and team.labels == given


def test_at_most_budget_cards_a_day(world: pd.DataFrame) -> None:
    team = Investigator(CardHistory.from_frame(world), budget=5, hours=1.0)
    day = np.floor(world.ts.to_numpy() / DAY)
    opened: dict[float, set[int]] = {}
    for row, d in zip(world.itertuples(), day, strict=True):
        if team.alert(int(row.customer_id), float(row.ts)):
            opened.setdefault(d, set()).add(int(row.customer_id))
    assert opened and all(len(cards) <= 5 for cards in opened.values())
    assert team.refused > 0


def test_each_transaction_is_labelled_once_across_cases(world: pd.DataFrame) -> None:
    team = Investigator(CardHistory.from_frame(world), budget=10_000, hours=2.0,
                        lookback_days=3.0)
    card = int(world.customer_id.value_counts().index[0])
    ids = [label.tx_id for ts in world[world.customer_id == card].ts
           for label in team.alert(card, float(ts))]
    assert len(ids) == len(set(ids)) > 0


def test_an_unknown_card_gives_no_labels_and_bad_arguments_are_refused(
        world: pd.DataFrame) -> None:
    history = CardHistory.from_frame(world)
    assert Investigator(history).alert(10**9, float(world.ts.iloc[0])) == []
    with pytest.raises(ValueError, match="budget"):
        Investigator(history, budget=0)
    with pytest.raises(ValueError, match="hours"):
        Investigator(history, hours=-1)
