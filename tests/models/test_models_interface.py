"""Every named model: same interface, picklable, learns an easy pattern; names are checked."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fraudstream.errors import FraudstreamError
from models.catalog import BATCH_NAMES, MODEL_NAMES, ONLINE_NAMES, is_online, make_model
from models.features import FEATURE_NAMES
from models.metrics import auc
from tests.models.synthetic import easy


def test_catalog_covers_online_and_batch_families() -> None:
    assert {"logreg", "hat", "arf", "gnb", "sgd_logreg"} <= set(ONLINE_NAMES)
    assert {"batch_logreg", "batch_rf", "batch_hgb"} == set(BATCH_NAMES)
    assert set(MODEL_NAMES) == set(ONLINE_NAMES) | set(BATCH_NAMES)


def test_unknown_model_is_a_user_error_listing_valid_names() -> None:
    with pytest.raises(FraudstreamError, match=r"unknown model 'xgb'.*logreg.*batch_rf"):
        make_model("xgb")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_interface_and_learning(name: str) -> None:
    X, y = easy(3000, seed=1)
    Xt, yt = easy(1000, seed=2)
    model = make_model(name, seed=0)
    rows = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in X.tolist()]
    for x, label in zip(rows, y.tolist(), strict=True):
        model.learn_one(x, label)
    if not is_online(name):  # batch models buffer labels and change only when refitted
        model.refit()
    one = np.array(
        [model.predict_proba_one(dict(zip(FEATURE_NAMES, r, strict=True))) for r in Xt[:50].tolist()]
    )
    many = model.predict_proba_many(Xt)
    assert many.shape == (len(Xt),)
    assert np.all((many >= 0) & (many <= 1))
    np.testing.assert_allclose(one, many[:50], rtol=1e-9, atol=1e-12)
    threshold = 0.75 if name == "gnb" else 0.9
    assert auc(yt, many) > threshold
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(clone.predict_proba_many(Xt[:20]), many[:20], rtol=1e-9)
    assert isinstance(model.explain(), str) and model.explain()


def test_models_are_deterministic_by_seed() -> None:
    X, y = easy(1500, seed=3)
    rows = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in X.tolist()]
    outs = []
    for _ in range(2):
        model = make_model("arf", seed=5)
        for x, label in zip(rows, y.tolist(), strict=True):
            model.learn_one(x, label)
        outs.append(model.predict_proba_many(X[:100]))
    np.testing.assert_array_equal(outs[0], outs[1])
