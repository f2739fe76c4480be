"""The worker's numpy AUC and AP (``models.ranking``) equal scikit-learn's, which every
reported figure uses (``models.metrics``): random scores, heavily tied scores, scores near 0
as a fraud model's are, few positives, and the one-class cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models.ranking import average_precision, roc_auc


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    cases = []
    for n in (2, 3, 10, 50, 1000, 5000):
        y = (rng.random(n) < 0.1).astype(int)
        y[0], y[-1] = 1, 0  # both classes
        cases.append((y, rng.random(n)))  # no ties
        cases.append((y, np.round(rng.random(n), 1)))  # heavy ties
        cases.append((y, rng.random(n) ** 8 * 1e-3))  # near 0
        cases.append((y, np.full(n, 0.5)))  # one tie for all
        cases.append((1 - y, rng.integers(0, 3, n).astype(float)))  # mostly positive
    return cases


@pytest.mark.parametrize("case", range(30))
def test_equal_to_scikit_learn(case: int) -> None:
    y, scores = _cases()[case]
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert average_precision(y, scores) == pytest.approx(
        average_precision_score(y, scores), abs=1e-12)


def test_one_class_is_nan() -> None:
    assert math.isnan(roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))
    assert average_precision([1, 1], [0.1, 0.2]) == 1.0
    assert math.isnan(roc_auc([], []))
