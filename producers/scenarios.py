"""The handbook's three fraud scenarios, applied one day at a time.

The handbook marks frauds after generating the whole data set; here the same rules run on each
day as it is generated, with the compromise windows kept as "compromised until day N" arrays,
one entry per terminal and per customer. That is what keeps the simulator streaming: the state
it carries from one day to the next has the size of the world, not of the history.

Order and precedence follow the handbook: scenario 1 looks at the original amount, scenario 2
overrides it, scenario 3 (amount x 5) overrides both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GENUINE = 0
AMOUNT_OVER_THRESHOLD = 1
COMPROMISED_TERMINAL = 2
COMPROMISED_CUSTOMER = 3


@dataclass
class DayTx:
    """One day's transactions as parallel arrays (time is seconds since that day's midnight)."""

    time: np.ndarray
    customer: np.ndarray
    terminal: np.ndarray
    amount: np.ndarray
    fraud: np.ndarray
    scenario: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def empty(cls) -> DayTx:
        f, i, b = np.float64, np.int64, np.int8
        return cls(
            np.empty(0, f), np.empty(0, i), np.empty(0, i), np.empty(0, f),
            np.empty(0, b), np.empty(0, b),
        )

    @classmethod
    def concat(cls, parts: list[DayTx]) -> DayTx:
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def take(self, order: np.ndarray) -> DayTx:
        return DayTx(*(getattr(self, f)[order] for f in _FIELDS))


_FIELDS = ("time", "customer", "terminal", "amount", "fraud", "scenario")


@dataclass(frozen=True)
class ScenarioParams:
    """Handbook defaults; drifts may replace some of them from a given day."""

    amount_threshold: float = 220.0
    terminals_per_day: int = 2
    terminal_days: int = 28
    customers_per_day: int = 3
    customer_days: int = 14
    customer_fraud_share: float = 1 / 3
    customer_amount_factor: float = 5.0


class FraudState:
    """Which terminals and customers are compromised, and until which day (exclusive)."""

    def __init__(self, n_customers: int, n_terminals: int, params: ScenarioParams) -> None:
        self.params = params
        self.terminal_until = np.zeros(n_terminals, dtype=np.int64)
        self.customer_until = np.zeros(n_customers, dtype=np.int64)

    def apply(
        self,
        day: int,
        tx: DayTx,
        rng: np.random.Generator,
        new_terminals: bool = True,
    ) -> None:
        """Mark ``tx`` (one day) in place. ``new_terminals=False`` stops scenario 2's daily
        compromises (a drift has taken it over); the random draws are made anyway so that the
        other scenarios see the same numbers either way."""
        p = self.params
        nt, nc = len(self.terminal_until), len(self.customer_until)
        terminals = rng.choice(nt, size=min(p.terminals_per_day, nt), replace=False)
        customers = rng.choice(nc, size=min(p.customers_per_day, nc), replace=False)
        share_draw = rng.random(len(tx))
        if new_terminals:
            self.terminal_until[terminals] = np.maximum(
                self.terminal_until[terminals], day + p.terminal_days
            )
        self.customer_until[customers] = np.maximum(
            self.customer_until[customers], day + p.customer_days
        )

        over = tx.amount > p.amount_threshold
        tx.fraud[over] = 1
        tx.scenario[over] = AMOUNT_OVER_THRESHOLD

        at_bad_terminal = self.terminal_until[tx.terminal] > day
        tx.fraud[at_bad_terminal] = 1
        tx.scenario[at_bad_terminal] = COMPROMISED_TERMINAL

        stolen = (self.customer_until[tx.customer] > day) & (share_draw < p.customer_fraud_share)
        tx.amount[stolen] = np.round(tx.amount[stolen] * p.customer_amount_factor, 2)
        tx.fraud[stolen] = 1
        tx.scenario[stolen] = COMPROMISED_CUSTOMER
