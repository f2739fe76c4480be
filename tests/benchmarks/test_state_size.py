"""State per card stays bounded as a card lives on (issue 12), measured on the worker's own
``Processor`` by ``benchmarks.state_size``."""

from __future__ import annotations

from pathlib import Path

from benchmarks.state_size import deep_size, replay, world


def test_state_per_card_is_bounded_in_time(tmp_path: Path) -> None:
    early, late = replay(world(60, 90, seed=3), 60, [40, 90], tmp_path)
    assert early.cards > 30 and late.transactions > early.transactions * 2
    # the windows are full by day 40: 50 more days add nothing per card (30-day window,
    # rows until their 7-day label, a fixed number of learned ids)
    assert late.stored_bytes / late.cards <= 1.25 * early.stored_bytes / early.cards
    assert late.pending_rows <= 1.5 * early.pending_rows
    # terminals keep 38 days: their state stops growing too
    assert late.terminal_bytes / late.terminals <= 1.5 * early.terminal_bytes / early.terminals


def test_deep_size_counts_what_a_card_holds() -> None:
    from streams.card_state import N_FEATURES, CardState

    card = CardState()
    empty = deep_size(card)
    for i in range(10):
        card.add_pending(i, float(i), 1, 0.5, [0.0] * N_FEATURES)
    assert deep_size(card) >= empty + 10 * (4 + N_FEATURES) * 8
