"""What the demo's pipeline decided, against the offline evaluator and the ground truth.

Two questions, answered from the topics (not from the worker's own counters):

* **parity**: on exactly the transactions the pipeline scored, does the streaming model rank
  as well as the offline replay from the same snapshot with the same label times? The offline
  evaluator is the project's accuracy reference, so a large gap means the pipeline computes
  something else (features, label order, lost learning), not that the model is weak.
* **alerts**: how many cards were alerted per event-time day, and what share of them really
  had a fraud that day: what an investigator's queue would look like.

Ground truth is the simulator's ``fraud`` column, the labels that the producer sends (most
live labels are due days after the demo stops, so the labels topic alone would cover only
the oldest live transactions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from models.features import DAY
from models.metrics import score_all
from streams.warmup import Replay

AP_TARGET = 0.05
"""|AP live - AP offline| the pipeline should stay within."""


@dataclass
class Parity:
    """Live and offline figures of one phase, on the same transactions."""

    phase: str
    n: int
    n_fraud: int
    live: dict[str, float]
    offline: dict[str, float]
    mean_abs_score_diff: float
    share_within_001: float  # transactions whose two scores differ by at most 0.01

    @property
    def ap_diff(self) -> float:
        return self.live["ap"] - self.offline["ap"]

    @property
    def within_target(self) -> bool:
        return not math.isnan(self.ap_diff) and abs(self.ap_diff) <= AP_TARGET


def _figures(ts: np.ndarray, card: np.ndarray, y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    if len(y) == 0:
        return {"auc": math.nan, "ap": math.nan, "cp_at_100": math.nan}
    sc = score_all(ts, card, y, s)
    return {"auc": sc.auc, "ap": sc.ap, "cp_at_100": sc.cp_at_100}


def parity(replay: Replay, live_scores: dict[int, float], live_from: float) -> list[Parity]:
    """Live vs offline per phase (``backfill``, ``live``) on the transactions scored live."""
    where = replay.index()
    ids = np.array([t for t in live_scores if t in where], dtype=np.int64)
    rows = np.array([where[int(t)] for t in ids.tolist()], dtype=np.int64)
    live = np.array([live_scores[int(t)] for t in ids.tolist()], dtype=np.float64)
    out = []
    for phase, in_phase in (("backfill", replay.ts[rows] < live_from),
                            ("live", replay.ts[rows] >= live_from)):
        r, s_live = rows[in_phase], live[in_phase]
        s_off = replay.score[r]
        ts, card, y = replay.ts[r], replay.customer_id[r], replay.fraud[r]
        diff = np.abs(s_live - s_off)
        out.append(Parity(
            phase=phase, n=len(r), n_fraud=int(y.sum()),
            live=_figures(ts, card, y, s_live), offline=_figures(ts, card, y, s_off),
            mean_abs_score_diff=float(diff.mean()) if len(r) else math.nan,
            share_within_001=float(np.mean(diff <= 0.01)) if len(r) else math.nan,
        ))
    return out


@dataclass
class AlertDay:
    """One event-time day of the alerts topic."""

    day: str
    phase: str
    alerts: int  # distinct alerted transactions
    cards: int  # distinct alerted cards
    fraud_cards: int  # of those, cards with a fraudulent transaction that day
    transactions: int  # transactions sent that day (the pipeline's input)

    @property
    def precision(self) -> float:
        return self.fraud_cards / self.cards if self.cards else math.nan


def alerts_by_day(alerts: list[dict[str, Any]], replay: Replay, live_from: float,
                  scored_until: float) -> list[AlertDay]:
    """Alerts per UTC event-time day, from the first sent day to the last scored one.

    Alerts are at-least-once (a replayed transaction repeats its alert), so they are counted
    by transaction id; a card is a true alert when it had any fraud that day.
    """
    day_of = np.floor(replay.ts / DAY).astype(np.int64)
    fraud_cards: dict[int, set[int]] = {}
    for d, c in zip(day_of[replay.fraud == 1].tolist(),
                    replay.customer_id[replay.fraud == 1].tolist(), strict=True):
        fraud_cards.setdefault(d, set()).add(c)
    sent = dict(zip(*np.unique(day_of, return_counts=True), strict=True))
    tx_by_day: dict[int, set[int]] = {}
    cards_by_day: dict[int, set[int]] = {}
    for body in alerts:
        d = math.floor(float(body["ts"]) / DAY)
        tx_by_day.setdefault(d, set()).add(int(body["tx_id"]))
        cards_by_day.setdefault(d, set()).add(int(body["customer_id"]))
    last = math.floor(scored_until / DAY)
    out = []
    for d in range(int(day_of.min()), last + 1) if len(day_of) else ():
        cards = cards_by_day.get(d, set())
        out.append(AlertDay(
            day=datetime.fromtimestamp(d * DAY, UTC).date().isoformat(),
            phase="live" if d * DAY >= live_from else "backfill",
            alerts=len(tx_by_day.get(d, ())), cards=len(cards),
            fraud_cards=len(cards & fraud_cards.get(d, set())),
            transactions=int(sent.get(d, 0)),
        ))
    return out


def alert_totals(days: list[AlertDay]) -> dict[str, dict[str, float]]:
    """Per phase: days, alerts and cards per day, and the precision over all alerted cards."""
    out: dict[str, dict[str, float]] = {}
    for phase in ("backfill", "live"):
        mine = [d for d in days if d.phase == phase]
        if not mine:
            continue
        cards = sum(d.cards for d in mine)
        out[phase] = {
            "days": len(mine),
            "alerts per day": sum(d.alerts for d in mine) / len(mine),
            "cards per day": cards / len(mine),
            "max cards in a day": max(d.cards for d in mine),
            "precision of alerted cards": sum(d.fraud_cards for d in mine) / cards
            if cards else math.nan,
        }
    return out
