"""The offline half of ``fraudstream bench parity``: which rows are judged, and the metrics.

The pipeline and the offline evaluator must be judged on exactly the same transactions, or a
difference in AP says nothing about the pipeline. So the protocol is chosen once from the data
and both sets of scores go through the same ``models.metrics.score_all`` on the same mask:

* **handbook** when the file covers the handbook weeks (train 2018-07-25..31, gap, test
  2018-08-08..14): the handbook's test set (``models.evaluate.handbook_test_mask``), which is
  the figure every other accuracy table of the project reports;
* **prequential** otherwise: every transaction of the file's last 7 UTC days, where an online
  model has seen the most labels (the early days measure a cold start, not the pipeline).

Nothing here touches Kafka, so it is unit-tested on synthetic data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.errors import FraudstreamError
from models.evaluate import (
    HANDBOOK_TRAIN_START,
    Prepared,
    day_start,
    evaluate_handbook,
    evaluate_prequential,
    handbook_test_mask,
)
from models.features import DAY, FEATURE_NAMES
from models.metrics import Scores, score_all

PREQUENTIAL_DAYS = 7
HANDBOOK_SPAN_DAYS = 21  # train week, gap week, test week
FEATURE_TOLERANCE = 1e-9  # the skew tests' bound between worker and offline features


@dataclass(frozen=True)
class Protocol:
    """The rows both sets of scores are judged on, and how to say which they are."""

    name: str  # "handbook" | "prequential"
    mask: np.ndarray  # over the prepared rows (sorted by ts, tx_id)
    window: str  # human-readable: the days evaluated

    @property
    def n(self) -> int:
        return int(self.mask.sum())


def _day(t: float) -> date:
    return datetime.fromtimestamp(t, UTC).date()


def covers_handbook(data: Prepared, train_start: date = HANDBOOK_TRAIN_START) -> bool:
    """True when the data runs from the first training day to the last test day."""
    if len(data) == 0:
        return False
    start = day_start(train_start)
    first_day = math.floor(data.ts[0] / DAY) * DAY
    return first_day <= start and data.ts[-1] >= start + (HANDBOOK_SPAN_DAYS - 1) * DAY


def choose_protocol(data: Prepared, train_start: date = HANDBOOK_TRAIN_START) -> Protocol:
    """Handbook test set when the file covers the handbook weeks, else its last 7 days.

    >>> ts = np.arange(10) * DAY + 1_500_000_000.0
    >>> p = choose_protocol(Prepared(ts, *(np.zeros(10),) * 5, np.zeros((10, 15)), 7.0, 0.0))
    >>> p.name, p.n
    ('prequential', 7)
    """
    if covers_handbook(data, train_start):
        start = day_start(train_start)
        mask = handbook_test_mask(data, start)
        if mask.any():
            first = start + 14 * DAY
            return Protocol("handbook", mask, f"handbook test week {_day(first)}.."
                            f"{_day(first + 6 * DAY)}, known compromised cards removed")
    if len(data) == 0:
        raise FraudstreamError("the data has no transactions")
    eval_from = (math.floor(data.ts[-1] / DAY) - (PREQUENTIAL_DAYS - 1)) * DAY
    mask = data.ts >= eval_from
    return Protocol("prequential", mask, f"last {PREQUENTIAL_DAYS} days "
                    f"{_day(max(eval_from, data.ts[0]))}..{_day(data.ts[-1])}")


def check_model_fits(model: str, protocol: Protocol) -> None:
    """A batch model only has a pipeline counterpart when it is fitted once (handbook).

    Prequentially the offline evaluator refits batch models every 7 days; the worker loads one
    snapshot and never refits, so the two would not be the same model and a difference would
    measure that, not the pipeline.
    """
    from models.catalog import is_online

    if protocol.name == "prequential" and not is_online(model):
        raise FraudstreamError(
            f"batch model {model!r} needs the handbook protocol here (the file does not cover "
            "2018-07-25..08-14): offline it is refitted weekly, the worker never refits; "
            "use an online model or a file that covers the handbook weeks")


def offline_scores(model: str, data: Prepared, protocol: Protocol,
                   seed: int = 0) -> tuple[np.ndarray, Any]:
    """Scores of the offline evaluator for every row (NaN where it gives none) and the model.

    The same functions as ``fraudstream evaluate`` (``evaluate_handbook`` /
    ``evaluate_prequential``); the cost profile is skipped (``profile_rows=0``) since it does
    not change the scores. The fitted model is returned so a batch model can be signed into
    the workers' registry: then both sides score with the very same model.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as `fraudstream evaluate`: one thread is predictable
        if protocol.name == "handbook":
            result = evaluate_handbook(model, data, seed=seed, profile_rows=0)
        else:
            result = evaluate_prequential(model, data, seed=seed, profile_rows=0)
    full = np.full(len(data), np.nan)
    full[result.mask] = result.score
    return full, result.fitted_model


def align(tx_ids: np.ndarray, by_tx: dict[int, Any]) -> np.ndarray:
    """Values keyed by transaction id, in the order of ``tx_ids`` (NaN where missing).

    >>> align(np.array([3, 1, 2]), {1: 0.1, 3: 0.3}).tolist()
    [0.3, 0.1, nan]
    """
    return pd.Series(by_tx, dtype=np.float64).reindex(tx_ids).to_numpy(np.float64)


@dataclass
class Parity:
    """Pipeline against offline on the same rows."""

    protocol: Protocol
    pipeline: Scores
    offline: Scores
    score_max_abs_diff: float  # largest |pipeline - offline| score on an evaluated row
    feature_max_abs_diff: float | None  # same for the 15 features, when the scores carry them
    feature_diff_share: float | None = None  # evaluated rows with any feature off by > 1e-9
    feature_worst: str | None = None  # the feature with the largest difference

    def diff(self) -> dict[str, float]:
        """Pipeline minus offline, per metric."""
        return {k: getattr(self.pipeline, k) - getattr(self.offline, k)
                for k in ("auc", "ap", "cp_at_100")}


def compare(data: Prepared, protocol: Protocol, pipeline: np.ndarray, offline: np.ndarray,
            features: np.ndarray | None = None) -> Parity:
    """Metrics of both score arrays (aligned with ``data``) over ``protocol.mask``.

    Every evaluated row must have both scores: a row the pipeline never scored would silently
    change the test set, so it is an error rather than a smaller sample.
    """
    rows = protocol.mask
    missing = int(np.isnan(pipeline[rows]).sum())
    if missing:
        raise FraudstreamError(f"{missing:,} evaluated transactions have no pipeline score")
    if np.isnan(offline[rows]).any():
        raise FraudstreamError("the offline evaluator left evaluated transactions unscored")

    def metrics(s: np.ndarray) -> Scores:
        return score_all(data.ts[rows], data.customer_id[rows], data.fraud[rows], s[rows])

    parity = Parity(protocol, metrics(pipeline), metrics(offline),
                    float(np.max(np.abs(pipeline[rows] - offline[rows]), initial=0.0)), None)
    if features is not None and not np.isnan(features[rows]).all():
        # which inputs differ tells a learning-order gap (features equal, scores not) from a
        # state gap (features differ: e.g. terminal windows read before another partition
        # caught up in event time)
        off = np.abs(features[rows] - data.X[rows])
        per_feature = np.nanmax(off, axis=0)
        parity.feature_max_abs_diff = float(per_feature.max())
        parity.feature_diff_share = float(np.mean(np.nanmax(off, axis=1) > FEATURE_TOLERANCE))
        if parity.feature_max_abs_diff > FEATURE_TOLERANCE:
            parity.feature_worst = FEATURE_NAMES[int(np.argmax(per_feature))]
    return parity
