"""Online models: learn each label as it arrives, score each transaction with the model as it is.

River is the main family. Every model sits behind the same small wrapper, so the stream
processor, the evaluator and the registry never need to know which library is inside:

>>> from models.online import make_online_model
>>> model = make_online_model("logreg", seed=1)
>>> x = {"amount": 250.0, "is_weekend": 0.0, "is_night": 1.0}
>>> 0.0 <= model.predict_proba_one(x) <= 1.0
True
>>> model.learn_one(x, 1)
>>> model.learn_one({"amount": 20.0, "is_weekend": 1.0, "is_night": 0.0}, 0)
>>> round(model.predict_proba_one(x), 3) > round(model.predict_proba_one({"amount": 20.0}), 3)
True

Imbalance (under 1% frauds) is handled per model: a positive-class loss weight for logistic
regression, random under-sampling of genuine transactions for the tree ensembles (which also
makes them affordable: most labels are genuine and a forest update costs hundreds of
microseconds). Under-sampling shifts probabilities; rankings (AUC, AP, CP@k) are what we report,
and a threshold must be re-calibrated on scores before alerting.

``SGDLogReg`` is a lean hand-written online logistic regression (standardisation + weighted SGD)
kept as an extra model for the throughput budget, not as a replacement for River.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from models.features import FEATURE_NAMES
from models.online_plus import logreg_plus
from models.sgd_logreg import SGDLogReg

Row = dict[str, float]


def rows_as_dicts(rows: Any) -> Iterable[Row]:
    """Accept a sequence of feature dicts or an ``(n, 15)`` array in ``FEATURE_NAMES`` order."""
    if isinstance(rows, np.ndarray):
        names = FEATURE_NAMES
        return (dict(zip(names, r, strict=True)) for r in rows.tolist())
    return rows


class OnlineModel:
    """A River classifier behind the project's model interface.

    ``predict_proba_one(x) -> float`` is the fraud probability (score), ``learn_one(x, y)``
    learns from one label, ``predict_proba_many(rows)`` scores several rows with the model as it
    stands (a convenience for micro-batches: River learns per event, so this is a loop).
    """

    kind = "online"

    def __init__(self, name: str, estimator: Any, description: str = "") -> None:
        self.name = name
        self.estimator = estimator
        self.description = description

    def predict_proba_one(self, x: Row) -> float:
        return float(self.estimator.predict_proba_one(x).get(1, 0.0))

    def learn_one(self, x: Row, y: int | bool) -> None:
        self.estimator.learn_one(x, bool(y))

    def predict_proba_many(self, rows: Any) -> np.ndarray:
        predict = self.estimator.predict_proba_one
        return np.fromiter((predict(x).get(1, 0.0) for x in rows_as_dicts(rows)), dtype=np.float64)

    def explain(self, top: int = 3) -> str:
        """A short interpretability note: largest standardised weights, or the tree's size."""
        return _explain_river(self.estimator, top)


def _explain_river(est: Any, top: int) -> str:
    from river import compose, imblearn

    inner = est
    if isinstance(inner, compose.Pipeline):
        inner = list(inner.steps.values())[-1]
    if isinstance(inner, imblearn.RandomUnderSampler):
        inner = inner.classifier
    weights = getattr(inner, "weights", None)
    if weights:
        ranked = sorted(weights.items(), key=lambda kv: -abs(kv[1]))[:top]
        return "weights: " + ", ".join(f"{k} {v:+.2f}" for k, v in ranked)
    if hasattr(inner, "n_nodes") and inner.n_nodes is not None:
        return f"single tree, {inner.n_nodes} nodes (readable rules)"
    if hasattr(inner, "models"):
        nodes = sum(getattr(m, "n_nodes", 0) or 0 for m in inner.models)
        return f"ensemble of {len(inner.models)} trees, {nodes} nodes: opaque"
    return type(inner).__name__


def _logreg(seed: int) -> Any:
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.001),
        loss=optim.losses.Log(weight_pos=3.0),
        l2=1e-5,
        intercept_lr=0.001,
    )


AMOUNT_STEPS: tuple[float, ...] = (25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0)
"""Amount thresholds of the step inputs: a linear model's piecewise-linear view of amount."""


def derived_inputs(x: Row) -> Row:
    """Inputs a linear model cannot form from the 15 features: ratios, steps, a product.

    A transaction's amount against the card's own 1/7/30-day means (a stolen card spends
    unlike its owner), steps of the amount (fraud is not linear in amount), and terminal risk
    times volume. Computed inside the model from the shared features, so the stream, the
    batch trainer and the evaluator still share one feature definition (no skew possible).

    >>> d = derived_inputs({"amount": 300.0, "cust_mean_1d": 100.0, "cust_mean_7d": 0.0,
    ...                     "cust_mean_30d": 60.0, "term_risk_7d": 0.5, "term_n_7d": 4.0})
    >>> d["ratio_1d"], d["ratio_7d"], d["ratio_30d"], d["amount_gt_250"], d["term_risk_x_n_7d"]
    (3.0, 1.0, 5.0, 1.0, 2.0)
    """
    amount = x.get("amount", 0.0)
    out: Row = {}
    for window in ("1d", "7d", "30d"):
        mean = x.get(f"cust_mean_{window}", 0.0)
        out[f"ratio_{window}"] = amount / mean if mean > 0 else 1.0
    for step in AMOUNT_STEPS:
        out[f"amount_gt_{step:g}"] = 1.0 if amount > step else 0.0
    out["term_risk_x_n_7d"] = x.get("term_risk_7d", 0.0) * x.get("term_n_7d", 0.0)
    return out


def _keep(x: Row) -> Row:
    return x


def _logreg_x(seed: int) -> Any:
    from river import compose, linear_model, optim, preprocessing

    inputs = compose.TransformerUnion(compose.FuncTransformer(_keep),
                                      compose.FuncTransformer(derived_inputs))
    return inputs | preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.001),
        loss=optim.losses.Log(weight_pos=3.0),
        l2=1e-5,
        intercept_lr=0.001,
    )


def _hat(seed: int) -> Any:
    from river import imblearn, tree

    return imblearn.RandomUnderSampler(
        tree.HoeffdingAdaptiveTreeClassifier(grace_period=100, seed=seed),
        desired_dist={False: 0.8, True: 0.2},
        seed=seed,
    )


def _arf(seed: int) -> Any:
    from river import forest, imblearn

    return imblearn.RandomUnderSampler(
        forest.ARFClassifier(n_models=5, max_features=5, seed=seed),
        desired_dist={False: 0.8, True: 0.2},
        seed=seed,
    )


def _gnb(seed: int) -> Any:
    from river import naive_bayes

    return naive_bayes.GaussianNB()


ONLINE_FACTORIES: dict[str, tuple[Callable[[int], Any], str]] = {
    "logreg": (_logreg, "River StandardScaler | LogisticRegression, SGD 0.001, fraud loss weight 3"),
    "logreg_x": (_logreg_x, "logreg on the 15 features plus derived inputs (amount ratios to "
                 "the card's means, amount steps, terminal risk x volume)"),
    "hat": (_hat, "River HoeffdingAdaptiveTree, genuine labels under-sampled to 80/20"),
    "arf": (_arf, "River adaptive random forest (5 trees), under-sampled to 80/20"),
    "gnb": (_gnb, "River Gaussian naive Bayes"),
    "logreg_plus": (logreg_plus, "hand-written logreg_x learner on wider derived inputs (fine "
                    "amount steps, ratio and terminal-risk steps, known-fraud counts), SGD 0.0005"),
}


def make_online_model(name: str, seed: int = 0) -> OnlineModel | SGDLogReg:
    """Build a fresh online model by name (``KeyError`` for unknown names; see models.catalog)."""
    if name == "sgd_logreg":
        return SGDLogReg()
    factory, description = ONLINE_FACTORIES[name]
    return OnlineModel(name, factory(seed), description)
