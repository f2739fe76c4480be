"""How far CP@k can go on a data set: the oracle rankings a model's CP@k is read against.

CP@k (the precision of the k cards inspected each day) is capped by the world, not only by the
model: on a day with fewer than k fraudulent cards even a perfect ranking finds fewer than k.
A second, lower cap comes from the label delay. The simulator's scenario 2 compromises
terminals drawn at random, and every transaction at such a terminal is a fraud made exactly
like a genuine one (same customers, same amounts, same hours): until the first of its frauds
is labelled, nothing a model sees at scoring time tells it apart. Every terminal feature is
built from labels known ``delay`` days later, so a scenario-2 fraud at a terminal with no known
fraud in any of its windows is hidden from every model, whatever its inputs.

Two oracle rankings give the two caps, scored with the same CP@k rule as every model (cards
found fraudulent are left out of the following days; ties by card id):

* ``perfect``: every fraud first;
* ``revealable``: first every fraud some input could reveal (any fraud but scenario 2, and the
  scenario-2 frauds at terminals with a known fraud in some window), the hidden frauds ranked
  with the genuine transactions.

>>> import numpy as np
>>> ts = np.array([0.0, 10.0, 20.0, 30.0])
>>> card = np.array([1, 9, 2, 3])  # ties go to the lower card id
>>> fraud = np.array([1, 1, 0, 0])
>>> scenario = np.array([1, 2, 0, 0])
>>> terminal_risk = np.zeros((4, 1))  # no terminal has a known fraud yet
>>> revealable(fraud, scenario, terminal_risk).tolist()
[True, False, False, False]
>>> cp_ceilings(ts, card, fraud, scenario, terminal_risk, k=2)
{'perfect': 1.0, 'revealable': 0.5}
"""

from __future__ import annotations

import numpy as np

from models.features import FEATURE_NAMES
from models.metrics import card_precision_at_k

TERMINAL_COMPROMISE = 2  # the handbook's scenario 2: frauds hidden until a label is known
TERMINAL_RISK_COLUMNS: tuple[int, ...] = tuple(
    i for i, name in enumerate(FEATURE_NAMES) if name.startswith("term_risk"))
"""The feature columns built from a terminal's known frauds (one per window)."""


def revealable(fraud: np.ndarray, scenario: np.ndarray, terminal_risk: np.ndarray) -> np.ndarray:
    """Frauds an input could reveal at scoring time: all but the scenario-2 frauds at terminals
    whose every risk window (``terminal_risk``: one column per window) is still 0."""
    known_terminal = (np.asarray(terminal_risk) > 0).any(axis=1)
    bad = np.asarray(fraud).astype(bool)
    return bad & ((np.asarray(scenario) != TERMINAL_COMPROMISE) | known_terminal)


def cp_ceilings(
    ts: np.ndarray,
    customer_id: np.ndarray,
    fraud: np.ndarray,
    scenario: np.ndarray,
    terminal_risk: np.ndarray,
    k: int = 100,
) -> dict[str, float]:
    """CP@k of the perfect and of the revealable-frauds-first rankings on these rows."""
    bad = np.asarray(fraud).astype(np.float64)
    shown = revealable(fraud, scenario, terminal_risk).astype(np.float64)
    return {
        "perfect": float(card_precision_at_k(ts, customer_id, fraud, bad, k)[0]),
        "revealable": float(card_precision_at_k(ts, customer_id, fraud, shown, k)[0]),
    }
