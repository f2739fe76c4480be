"""Day-by-day transaction generation in the handbook's world.

``Simulator.days()`` yields one pandas DataFrame per simulated day with the canonical columns of
``docs/contracts.md`` (``tx_id, ts, customer_id, terminal_id, amount, fraud, scenario,
label_ts``), sorted by event time. Each day is generated with vectorised numpy draws (about ten
thousand transactions at once), which is what makes the simulator several hundred thousand
events per second fast; and since only the world and the fraud state survive from one day to
the next, memory does not grow with the number of days.

Determinism: each (seed, purpose, day) has its own random stream (``world.rng_for``), so the
same seed gives the same events, and a drift starting on day D leaves days before D untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from producers.delays import (
    DEFAULT_FEEDBACK_DAYS,
    DEFAULT_FRAUD_DELAY,
    DelayDistribution,
    parse_delay,
)
from producers.drift import Drift
from producers.scenarios import DayTx, FraudState, ScenarioParams
from producers.world import (
    DAY_S,
    STREAM_DAY,
    STREAM_DELAYS,
    STREAM_SCENARIOS,
    World,
    WorldConfig,
    rng_for,
)

TX_COLUMNS = ("tx_id", "ts", "customer_id", "terminal_id", "amount")
OFFLINE_COLUMNS = ("fraud", "scenario", "label_ts")
COLUMNS = TX_COLUMNS + OFFLINE_COLUMNS
DTYPES: dict[str, str] = {
    "tx_id": "int64", "ts": "float64", "customer_id": "int64", "terminal_id": "int64",
    "amount": "float64", "fraud": "int8", "scenario": "int8", "label_ts": "float64",
}

TIME_MEAN_S = 43_200.0
TIME_STD_S = 20_000.0


class Simulator:
    """The handbook simulator, streaming one day at a time."""

    def __init__(
        self,
        config: WorldConfig | None = None,
        drifts: Sequence[Drift] = (),
        fraud_delay: DelayDistribution | str = DEFAULT_FRAUD_DELAY,
        feedback_days: float = DEFAULT_FEEDBACK_DAYS,
        scenario_params: ScenarioParams | None = None,
    ) -> None:
        self.config = config or WorldConfig()
        self.drifts = list(drifts)
        self.fraud_delay = parse_delay(fraud_delay) if isinstance(fraud_delay, str) else fraud_delay
        if feedback_days < 0:
            raise ValueError("feedback_days must be >= 0")
        self.feedback_days = feedback_days
        self.scenario_params = scenario_params or ScenarioParams()
        self._world: World | None = None

    @property
    def world(self) -> World:
        """Built on first use: the reachability index is the one costly step (~0.1 s)."""
        if self._world is None:
            self._world = World(self.config)
        return self._world

    def _genuine(self, day: int) -> DayTx:
        w, rng = self.world, rng_for(self.config.seed, STREAM_DAY, day)
        counts = rng.poisson(w.mean_tx_per_day)
        counts[w.reach_counts == 0] = 0
        customer = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        time = np.floor(rng.normal(TIME_MEAN_S, TIME_STD_S, len(customer)))
        mean, std = w.mean_amount[customer], w.std_amount[customer]
        amount = rng.normal(mean, std)
        redraw = rng.uniform(0, 2 * mean)
        amount = np.round(np.where(amount < 0, redraw, amount), 2)
        terminal = w.pick_terminals(customer, rng)
        keep = (time > 0) & (time < DAY_S)
        n = int(keep.sum())
        return DayTx(
            time[keep], customer[keep], terminal[keep], amount[keep],
            np.zeros(n, np.int8), np.zeros(n, np.int8),
        )

    def days(self) -> Iterator[pd.DataFrame]:
        """One DataFrame per day, in event-time order, tx ids numbered from 0."""
        cfg, w = self.config, self.world
        state = FraudState(cfg.n_customers, cfg.n_terminals, self.scenario_params)
        drifts = [(d, d.active) for d in self.drifts]
        next_id = 0
        start_ts = cfg.start_ts
        for day in range(cfg.n_days):
            tx = self._genuine(day)
            active = [d for d, is_active in drifts if is_active(day)]
            state.apply(
                day, tx, rng_for(cfg.seed, STREAM_SCENARIOS, day),
                new_terminals=not any(d.takes_over_terminals for d in active),
            )
            parts = [tx]
            for drift in active:
                rng = drift.rng(cfg.seed, day)
                drift.mark(day, tx, state, w, rng)
                extra = drift.inject(day, w, rng)
                if extra is not None and len(extra):
                    parts.append(extra)
            tx = DayTx.concat(parts)
            tx = tx.take(np.lexsort((tx.customer, tx.time)))
            ts = start_ts + day * DAY_S + tx.time
            frame = self._frame(day, next_id, ts, tx)
            next_id += len(frame)
            yield frame

    def _frame(self, day: int, first_id: int, ts: np.ndarray, tx: DayTx) -> pd.DataFrame:
        n = len(tx)
        delay = np.full(n, float(self.feedback_days), dtype=np.float64)
        is_fraud = tx.fraud == 1
        rng = rng_for(self.config.seed, STREAM_DELAYS, day)
        delay[is_fraud] = self.fraud_delay.sample(rng, int(is_fraud.sum()))
        return pd.DataFrame({
            "tx_id": np.arange(first_id, first_id + n, dtype=np.int64),
            "ts": ts,
            "customer_id": tx.customer,
            "terminal_id": tx.terminal,
            "amount": tx.amount,
            "fraud": tx.fraud,
            "scenario": tx.scenario,
            "label_ts": ts + delay * DAY_S,
        })

    def frame(self) -> pd.DataFrame:
        """All days in one DataFrame - for tests and small worlds; streaming users use days()."""
        return concat_days(self.days())


def concat_days(days: Iterable[pd.DataFrame]) -> pd.DataFrame:
    parts = list(days)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in DTYPES.items()})
    return pd.concat(parts, ignore_index=True)
