"""Small synthetic training sets for model tests."""

from __future__ import annotations

import numpy as np

from models.features import FEATURE_NAMES


def easy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frauds are the large amounts at night (the other 13 features are noise): a pattern
    every model should find."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    X[:, 0] = rng.gamma(2.0, 40.0, n)
    X[:, 2] = rng.integers(0, 2, n)
    y = ((X[:, 0] > 150) & (X[:, 2] == 1)).astype(int)
    return X, y
