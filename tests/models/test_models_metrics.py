"""Exact metrics, and card precision at k on a hand-made case following the handbook."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics import auc, average_precision, card_precision_at_k, score_all

DAY = 86_400.0


def test_cp_at_k_hand_made_two_days() -> None:
    # day 0: cards 1..4; card 1 has one fraud among two transactions, card 3 is fraudulent
    # day 1: card 1 again (already detected on day 0 -> left out), card 5 fraudulent, card 6 not
    ts = np.array([0, 10, 20, 30, 40, DAY + 1, DAY + 2, DAY + 3], dtype=float)
    card = np.array([1, 1, 2, 3, 4, 1, 5, 6])
    fraud = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    score = np.array([0.2, 0.9, 0.8, 0.1, 0.3, 0.99, 0.4, 0.5])
    # k = 2, day 0: card maxima 1:0.9 (fraud), 2:0.8, 4:0.3, 3:0.1 -> top 2 = {1, 2}, 1 hit
    # day 1: card 1 removed; 6:0.5, 5:0.4 -> top 2 = {6, 5}, 1 hit
    mean, per_day = card_precision_at_k(ts, card, fraud, score, k=2)
    assert per_day == [0.5, 0.5]
    assert mean == 0.5
    # without removing detected cards, card 1 (0.99, fraud) and card 6 are the day-1 top 2
    _, kept = card_precision_at_k(ts, card, fraud, score, k=2, remove_detected=False)
    assert kept == [0.5, 0.5]
    # k larger than the number of cards still divides by k, as in the handbook
    _, per_day = card_precision_at_k(ts, card, fraud, score, k=4)
    assert per_day == [0.5, 0.25]


def test_cp_at_k_ties_are_deterministic() -> None:
    ts = np.zeros(4)
    card = np.array([4, 3, 2, 1])
    fraud = np.array([1, 0, 0, 0])
    score = np.full(4, 0.5)
    # ties broken by card id: card 1 comes first
    assert card_precision_at_k(ts, card, fraud, score, k=1)[1] == [0.0]
    assert card_precision_at_k(ts, card, fraud, score, k=4)[1] == [0.25]


def test_exact_auc_and_ap_match_hand_computation() -> None:
    y = np.array([0, 0, 1, 1, 0])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2])
    # pairs (pos, neg): 0.35 beats 0.1 and 0.2, loses to 0.4; 0.8 beats all three -> 5/6
    assert auc(y, s) == pytest.approx(5 / 6)
    # ranked: 0.8(+) 0.4(-) 0.35(+): precision 1 at recall .5, 2/3 at recall 1
    assert average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert np.isnan(auc(np.zeros(3), np.arange(3.0)))
    scores = score_all(np.zeros(5), np.arange(5), y, s, k=2)
    assert scores.n == 5 and scores.n_fraud == 2
    assert scores.cp_at_100 == pytest.approx(0.5)
