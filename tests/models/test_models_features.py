"""Each feature at its edges: window boundaries, the delay boundary, label timing, unseen keys."""

from __future__ import annotations

import json

import pytest

from models.features import (
    DAY,
    FEATURE_NAMES,
    CustomerState,
    FeatureEngine,
    TerminalState,
    customer_features,
    customer_window_features,
    terminal_features,
    time_features,
)

T0 = 1_532_476_800.0  # 2018-07-25 00:00 UTC, a Wednesday


def test_feature_names_follow_the_contract() -> None:
    assert len(FEATURE_NAMES) == 15
    assert FEATURE_NAMES[:3] == ("amount", "is_weekend", "is_night")
    assert FEATURE_NAMES[-1] == "term_risk_30d"


def test_time_features_weekend_and_night_boundaries() -> None:
    assert time_features(T0) == (0.0, 1.0)  # Wednesday, 00:00
    assert time_features(T0 + 6 * 3600 + 3599) == (0.0, 1.0)  # 06:59:59 is still night
    assert time_features(T0 + 7 * 3600) == (0.0, 0.0)  # 07:00 is day
    saturday = T0 + 3 * DAY
    assert time_features(saturday + 12 * 3600) == (1.0, 0.0)
    assert time_features(saturday - 1) == (0.0, 0.0)  # Friday 23:59:59
    assert time_features(saturday + 2 * DAY - 1)[0] == 1.0  # Sunday 23:59:59
    assert time_features(saturday + 2 * DAY)[0] == 0.0  # Monday 00:00


def test_unseen_customer_counts_only_the_current_transaction() -> None:
    state = CustomerState()
    assert customer_features(state, T0, 42.0) == (1.0, 42.0, 1.0, 42.0, 1.0, 42.0)


def test_customer_window_edges_are_half_open() -> None:
    state = CustomerState()
    customer_features(state, T0, 10.0)
    # exactly one day later: (t - 1d, t] excludes the first transaction
    n1, m1, n7, m7, n30, m30 = customer_features(state, T0 + DAY, 30.0)
    assert (n1, m1) == (1.0, 30.0)
    assert (n7, m7) == (2.0, 20.0)
    assert (n30, m30) == (2.0, 20.0)
    # one second less than a day after the second: both days' transactions in the 1-day window
    n1, m1, *_ = customer_features(state, T0 + 2 * DAY - 1, 50.0)
    assert (n1, m1) == (2.0, 40.0)


def test_customer_30_day_edge_and_pruning() -> None:
    state = CustomerState()
    customer_features(state, T0, 100.0)
    feats = customer_features(state, T0 + 30 * DAY - 1, 0.0)
    assert feats[4:] == (2.0, 50.0)
    feats = customer_features(state, T0 + 30 * DAY, 0.0)
    assert feats[4:] == (2.0, 0.0)  # the first one left the window ...
    assert state.ts[0] > T0  # ... and the state
    assert len(state.ts) == 2


def test_customer_out_of_order_event_is_inserted() -> None:
    state = CustomerState()
    customer_features(state, T0 + 100, 1.0)
    customer_features(state, T0 + 50, 3.0)
    assert list(state.ts) == [T0 + 50, T0 + 100]
    assert customer_window_features(state, T0 + 100)[:2] == (2.0, 2.0)


def test_unseen_terminal_has_zero_counts_and_risk() -> None:
    assert terminal_features(TerminalState(), T0, 7) == (0.0,) * 6


def test_terminal_window_ends_delay_days_ago() -> None:
    state = TerminalState()
    state.add_transaction(T0)
    state.add_label(T0, 1, T0 + DAY)
    # before the delay has passed, the transaction is not in any window
    assert terminal_features(state, T0 + 7 * DAY - 1, 7) == (0.0,) * 6
    # at exactly t - 7d = T0 it enters (windows are (t-(d+w), t-d]) with its fraud label known
    assert terminal_features(state, T0 + 7 * DAY, 7) == (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    # it leaves the 1-day window one day later, the 7-day one a week later
    assert terminal_features(state, T0 + 8 * DAY, 7)[:2] == (0.0, 0.0)
    assert terminal_features(state, T0 + 8 * DAY, 7)[2:4] == (1.0, 1.0)
    assert terminal_features(state, T0 + 14 * DAY, 7)[2:] == (0.0, 0.0, 1.0, 1.0)
    assert terminal_features(state, T0 + 37 * DAY, 7) == (0.0,) * 6


def test_terminal_risk_counts_only_labels_known_at_t() -> None:
    state = TerminalState()
    state.add_transaction(T0)
    state.add_transaction(T0 + 10)
    state.add_label(T0, 1, known_at=T0 + 9 * DAY)  # a late chargeback
    at = T0 + 7 * DAY + 20
    assert terminal_features(state, at, 7)[:2] == (2.0, 0.0)
    assert terminal_features(state, T0 + 9 * DAY - 1, 7)[4:] == (2.0, 0.0)
    assert terminal_features(state, T0 + 9 * DAY, 7)[4:] == (2.0, 0.5)


def test_genuine_labels_change_nothing_and_redelivery_is_idempotent() -> None:
    state = TerminalState()
    state.add_transaction(T0)
    state.add_label(T0, 0, T0 + DAY, tx_id=1)
    assert state.frauds == []
    state.add_label(T0, 1, T0 + DAY, tx_id=1)
    state.add_label(T0, 1, T0 + DAY, tx_id=1)
    assert len(state.frauds) == 1


def test_label_before_its_transaction_gives_the_same_features() -> None:
    """In the stream a label may overtake its transaction (different partitions)."""
    in_order, overtaken = TerminalState(), TerminalState()
    in_order.add_transaction(T0)
    in_order.add_label(T0, 1, T0 + 2 * DAY, tx_id=5)
    overtaken.add_label(T0, 1, T0 + 2 * DAY, tx_id=5)
    overtaken.add_transaction(T0)
    for t in (T0 + 7 * DAY, T0 + 8 * DAY, T0 + 20 * DAY):
        assert terminal_features(in_order, t, 7) == terminal_features(overtaken, t, 7)


def test_terminal_state_is_bounded_by_delay_plus_longest_window() -> None:
    state = TerminalState(retention_days=37)
    for day in range(100):
        state.add_transaction(T0 + day * DAY)
        state.add_label(T0 + day * DAY, 1, T0 + day * DAY + 1)
    assert len(state.ts) <= 38
    assert len(state.frauds) <= 38


def test_states_round_trip_through_json() -> None:
    cust, term = CustomerState(), TerminalState()
    customer_features(cust, T0, 12.5)
    term.add_transaction(T0)
    term.add_label(T0, 1, T0 + DAY, tx_id=9)
    cust2 = CustomerState.from_dict(json.loads(json.dumps(cust.to_dict())))
    term2 = TerminalState.from_dict(json.loads(json.dumps(term.to_dict())))
    assert cust2 == cust
    assert term2 == term
    assert TerminalState.from_dict(json.loads(json.dumps(TerminalState().to_dict()))) == (TerminalState())


def test_engine_combines_all_fifteen_in_contract_order() -> None:
    engine = FeatureEngine(delay_days=7)
    engine.features(T0, customer_id=1, terminal_id=9, amount=20.0)
    engine.add_label(terminal_id=9, tx_ts=T0, fraud=1, known_at=T0 + DAY, tx_id=0)
    x = engine.features(T0 + 7 * DAY, customer_id=2, terminal_id=9, amount=300.0)
    assert dict(zip(FEATURE_NAMES, x, strict=True)) == pytest.approx(
        {
            "amount": 300.0,
            "is_weekend": 0.0,
            "is_night": 1.0,
            "cust_n_1d": 1.0,
            "cust_mean_1d": 300.0,
            "cust_n_7d": 1.0,
            "cust_mean_7d": 300.0,
            "cust_n_30d": 1.0,
            "cust_mean_30d": 300.0,
            "term_n_1d": 1.0,
            "term_risk_1d": 1.0,
            "term_n_7d": 1.0,
            "term_risk_7d": 1.0,
            "term_n_30d": 1.0,
            "term_risk_30d": 1.0,
        }
    )
