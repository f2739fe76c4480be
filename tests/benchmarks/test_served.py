"""The as-served twins rebuild, offline, the very models the trainer published.

A trainer is fed a small world the way it reads the pipeline's topics; for each snapshot it
wrote, the twin built from the evaluator's own data by the trainer's rule (``benchmarks.served``)
must score like the snapshot itself. That is what lets ``bench drift`` hold the paced,
trainer-fed contenders to the pipeline-against-offline bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.served import batch_as_served, lineage, online_as_served
from infra.settings import Settings
from models.evaluate import prepare
from models.features import FEATURE_NAMES
from models.registry import Registry
from producers.simulator import Simulator
from producers.world import WorldConfig
from streams.trainer import Trainer
from tests.streams.trainer_feed import feed_trainer


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    df = Simulator(WorldConfig(n_customers=200, n_terminals=400, n_days=30, seed=5)).frame()
    return df.sort_values(["ts", "tx_id"], kind="stable").reset_index(drop=True)


def _served(trainer: Trainer, settings: Settings, n: int) -> tuple[np.ndarray, dict]:
    """Each row given to one of the trainer's versions (0: the fresh model) in turn."""
    heads = lineage(Registry(settings.registry_dir,
                             settings.model_signing_key.get_secret_value()), trainer.name)
    assert len(heads) >= 3
    return np.arange(n) % (len(heads) + 1), heads


def _snapshot_scores(settings: Settings, name: str, data, versions: np.ndarray,
                     fresh: np.ndarray) -> np.ndarray:
    registry = Registry(settings.registry_dir, settings.model_signing_key.get_secret_value())
    out = fresh.copy()
    for v in registry.versions(name):
        model, rows = registry.load(name, v).model, versions == v
        out[rows] = [model.predict_proba_one(dict(zip(FEATURE_NAMES, x.tolist(), strict=True)))
                     for x in data.X[rows]]
    return out


def test_the_batch_twin_is_the_refit_the_trainer_published(tmp_path: Path, world) -> None:
    settings = Settings(model="batch_logreg", registry_dir=tmp_path / "reg", app_id="t",
                        snapshot_keep=0)  # every version of the lineage is read back
    trainer = Trainer(settings, retrain_every_days=7.0, retrain_window_days=14.0)
    feed_trainer(trainer, world)
    data = prepare(world, delay_days=7.0, labels="data")
    versions, heads = _served(trainer, settings, len(data))
    twin = batch_as_served(data, versions, {v: h["event_time"] for v, h in heads.items()},
                           "batch_logreg", 14.0)
    published = _snapshot_scores(settings, trainer.name, data, versions,
                                 np.zeros(len(data)))  # version 0: unfitted, scores 0
    assert not np.isnan(twin).any()
    np.testing.assert_allclose(twin, published, rtol=0, atol=1e-9)
    # a twin refitted at the wrong moment is told apart
    shifted = batch_as_served(data, versions, {v: h["event_time"] - 86_400.0
                                               for v, h in heads.items()}, "batch_logreg", 14.0)
    assert np.abs(shifted - published).max() > 1e-3


def test_the_online_twin_is_the_snapshot_after_as_many_labels(tmp_path: Path, world) -> None:
    settings = Settings(model="logreg", registry_dir=tmp_path / "reg", app_id="t",
                        snapshot_keep=0)  # every version of the lineage is read back
    trainer = Trainer(settings, snapshot_every=2000)
    feed_trainer(trainer, world)
    data = prepare(world, delay_days=7.0, labels="data")
    versions, heads = _served(trainer, settings, len(data))
    twin = online_as_served(data, versions, {v: h["learned"] for v, h in heads.items()},
                            "logreg")
    published = _snapshot_scores(settings, trainer.name, data, versions, np.full(len(data), 0.5))
    np.testing.assert_allclose(twin, published, rtol=0, atol=1e-9)
