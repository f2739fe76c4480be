"""Incrementality under drift and the cost of late labels, with the offline evaluator.

Why offline: these questions are about *when* labels arrive in event time (a drift day, a 1/7/14
day delay). A worker draining a backlog reads the transaction and label topics as fast as it can,
so it does not keep their event-time order; pacing the producer in event time would take days.
The offline prequential replay (``models.evaluate``) merges transactions and label arrivals in
event time with the same feature code the worker runs (the skew test checks they agree), so it
answers these questions exactly and in seconds. The report says which figures come from it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from models.features import DAY

RECOVERY_TOLERANCE = 0.10  # "back within 10% of the pre-drift level"
SMOOTH_DAYS = 3  # per-day AP is noisy: recovery is judged on a trailing 3-day mean


def _per_day(ts: np.ndarray, cust: np.ndarray, fraud: np.ndarray, score: np.ndarray,
             mask: np.ndarray, day0: float) -> pd.DataFrame:
    """AP and CP@100 for each day of the evaluated rows (days without a fraud are left out)."""
    from models.metrics import average_precision, card_precision_at_k

    day = np.floor((ts - day0) / DAY).astype(int)
    _, cp = card_precision_at_k(ts[mask], cust[mask], fraud[mask], score[mask], k=100)
    days = np.unique(day[mask])
    rows = []
    for d, cp_d in zip(days, cp, strict=True):
        m = mask & (day == d)
        if fraud[m].any():
            rows.append({"day": int(d), "ap": average_precision(fraud[m], score[m]),
                         "cp_at_100": cp_d, "n": int(m.sum()), "n_fraud": int(fraud[m].sum())})
    return pd.DataFrame(rows)


def recovery_days(per_day: pd.DataFrame, drift_day: int) -> tuple[float, float, int | None]:
    """``(pre-drift AP, worst post-drift AP, days until back within 10%)``; None = never.

    Pre-drift level: mean AP over the 7 days before the drift. After it, the trailing
    ``SMOOTH_DAYS``-day mean AP; recovered on the first day it is back at >= 90% of the level
    after having dropped below it (0 days if it never dropped).
    """
    pre = per_day[(per_day.day >= drift_day - 7) & (per_day.day < drift_day)]["ap"].mean()
    post = per_day[per_day.day >= drift_day].sort_values("day")
    smooth = post["ap"].rolling(SMOOTH_DAYS, min_periods=1).mean().to_numpy()
    worst = float(smooth.min()) if len(smooth) else float("nan")
    threshold = (1 - RECOVERY_TOLERANCE) * pre
    dropped = False
    for d, v in zip(post["day"].to_numpy(), smooth, strict=True):
        if v < threshold:
            dropped = True
        elif dropped:
            return float(pre), worst, int(d) - drift_day
    return float(pre), worst, (0 if not dropped else None)


STATIC_LEAD_DAYS = 7  # the static model is fitted this long before the drift: its pre-drift
#                       week is scored out of sample, like every other model's
WEEKLY_TRAIN_DAYS = 28.0  # the retrained model's window: as much history as the static one


def drift_scores(data: Any, drift_day: int, online: str = "logreg", batch: str = "batch_hgb",
                 ) -> tuple[dict[str, np.ndarray], dict[str, float], Any]:
    """Scores of every row for the three contenders of the drift study, and their replay time.

    * the online model learns every label at its ``known_at`` (prequential);
    * the static model is fitted once, on every label known ``STATIC_LEAD_DAYS`` before the
      drift (4 weeks or more of history when the drift is on day 35 or later), and never
      again: rows before its fit are NaN (they are its training data);
    * the retrained model is refitted every 7 days on the labels known at that moment of the
      transactions of the last ``WEEKLY_TRAIN_DAYS`` (the lambda architecture's batch layer, as
      ``fraudstream trainer --model batch_...`` runs it).

    Returns ``(scores by model name, seconds by model name, the fitted static model)``.
    """
    from models.catalog import make_model
    from models.evaluate import known_rows, replay_batch, replay_online

    day0 = float(np.floor(data.ts[0] / DAY) * DAY)
    scores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    scores[f"{online} (online)"], _, _ = replay_online(make_model(online), data)
    seconds[f"{online} (online)"] = time.perf_counter() - started

    started = time.perf_counter()
    static = make_model(batch)
    t_fit = day0 + (drift_day - STATIC_LEAD_DAYS) * DAY
    known = known_rows(data, t_fit)
    static.fit(data.X[known], data.fraud[known])  # type: ignore[union-attr]
    s_static = np.full(len(data), np.nan)
    after = data.ts >= t_fit
    s_static[after] = static.predict_proba_many(data.X[after])
    scores[f"{batch} static"] = s_static
    seconds[f"{batch} static"] = time.perf_counter() - started

    started = time.perf_counter()
    scores[f"{batch} retrained every 7 days"], _, _, _ = replay_batch(
        make_model(batch), data, retrain_days=7.0,
        train_days=WEEKLY_TRAIN_DAYS - data.delay_days)  # replay_batch adds the delay back
    seconds[f"{batch} retrained every 7 days"] = time.perf_counter() - started
    return scores, seconds, static


def period_ap(data: Any, score: np.ndarray, first_day: int, days: int) -> float:
    """AP over the rows of ``days`` simulated days from ``first_day`` (NaN scores left out)."""
    from models.metrics import average_precision

    day0 = float(np.floor(data.ts[0] / DAY) * DAY)
    day = np.floor((data.ts - day0) / DAY)
    m = (day >= first_day) & (day < first_day + days) & ~np.isnan(score)
    return average_precision(data.fraud[m], score[m]) if data.fraud[m].any() else float("nan")


def drift_summary(data: Any, scores: dict[str, np.ndarray], drift_day: int, eval_from_day: int,
                  seconds: dict[str, float] | None = None, log: Any = print) -> dict[str, Any]:
    """Per-day curves, recovery and the drop of each model over the two weeks after the drift.

    ``drop``: 1 - AP(14 days from the drift) / AP(7 days before it), each on pooled rows (a
    per-day mean would weigh a day with 3 frauds like one with 80).
    """
    day0 = float(np.floor(data.ts[0] / DAY) * DAY)
    mask = data.ts >= day0 + eval_from_day * DAY
    curves: dict[str, pd.DataFrame] = {}
    summary = []
    for name, score in scores.items():
        m = mask & ~np.isnan(score)
        curve = _per_day(data.ts, data.customer_id, data.fraud, score, m, day0)
        curves[name] = curve
        pre, worst, rec = recovery_days(curve, drift_day)
        ap_pre = period_ap(data, score, drift_day - 7, 7)
        ap_post = period_ap(data, score, drift_day, 14)
        summary.append({"model": name, "pre_drift_ap": pre, "worst_post_drift_ap_3d": worst,
                        "recovery_days": rec, "replay_s": (seconds or {}).get(name, float("nan")),
                        "ap_week_before": ap_pre, "ap_two_weeks_after": ap_post,
                        "drop": 1 - ap_post / ap_pre if ap_pre > 0 else float("nan"),
                        "mean_ap": float(curve["ap"].mean()),
                        "mean_cp_at_100": float(curve["cp_at_100"].mean())})
        log(f"  drift {name}: AP week before {ap_pre:.3f}, two weeks after {ap_post:.3f} "
            f"(drop {summary[-1]['drop']:+.1%}); recovery "
            f"{'never' if rec is None else f'{rec} days'}")
    return {"curves": curves, "summary": summary, "drift_day": drift_day,
            "eval_from_day": eval_from_day, "n_tx": len(data), "n_fraud": int(data.fraud.sum())}


def drift_study(df: pd.DataFrame, drift_day: int, online: str = "logreg",
                batch: str = "batch_hgb", eval_from_day: int = 14, log: Any = print) -> dict[str, Any]:
    """AP and CP@100 per day for an online model, a static and a weekly-retrained batch model
    (``drift_scores``), labels at the simulator's own label times (``labels="data"``)."""
    from models.evaluate import prepare

    data = prepare(df, delay_days=7.0, labels="data")
    scores, seconds, _ = drift_scores(data, drift_day, online, batch)
    return drift_summary(data, scores, drift_day, eval_from_day, seconds, log)


def label_delay_study(df: pd.DataFrame, delays: tuple[float, ...] = (1.0, 7.0, 14.0),
                      online: str = "logreg", batch: str = "batch_hgb",
                      eval_from_day: int = 21, log: Any = print) -> list[dict[str, Any]]:
    """AP, AUC and CP@100 of an online and a weekly-retrained batch model per label delay.

    Every label arrives exactly ``d`` days after its transaction (the handbook's assumption);
    the terminal features' delay is the same ``d``, as in the handbook. All delays are scored
    on the same rows (from ``eval_from_day``), so the AP differences are the cost of late
    feedback alone.
    """
    from models.catalog import make_model
    from models.evaluate import prepare, replay_batch, replay_online
    from models.metrics import score_all

    rows = []
    for d in delays:
        data = prepare(df, delay_days=d, labels="fixed")
        day0 = float(np.floor(data.ts[0] / DAY) * DAY)
        mask = data.ts >= day0 + eval_from_day * DAY
        s_on, _, _ = replay_online(make_model(online), data)
        s_b, _, _, _ = replay_batch(make_model(batch), data, retrain_days=7.0, train_days=7.0)
        for name, s in ((f"{online} (online)", s_on), (f"{batch} retrained every 7 days", s_b)):
            m = mask & ~np.isnan(s)
            sc = score_all(data.ts[m], data.customer_id[m], data.fraud[m], s[m])
            rows.append({"model": name, "delay_days": d, "auc": sc.auc, "ap": sc.ap,
                         "cp_at_100": sc.cp_at_100, "n": sc.n, "n_fraud": sc.n_fraud})
            log(f"  label delay {d:g} d, {name}: AP {sc.ap:.3f}")
    return rows


def evaluator_rate(df: pd.DataFrame, model_name: str) -> dict[str, float]:
    """The offline evaluator's cost for ``model_name`` on ``df``: features for every
    transaction, then the prequential replay (score each, learn each label at its time),
    both in CPU seconds of this process; the rate a stream worker is measured against.

    >>> rng, n = np.random.default_rng(0), 300
    >>> df = pd.DataFrame({"tx_id": range(n), "ts": np.sort(rng.uniform(0, 30 * DAY, n)),
    ...     "customer_id": rng.integers(0, 20, n), "terminal_id": rng.integers(0, 40, n),
    ...     "amount": rng.uniform(1, 100, n), "fraud": (rng.random(n) < 0.05).astype(int)})
    >>> r = evaluator_rate(df, "sgd_logreg")
    >>> r["tx"], r["tx_per_s"] > 0
    (300, True)
    """
    from models.catalog import make_model
    from models.evaluate import prepare, replay_online

    data = prepare(df, labels="data")
    stats: dict[str, float] = {}
    replay_online(make_model(model_name), data, stats=stats)
    cpu = data.feature_cpu_s + stats["replay_cpu_s"]
    return {"tx": len(data), "features_cpu_s": data.feature_cpu_s,
            "replay_cpu_s": stats["replay_cpu_s"], "cpu_s": cpu,
            "tx_per_s": len(data) / cpu if cpu > 0 else float("nan")}
