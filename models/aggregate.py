"""Two learners, one per label source, and the average of their posteriors.

Dal Pozzolo et al. (IEEE TNNLS 2017) found that the labels of alerted cards (*feedback*, a few
hundred a day, many of them frauds, known within hours) and the labels of everything else
(*delayed*, known days later, almost all genuine) are best learned apart: a classifier trained
on feedback only, another on delayed labels only, and the two posteriors averaged,
``p = alpha * p_feedback + (1 - alpha) * p_delayed``. Learned together, the few feedback labels
drown in the delayed ones, and their distribution (alerted cards, chosen by the model itself) is
not the population's.

The paper's feedback classifier is refitted on the last few days of feedback; here both parts
are online learners, updated at each label (an SGD learner with a constant rate already weighs
recent labels more). A label with no source (every label before investigators existed) is a
delayed one.

>>> model = FeedbackAggregate.of("sgd_logreg", alpha=0.5)
>>> x = [0.0] * 15
>>> model.learn_one(x, 1, source="feedback")
>>> model.learn_one(x, 0)  # delayed
>>> round(model.predict_proba_one(x), 6) == round(
...     0.5 * model.feedback.predict_proba_one(x) + 0.5 * model.delayed.predict_proba_one(x), 6)
True
>>> model.learned
{'feedback': 1, 'delayed': 1}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from producers.events import FEEDBACK


class FeedbackAggregate:
    """``alpha`` x the feedback learner's score + (1 - ``alpha``) x the delayed learner's.

    Any two online models of the catalog; when both read plain rows in the feature order
    (``sgd_logreg``) the aggregate does too, so the worker's row fast path still applies.
    """

    kind = "online"
    uses_source = True
    """The stream processor and the evaluators pass each label's source to ``learn_one``."""

    def __init__(self, feedback: Any, delayed: Any, alpha: float = 0.5, name: str = "") -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.feedback = feedback
        self.delayed = delayed
        self.alpha = float(alpha)
        base = getattr(delayed, "name", "model")
        self.name = name or f"agg_{base}"
        self.description = (f"feedback {base} and delayed {base}, posteriors averaged "
                            f"(alpha {self.alpha:g})")
        self.learned = {"feedback": 0, "delayed": 0}

    @staticmethod
    def of(base: str, alpha: float = 0.5, seed: int = 0) -> FeedbackAggregate:
        """Two fresh ``base`` models of the online catalog (rows in, when they read rows)."""
        from models.online import make_online_model

        feedback, delayed = make_online_model(base, seed), make_online_model(base, seed + 1)
        rows = getattr(delayed, "names", None) is not None
        kind = RowFeedbackAggregate if rows else FeedbackAggregate
        return kind(feedback, delayed, alpha, name=f"agg_{base}")

    def _part(self, source: str) -> Any:
        return self.feedback if source == FEEDBACK else self.delayed

    def learn_one(self, x: Any, y: int | bool, source: str = "delayed") -> None:
        part = FEEDBACK if source == FEEDBACK else "delayed"
        self.learned[part] += 1
        self._part(source).learn_one(x, y)

    def predict_proba_one(self, x: Any) -> float:
        a = self.alpha
        return a * self.feedback.predict_proba_one(x) + (1 - a) * self.delayed.predict_proba_one(x)

    def predict_proba_many(self, rows: Any) -> np.ndarray:
        a = self.alpha
        return (a * np.asarray(self.feedback.predict_proba_many(rows), dtype=np.float64)
                + (1 - a) * np.asarray(self.delayed.predict_proba_many(rows), dtype=np.float64))

    def explain(self, top: int = 3) -> str:
        return (f"feedback part ({self.learned['feedback']} labels): "
                f"{self.feedback.explain(top)}; delayed part ({self.learned['delayed']} labels): "
                f"{self.delayed.explain(top)}")


class RowFeedbackAggregate(FeedbackAggregate):
    """The aggregate of two models that read plain rows in feature order (``sgd_logreg``):
    it reads rows too, so the evaluator's and the worker's row fast paths still apply."""

    def __init__(self, feedback: Any, delayed: Any, alpha: float = 0.5, name: str = "") -> None:
        super().__init__(feedback, delayed, alpha, name)
        self.names = tuple(delayed.names)

    def learn_vec(self, v: Sequence[float], y: int | bool, source: str = "delayed") -> None:
        part = FEEDBACK if source == FEEDBACK else "delayed"
        self.learned[part] += 1
        self._part(source).learn_vec(v, y)

    def predict_proba_vec(self, v: Sequence[float]) -> float:
        a = self.alpha
        return (a * self.feedback.predict_proba_vec(v)
                + (1 - a) * self.delayed.predict_proba_vec(v))
