"""The offline replay with investigators: without them it is the prequential replay exactly;
with them every transaction is learned once, the feedback ones by the feedback learner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.aggregate import FeedbackAggregate
from models.catalog import make_model
from models.evaluate import Prepared, prepare, replay_online
from models.feedback_replay import feedback_changes_no_feature, history_of, replay_with_feedback
from producers.investigation import Investigator
from producers.simulator import Simulator
from producers.world import WorldConfig


@pytest.fixture(scope="module")
def data() -> Prepared:
    df = Simulator(WorldConfig(n_customers=200, n_terminals=400, n_days=30, seed=2)).frame()
    return prepare(df, delay_days=7.0, labels="data")


@pytest.mark.parametrize("name", ["sgd_logreg", "logreg"])
def test_without_investigators_it_is_the_prequential_replay(data: Prepared, name: str) -> None:
    expected, _, _ = replay_online(make_model(name, 0), data)
    run = replay_with_feedback(make_model(name, 0), data, None, alert_budget=4)
    assert np.array_equal(run.scores, expected, equal_nan=True)
    assert (run.source == 1).all() and run.alerts > 0 and run.cases == 0


def test_every_transaction_is_learned_once_and_feedback_reaches_its_learner(
        data: Prepared) -> None:
    model = FeedbackAggregate.of("sgd_logreg")
    team = Investigator(history_of(data), budget=4, hours=4.0)
    run = replay_with_feedback(model, data, team, alert_budget=4)
    counts = run.counts()
    assert (run.source > 0).all()  # every transaction learned, once
    assert counts["feedback_labels"] + counts["delayed_labels"] == len(data)
    assert model.learned == {"feedback": counts["feedback_labels"],
                             "delayed": counts["delayed_labels"]}
    assert 0 < counts["feedback_labels"] <= team.labels
    assert counts["feedback_frauds"] == int(data.fraud[run.source == 2].sum()) > 0
    assert run.cases == team.cases > 0


def test_feedback_changes_what_a_model_scores(data: Prepared) -> None:
    delayed = replay_with_feedback(make_model("sgd_logreg", 0), data, None, alert_budget=4)
    fed = replay_with_feedback(make_model("sgd_logreg", 0), data,
                               Investigator(history_of(data), budget=4), alert_budget=4)
    assert not np.allclose(delayed.scores, fed.scores)
    assert feedback_changes_no_feature(data)


def test_labels_known_after_the_terminal_delay_are_flagged() -> None:
    df = Simulator(WorldConfig(n_customers=50, n_terminals=100, n_days=5, seed=1)).frame()
    late = prepare(pd.DataFrame(df), delay_days=10.0, labels="fixed")
    assert not feedback_changes_no_feature(late)
