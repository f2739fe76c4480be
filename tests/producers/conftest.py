"""Fixtures of the producers tests: simulated data is made once per session and kept small."""

from __future__ import annotations

import pandas as pd
import pytest

from producers.simulator import Simulator
from producers.world import WorldConfig


@pytest.fixture(scope="session")
def handbook_run() -> pd.DataFrame:
    """The full default world (5,000 customers, 10,000 terminals, 183 days): ~1 s to make."""
    return Simulator().frame()


@pytest.fixture(scope="session")
def small_run() -> pd.DataFrame:
    """Default world, first 20 days."""
    return Simulator(WorldConfig(n_days=20)).frame()
