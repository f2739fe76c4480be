"""Offline twins of the trainer-fed models, as the pipeline served them.

A worker fed by ``fraudstream trainer`` scores each transaction with whichever snapshot it
holds at that moment; the score message names it (``model_version``) and the snapshot's signed
header says what it was built from (``event_time`` of a batch refit, ``learned`` labels of an
online snapshot). A paced replay swaps snapshots some wall-clock seconds after the trainer's
event-time clock called for them, so comparing the pipeline with an offline replay that swaps
at the ideal moment mixes two things: whether the trainer built the model the evaluator would
have built (parity: a bug when it does not), and how long a new model takes to reach the
scorers (the architecture's serving lag: a cost to measure, not a bug).

The twins here separate them. For each snapshot version the pipeline served, they rebuild the
model offline from the evaluator's own data by the trainer's rule, and score the rows the
pipeline scored with that version:

* a batch snapshot refitted at event time ``e``: a fresh model fitted on the labels known at
  ``e`` (``label_ts <= e``) of the transactions of the retrain window before ``e``;
* an online snapshot that had learned ``L`` labels: the online model after the first ``L``
  labels in the order they became known.

Version 0 is the model a trainer-fed worker starts with before the first snapshot: a fresh one.
The pipeline-against-twin difference is then parity; the twin-against-ideal difference is the
serving lag's cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from models.catalog import make_model
from models.evaluate import known_rows
from models.features import DAY, FEATURE_NAMES


def batch_as_served(data: Any, versions: np.ndarray, refit_at: Mapping[int, float], name: str,
                    window_days: float | None) -> np.ndarray:
    """Scores of ``name`` refitted offline at each served version's event time."""
    scores = np.full(len(data), np.nan)
    for version in np.unique(versions[versions >= 0]).tolist():
        rows = versions == version
        model = make_model(name)
        if version > 0:
            if version not in refit_at:
                continue  # no header for this version: leave its rows out of the comparison
            window = None if window_days is None else window_days * DAY
            known = known_rows(data, refit_at[version], window)
            model.fit(data.X[known], data.fraud[known])
        scores[rows] = model.predict_proba_many(data.X[rows])
    return scores


def online_as_served(data: Any, versions: np.ndarray, learned: Mapping[int, int],
                     name: str) -> np.ndarray:
    """Scores of ``name`` after as many labels, in the order they became known, as each served
    version had learned."""
    scores = np.full(len(data), np.nan)
    served = sorted((learned.get(v, 0) if v > 0 else 0, v)
                    for v in np.unique(versions[versions >= 0]).tolist()
                    if v == 0 or v in learned)
    order = np.lexsort((np.arange(len(data)), data.label_ts))
    model = make_model(name)
    done = 0
    for count, version in served:
        for i in order[done:count].tolist():
            model.learn_one(dict(zip(FEATURE_NAMES, data.X[i].tolist(), strict=True)),
                            int(data.fraud[i]))
        done = max(done, count)
        for i in np.flatnonzero(versions == version).tolist():
            scores[i] = model.predict_proba_one(dict(zip(FEATURE_NAMES, data.X[i].tolist(),
                                                         strict=True)))
    return scores


def lineage(registry: Any, name: str) -> dict[int, dict[str, Any]]:
    """Each snapshot version of ``name`` and its verified header."""
    return {v: registry.load(name, v).meta for v in registry.versions(name)}
