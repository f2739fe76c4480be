"""A card is read in its record's partition, whatever event Faust holds as current.

Faust's RocksDB store looks a key up in the partition of its *current event*. A batch of events
(``take_events``) leaves that at whatever was bound last, often another partition's: the card
was then not found, the processor began a fresh one, and its next write replaced the stored
card. In a full ``fraudstream chaos --only crash`` run, 81 labels of transactions scored
before a kill found no transaction on their card and were never learned. Here with Faust's
own RocksDB store and the worker's own event binding, no broker needed.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from types import SimpleNamespace

import faust
from faust.streams import _current_event

from models.registry import Registry
from producers.events import Label, Transaction, encode_label, encode_transaction
from streams.card_state import CardState
from streams.card_table import CardTable
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica

DAY = 86_400.0


class _Event:
    """What Faust's store and table read of an event: its message's partition (weakly
    referenced, as Faust holds its current event)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition, topic="transactions")


def _event(partition: int) -> _Event:
    return _Event(partition)


def _bind_event(event: _Event) -> None:
    """Make ``event`` Faust's current event, as Faust does while iterating a stream."""
    _current_event.set(weakref.ref(event))  # type: ignore[arg-type]


def _cards(tmp_path: Path) -> CardTable:
    app = faust.App("cards-by-partition", store="rocksdb://", datadir=str(tmp_path / "data"))
    table = app.Table("cards", key_type=bytes, value_type=bytes, partitions=4)
    # Faust checks a source topic's partition count against the changelog's once, through a
    # running consumer; there is none here, so the check is marked done
    table._verified_source_topics_for_partitions.add("transactions")
    return CardTable(table)


def test_faust_reads_in_the_current_events_partition_and_read_does_not(tmp_path: Path) -> None:
    cards = _cards(tmp_path)
    home, other = _event(1), _event(0)
    _bind_event(home)
    cards[b"7"] = b"state"
    cards.write()  # into partition 1's RocksDB, as publish() does
    _bind_event(other)
    assert cards.get(b"7") is None  # the hazard: Faust looks in partition 0
    assert cards.read(b"7", 1) == b"state"
    assert cards.read(b"7", 0) is None  # not there: partitions are separate databases


def test_a_label_after_a_restart_finds_its_scored_transaction(tmp_path: Path) -> None:
    """The crash scenario's loss, replayed: a transaction scored on partition 1, the worker's
    card cache gone (a restart), the label read while an event of partition 0 is current."""
    cards = _cards(tmp_path)
    runtime = ModelRuntime("logreg", Registry(tmp_path / "reg", "k"), "t-logreg",
                           snapshot_every=10**9)
    runtime.start()
    proc = Processor(cards, TerminalReplica(7.0), runtime, Telemetry("w0"),
                     alert_threshold=2.0, partitions=4)
    tx = Transaction(5, 10 * DAY, 7, 3, 42.0, 0.0)
    home = _event(1)
    proc.score([Record(b"7", encode_transaction(tx), "transactions", 1, 0, home)])
    cards.write()
    proc.invalidate()  # what a restart leaves: nothing cached
    other = _event(0)  # held: Faust keeps only a weak reference to its current event
    _bind_event(other)  # the last card written by the other agent was partition 0's
    label = Label(5, 7, 3, tx.ts, 1, tx.ts + 7 * DAY, 0.0)
    proc.clock.advance(1, tx.ts + 8 * DAY)  # the partition's transactions are past known_at
    proc.learn([Record(b"7", encode_label(label), "labels", 1, 0, home)])
    assert proc.telemetry.learned._value.get() == 1
    cards.write()
    stored = CardState.from_bytes(cards.read(b"7", 1))
    assert 5 in stored.done and 5 not in stored.early
