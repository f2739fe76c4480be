"""Alert reasons: exact log-odds decomposition for linear models, occlusion for the others."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest

from models.catalog import MODEL_NAMES, is_online, make_model
from models.explain import FeatureMean, attribute, logit, reasons
from models.features import FEATURE_NAMES
from models.online import derived_inputs
from tests.models.synthetic import easy

LINEAR = ("logreg", "logreg_x", "sgd_logreg", "batch_logreg")
OCCLUSION = ("hat", "arf", "gnb", "batch_rf", "batch_hgb", "agg_sgd_logreg", "agg_logreg_x", "logreg_plus")
DERIVED = tuple(derived_inputs({}))


def test_every_catalog_model_is_covered() -> None:
    assert set(LINEAR) | set(OCCLUSION) == set(MODEL_NAMES)


def _row(v: np.ndarray | list[float]) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, list(v), strict=True))


@cache
def _trained(name: str) -> Any:
    X, y = easy(3000, seed=1)
    model = make_model(name, seed=0)
    for r, label in zip(X.tolist(), y.tolist(), strict=True):
        model.learn_one(_row(r), label)
    if not is_online(name):
        model.refit()
    return model


@cache
def _reference() -> tuple[float, ...]:
    ref = FeatureMean()
    for r in easy(3000, seed=1)[0].tolist():
        ref.update(r)
    return tuple(ref.values)


def _flagged(model: Any, n: int = 5) -> list[list[float]]:
    """The ``n`` highest-scored rows of a fresh sample: what would be alerted."""
    X, _ = easy(400, seed=2)
    scores = model.predict_proba_many(X)
    return [X[i].tolist() for i in np.argsort(-scores)[:n]]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_three_distinct_named_reasons_sorted_by_contribution(name: str) -> None:
    model = _trained(name)
    allowed = set(FEATURE_NAMES) | (set(DERIVED) if name == "logreg_x" else set())
    for x in _flagged(model):
        top = reasons(model, x, reference=_reference())
        assert len(top) == 3 and len({r["feature"] for r in top}) == 3
        assert {r["feature"] for r in top} <= allowed
        assert all(set(r) == {"feature", "value", "contribution"} for r in top)
        contributions = [r["contribution"] for r in top]
        assert contributions == sorted(contributions, reverse=True)
        assert all(isinstance(r["value"], float) and isinstance(r["contribution"], float) for r in top)
        for r in top:
            if r["feature"] in FEATURE_NAMES:
                assert r["value"] == x[FEATURE_NAMES.index(r["feature"])]
        # every attribution ranks the true cause first or second: amount and the night flag
        assert {r["feature"] for r in top[:2]} & {"amount", "is_night", "amount_gt_150"}


@pytest.mark.parametrize("name", LINEAR)
def test_linear_contributions_plus_bias_are_the_logit_exactly(name: str) -> None:
    model = _trained(name)
    X, _ = easy(50, seed=3)
    checked = 0
    for x in [*X.tolist(), *_flagged(model)]:
        a = attribute(model, x)
        p = model.predict_proba_one(_row(x))
        assert a.method == "linear" and a.bias is not None
        # logit(p) is only recoverable from p away from 0 (River's sigmoid returns 0 below -30)
        # and from 1 (1 - p keeps few digits); batch_logreg on separable data saturates often
        if 1e-12 < p < 1 - 1e-6:
            assert a.bias + sum(a.contributions) == pytest.approx(logit(p), rel=1e-9, abs=1e-9)
            checked += 1
    assert checked >= 20
    if name == "logreg_x":  # its own inputs, named: the 15 features and the derived ones
        assert set(a.names) == set(FEATURE_NAMES) | set(DERIVED)
        ratio = a.values[a.names.index("ratio_30d")]
        assert ratio == derived_inputs(_row(x))["ratio_30d"]
    else:
        assert a.names == FEATURE_NAMES and list(a.values) == x


def test_linear_contribution_is_weight_times_standardised_value() -> None:
    """Checked independently of the decomposition: River's weights and scaler statistics."""
    model = _trained("logreg")
    scaler, lr = model.estimator.steps.values()
    x = _flagged(model, 1)[0]
    a = attribute(model, x)
    for name, value, c in zip(a.names, a.values, a.contributions, strict=True):
        z = (value - scaler.means[name]) / scaler.vars[name] ** 0.5
        assert c == pytest.approx(lr.weights[name] * z, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", OCCLUSION)
def test_occlusion_top_reason_really_moves_the_score_most(name: str) -> None:
    model = _trained(name)
    ref = list(_reference())
    for x in _flagged(model):
        a = attribute(model, x, reference=ref)
        assert a.method == "occlusion" and a.bias is None
        base = model.predict_proba_one(_row(x))
        drops = []
        for i in range(len(FEATURE_NAMES)):  # recompute each occlusion one score at a time
            occluded = list(x)
            occluded[i] = ref[i]
            drops.append(base - model.predict_proba_one(_row(occluded)))
        np.testing.assert_allclose(a.contributions, drops, rtol=1e-9, atol=1e-12)
        top = reasons(model, x, reference=ref)
        assert top[0]["contribution"] == pytest.approx(max(drops), abs=1e-12)
        assert top[0]["contribution"] > 0  # a flagged row: some feature did raise its score
        assert drops[FEATURE_NAMES.index(top[0]["feature"])] == pytest.approx(max(drops), abs=1e-12)


@pytest.mark.parametrize("name", ["gnb", "batch_rf", "batch_hgb"])
def test_models_with_their_own_mean_need_no_reference(name: str) -> None:
    model = _trained(name)
    X, _ = easy(3000, seed=1)
    x = _flagged(model, 1)[0]
    # gnb's class-weighted Gaussians and the batch pipelines' scaler both hold the training mean
    own = attribute(model, x)
    given = attribute(model, x, reference=X.mean(axis=0).tolist())
    np.testing.assert_allclose(own.contributions, given.contributions, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", ["hat", "arf"])
def test_river_trees_without_a_reference_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="pass reference="):
        reasons(_trained(name), _flagged(_trained(name), 1)[0])


def test_an_unfitted_batch_model_gives_no_contributions() -> None:
    model = make_model("batch_rf")
    a = attribute(model, [1.0] * len(FEATURE_NAMES))
    assert a.method == "occlusion" and a.contributions == (0.0,) * len(FEATURE_NAMES)


def test_wrong_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="expected 15 features"):
        reasons(_trained("logreg"), [1.0] * 14)
    with pytest.raises(ValueError, match="reference has 3 values"):
        reasons(_trained("arf"), [1.0] * 15, reference=[0.0] * 3)


def test_feature_mean_is_the_running_mean() -> None:
    X, _ = easy(500, seed=4)
    np.testing.assert_allclose(_reference(), easy(3000, seed=1)[0].mean(axis=0), rtol=1e-9)
    ref = FeatureMean()
    for r in X.tolist():
        ref.update(r)
    assert ref.n == 500
    np.testing.assert_allclose(ref.values, X.mean(axis=0), rtol=1e-9)
