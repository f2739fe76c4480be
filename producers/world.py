"""The simulated world of the fraud-detection handbook: customer and terminal profiles.

Everything that does not change from day to day lives here, so that the simulator's memory is
bounded by the number of customers and terminals and never by the number of days. The
reachable terminals of each customer are stored as one flat CSR-style index (offsets + flat
terminal ids) instead of a list of arrays, which keeps a draw of "a random reachable terminal
for each of 10,000 transactions" a single vectorised operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

DAY_S = 86_400.0
GRID = 100.0

# Separate random streams, so that switching one feature on (a drift, say) does not shift the
# random numbers any other feature sees: same seed + same day = same draws.
STREAM_WORLD = 0
STREAM_DAY = 1
STREAM_SCENARIOS = 2
STREAM_DELAYS = 3
STREAM_DRIFT = 100


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """A generator for one (seed, purpose, day...) stream, independent of every other one."""
    return np.random.default_rng([seed, *stream])


@dataclass(frozen=True)
class WorldConfig:
    """The handbook's published parameters are the defaults."""

    n_customers: int = 5_000
    n_terminals: int = 10_000
    radius: float = 5.0
    n_days: int = 183
    start_date: date = date(2018, 4, 1)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_customers < 1 or self.n_terminals < 1:
            raise ValueError("the world needs at least one customer and one terminal")
        if self.radius <= 0:
            raise ValueError("radius must be positive")
        if self.n_days < 1:
            raise ValueError("n_days must be at least 1")

    @property
    def start_ts(self) -> float:
        """Epoch seconds (UTC) of the first simulated day's midnight."""
        return datetime(
            self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=UTC
        ).timestamp()


class World:
    """Customer and terminal profiles drawn once from the seed."""

    def __init__(self, config: WorldConfig) -> None:
        self.config = config
        rng = rng_for(config.seed, STREAM_WORLD)
        nc, nt = config.n_customers, config.n_terminals
        self.customer_xy = rng.uniform(0, GRID, size=(nc, 2))
        self.mean_amount = rng.uniform(5, 100, size=nc)
        self.std_amount = self.mean_amount / 2
        self.mean_tx_per_day = rng.uniform(0, 4, size=nc)
        self.terminal_xy = rng.uniform(0, GRID, size=(nt, 2))
        self.reach_offsets, self.reach_terminals = self._reachable(config.radius)
        self.reach_counts = np.diff(self.reach_offsets)

    def _reachable(self, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Terminals within ``radius`` of each customer, as (offsets, flat terminal ids).

        Both populations are binned into square cells of side ``radius``; a customer's
        candidates are the terminals of its own and the 8 neighbouring cells, so the work is
        proportional to customers x terminals-per-neighbourhood instead of customers x terminals.
        Each customer's terminals are listed in increasing id order.
        """
        r2 = radius * radius
        n_cells = max(1, int(np.ceil(GRID / radius)))

        def cells(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ij = np.clip((xy // radius).astype(np.int64), 0, n_cells - 1)
            return ij[:, 0], ij[:, 1]

        ci, cj = cells(self.customer_xy)
        ti, tj = cells(self.terminal_xy)
        t_cell = ti * n_cells + tj
        t_order = np.argsort(t_cell, kind="stable")
        t_start = np.searchsorted(t_cell[t_order], np.arange(n_cells * n_cells + 1))
        c_cell = ci * n_cells + cj
        pairs_c: list[np.ndarray] = []
        pairs_t: list[np.ndarray] = []
        for cell in np.unique(c_cell):
            customers = np.nonzero(c_cell == cell)[0]
            i, j = divmod(int(cell), n_cells)
            near = [
                t_order[t_start[a * n_cells + b] : t_start[a * n_cells + b + 1]]
                for a in range(max(0, i - 1), min(n_cells, i + 2))
                for b in range(max(0, j - 1), min(n_cells, j + 2))
            ]
            terms = np.concatenate(near)
            dx = self.customer_xy[customers, 0][:, None] - self.terminal_xy[terms, 0][None, :]
            dy = self.customer_xy[customers, 1][:, None] - self.terminal_xy[terms, 1][None, :]
            rows, cols = np.nonzero(dx * dx + dy * dy < r2)
            pairs_c.append(customers[rows])
            pairs_t.append(terms[cols])
        cust = np.concatenate(pairs_c)
        term = np.concatenate(pairs_t)
        order = np.lexsort((term, cust))
        counts = np.bincount(cust, minlength=self.config.n_customers)
        offsets = np.zeros(self.config.n_customers + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return offsets, term[order].astype(np.int64)

    def pick_terminals(self, customers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One terminal drawn uniformly among each customer's reachable ones."""
        counts = self.reach_counts[customers]
        pick = (rng.random(len(customers)) * counts).astype(np.int64)
        return self.reach_terminals[self.reach_offsets[customers] + pick]
