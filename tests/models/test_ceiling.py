"""The CP@100 ceilings: the oracle rankings, and the quality table reading them on its rows."""

from __future__ import annotations

import pytest

from models.ceiling import TERMINAL_RISK_COLUMNS, cp_ceilings, revealable
from models.evaluate import evaluate_prequential, prepare
from models.metrics import card_precision_at_k
from models.quality import ceilings, markdown_table
from producers.simulator import Simulator
from producers.world import WorldConfig

RISK = list(TERMINAL_RISK_COLUMNS)


@pytest.fixture(scope="module")
def world():
    df = Simulator(WorldConfig(n_customers=300, n_terminals=600, n_days=40, seed=3)).frame()
    return prepare(df, 7.0)


def test_scenario_two_frauds_are_hidden_until_their_terminal_has_a_known_fraud(world) -> None:
    shown = revealable(world.fraud, world.scenario, world.X[:, RISK])
    s2 = (world.fraud == 1) & (world.scenario == 2)
    known = (world.X[:, RISK] > 0).any(axis=1)
    assert s2.any() and (s2 & ~known).any() and (s2 & known).any()
    assert not shown[s2 & ~known].any() and shown[s2 & known].all()
    assert shown[(world.fraud == 1) & (world.scenario != 2)].all()
    assert not shown[world.fraud == 0].any()


def test_ceilings_bound_a_model_and_sit_in_order(world) -> None:
    result = evaluate_prequential("sgd_logreg", world, profile_rows=50)
    m = result.mask
    rows = world.ts[m], world.customer_id[m], world.fraud[m]
    # a small world has few fraudulent cards a day: inspect 5 of 300 so the caps differ
    small = cp_ceilings(*rows, world.scenario[m], world.X[m][:, RISK], k=5)
    model_cp = card_precision_at_k(*rows, result.score[m], k=5)[0]
    assert 0 < small["revealable"] < small["perfect"] <= 1
    assert model_cp <= small["perfect"]
    caps = ceilings([result], world)
    assert caps == cp_ceilings(*rows, world.scenario[m], world.X[m][:, RISK], k=100)
    table = markdown_table([result], world, "world", "prequential", "fixed")
    assert f"| perfect: every fraud first | {caps['perfect']:.3f} |" in table
    assert f"{caps['revealable']:.3f} |" in table.split("| revealable")[1].splitlines()[0]


def test_no_ceilings_without_the_scenario_column(world) -> None:
    from dataclasses import replace

    result = evaluate_prequential("sgd_logreg", world, profile_rows=50)
    plain = replace(world, scenario=None)
    assert ceilings([result], plain) is None
    assert "oracle ranking" not in markdown_table([result], plain, "w", "prequential", "fixed")
