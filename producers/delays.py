"""When the bank learns a transaction's label.

A fraud becomes known when the card holder disputes it, after a delay drawn from a configurable
distribution; a genuine transaction is confirmed only when the feedback window (7 days, as in
the handbook) has passed without a dispute.

Spec strings, delays in days: ``fixed:days=7``, ``uniform:low=1,high=7``,
``exponential:mean=2``, ``gamma:shape=2,scale=1``, ``lognormal:median=2,sigma=0.7``; each takes
an optional ``max=D`` that truncates the distribution (draws above are redrawn, so there is no
spike at the cap). The default, ``gamma:shape=2,scale=1,max=7``, has a mean of about 2 days and
every fraud known within the 7-day window - the handbook's assumption that all labels of a
week-old transaction are known, which the terminal-risk features rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_FRAUD_DELAY = "gamma:shape=2,scale=1,max=7"
DEFAULT_FEEDBACK_DAYS = 7.0

_PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("days",),
    "uniform": ("low", "high"),
    "exponential": ("mean",),
    "gamma": ("shape", "scale"),
    "lognormal": ("median", "sigma"),
}


@dataclass(frozen=True)
class DelayDistribution:
    """A parsed delay distribution in days."""

    kind: str
    params: dict[str, float] = field(default_factory=dict)
    max_days: float | None = None

    def _raw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        if self.kind == "fixed":
            return np.full(n, p["days"])
        if self.kind == "uniform":
            return rng.uniform(p["low"], p["high"], n)
        if self.kind == "exponential":
            return rng.exponential(p["mean"], n)
        if self.kind == "gamma":
            return rng.gamma(p["shape"], p["scale"], n)
        return rng.lognormal(np.log(p["median"]), p["sigma"], n)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` delays in days, redrawing those above ``max_days``."""
        out = self._raw(rng, n)
        if self.max_days is None:
            return out
        for _ in range(1000):
            over = out > self.max_days
            k = int(over.sum())
            if not k:
                return out
            out[over] = self._raw(rng, k)
        raise ValueError(f"delay distribution {self} almost never falls below max={self.max_days}")


def parse_delay(spec: str) -> DelayDistribution:
    """Parse ``kind:key=value,...``; ValueError with a one-line reason when it is wrong."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in _PARAMS:
        raise ValueError(f"unknown delay distribution {kind!r} (known: {', '.join(_PARAMS)})")
    values: dict[str, float] = {}
    for item in (i.strip() for i in rest.split(",") if i.strip()):
        key, eq, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not eq or not np.isfinite(number) or number < 0:
            raise ValueError(f"delay parameter {item!r} must be key=non-negative number")
        values[key.strip()] = number
    max_days = values.pop("max", None)
    needed = _PARAMS[kind]
    unknown = set(values) - set(needed)
    if unknown:
        raise ValueError(f"{kind} delay takes {', '.join(needed)}, max; not {sorted(unknown)}")
    missing = [k for k in needed if k not in values]
    if missing:
        raise ValueError(f"{kind} delay needs {', '.join(missing)}")
    if kind == "uniform" and values["low"] > values["high"]:
        raise ValueError("uniform delay needs low <= high")
    positive = {"exponential": "mean", "gamma": "shape", "lognormal": "median"}
    if kind in positive and values[positive[kind]] <= 0:
        raise ValueError(f"{kind} delay needs {positive[kind]} > 0")
    if kind == "gamma" and values["scale"] <= 0:
        raise ValueError("gamma delay needs scale > 0")
    dist = DelayDistribution(kind, values, max_days)
    if max_days is not None:
        dist.sample(np.random.default_rng(0), 64)  # fails now rather than mid-run
    return dist
