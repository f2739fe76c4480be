"""The terminal replica ignores a transaction it has applied (deltas are read back and may be
re-published), and forgets the ids past its retention by whole event-time days."""

from __future__ import annotations

import struct

from models.features import DAY, MAX_WINDOW_DAYS
from streams.terminal_replica import TerminalReplica


def _remembered(replica: TerminalReplica) -> list[int]:
    return sorted(i for ids in replica._ids.values() for (i,) in struct.iter_unpack("<q", ids))


def test_a_repeated_transaction_counts_once() -> None:
    replica = TerminalReplica(delay_days=7.0)
    for tx_id, ts in ((1, 10 * DAY), (2, 10.5 * DAY), (1, 10 * DAY)):
        replica.apply_tx(5, ts, tx_id)
    once = TerminalReplica(delay_days=7.0)
    once.apply_tx(5, 10 * DAY, 1)
    once.apply_tx(5, 10.5 * DAY, 2)
    later = 20 * DAY  # the windows end ``delay`` days before: both are inside
    assert replica.features(5, later) == once.features(5, later)
    assert replica.remembered_ids() == 2


def test_ids_past_the_retention_are_forgotten_by_day_and_recent_ones_kept() -> None:
    replica = TerminalReplica(delay_days=7.0)
    retention = 7.0 + MAX_WINDOW_DAYS + 1
    tx_id = 0
    for day in range(100):
        for k in range(10):
            tx_id += 1
            replica.apply_tx(day % 3, day * DAY + k * 60.0, tx_id)
    # the last pass ran at day 99: days before 99 - retention are gone, the rest kept
    kept_days = 100 - int(99 - retention)
    assert replica.remembered_ids() == 10 * kept_days
    replica.apply_tx(0, 99 * DAY + 3600.0, tx_id)  # a recent repeat: still ignored
    assert replica.remembered_ids() == 10 * kept_days
    assert _remembered(replica)[0] == 10 * int(99 - retention) + 1


def test_an_id_is_found_only_whole_not_across_two_ids() -> None:
    """Ids are searched as bytes: a match straddling two stored ids is not one."""
    replica = TerminalReplica(delay_days=7.0)
    first, second = 0x0100000000000000, 0x0000000000000002  # little-endian: 00..01 02 00..
    replica.apply_tx(5, 10 * DAY, first)
    replica.apply_tx(5, 10 * DAY, second)
    straddling = 0x0000000000000201  # bytes 7..14 of the two: 01 02 00 00 00 00 00 00
    assert bytes(replica._ids[5]).find(straddling.to_bytes(8, "little")) == 7
    replica.apply_tx(5, 10.2 * DAY, straddling)
    assert replica.remembered_ids() == 3
    assert _remembered(replica) == sorted([first, second, straddling])
