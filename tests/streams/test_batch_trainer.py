"""The trainer's batch mode: a scikit-learn model refitted every N days of event time.

Fed a small simulated world the way ``run_trainer`` reads it (scores with their features,
labels with their ``known_at``, in event-time order), the trainer refits once per period on
the labels known by then, each snapshot is signed and loads, and a worker refuses a tampered
one and keeps its model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infra.settings import Settings
from models.evaluate import prepare
from models.features import DAY
from models.metrics import score_all
from models.registry import Registry
from producers.simulator import Simulator
from producers.world import WorldConfig
from streams.model_runtime import ModelRuntime
from streams.trainer import Trainer
from tests.streams.trainer_feed import feed_trainer


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    df = Simulator(WorldConfig(n_customers=200, n_terminals=400, n_days=40, seed=4)).frame()
    return df.sort_values(["ts", "tx_id"], kind="stable").reset_index(drop=True)


def test_a_signed_snapshot_per_period_fitted_on_labels_known_by_then(
    tmp_path: Path, world: pd.DataFrame
) -> None:
    settings = Settings(model="batch_logreg", registry_dir=tmp_path / "reg", app_id="t")
    trainer = Trainer(settings, retrain_every_days=7.0, retrain_window_days=28.0)
    notes = feed_trainer(trainer, world)
    # due on days 7, 14, 21, 28 and 35 from the first midnight; on day 7 no fraud is known yet
    assert len(notes) == trainer.refits == 4
    assert [n["version"] for n in notes] == list(range(1, len(notes) + 1))
    registry = Registry(tmp_path / "reg", settings.model_signing_key.get_secret_value())
    day0 = np.floor(world.ts.min() / DAY) * DAY
    made = [registry.load(trainer.name, n["version"]).meta["event_time"] for n in notes]
    assert [(t - day0) / DAY for t in made] == [14.0, 21.0, 28.0, 35.0]
    last = registry.load(trainer.name)  # verifies the signature
    assert last.meta["model"] == "batch_logreg" and last.model.fitted
    # the last refit learned something: it ranks the last week's frauds (not in its data)
    data = prepare(world, delay_days=7.0, labels="data")
    week = data.ts >= data.ts.max() - 7 * DAY
    s = last.model.predict_proba_many(data.X[week])
    assert score_all(data.ts[week], data.customer_id[week], data.fraud[week], s).auc > 0.7
    # and only on labels known at its event time: at most the window's, none from the future
    assert last.model.n_fitted <= int((data.label_ts <= last.meta["event_time"]).sum())


def test_a_worker_refuses_a_tampered_snapshot_and_keeps_its_model(
    tmp_path: Path, world: pd.DataFrame
) -> None:
    settings = Settings(model="batch_logreg", registry_dir=tmp_path / "reg", app_id="t")
    trainer = Trainer(settings, retrain_every_days=7.0)
    notes = feed_trainer(trainer, world)
    key = settings.model_signing_key.get_secret_value()
    runtime = ModelRuntime("batch_logreg", Registry(tmp_path / "reg", key), "w",
                           from_trainer=True)
    runtime.start()  # no snapshot under the model's own name: unfitted, scores 0
    assert runtime.predict_one([1.0] * 15) == 0.0
    assert runtime.reload_from(notes[0]["path"])
    good = runtime.model
    tampered = Path(notes[1]["path"])
    raw = bytearray(tampered.read_bytes())
    raw[-5] ^= 0xFF
    tampered.write_bytes(bytes(raw))
    assert not runtime.reload_from(str(tampered))
    assert runtime.model is good and runtime.load_errors
    with pytest.raises(Exception, match="batch model"):  # without a trainer: refuse to start
        ModelRuntime("batch_logreg", Registry(tmp_path / "empty", key), "w").start()
    assert np.isfinite(runtime.predict_one([1.0] * 15))


def test_the_trainer_learns_each_label_once_with_its_source(tmp_path: Path) -> None:
    """A feedback label and the later delayed label of the same transaction: learned once,
    by the aggregation's feedback learner; a label before its score waits for it."""
    settings = Settings(model="agg_sgd_logreg", registry_dir=tmp_path / "reg", app_id="t")
    trainer = Trainer(settings)
    feats = [0.5] * 15
    trainer.on_score({"tx_id": 1, "ts": 100.0, "features": feats})
    trainer.on_label({"tx_id": 1, "fraud": 1, "known_at": 200.0, "source": "feedback"})
    trainer.on_label({"tx_id": 1, "fraud": 1, "known_at": 9000.0})
    trainer.on_label({"tx_id": 2, "fraud": 0, "known_at": 300.0})
    trainer.on_score({"tx_id": 2, "ts": 150.0, "features": feats})
    assert trainer.model.learned == {"feedback": 1, "delayed": 1}
    assert trainer.learned == 2 and not trainer.early


def test_a_due_refit_waits_for_the_labels_to_reach_its_moment(tmp_path: Path) -> None:
    """Scores read ahead of labels (another topic, another fetch) must not make a refit that
    misses labels known at its moment; a label stream that stopped delays it one day at most."""
    settings = Settings(model="batch_logreg", registry_dir=tmp_path / "reg", app_id="t")
    trainer = Trainer(settings, retrain_every_days=7.0)
    for i in range(14):  # a transaction each half day, every third a fraud
        trainer.on_score({"tx_id": i, "ts": i * DAY / 2, "features": [float(i % 3 == 0)] * 15})
        trainer.on_label({"tx_id": i, "fraud": int(i % 3 == 0), "known_at": i * DAY / 2 + 60})
    trainer.on_score({"tx_id": 99, "ts": 7.2 * DAY, "features": [0.0] * 15})
    assert trainer.label_clock < 7 * DAY and not trainer.snapshot_due()
    trainer.on_label({"tx_id": 98, "fraud": 0, "known_at": 7.1 * DAY})  # labels caught up
    assert trainer.snapshot_due() and trainer.fit_batch()
    assert trainer.fitted_at == 7 * DAY and trainer.model.n_fitted == 14
    trainer.on_score({"tx_id": 100, "ts": 14.5 * DAY, "features": [0.0] * 15})
    assert not trainer.snapshot_due()  # no label read past day 14 yet
    trainer.on_score({"tx_id": 101, "ts": 15.0 * DAY, "features": [0.0] * 15})
    assert trainer.snapshot_due()  # one event-time day later it refits anyway
