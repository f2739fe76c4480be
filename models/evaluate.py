"""Offline evaluation: prequential event-time replay and the handbook's train/delay/test protocol.

Prequential replay is how the stream processor behaves: transactions and label arrivals are
merged in event time; each transaction is scored by the model *as it stands*, and each label is
learnt only when it becomes known (``label_ts``: a fixed delay, or the label times in the data).
Features come from the one incremental definition (``models.features``) replayed with the same
label arrivals, so what is evaluated is what would be served.

The handbook protocol (train 2018-07-25..31, seven days' gap, test 2018-08-08..14, cards known
to be compromised removed from the test set) makes batch figures comparable with the published
table; online models run continuously over the same data and are scored on the same test set.
All figures are exact (scikit-learn over the logged scores), see ``models.metrics``.
"""

from __future__ import annotations

import copy
import gc
import pickle
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from models.catalog import Model, is_online, make_model
from models.features import DAY, FEATURE_NAMES, compute_features
from models.metrics import Scores, score_all

HANDBOOK_TRAIN_START = date(2018, 7, 25)


@dataclass
class Prepared:
    """A data set as arrays, with its features computed once (shared by every model)."""

    ts: np.ndarray
    customer_id: np.ndarray
    terminal_id: np.ndarray
    amount: np.ndarray
    fraud: np.ndarray
    label_ts: np.ndarray
    X: np.ndarray
    delay_days: float
    feature_s: float
    feature_cpu_s: float = float("nan")  # CPU time: on a shared machine wall time overstates
    scenario: np.ndarray | None = None  # the simulator's fraud scenario per row, when the data has it

    def __len__(self) -> int:
        return len(self.ts)


def prepare(df: Any, delay_days: float = 7.0, labels: str = "fixed") -> Prepared:
    """Arrays from a contract DataFrame (sorted by ts, tx_id) and their 15 features.

    ``labels="fixed"`` delivers every label ``delay_days`` after its transaction (the
    handbook's assumption); ``"data"`` uses the data's ``label_ts`` (a label is never delivered
    before its transaction).
    """
    from fraudstream.errors import FraudstreamError

    missing = {"ts", "customer_id", "terminal_id", "amount", "fraud"} - set(df.columns)
    if missing:
        raise FraudstreamError(f"data has no {', '.join(sorted(missing))} column(s)")
    df = df.sort_values(["ts", "tx_id"] if "tx_id" in df.columns else ["ts"], kind="stable")
    ts = df["ts"].to_numpy(np.float64)
    fraud = df["fraud"].to_numpy().astype(np.int8)
    if labels == "fixed" or "label_ts" not in df.columns:
        label_ts = ts + delay_days * DAY
    elif labels == "data":
        label_ts = np.maximum(df["label_ts"].to_numpy(np.float64), ts)
    else:
        raise FraudstreamError(f"unknown label timing {labels!r}; use fixed or data")
    cust = df["customer_id"].to_numpy(np.int64)
    term = df["terminal_id"].to_numpy(np.int64)
    amount = df["amount"].to_numpy(np.float64)
    t0, c0 = time.perf_counter(), time.process_time()
    X = compute_features(ts, cust, term, amount, fraud, label_ts, delay_days)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    scenario = df["scenario"].to_numpy(np.int8) if "scenario" in df.columns else None
    return Prepared(ts, cust, term, amount, fraud, label_ts, X, float(delay_days), wall, cpu,
                    scenario)


@dataclass
class RunResult:
    """Scores of one model on one evaluation, plus what it cost."""

    model: str
    protocol: str
    scores: Scores
    mask: np.ndarray  # rows of the data set that were evaluated
    score: np.ndarray  # logged scores of those rows
    train_s: float = 0.0
    replay_s: float = 0.0
    events: int = 0
    predict_us: float = float("nan")
    learn_us: float = float("nan")
    model_bytes: int = 0
    memory_bytes: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    fitted_model: Any = None  # the model as it stands at the end of the evaluation

    @property
    def events_per_s(self) -> float:
        return self.events / self.replay_s if self.replay_s > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "protocol": self.protocol,
            "auc": self.scores.auc,
            "ap": self.scores.ap,
            "cp_at_100": self.scores.cp_at_100,
            "cp_per_day": self.scores.cp_per_day,
            "n_test": self.scores.n,
            "n_fraud": self.scores.n_fraud,
            "events_per_s": self.events_per_s,
            "events": self.events,
            "replay_s": self.replay_s,
            "train_s": self.train_s,
            "learn_us": self.learn_us,
            "predict_us": self.predict_us,
            "model_bytes": self.model_bytes,
            "memory_bytes": self.memory_bytes,
            "interpretability": self.note,
            **self.extra,
        }


def replay_online(
    model: Model,
    data: Prepared,
    score_from: float = -np.inf,
    until: float = np.inf,
    stats: dict[str, float] | None = None,
) -> tuple[np.ndarray, float, int]:
    """Prequential replay of an online model; returns ``(scores, seconds, events)``.

    ``stats``, when given, receives ``replay_cpu_s`` (CPU time of the replay loop).

    Transactions with ``ts < until`` are scored (logged when ``ts >= score_from``; NaN
    elsewhere) and their labels learnt at ``label_ts`` if that is before ``until``.
    """
    n = len(data)
    scores = np.full(n, np.nan)
    in_range = data.ts < until
    idx_tx = np.flatnonzero(in_range)
    idx_lb = np.flatnonzero(in_range & (data.label_ts < until))
    times = np.concatenate([data.label_ts[idx_lb], data.ts[idx_tx]])
    # at equal times labels come first (known_at <= t), except a label known at the very moment
    # of its own transaction: that one must follow the transaction it labels
    instant = data.label_ts[idx_lb] <= data.ts[idx_lb]
    kinds = np.concatenate([np.where(instant, 2, 0).astype(np.int8), np.ones(len(idx_tx), np.int8)])
    idx = np.concatenate([idx_lb, idx_tx])
    order = np.lexsort((idx, kinds, times))
    kinds_l = kinds[order].tolist()
    idx_l = idx[order].tolist()
    del times, kinds, idx, order
    y = data.fraud.tolist()
    first_logged = int(np.searchsorted(data.ts, score_from, side="left"))
    X = data.X
    out: list[float] = [np.nan] * n
    pending: dict[int, Any] = {}
    c0 = time.process_time()
    t0 = time.perf_counter()
    if hasattr(model, "predict_proba_vec"):  # lean model: plain lists, no dicts
        predict, learn = model.predict_proba_vec, model.learn_vec
        for kind, i in zip(kinds_l, idx_l, strict=True):
            if kind == 1:
                x = X[i].tolist()
                if i >= first_logged:
                    out[i] = predict(x)
                pending[i] = x
            else:
                learn(pending.pop(i), y[i])
    else:
        names = FEATURE_NAMES
        predict, learn = model.predict_proba_one, model.learn_one
        for kind, i in zip(kinds_l, idx_l, strict=True):
            if kind == 1:
                x = dict(zip(names, X[i].tolist(), strict=True))
                if i >= first_logged:
                    out[i] = predict(x)
                pending[i] = x
            else:
                learn(pending.pop(i), y[i])
    seconds = time.perf_counter() - t0
    if stats is not None:
        stats["replay_cpu_s"] = time.process_time() - c0
    scores[:] = out
    return scores, seconds, len(kinds_l)


def known_rows(data: Prepared, at: float, window_s: float | None = None) -> np.ndarray:
    """The rows a refit at event time ``at`` trains on: labels known by then (``label_ts <=
    at``) of the transactions of the last ``window_s`` seconds (None: all of them). The one
    rule of the evaluator's refits, the drift study's and ``fraudstream trainer``'s twins.

    >>> p = Prepared(np.array([0.0, 5.0, 9.0]), *(np.zeros(3),) * 3, np.zeros(3),
    ...              np.array([4.0, 8.0, 20.0]), np.zeros((3, 15)), 7.0, 0.0)
    >>> known_rows(p, 10.0).tolist(), known_rows(p, 10.0, window_s=6.0).tolist()
    ([True, True, False], [False, True, False])
    """
    known = data.label_ts <= at
    if window_s is not None:
        known &= data.ts > at - window_s
    return known


def replay_batch(
    model: Model,
    data: Prepared,
    retrain_days: float = 7.0,
    train_days: float = 7.0,
    score_from: float = -np.inf,
    until: float = np.inf,
) -> tuple[np.ndarray, float, int, float]:
    """Lambda-style replay: every ``retrain_days`` refit on the last ``train_days`` of labels
    known at that moment, score until the next refit. Returns ``(scores, s, events, train_s)``.

    Between refits the model is frozen, so scoring the whole period in one batch is exactly
    what per-event scoring would give, only faster.
    """
    n = len(data)
    scores = np.full(n, np.nan)
    if n == 0:
        return scores, 0.0, 0, 0.0
    start = float(np.floor(data.ts[0] / DAY) * DAY)
    end = min(float(data.ts[-1]) + 1.0, until)
    t0 = time.perf_counter()
    train_s = 0.0
    t = start
    while t < end:
        nxt = t + retrain_days * DAY
        known = known_rows(data, t, (train_days + data.delay_days) * DAY)
        if known.any():
            a = time.perf_counter()
            model.fit(data.X[known], data.fraud[known])
            train_s += time.perf_counter() - a
        lo, hi = np.searchsorted(data.ts, [max(t, score_from), min(nxt, end)], side="left")
        if hi > lo:
            scores[lo:hi] = model.predict_proba_many(data.X[lo:hi])
        t = nxt
    return scores, time.perf_counter() - t0, int(np.sum(data.ts < end)), train_s


def day_start(d: date) -> float:
    """Epoch seconds of a UTC midnight."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def handbook_test_mask(
    data: Prepared, train_start: float, train_days: int = 7, gap_days: int = 7, test_days: int = 7
) -> np.ndarray:
    """The handbook's test set: the test week minus cards already known to be compromised.

    As in the handbook's ``get_train_test_set``: cards with a fraud in the training week are
    known; for test day ``k`` (0-based), frauds up to day ``train_days + k - 1`` after the start
    of training are known too (one day more than the delay, exactly as published).
    """
    day = np.floor((data.ts - train_start) / DAY).astype(np.int64)
    mask = np.zeros(len(data), dtype=bool)
    for k in range(test_days):
        known_days = (day >= 0) & (day <= train_days + k - 1) & (data.fraud == 1)
        known = np.unique(data.customer_id[known_days])
        today = day == train_days + gap_days + k
        mask |= today & ~np.isin(data.customer_id, known)
    return mask


def _cost_profile(model: Model, data: Prepared, rows: np.ndarray) -> tuple[float, float, int, int]:
    """Per-event predict and learn microseconds, pickled size and in-memory size of a model."""
    X = data.X[rows]
    dicts = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in X.tolist()]
    t0 = time.perf_counter()
    for x in dicts:
        model.predict_proba_one(x)
    predict_us = (time.perf_counter() - t0) / max(len(dicts), 1) * 1e6
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    memory = _loaded_size(blob)
    learn_us = float("nan")
    if is_online(model.name):
        clone = copy.deepcopy(model)
        ys = data.fraud[rows].tolist()
        t0 = time.perf_counter()
        for x, yy in zip(dicts, ys, strict=True):
            clone.learn_one(x, yy)
        learn_us = (time.perf_counter() - t0) / max(len(dicts), 1) * 1e6
    return predict_us, learn_us, len(blob), memory


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096
    except OSError:  # not Linux: tracemalloc alone
        return 0


def _loaded_size(blob: bytes) -> int:
    """Approximate in-memory size of a model: memory allocated while unpickling it.

    tracemalloc sees Python objects; forests keep their trees in C arrays (scikit-learn) or
    Rust (River) that only the resident set shows, so the larger of the two is reported.
    """
    gc.collect()
    rss0 = _rss()
    obj = pickle.loads(blob)
    rss = _rss() - rss0
    del obj
    gc.collect()
    tracemalloc.start()  # separately: tracemalloc's own bookkeeping would inflate the RSS
    obj = pickle.loads(blob)
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del obj
    return max(traced, rss)


def evaluate_handbook(
    name: str,
    data: Prepared,
    train_start: date = HANDBOOK_TRAIN_START,
    seed: int = 0,
    profile_rows: int = 2000,
) -> RunResult:
    """The handbook protocol: batch models train on the week, online models run continuously."""
    start = day_start(train_start)
    train = (data.ts >= start) & (data.ts < start + 7 * DAY)
    test_end = start + 21 * DAY
    mask = handbook_test_mask(data, start)
    if not mask.any() or not train.any():
        from fraudstream.errors import FraudstreamError

        raise FraudstreamError(
            f"data does not cover the handbook weeks {train_start} .. "
            f"{datetime.fromtimestamp(test_end - 1, UTC).date()}"
        )
    model = make_model(name, seed)
    if is_online(name):
        scores, replay_s, events = replay_online(model, data, start + 14 * DAY, test_end)
        train_s = replay_s
    else:
        t0 = time.perf_counter()
        model.fit(data.X[train], data.fraud[train])
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = np.full(len(data), np.nan)
        scores[mask] = model.predict_proba_many(data.X[mask])
        replay_s, events = time.perf_counter() - t0, int(mask.sum())
    result = _result(name, "handbook", data, mask, scores, replay_s, events, train_s)
    _profile(result, model, data, mask, profile_rows)
    return result


def evaluate_prequential(
    name: str,
    data: Prepared,
    seed: int = 0,
    retrain_days: float = 7.0,
    train_days: float = 7.0,
    profile_rows: int = 2000,
) -> RunResult:
    """Replay the whole data set; every transaction is scored and evaluated."""
    model = make_model(name, seed)
    stats: dict[str, float] = {}
    if is_online(name):
        scores, replay_s, events = replay_online(model, data, stats=stats)
        train_s = replay_s
    else:
        scores, replay_s, events, train_s = replay_batch(model, data, retrain_days, train_days)
    mask = ~np.isnan(scores)
    result = _result(name, "prequential", data, mask, scores, replay_s, events, train_s)
    result.extra.update(stats)
    _profile(result, model, data, mask, profile_rows)
    return result


def _result(
    name: str,
    protocol: str,
    data: Prepared,
    mask: np.ndarray,
    scores: np.ndarray,
    replay_s: float,
    events: int,
    train_s: float,
) -> RunResult:
    s = scores[mask]
    return RunResult(
        model=name,
        protocol=protocol,
        scores=score_all(data.ts[mask], data.customer_id[mask], data.fraud[mask], s),
        mask=mask,
        score=s,
        train_s=train_s,
        replay_s=replay_s,
        events=events,
    )


def _profile(result: RunResult, model: Model, data: Prepared, mask: np.ndarray, n: int) -> None:
    result.fitted_model = model
    if n <= 0:
        result.note = model.explain()
        return
    rows = np.flatnonzero(mask)[:n]
    result.predict_us, result.learn_us, result.model_bytes, result.memory_bytes = _cost_profile(
        model, data, rows
    )
    result.note = model.explain()
