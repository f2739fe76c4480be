from __future__ import annotations

import math
import random
from array import array

from streams.card_state import LEARNED_KEEP, N_FEATURES, CardState, HeldLabels


def test_round_trip_keeps_window_state_feature_log_and_bookkeeping() -> None:
    card = CardState()
    for i in range(5):
        card.customer.add_transaction(1000.0 + i, 10.0 * (i + 1))
        card.add_pending(i, 1000.0 + i, 7, 0.1 * i, [float(i)] * N_FEATURES)
    card.mark_done(99)
    card.early[123] = [1, 5000.0]
    back = CardState.from_bytes(card.to_bytes())
    assert back == card
    assert back.customer.amounts == card.customer.amounts
    assert back.get_pending(3).features == [3.0] * N_FEATURES  # type: ignore[union-attr]


def test_pop_pending_removes_only_that_row() -> None:
    card = CardState()
    for i in range(3):
        card.add_pending(i, float(i), i, 0.5, [float(i)] * N_FEATURES)
    entry = card.pop_pending(1)
    assert entry is not None and entry.terminal_id == 1
    assert card.n_pending() == 2 and card.get_pending(1) is None
    assert card.get_pending(2).features == [2.0] * N_FEATURES  # type: ignore[union-attr]
    assert card.scored(1) == entry  # its score is kept for a re-delivery


def test_only_the_last_learned_rows_are_kept() -> None:
    card = CardState()
    n = LEARNED_KEEP + 3
    for i in range(n):
        card.add_pending(i, float(i), i, i / 10, [float(i)] * N_FEATURES)
    for i in range(n):
        card.pop_pending(i)
    assert card.n_pending() == 0
    assert [i for i in range(n) if card.scored(i) is not None] == list(range(3, n))
    assert CardState.from_bytes(card.to_bytes()) == card


def test_expire_drops_rows_older_than_the_ttl() -> None:
    card = CardState()
    card.add_pending(1, 0.0, 1, 0.5, [0.0] * N_FEATURES)
    card.add_pending(2, 100 * 86_400.0, 1, 0.5, [0.0] * N_FEATURES)
    card.expire(100 * 86_400.0)
    assert card.get_pending(1) is None and card.get_pending(2) is not None


def test_a_corrupt_codec_version_is_refused() -> None:
    raw = bytearray(CardState().to_bytes())
    raw[0] = 9
    try:
        CardState.from_bytes(bytes(raw))
    except ValueError as exc:
        assert "codec" in str(exc)
    else:
        raise AssertionError("a foreign codec version was accepted")


def test_seen_is_exact_whether_or_not_ids_grow() -> None:
    """``seen`` skips the search for an id above every one the card recorded; any other id
    is searched, in a decoded card as in the one that recorded it."""
    card = CardState()
    for tx in (10, 30, 20):  # not in order: 20 comes after 30
        assert not card.seen(tx)
        card.add_pending(tx, float(tx), 1, 0.5, [0.0] * N_FEATURES)
    card.pop_pending(30)
    card.mark_done(30)
    for state in (card, CardState.from_bytes(card.to_bytes())):
        assert [tx for tx in (5, 10, 15, 20, 25, 30, 31) if state.seen(tx)] == [10, 20, 30]
    learned = CardState()
    learned.add_pending(40, 40.0, 1, 0.5, [0.0] * N_FEATURES)
    learned.pop_pending(40)  # kept under -41 as its score's record
    decoded = CardState.from_bytes(learned.to_bytes())
    for tx in (39, 40, 41):  # the search's answer, with or without the shortcut
        assert decoded.seen(tx) == (tx in decoded.done or decoded._row(tx) >= 0)
    assert decoded.newest == 40


def test_held_labels_answer_as_a_dict_through_any_sequence_of_changes() -> None:
    """``HeldLabels`` keeps its id index and oldest ``known_at`` in step with each change
    instead of rebuilding them: checked against a dict over random changes."""
    rng = random.Random(5)
    held, ref = HeldLabels(), {}
    for _ in range(3_000):
        tx, roll = rng.randrange(40), rng.random()
        if roll < 0.5:
            value = [rng.randrange(4), float(rng.randrange(1_000))]
            held[tx], ref[tx] = value, value
        elif roll < 0.8 and tx in ref:
            del held[tx], ref[tx]
        elif roll < 0.82:
            horizon = float(rng.randrange(1_000))
            assert held.drop_before(horizon) == sum(v[1] < horizon for v in ref.values())
            ref = {k: v for k, v in ref.items() if v[1] >= horizon}
        elif roll < 0.85:
            held = HeldLabels(array("d", held.flat))  # as decoded: no index yet
        assert held.get(tx) == ref.get(tx) and (tx in held) == (tx in ref)
        assert len(held) == len(ref)
        assert held.oldest_known_at() == min((v[1] for v in ref.values()), default=math.inf)
        probe = float(rng.randrange(1_000))
        assert held.any_before(probe) == any(v[1] < probe for v in ref.values())
    assert sorted(held.items()) == sorted((k, v) for k, v in ref.items())
