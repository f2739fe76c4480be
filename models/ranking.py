"""ROC AUC and average precision in numpy alone, for the worker's rolling quality figures.

Why not scikit-learn's, which ``models.metrics`` uses for every reported figure: importing
``sklearn.metrics`` adds 164 MB to a worker's resident memory (79 -> 243 MB, scipy and
pandas come with it; measured 2026-12-02 on this project's pinned versions) and about 2 s
of import, against a 400 MB budget for a worker that otherwise needs neither. The two
functions here follow scikit-learn's definitions step for step (one point per distinct
score, ties on one point; AUC by the trapezoid rule, AP as the step-wise sum of precision
times the rise in recall), and ``tests/models/test_ranking.py`` holds them equal to
scikit-learn's on random and heavily tied scores.

>>> y = [0, 0, 1, 1]
>>> s = [0.1, 0.4, 0.35, 0.8]
>>> roc_auc(y, s), round(average_precision(y, s), 4)
(0.75, 0.8333)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _curve(y: Sequence[int] | np.ndarray,
           scores: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives counted down the distinct scores, highest first."""
    y_arr = np.asarray(y, dtype=np.float64)
    s_arr = np.asarray(scores, dtype=np.float64)
    if y_arr.size == 0:
        return y_arr, y_arr
    order = np.argsort(s_arr, kind="mergesort")[::-1]
    s_sorted, y_sorted = s_arr[order], y_arr[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(s_sorted)), y_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_each]
    fps = 1 + last_of_each - tps
    return tps, fps


def roc_auc(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve; NaN unless both classes are present."""
    tps, fps = _curve(y, scores)
    if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
        return float("nan")
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def average_precision(y: Sequence[int] | np.ndarray,
                      scores: Sequence[float] | np.ndarray) -> float:
    """Average precision, step-wise (no interpolation); NaN without a positive."""
    tps, fps = _curve(y, scores)
    if tps.size == 0 or tps[-1] == 0:
        return float("nan")
    precision = tps / (tps + fps)
    recall = np.r_[0.0, tps / tps[-1]]
    return float(np.sum(np.diff(recall) * precision))
