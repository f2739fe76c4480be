"""Prequential replay with investigators in the loop: the model's own alerts bring early labels.

``models.evaluate.replay_online`` delivers every label at its ``label_ts`` (the delayed label).
Here the alerts the model raises while it scores (the same daily card budget the worker uses,
``streams.alert_policy.AlertBudget``) go to simulated investigators
(``producers.investigation.Investigator``), whose feedback labels arrive hours later; those
labels are learned at their ``known_at`` like any other. Each transaction is learned once, from
whichever label is known first; a model that learns the sources apart
(``models.aggregate``, ``uses_source``) is told which one it was.

Features are the prepared ones (``models.evaluate.prepare``, delayed label times). The only
features that depend on labels are the terminal risks, which count frauds of transactions at
least the terminal delay (7 days) old; with delayed labels known within 7 days (the simulator's
default) those are all known either way, so an earlier feedback label cannot change a feature.
``feedback_changes_no_feature`` checks that on the data it is given.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.evaluate import Prepared
from models.features import DAY, FEATURE_NAMES
from producers.events import DELAYED, FEEDBACK
from producers.investigation import CardHistory, Investigator


@dataclass
class FeedbackRun:
    """One replay's scores and what its labels were."""

    scores: np.ndarray
    source: np.ndarray  # per row: 0 unlabelled, 1 delayed, 2 feedback
    alerts: int = 0
    cases: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"delayed_labels": int((self.source == 1).sum()),
                "feedback_labels": int((self.source == 2).sum()),
                "feedback_frauds": int(self.extra.get("feedback_frauds", 0)),
                "alerts": self.alerts, "cases": self.cases}


def history_of(data: Prepared) -> CardHistory:
    """The investigators' ground truth for prepared rows (row index as the transaction id)."""
    import pandas as pd

    return CardHistory.from_frame(pd.DataFrame({
        "tx_id": np.arange(len(data)), "ts": data.ts, "customer_id": data.customer_id,
        "terminal_id": data.terminal_id, "fraud": data.fraud}))


def replay_with_feedback(
    model: Any,
    data: Prepared,
    investigator: Investigator | None,
    alert_budget: int = 100,
    initial_threshold: float = 0.9,
) -> FeedbackRun:
    """Score every row in event time, learn each label once at its ``known_at``.

    ``investigator=None`` is the delayed-only baseline (alerts are counted, nobody checks
    them). The investigator must have been built on ``history_of(data)``.
    """
    from streams.alert_policy import AlertBudget

    n = len(data)
    policy = AlertBudget(budget_per_day=alert_budget, initial_threshold=initial_threshold)
    order = _event_order(data)
    y = data.fraud.tolist()
    ts = data.ts.tolist()
    cust = data.customer_id.tolist()
    X = data.X
    out = [float("nan")] * n
    source = np.zeros(n, dtype=np.int8)
    pending: dict[int, Any] = {}
    feedback: list[tuple[float, int]] = []  # heap of (known_at, row)
    sourced = bool(getattr(model, "uses_source", False))
    rows = hasattr(model, "predict_proba_vec") and getattr(model, "names", None) is not None
    predict = model.predict_proba_vec if rows else model.predict_proba_one
    learn_any = model.learn_vec if rows else model.learn_one
    names = FEATURE_NAMES
    alerts = fb_frauds = 0

    def learn(i: int, src: str) -> None:
        x = pending.pop(i)
        if sourced:
            learn_any(x, y[i], src)
        else:
            learn_any(x, y[i])

    c0, t0 = time.process_time(), time.perf_counter()
    for kind, i, t in order:
        while feedback and feedback[0][0] <= t and not (kind == 2 and feedback[0][0] == t):
            _, j = heapq.heappop(feedback)
            if j in pending and source[j] == 0:
                source[j] = 2
                fb_frauds += y[j]
                learn(j, FEEDBACK)
        if kind == 1:
            row = X[i].tolist()
            x = row if rows else dict(zip(names, row, strict=True))
            s = out[i] = predict(x)
            pending[i] = x
            if policy.decide(cust[i], ts[i], s):
                alerts += 1
                if investigator is not None:
                    for label in investigator.alert(cust[i], ts[i]):
                        heapq.heappush(feedback, (label.known_at, label.tx_id))
        elif source[i] == 0 and i in pending:  # a delayed label, unless feedback came first
            source[i] = 1
            learn(i, DELAYED)
    run = FeedbackRun(np.asarray(out), source, alerts,
                      investigator.cases if investigator is not None else 0,
                      time.perf_counter() - t0, time.process_time() - c0)
    run.extra["feedback_frauds"] = fb_frauds
    return run


def _event_order(data: Prepared) -> list[tuple[int, int, float]]:
    """``(kind, row, time)`` in event time, as ``replay_online`` orders them: labels (kind 0)
    before transactions (1) at equal times, except a label known at its own transaction's
    time (2), which follows it."""
    n = len(data)
    idx = np.arange(n)
    instant = data.label_ts <= data.ts
    times = np.concatenate([data.label_ts, data.ts])
    kinds = np.concatenate([np.where(instant, 2, 0).astype(np.int8), np.ones(n, np.int8)])
    rows = np.concatenate([idx, idx])
    o = np.lexsort((rows, kinds, times))
    return list(zip(kinds[o].tolist(), rows[o].tolist(), times[o].tolist(), strict=True))


def feedback_changes_no_feature(data: Prepared, terminal_delay_days: float = 7.0) -> bool:
    """True when every fraud's delayed label is known within the terminal delay, so labels
    known earlier by feedback cannot change the terminal-risk features."""
    frauds = data.fraud.astype(bool)
    late = data.label_ts[frauds] - data.ts[frauds]
    return bool((late <= terminal_delay_days * DAY + 1e-6).all())
