"""scikit-learn baselines trained on a window of labelled history (the handbook's setting).

They share the online models' interface (``predict_proba_one``, ``predict_proba_many``,
``learn_one``) so the evaluator and the stream processor treat every model alike. ``learn_one``
only appends to a bounded buffer of labelled examples; the model changes when ``refit()`` (or
``fit``) is called, which is what "retrain every N days" means in the lambda-architecture
comparison.

Threads: scikit-learn's OpenMP and BLAS pools collapse under CPU contention (a 1 s fit can take
80 s on a busy 2-core machine), so fitting runs inside ``threadpool_limits(1)`` and forests use
``n_jobs=1``; prediction relies on a process-wide limit set once by the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from models.features import FEATURE_NAMES


def _as_array(rows: Any) -> np.ndarray:
    if isinstance(rows, np.ndarray):
        return rows.astype(np.float64, copy=False).reshape(-1, len(FEATURE_NAMES))
    return np.array([[float(r.get(k, 0.0)) for k in FEATURE_NAMES] for r in rows], dtype=np.float64).reshape(
        -1, len(FEATURE_NAMES)
    )


class BatchModel:
    """A scikit-learn classifier trained on a window of labelled transactions.

    ``max_buffer`` bounds the examples kept by ``learn_one`` (about a week of traffic).
    Before the first fit every score is 0.0, i.e. "no opinion yet".
    """

    kind = "batch"

    def __init__(
        self, name: str, factory: Callable[[], Any], description: str, max_buffer: int = 200_000
    ) -> None:
        self.name = name
        self.description = description
        self._factory = factory
        self.estimator: Any = None
        self._buffer: deque[tuple[tuple[float, ...], int]] = deque(maxlen=max_buffer)
        self.n_fitted = 0

    @property
    def fitted(self) -> bool:
        return self.estimator is not None

    def fit(self, X: np.ndarray, y: np.ndarray) -> BatchModel:
        """Train a fresh estimator on ``X`` (``FEATURE_NAMES`` order) and ``y``."""
        y = np.asarray(y).astype(np.int8)
        if len(np.unique(y)) < 2:  # nothing to separate yet: keep the previous model
            return self
        est = self._factory()
        with threadpool_limits(1):
            est.fit(np.asarray(X, dtype=np.float64), y)
        self.estimator = est
        self.n_fitted = len(y)
        return self

    def learn_one(self, x: Any, y: int | bool) -> None:
        row = tuple(float(x.get(k, 0.0)) for k in FEATURE_NAMES) if isinstance(x, dict) else x
        self._buffer.append((tuple(row), int(bool(y))))

    def refit(self) -> BatchModel:
        """Retrain on the buffered labelled examples."""
        if not self._buffer:
            return self
        X = np.array([r for r, _ in self._buffer], dtype=np.float64)
        y = np.array([t for _, t in self._buffer], dtype=np.int8)
        return self.fit(X, y)

    def predict_proba_many(self, rows: Any) -> np.ndarray:
        X = _as_array(rows)
        if self.estimator is None:
            return np.zeros(len(X))
        # no per-call thread limit here: entering threadpool_limits costs milliseconds, more
        # than scoring one event; callers set it once (the CLI does; workers should run with
        # OMP_NUM_THREADS=1 or one threadpool_limits(1) at start-up)
        return self.estimator.predict_proba(X)[:, 1]

    def predict_proba_one(self, x: Any) -> float:
        return float(self.predict_proba_many([x] if isinstance(x, dict) else np.asarray([x]))[0])

    def explain(self, top: int = 3) -> str:
        """Top features by |standardised coefficient| or impurity importance."""
        est = self.estimator
        if est is None:
            return "not fitted"
        final = est.steps[-1][1] if hasattr(est, "steps") else est
        if hasattr(final, "coef_"):
            vals, what = final.coef_[0], "coef"
        elif hasattr(final, "feature_importances_"):
            vals, what = final.feature_importances_, "importance"
        else:
            return f"{type(final).__name__}: no built-in importance (opaque)"
        order = np.argsort(-np.abs(vals))[:top]
        return f"{what}: " + ", ".join(f"{FEATURE_NAMES[i]} {vals[i]:+.2f}" for i in order)


def _lr(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))


def _rf(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    )


def _hgb(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), HistGradientBoostingClassifier(random_state=seed))


# module-level builders (bound with functools.partial) keep models picklable for the registry
BATCH_FACTORIES: dict[str, tuple[Callable[[int], Any], str]] = {
    "batch_logreg": (_lr, "scikit-learn StandardScaler + LogisticRegression (defaults)"),
    "batch_rf": (_rf, "scikit-learn RandomForest, 100 trees (handbook defaults)"),
    "batch_hgb": (_hgb, "scikit-learn HistGradientBoosting (defaults)"),
}


def make_batch_model(name: str, seed: int = 0) -> BatchModel:
    """Build an unfitted batch model by name (``KeyError`` for unknown names)."""
    factory, description = BATCH_FACTORIES[name]
    return BatchModel(name, partial(factory, seed), description)
