"""The evaluator: event-time order, delayed labels, the handbook's test set, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.evaluate import (
    Prepared,
    evaluate_prequential,
    handbook_test_mask,
    prepare,
    replay_batch,
    replay_online,
)
from models.features import DAY, FEATURE_NAMES

T0 = 1_532_476_800.0  # 2018-07-25 00:00 UTC


class Spy:
    """Records what the evaluator asks, in order; scores = number of labels learnt so far."""

    name = "spy"

    def __init__(self) -> None:
        self.log: list[tuple[str, float]] = []
        self.learnt = 0

    def predict_proba_one(self, x: dict[str, float]) -> float:
        self.log.append(("predict", x["amount"]))
        return float(self.learnt)

    def learn_one(self, x: dict[str, float], y: int) -> None:
        self.log.append(("learn", x["amount"]))
        self.learnt += 1


def _frame(rows: list[tuple[float, int, int, float, int]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["ts", "customer_id", "terminal_id", "amount", "fraud"])
    df.insert(0, "tx_id", np.arange(len(df)))
    return df


def test_labels_are_learnt_only_when_known_and_before_same_time_scoring() -> None:
    df = _frame(
        [
            (T0, 1, 1, 10.0, 0),
            (T0 + 1 * DAY, 2, 1, 20.0, 1),
            (T0 + 2 * DAY, 3, 1, 30.0, 0),  # exactly when tx 0's label becomes known
            (T0 + 3 * DAY + 5, 4, 1, 40.0, 0),
        ]
    )
    data = prepare(df, delay_days=2.0, labels="fixed")
    spy = Spy()
    scores, _, events = replay_online(spy, data)
    assert spy.log == [
        ("predict", 10.0),
        ("predict", 20.0),
        ("learn", 10.0),  # label of tx 0 known at T0 + 2d: learnt before tx 2 is scored
        ("predict", 30.0),
        ("learn", 20.0),
        ("predict", 40.0),
        ("learn", 30.0),  # the remaining labels arrive after the last transaction
        ("learn", 40.0),
    ]
    assert scores.tolist() == [0.0, 0.0, 1.0, 2.0]
    assert events == 8


def test_data_label_times_are_used_and_never_precede_the_transaction() -> None:
    df = _frame([(T0, 1, 1, 10.0, 1), (T0 + 100, 2, 1, 20.0, 0), (T0 + 200, 3, 1, 30.0, 0)])
    df["label_ts"] = [T0 + 150, T0 - 50, T0 + 10 * DAY]  # second label before its transaction
    spy = Spy()
    replay_online(spy, prepare(df, 7.0, labels="data"))
    assert spy.log == [
        ("predict", 10.0),
        ("predict", 20.0),
        ("learn", 20.0),  # clamped to its transaction's time, learnt right after scoring
        ("learn", 10.0),
        ("predict", 30.0),
        ("learn", 30.0),
    ]


def test_features_in_prepare_see_only_known_labels() -> None:
    df = _frame([(T0, 1, 7, 10.0, 1), (T0 + 8 * DAY, 2, 7, 20.0, 0)])
    df["label_ts"] = [T0 + 9 * DAY, T0 + 9 * DAY]
    late = prepare(df, 7.0, labels="data").X
    fixed = prepare(df, 7.0, labels="fixed").X
    risk = FEATURE_NAMES.index("term_risk_30d")
    assert late[1, risk] == 0.0  # the chargeback arrives after the second transaction
    assert fixed[1, risk] == 1.0


def _prepared(ts, customer, fraud) -> Prepared:
    n = len(ts)
    ts = np.asarray(ts, dtype=float)
    return Prepared(
        ts=ts,
        customer_id=np.asarray(customer),
        terminal_id=np.zeros(n, dtype=np.int64),
        amount=np.ones(n),
        fraud=np.asarray(fraud, dtype=np.int8),
        label_ts=ts + 7 * DAY,
        X=np.zeros((n, 15)),
        delay_days=7.0,
        feature_s=0.0,
    )


def test_handbook_test_set_removes_cards_known_compromised() -> None:
    day = lambda d: T0 + d * DAY + 3600  # noqa: E731
    data = _prepared(
        # card 1 defrauded in training; card 2 defrauded on day 8 (test day k knows frauds up
        # to day 6 + k, so from test day 2 on); card 3 clean; card 4 defrauded on day 15
        # (inside the test week: not known during it)
        [day(3), day(8), day(14), day(14), day(15), day(15), day(16), day(16), day(21), day(22)],
        [1, 2, 1, 2, 3, 4, 2, 4, 2, 3],
        [1, 1, 0, 0, 0, 1, 0, 0, 0, 0],
    )
    mask = handbook_test_mask(data, T0)
    # day 14 (k=0): known = frauds on days 0..6 -> {1}; day 16 (k=2): days 0..8 -> {1, 2}
    assert mask.tolist() == [False, False, False, True, True, True, False, True, False, False]


def test_batch_replay_trains_on_labels_known_at_retrain_time() -> None:
    class Recorder:
        name = "rec"

        def __init__(self) -> None:
            self.fits: list[int] = []

        def fit(self, X, y):
            self.fits.append(len(y))

        def predict_proba_many(self, X):
            return np.full(len(X), float(len(self.fits)))

    ts = [T0 + d * DAY for d in range(0, 30)]
    data = _prepared(ts, list(range(30)), [d % 2 for d in range(30)])
    rec = Recorder()
    scores, _, events, _ = replay_batch(rec, data, retrain_days=7, train_days=7)
    # retrain at days 0, 7, 14, 21, 28: labels known at day 7 cover day 0 only, and so on
    assert rec.fits == [1, 7, 7, 7]
    assert events == 30
    assert scores[:7].tolist() == [0.0] * 7  # no label known yet at day 0: no model
    assert scores[7] == 1.0 and scores[28] == 4.0


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory):
    simulator = pytest.importorskip("producers.simulator")
    world = pytest.importorskip("producers.world")
    config = world.WorldConfig(n_customers=300, n_terminals=600, n_days=40, seed=3)
    path = tmp_path_factory.mktemp("world") / "tx.parquet"
    simulator.Simulator(config).frame().to_parquet(path)
    return path


def test_prequential_online_model_learns_something(small_world) -> None:
    data = prepare(pd.read_parquet(small_world), 7.0, "data")
    result = evaluate_prequential("sgd_logreg", data, profile_rows=200)
    assert result.scores.n == len(data)
    assert result.scores.auc > 0.7
    assert result.model_bytes > 0 and result.predict_us > 0 and result.learn_us > 0


def test_cli_evaluate_json_save_and_errors(small_world, tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from fraudstream.cli import app

    monkeypatch.chdir(tmp_path)  # the registry directory is relative by default
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(small_world),
            "--model",
            "sgd_logreg",
            "--model",
            "batch_logreg",
            "--protocol",
            "prequential",
            "--json",
            "--save",
        ],
    )
    assert res.exit_code == 0, res.output
    objs = [json.loads(line) for line in res.output.strip().splitlines()]
    assert [o["model"] for o in objs] == ["sgd_logreg", "batch_logreg"]
    for o in objs:
        assert {"auc", "ap", "cp_at_100", "events_per_s", "learn_us", "predict_us", "model_bytes"} <= set(o)
    from models.registry import Registry

    snap = Registry().load("sgd_logreg")
    assert snap.meta["metrics"]["auc"] == objs[0]["auc"]
    assert snap.model.predict_proba_one({"amount": 50.0}) >= 0.0
    bad = runner.invoke(app, ["evaluate", "--data", str(small_world), "--model", "nope"])
    assert bad.exit_code != 0
    assert "unknown model 'nope'" in str(bad.exception)
