"""Drift: fraud behaviour that changes from a given simulated day on.

Four kinds, switched on by name and day (``card_testing@60,night_gang@90``):

* ``card_testing`` (scenario 4) - a pattern that did not exist before: each day 36 cards are
  tested by fraudsters with a burst of tiny amounts at one terminal within minutes, followed by
  a few large (but below the 220 rule) amounts at other terminals within hours. These are new
  transactions added to the day.
* ``terminal_shift`` (scenario 5) - an existing pattern shifts: terminal compromises stop being
  2 random terminals for 28 days and become more terminals, for a shorter time, concentrated
  in one area of the map (a skimming gang working one district).
* ``amount_shift`` (scenario 6) - the amount rule moves: fraudsters learn to stay under 220 and
  amounts above a lower threshold become fraudulent too.
* ``night_gang`` (scenario 7) - a gang with cloned cards works one district at night: each
  night 40 cards are used two to four times, at everyday amounts (15-90), at terminals of the
  district; the gang moves to another district every week, so no terminal stays hot long
  enough for the terminal features (which see labels 7 days late) to catch it.

A model fitted before ``card_testing`` or ``night_gang`` has never seen tiny amounts, bursts or
the night matter, so it ranks these frauds low; a model that learns each label sees them within
the report delay. Their volumes were calibrated with ``fraudstream bench drift --offline-only``
(1,000 customers, seeds 0, 3 and 5) so that a batch model fitted on four weeks of labels loses
about a third of its AP over the two weeks after the drift (card testing 33-35%, night gang
35-39%). ``terminal_shift`` and ``amount_shift`` hurt much less (amounts of 180-220 still rank
high; a compromise shorter than the label delay is invisible to every model). Volumes are per
day, like the handbook's own scenarios (2 terminals and 3 cards a day): a base world's frauds a
day do not grow with its size, so a drift weighs about the same in a small world as in a big one.

Every drift draws from its own random stream (seed, drift kind, day), so a run with a drift is
identical to the run without it on every day before the drift's start: that is what lets the
tests prove "changes from its day on and not before".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from producers.scenarios import DayTx, FraudState
from producers.world import DAY_S, STREAM_DRIFT, World, rng_for

CARD_TESTING = 4
TERMINAL_SHIFT = 5
AMOUNT_SHIFT = 6
NIGHT_GANG = 7
NIGHT_S = 6 * 3600.0  # the features' "night" is hour <= 6 (models.features.time_features)


@dataclass
class Drift:
    """Base: a named change starting on ``start_day`` (0 = the first simulated day)."""

    start_day: int
    kind: str = field(init=False, default="")
    scenario: int = field(init=False, default=0)
    stream: int = field(init=False, default=0)

    def active(self, day: int) -> bool:
        return day >= self.start_day

    def rng(self, seed: int, day: int) -> np.random.Generator:
        return rng_for(seed, STREAM_DRIFT + self.stream, day)

    def inject(self, day: int, world: World, rng: np.random.Generator) -> DayTx | None:
        """Extra transactions for ``day`` (None: this drift adds none)."""
        return None

    def mark(
        self, day: int, tx: DayTx, state: FraudState, world: World, rng: np.random.Generator
    ) -> None:
        """Change fraud marks of ``tx`` in place, after the handbook scenarios ran."""

    @property
    def takes_over_terminals(self) -> bool:
        """True when this drift replaces scenario 2's daily terminal compromises."""
        return False


@dataclass
class CardTesting(Drift):
    cards_per_day: int = 36
    small_tx: tuple[int, int] = (3, 8)
    small_amount: tuple[float, float] = (0.5, 3.0)
    large_tx: tuple[int, int] = (1, 3)
    large_amount: tuple[float, float] = (120.0, 219.0)

    def __post_init__(self) -> None:
        self.kind, self.scenario, self.stream = "card_testing", CARD_TESTING, 1

    def inject(self, day: int, world: World, rng: np.random.Generator) -> DayTx | None:
        nc, nt = world.config.n_customers, world.config.n_terminals
        cards = rng.choice(nc, size=min(self.cards_per_day, nc), replace=False)
        parts = []
        for card in cards:
            n_small = int(rng.integers(self.small_tx[0], self.small_tx[1] + 1))
            n_large = int(rng.integers(self.large_tx[0], self.large_tx[1] + 1))
            start = rng.uniform(0, DAY_S * 0.6)
            small_t = start + np.cumsum(rng.uniform(5, 90, n_small))
            large_t = small_t[-1] + np.cumsum(rng.uniform(600, 7200, n_large))
            time = np.concatenate([small_t, large_t])
            amount = np.round(
                np.concatenate([
                    rng.uniform(*self.small_amount, n_small),
                    rng.uniform(*self.large_amount, n_large),
                ]),
                2,
            )
            terminal = np.concatenate([
                np.full(n_small, rng.integers(nt)),
                rng.integers(nt, size=n_large),
            ])
            keep = time < DAY_S
            n = int(keep.sum())
            parts.append(DayTx(
                np.floor(time[keep]), np.full(n, card, dtype=np.int64),
                terminal[keep].astype(np.int64), amount[keep],
                np.ones(n, np.int8), np.full(n, self.scenario, np.int8),
            ))
        return DayTx.concat(parts) if parts else None


@dataclass
class TerminalShift(Drift):
    terminals_per_day: int = 6
    days: int = 7
    hotspot_radius: float = 20.0

    def __post_init__(self) -> None:
        self.kind, self.scenario, self.stream = "terminal_shift", TERMINAL_SHIFT, 2
        self._until: np.ndarray | None = None
        self._hotspot: np.ndarray | None = None

    @property
    def takes_over_terminals(self) -> bool:
        return True

    def mark(
        self, day: int, tx: DayTx, state: FraudState, world: World, rng: np.random.Generator
    ) -> None:
        nt = world.config.n_terminals
        if self._until is None:
            self._until = np.zeros(nt, dtype=np.int64)
            centre = rng.uniform(0, 100, size=2)
            d2 = ((world.terminal_xy - centre) ** 2).sum(axis=1)
            near = np.nonzero(d2 < self.hotspot_radius**2)[0]
            self._hotspot = near if len(near) else np.arange(nt)
        hot = self._hotspot
        assert hot is not None
        picked = rng.choice(hot, size=min(self.terminals_per_day, len(hot)), replace=False)
        self._until[picked] = np.maximum(self._until[picked], day + self.days)
        bad = (self._until[tx.terminal] > day) & (tx.scenario == 0)
        tx.fraud[bad] = 1
        tx.scenario[bad] = self.scenario


@dataclass
class AmountShift(Drift):
    threshold: float = 180.0

    def __post_init__(self) -> None:
        self.kind, self.scenario, self.stream = "amount_shift", AMOUNT_SHIFT, 3

    def mark(
        self, day: int, tx: DayTx, state: FraudState, world: World, rng: np.random.Generator
    ) -> None:
        bad = (tx.amount > self.threshold) & (tx.scenario == 0)
        tx.fraud[bad] = 1
        tx.scenario[bad] = self.scenario


@dataclass
class NightGang(Drift):
    cards_per_day: int = 40
    tx_per_card: tuple[int, int] = (2, 4)
    amount: tuple[float, float] = (15.0, 90.0)
    district_radius: float = 15.0
    move_days: int = 7

    def __post_init__(self) -> None:
        self.kind, self.scenario, self.stream = "night_gang", NIGHT_GANG, 4
        self._district: np.ndarray | None = None

    def inject(self, day: int, world: World, rng: np.random.Generator) -> DayTx | None:
        nc, nt = world.config.n_customers, world.config.n_terminals
        if self._district is None or (day - self.start_day) % self.move_days == 0:
            centre = rng.uniform(0, 100, size=2)
            d2 = ((world.terminal_xy - centre) ** 2).sum(axis=1)
            near = np.nonzero(d2 < self.district_radius**2)[0]
            self._district = near if len(near) else np.arange(nt)
        cards = rng.choice(nc, size=min(self.cards_per_day, nc), replace=False)
        n = rng.integers(self.tx_per_card[0], self.tx_per_card[1] + 1, size=len(cards))
        first = rng.uniform(0, NIGHT_S * 0.5, size=len(cards))
        time = np.concatenate([
            np.minimum(f + np.cumsum(rng.uniform(300, 2400, k)), NIGHT_S - 1)
            for f, k in zip(first, n, strict=True)
        ])
        total = int(n.sum())
        return DayTx(
            np.floor(time), np.repeat(cards, n).astype(np.int64),
            rng.choice(self._district, size=total).astype(np.int64),
            np.round(rng.uniform(*self.amount, total), 2),
            np.ones(total, np.int8), np.full(total, self.scenario, np.int8),
        )


DRIFT_KINDS: dict[str, type[Drift]] = {
    "card_testing": CardTesting,
    "terminal_shift": TerminalShift,
    "amount_shift": AmountShift,
    "night_gang": NightGang,
}


def parse_drift(spec: str | None) -> list[Drift]:
    """``"card_testing@60,terminal_shift@90"`` -> drift objects. Empty/None: no drift.

    Raises ValueError with a one-line reason for an unknown name, a missing or negative day,
    or the same kind twice.
    """
    if not spec or not spec.strip():
        return []
    drifts: list[Drift] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, sep, day = part.partition("@")
        name = name.strip()
        if name not in DRIFT_KINDS:
            known = ", ".join(sorted(DRIFT_KINDS))
            raise ValueError(f"unknown drift {name!r} (known: {known})")
        if not sep or not day.strip().isdigit():
            raise ValueError(f"drift {part!r} needs a start day: {name}@DAY, DAY >= 0")
        if any(d.kind == name for d in drifts):
            raise ValueError(f"drift {name!r} given twice")
        drifts.append(DRIFT_KINDS[name](start_day=int(day)))
    return drifts
