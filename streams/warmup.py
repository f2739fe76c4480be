"""The demo's history: one simulated world, a model trained offline on its past, and the
offline replay that the live figures are compared with.

A bank does not start a fraud model from zero: it trains on history, deploys the trained model
(a signed snapshot) and lets the stream workers rebuild card and terminal state from the last
weeks before they score live traffic. ``DemoPlan`` cuts one simulated world into those three
periods::

    | offline training (train_days) | backfill (backfill_days) | live (live_days)            |
    ^ start_date                    ^ backfill_from            ^ live_from

The producer simulates the same world (same seed and parameters, ``produce_args``) and sends
only the backfill and the live period, the backfill unpaced. The offline model is trained with
the project's own prequential replay (``models.evaluate.replay_online`` over ``prepare``, the
feature code the worker runs) on the training period, with labels known before the backfill.
``offline_scores`` replays backfill and live from that same snapshot, with the same label
times, which is what the pipeline should have computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from models.features import DAY, MAX_WINDOW_DAYS
from models.registry import Registry

FRAUD_DELAY = "gamma:shape=2,scale=1,max=7"
FEEDBACK_DAYS = 7.0
RADIUS = 5.0
TX_PER_CARD_DAY = 1.92
"""Transactions per card and day in the simulator's world (1,000 cards: ~1,920 a day)."""


@dataclass(frozen=True)
class DemoPlan:
    """Where the demo's world is cut into training, backfill and live (see the module doc).

    The default backfill covers the terminal features' longest reach (label delay + 30-day
    window = 37 days), so live features see the same history a long-running worker would.
    """

    seed: int = 42
    customers: int = 1_000
    terminals: int = 2_000
    start_date: date = date(2018, 4, 1)
    train_days: int = 60
    backfill_days: int = int(7 + MAX_WINDOW_DAYS)
    live_days: int = 24

    @classmethod
    def for_run(cls, rate: float, duration_s: float, backfill_days: int | None = None,
                seed: int = 42) -> DemoPlan:
        """Enough live days that the producer never runs dry within the demo's duration."""
        per_day = TX_PER_CARD_DAY * cls.customers
        live = max(14, math.ceil(rate * duration_s / per_day) + 8)
        if backfill_days is None:
            return cls(seed=seed, live_days=live)
        return cls(seed=seed, live_days=live, backfill_days=backfill_days)

    @property
    def days(self) -> int:
        return self.train_days + self.backfill_days + self.live_days

    @property
    def backfill_from(self) -> float:
        return _epoch(self.start_date) + self.train_days * DAY

    @property
    def live_from(self) -> float:
        return self.backfill_from + self.backfill_days * DAY

    @property
    def live_date(self) -> date:
        return self.start_date + timedelta(days=self.train_days + self.backfill_days)

    def simulate(self) -> pd.DataFrame:
        """The whole world, exactly as ``fraudstream produce`` with ``produce_args`` makes it."""
        from producers.simulator import Simulator
        from producers.world import WorldConfig

        config = WorldConfig(self.customers, self.terminals, RADIUS, self.days, self.start_date,
                             self.seed)
        return Simulator(config, (), FRAUD_DELAY, FEEDBACK_DAYS).frame()

    def produce_args(self) -> list[str]:
        """The world and the backfill for ``fraudstream produce`` (pace options excluded)."""
        return [
            "--seed", str(self.seed), "--days", str(self.days),
            "--customers", str(self.customers), "--terminals", str(self.terminals),
            "--radius", str(RADIUS), "--start-date", self.start_date.isoformat(),
            "--fraud-delay", FRAUD_DELAY, "--feedback-days", str(FEEDBACK_DAYS),
            "--live-from", self.live_date.isoformat(), "--backfill-days", str(self.backfill_days),
        ]


def _epoch(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


@dataclass
class Bootstrap:
    """The trained snapshot and what it cost."""

    ref: str  # NAME@VERSION, for FRAUDSTREAM_MODEL_SNAPSHOT
    transactions: int
    labels_learned: int
    fraud_rate: float
    seconds: float


def train_snapshot(frame: pd.DataFrame, plan: DemoPlan, model_name: str, registry: Registry,
                   delay_days: float, name: str | None = None) -> Bootstrap:
    """Train ``model_name`` on the training period and save it as a signed snapshot.

    Only labels known before the backfill starts are learned: that is all a bank would have
    had when it trained the model it deploys.
    """
    import time

    from models.catalog import is_online, make_model
    from models.evaluate import prepare, replay_online

    if not is_online(model_name):
        from fraudstream.errors import FraudstreamError

        raise FraudstreamError(f"the demo warm-starts an online model, not {model_name!r}")
    started = time.perf_counter()
    history = frame[frame["ts"].to_numpy() < plan.backfill_from]
    data = prepare(history, delay_days, "data")
    model = make_model(model_name, seed=plan.seed)
    replay_online(model, data, until=plan.backfill_from)
    learned = int(np.sum(data.label_ts < plan.backfill_from))
    path = registry.save(
        model, name or f"demo-warm-{model_name}",
        data_range=(float(data.ts[0]), plan.backfill_from),
        extra={"model": model_name, "learned": learned, "seed": plan.seed,
               "trained_on": "demo history before the backfill"},
    )
    return Bootstrap(
        ref=f"{path.parent.name}@{path.stem.lstrip('v')}", transactions=len(data),
        labels_learned=learned, fraud_rate=float(data.fraud.mean()),
        seconds=time.perf_counter() - started,
    )


@dataclass
class Replay:
    """Offline scores of every transaction the producer sends (backfill and live)."""

    tx_id: np.ndarray
    ts: np.ndarray
    customer_id: np.ndarray
    fraud: np.ndarray
    score: np.ndarray
    seconds: float

    def index(self) -> dict[int, int]:
        return {int(t): i for i, t in enumerate(self.tx_id.tolist())}


def offline_scores(frame: pd.DataFrame, plan: DemoPlan, registry: Registry, ref: str,
                   delay_days: float, until: float = math.inf) -> Replay:
    """Replay what the producer sends, from the worker's starting snapshot, in event time.

    Features start from empty state at the backfill, as the worker's tables do; labels are
    learned at their ``label_ts``, the time the producer sends them. Transactions after
    ``until`` (event time; the last one the pipeline scored) cannot change an earlier score,
    so they are left out.
    """
    import time

    from models.evaluate import prepare, replay_online
    from models.registry import parse_ref

    started = time.perf_counter()
    name, version = parse_ref(ref)
    model: Any = registry.load(name, version).model  # verified, like the worker's load
    ts = frame["ts"].to_numpy()
    sent = frame[(ts >= plan.backfill_from) & (ts <= until)]
    sent = sent.sort_values(["ts", "tx_id"], kind="stable")  # prepare's order
    data = prepare(sent, delay_days, "data")
    scores, _, _ = replay_online(model, data)
    return Replay(
        tx_id=sent["tx_id"].to_numpy(np.int64), ts=data.ts, customer_id=data.customer_id,
        fraud=data.fraud, score=scores, seconds=time.perf_counter() - started,
    )
