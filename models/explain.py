"""Why a transaction was flagged: the top reasons of one score, for any catalog model.

An investigator opening an alert needs to know what the model saw: "amount 5 times the card's
30-day mean" is checkable, a bare 0.97 is not. ``reasons(model, features)`` returns the
features that pushed this score up most, as ``{"feature", "value", "contribution"}`` dicts.

Two attributions, chosen by the model's type:

``linear`` (``logreg``, ``logreg_x``, ``sgd_logreg``, ``batch_logreg``): a logistic
    regression on standardised inputs scores ``sigmoid(b + sum_i w_i * z_i)`` with
    ``z_i = (x_i - mean_i) / std_i`` (the scaler's running mean and variance for the online
    models, the training ones for ``batch_logreg``). The contribution of input ``i`` is
    ``w_i * z_i`` in log-odds, and ``bias + sum(contributions) == logit(score)`` exactly (up to
    float rounding): nothing is approximated. It is also what occlusion would give in log-odds,
    since replacing input ``i`` by the scaler's mean sets ``z_i`` to 0. ``logreg_x`` reasons name its
    own 27 inputs (the 15 features and the derived ``ratio_30d``, ``amount_gt_250``, ...), with
    the derived input's value: a ratio of 5 reads better than a share of it moved back to
    ``amount``, and no split of a product between its factors would be exact.
``occlusion`` (``hat``, ``arf``, ``gnb``, ``batch_rf``, ``batch_hgb``, anything else): each
    feature in turn is replaced by a reference value and the model re-scores; the contribution is
    ``score(x) - score(x with feature i := reference_i)``, in score (probability) units, because
    tree scores are often exactly 0 or 1 and their log-odds are infinite. The reference is the
    ``reference`` argument if given (e.g. a ``FeatureMean`` of recent transactions), else the
    model's own mean of what it learned (``gnb``: its per-class Gaussians weighted by class
    counts; ``batch_rf``, ``batch_hgb``: their pipeline's ``StandardScaler.mean_``, i.e. 0 after
    scaling). River's trees (``hat``, ``arf``) keep no such mean: they need ``reference``
    (a ``ValueError`` says so); an unfitted batch model (scores 0 everywhere) gets all zeros. It
    costs 16 scores per call (one batch call for the scikit-learn models), fine for ~100 alerts a
    day. Contributions are not additive (interactions are ignored): a feature that only matters
    together with another one shows a small drop for each.

Order: by contribution, largest first (signed, not by magnitude). The question is "why was this
flagged", and a feature that argued *against* fraud (a long, regular card history) is not a
reason for the flag, however large; the sign is kept so a reader can still see when even the top
reasons are negative (a score made high by the bias alone).

>>> from models.catalog import make_model
>>> from models.features import FEATURE_NAMES
>>> model = make_model("sgd_logreg")
>>> for amount, fraud in [(20.0, 0), (30.0, 0), (25.0, 0), (400.0, 1)] * 50:
...     model.learn_one({"amount": amount, "is_night": float(fraud)}, fraud)
>>> x = [0.0] * len(FEATURE_NAMES)
>>> x[0], x[2] = 380.0, 1.0  # a large amount at night
>>> for r in reasons(model, x):
...     print(f"{r['feature']:<10} {r['value']:>6.1f} {r['contribution']:+.2f}")
is_night      1.0 +0.26
amount      380.0 +0.24
is_weekend    0.0 +0.00
>>> a = attribute(model, x)  # linear: the log-odds decomposition is exact
>>> a.method, abs(a.bias + sum(a.contributions) - logit(model.predict_proba_one(x))) < 1e-12
('linear', True)

Cost per call (best of 5 x 40 calls, twice, with a load average of 4.6-5 on the 2-core
development machine, so upper bounds): sgd_logreg 9 µs, logreg 40 µs, logreg_x 37-64 µs,
hat 0.7-0.9 ms, batch_logreg 0.8-1.1 ms, arf 2.3-3.6 ms, gnb 7-13 ms (River's GaussianNB
scores through scipy's logsumexp, ~0.5 ms per row), batch_rf 20-37 ms, batch_hgb 28-36 ms.
Command (each model trained as in the tests)::

    PYTHONPATH=. .venv/bin/python -c "import timeit, threadpoolctl, tests.models.test_explain as t
    from models.explain import reasons
    threadpoolctl.threadpool_limits(1); ref = list(t._reference())
    for n in t.LINEAR + t.OCCLUSION:
        m = t._trained(n); x = t._flagged(m, 1)[0]
        print(n, min(timeit.repeat(lambda: reasons(m, x, reference=ref), number=40, repeat=5)) / 40)"
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.features import FEATURE_NAMES


@dataclass(frozen=True)
class Attribution:
    """Every input's contribution to one score.

    ``method == "linear"``: contributions in log-odds and ``bias + sum(contributions)`` is the
    score's logit. ``method == "occlusion"``: contributions are score drops and ``bias`` is None.
    """

    method: str
    names: tuple[str, ...]
    values: tuple[float, ...]
    contributions: tuple[float, ...]
    bias: float | None = None

    def top(self, n: int = 3) -> list[dict[str, Any]]:
        """The ``n`` largest contributions as JSON-ready dicts, largest first."""
        order = sorted(range(len(self.names)), key=lambda i: -self.contributions[i])[:n]
        return [
            {"feature": self.names[i], "value": self.values[i], "contribution": self.contributions[i]}
            for i in order
        ]


class FeatureMean:
    """Running mean of the 15 features: an occlusion reference for models that keep none.

    Updated for every label but read only for an alert, so rows are buffered and folded into
    the mean in one numpy sum when it is read (or every ``fold_every`` rows): an update is an
    append, where a per-row Python update of 15 means cost 7% of a worker's CPU.

    >>> ref = FeatureMean()
    >>> ref.update([1.0] * 15); ref.update([3.0] * 15)
    >>> ref.values[:2], ref.n
    ([2.0, 2.0], 2)
    """

    def __init__(self, n_features: int = len(FEATURE_NAMES), fold_every: int = 4096) -> None:
        self._n = 0
        self._width = n_features
        self._mean = np.zeros(n_features)
        self._rows = array("d")  # buffered rows, flat: an append is a C-level copy
        self._fold_every = fold_every * n_features

    def update(self, features: Sequence[float]) -> None:
        self._rows.extend(features)
        if len(self._rows) >= self._fold_every:
            self._fold()

    def _fold(self) -> None:
        # a view of the buffer, not a conversion of a list of lists (that was 3% of a worker)
        rows = np.frombuffer(self._rows, dtype=np.float64).reshape(-1, self._width)
        k = len(rows)
        self._n += k
        self._mean += (rows.sum(axis=0) - k * self._mean) / self._n
        self._rows = array("d")

    @property
    def n(self) -> int:
        return self._n + len(self._rows) // self._width

    @property
    def values(self) -> list[float]:
        if self._rows:
            self._fold()
        return self._mean.tolist()

    def reference(self) -> list[float] | None:
        """``values``, or None before the first update (an occlusion ``reference``)."""
        return self.values if self.n else None


Reference = Sequence[float] | Callable[[], Sequence[float] | None] | None
"""Values, or a function giving them (or None) that is called only if occlusion needs them:
a worker's ``FeatureMean.reference`` folds its buffered rows when read, a numpy call that
every alert of a linear model paid for nothing."""


def reasons(
    model: Any, features: Sequence[float], top: int = 3, reference: Reference = None
) -> list[dict[str, Any]]:
    """The ``top`` features that raised this score most: ``[{"feature", "value", "contribution"}]``.

    ``features`` are the 15 inputs in ``FEATURE_NAMES`` order; ``reference`` is only used by
    occlusion (see the module docstring for both methods and their units).
    """
    return attribute(model, features, reference).top(top)


def attribute(model: Any, features: Sequence[float], reference: Reference = None) -> Attribution:
    """All contributions to ``model``'s score of ``features`` (linear if possible, else occlusion)."""
    x = [float(v) for v in features]
    if len(x) != len(FEATURE_NAMES):
        raise ValueError(f"expected {len(FEATURE_NAMES)} features, got {len(x)}")
    linear = _linear(model, x)
    if linear is not None:
        return linear
    if callable(reference):
        reference = reference()
    ref = reference if reference is not None else _own_mean(model)
    if ref is None:
        if getattr(model, "kind", None) == "batch" and not model.fitted:
            ref = x  # an unfitted batch model scores 0 everywhere: nothing contributes
        else:
            raise ValueError(
                f"{getattr(model, 'name', type(model).__name__)} keeps no mean of its inputs: "
                "pass reference= (e.g. FeatureMean().values of recent transactions)"
            )
    return _occlusion(model, x, [float(v) for v in ref])


# -- linear models ---------------------------------------------------------------------------
def _linear(model: Any, x: list[float]) -> Attribution | None:
    """The exact log-odds decomposition of a logistic regression, or None for other models."""
    from models.online import SGDLogReg

    if isinstance(model, SGDLogReg):
        contrib = [w * (a - m) * s for w, a, m, s in zip(model.w, x, model.mean, model.inv_std, strict=True)]
        return Attribution("linear", tuple(model.names), tuple(x), tuple(contrib), model.b)
    estimator = getattr(model, "estimator", None)
    if getattr(model, "kind", None) == "online":
        return _river_linear(estimator, dict(zip(FEATURE_NAMES, x, strict=True)))
    if getattr(model, "kind", None) == "batch" and estimator is not None:
        return _sklearn_linear(estimator, x)
    return None


def _river_linear(estimator: Any, x: dict[str, float]) -> Attribution | None:
    from river import compose, linear_model

    steps = list(estimator.steps.values()) if isinstance(estimator, compose.Pipeline) else [estimator]
    final = steps[-1]
    if not isinstance(final, linear_model.LogisticRegression):
        return None
    raw, z = x, x
    for step in steps[:-1]:  # exactly what Pipeline.predict_proba_one applies (no learning)
        raw, z = z, step.transform_one(z)
    weights = final.weights
    names = [n for n in FEATURE_NAMES if n in z] + [n for n in z if n not in FEATURE_NAMES]
    contrib = tuple(weights.get(n, 0.0) * z[n] for n in names)
    values = tuple(float(raw.get(n, z[n])) for n in names)
    return Attribution("linear", tuple(names), values, contrib, float(final.intercept))


def _sklearn_linear(estimator: Any, x: list[float]) -> Attribution | None:
    from sklearn.linear_model import LogisticRegression

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    if not isinstance(final, LogisticRegression) or final.coef_.shape[0] != 1:
        return None
    X = np.asarray([x])
    z = estimator[:-1].transform(X)[0] if hasattr(estimator, "steps") else X[0]
    contrib = tuple(float(c) for c in final.coef_[0] * z)
    return Attribution("linear", FEATURE_NAMES, tuple(x), contrib, float(final.intercept_[0]))


# -- occlusion -------------------------------------------------------------------------------
def _own_mean(model: Any) -> list[float] | None:
    """The mean input the model learned from, where it keeps one (else None)."""
    estimator = getattr(model, "estimator", None)
    if getattr(model, "kind", None) == "batch" and estimator is not None and hasattr(estimator, "steps"):
        mean = getattr(estimator.steps[0][1], "mean_", None)
        return None if mean is None else [float(v) for v in mean]
    from river import naive_bayes

    if isinstance(estimator, naive_bayes.GaussianNB) and estimator.class_counts:
        out = []
        for name in FEATURE_NAMES:
            gs = [g[name] for g in estimator.gaussians.values() if name in g]
            n = sum(g.n_samples for g in gs)
            out.append(sum(g.mu * g.n_samples for g in gs) / n if n else 0.0)
        return out
    return None


def _occlusion(model: Any, x: list[float], ref: list[float]) -> Attribution:
    """Score ``x`` and its 15 variants with one feature set to ``ref``; contributions = drops."""
    if len(ref) != len(x):
        raise ValueError(f"reference has {len(ref)} values, expected {len(x)}")
    rows = np.tile(np.asarray(x, dtype=np.float64), (len(x) + 1, 1))
    rows[np.arange(1, len(x) + 1), np.arange(len(x))] = ref
    scores = np.asarray(model.predict_proba_many(rows), dtype=np.float64)
    contrib = tuple(float(scores[0] - s) for s in scores[1:])
    return Attribution("occlusion", FEATURE_NAMES, tuple(x), contrib)


def logit(p: float) -> float:
    """``log(p / (1 - p))``: the log-odds a linear attribution decomposes."""
    return math.log(p / (1.0 - p))
