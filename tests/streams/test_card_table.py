"""``CardTable``: staged writes readable at once, written once per publish, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streams.card_table import BATCH_FROM, PUBLISH_SLICE, CardTable


class _Meta:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic_partition, self.offset = ("cards-changelog", partition), offset


class _Batch:
    """aiokafka's ``BatchBuilder`` as ``CardTable`` uses it, holding ``room`` records."""

    def __init__(self, room: int) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.room = room

    def append(self, *, timestamp: Any, key: bytes, value: bytes) -> object | None:
        if len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        self.room = len(self.records)


class _Kafka:
    """The AIOKafkaProducer behind Faust's producer: batches and single sends, in order.
    Offsets are per partition, as the broker gives them."""

    def __init__(self, room: int) -> None:
        self.sent: list[tuple[int, bytes, bytes]] = []
        self.batches: list[int] = []  # records per batch sent
        self.offsets: dict[int, int] = {}
        self.room = room

    def create_batch(self) -> _Batch:
        return _Batch(self.room)

    def _append(self, partition: int, records: list[tuple[bytes, bytes]]) -> asyncio.Future:
        base = self.offsets.get(partition, 0)
        self.offsets[partition] = base + len(records)
        self.sent.extend((partition, k, v) for k, v in records)
        done = asyncio.get_running_loop().create_future()
        done.set_result(_Meta(partition, base))
        return done

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future:
        await asyncio.sleep(0)  # a real send can yield before it appends
        self.batches.append(batch.record_count())
        return self._append(partition, batch.records)

    async def send(self, topic: str, value: bytes, *, key: bytes,
                   partition: int) -> asyncio.Future:
        await asyncio.sleep(0)
        self.batches.append(1)
        return self._append(partition, [(key, value)])


class _Producer:
    """Faust's producer as ``CardTable`` uses it: the Kafka producer it wraps."""

    def __init__(self, room: int = 1000) -> None:
        self.kafka = _Kafka(room)

    @property
    def sent(self) -> list[tuple[int, bytes, bytes]]:
        return self.kafka.sent

    def _ensure_producer(self) -> _Kafka:
        return self.kafka


class _Store(dict):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[Any, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class _Topic:
    def get_topic_name(self) -> str:
        return "cards-changelog"


class _App:
    def __init__(self) -> None:
        self.producer = _Producer()


class _Table:
    """What ``CardTable`` uses of a ``faust.Table``."""

    def __init__(self) -> None:
        self.data = _Store()
        self.app = _App()
        self.changelog_topic = _Topic()
        self.partition = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def partition_for_key(self, key: bytes) -> int:
        return self.partition


def test_write_is_readable_at_once_and_published_later() -> None:
    table = _Table()
    cards = CardTable(table)
    table.partition = 3
    cards[b"7"] = b"state"
    assert cards.get(b"7") == b"state" and cards[b"7"] == b"state"
    assert cards.get(b"8") is None
    with pytest.raises(KeyError):
        cards[b"8"]
    assert table.app.producer.sent == []

    async def publish_and_settle() -> None:
        await cards.publish()
        await asyncio.sleep(0)  # done callbacks run on the next loop turn

    asyncio.run(publish_and_settle())
    assert table.app.producer.sent == [(3, b"7", b"state")]
    # the local store knows how far its changelog partition is (Faust reads it at recovery)
    assert table.data.persisted == {("cards-changelog", 3): 0}


def test_a_card_changed_many_times_is_written_once_per_publish() -> None:
    table = _Table()
    cards = CardTable(table)
    for i in range(50):
        cards[b"7"] = str(i).encode()
    cards[b"8"] = b"x"

    async def run() -> int:
        return await cards.publish()

    assert asyncio.run(run()) == 2
    assert table.app.producer.sent == [(0, b"7", b"49"), (0, b"8", b"x")]
    assert table.data == {b"7": b"49", b"8": b"x"}


def test_a_change_staged_while_a_publish_sends_goes_out_after_it() -> None:
    """Both agents and the flushes publish; a card's writes must never reach the changelog
    reordered, even when it changes while an earlier publish is still sending."""
    table = _Table()
    cards = CardTable(table)

    async def run() -> None:
        cards[b"7"] = b"old"
        first = asyncio.create_task(cards.publish())
        await asyncio.sleep(0)  # the first publish has taken "old" and is sending it
        cards[b"7"] = b"new"
        assert cards.get(b"7") == b"new"
        await asyncio.gather(first, cards.publish())

    asyncio.run(run())
    assert [v for _, _, v in table.app.producer.sent] == [b"old", b"new"]
    assert table.data[b"7"] == b"new"


class _Card:
    """A staged card object: encoded only when it is written."""

    def __init__(self) -> None:
        self.version, self.encoded = 0, 0

    def to_bytes(self) -> bytes:
        self.encoded += 1
        return str(self.version).encode()


def test_a_staged_card_object_is_encoded_when_written_with_its_latest_state() -> None:
    table = _Table()
    cards = CardTable(table)
    card = _Card()
    cards.stage(b"7", 2, card)
    card.version = 3  # changed again after it was staged, before the publish
    assert cards.read(b"7", 2) == b"3"  # reads see it as if it were written
    encoded_by_read = card.encoded

    asyncio.run(cards.publish())
    assert table.app.producer.sent == [(2, b"7", b"3")]
    assert card.encoded == encoded_by_read + 1  # once for the write, whatever changed before
    assert cards.staged == {} and table.data[b"7"] == b"3"


class _RocksStore:
    """What ``CardTable`` uses of Faust's rocksdict store: one real RocksDB per partition."""

    use_rocksdict = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dbs: dict[int, Any] = {}
        self._key_index: dict[bytes, int] = {}
        self.persisted: dict[Any, int] = {}

    def _db_for_partition(self, partition: int) -> Any:
        from rocksdict import Options, Rdict

        if partition not in self._dbs:
            self._dbs[partition] = Rdict(str(self.root / str(partition)), Options(raw_mode=True))
        return self._dbs[partition]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        raise AssertionError("a rocksdict store is written in batches, never per key")

    def get(self, key: bytes) -> bytes | None:
        partition = self._key_index.get(key)
        return None if partition is None else self._dbs[partition].get(key)

    def items(self) -> Any:
        for db in self._dbs.values():
            yield from db.items()

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


def test_rocksdb_writes_wait_for_publish_and_go_as_one_batch_per_partition(
    tmp_path: Path,
) -> None:
    table = _Table()
    table.data = _RocksStore(tmp_path)  # type: ignore[assignment]
    cards = CardTable(table)
    for partition, key, value in ((1, b"7", b"a"), (2, b"8", b"b"), (1, b"7", b"c")):
        table.partition = partition
        cards[key] = value
    assert cards.get(b"7") == b"c" and cards[b"8"] == b"b"  # read before they are written
    assert table.data._dbs == {}

    async def publish_and_settle() -> None:
        await cards.publish()
        await asyncio.sleep(0)

    asyncio.run(publish_and_settle())
    store = table.data
    assert store._dbs[1].get(b"7") == b"c" and store._dbs[2].get(b"8") == b"b"
    assert cards.get(b"7") == b"c" and cards.staged == {}
    # each card once, as last changed (few: one send each)
    assert sorted(table.app.producer.sent) == [(1, b"7", b"c"), (2, b"8", b"b")]
    assert table.app.producer.kafka.batches == [1, 1]
    assert dict(cards.scan()) == {b"7": b"c", b"8": b"b"}
    assert store.persisted == {("cards-changelog", 1): 0, ("cards-changelog", 2): 0}


def test_a_full_batch_is_sent_and_the_next_one_started_in_order() -> None:
    table = _Table()
    table.app.producer = _Producer(room=3)
    cards = CardTable(table)
    for i in range(8):
        cards[str(i).encode()] = str(i).encode()

    async def publish_and_settle() -> None:
        await cards.publish()
        await asyncio.sleep(0)

    asyncio.run(publish_and_settle())
    assert [v for _, _, v in table.app.producer.sent] == [str(i).encode() for i in range(8)]
    assert table.app.producer.kafka.batches == [3, 3, 2]
    assert table.data.persisted == {("cards-changelog", 0): 7}


def test_a_message_larger_than_a_batch_goes_alone_in_its_place() -> None:
    table = _Table()
    table.app.producer = _Producer(room=0)  # nothing fits in a batch
    cards = CardTable(table)
    for i in range(BATCH_FROM):
        cards[str(i).encode()] = str(i).encode()

    async def publish_and_settle() -> None:
        await cards.publish()
        await asyncio.sleep(0)

    asyncio.run(publish_and_settle())
    assert [v for _, _, v in table.app.producer.sent] == [str(i).encode()
                                                          for i in range(BATCH_FROM)]
    assert table.app.producer.kafka.batches == [1] * BATCH_FROM
    assert table.data.persisted == {("cards-changelog", 0): BATCH_FROM - 1}


def test_a_publish_goes_slice_by_slice_and_its_cards_stay_readable_meanwhile() -> None:
    """A publish of most cards (a replay) encodes, stores and sends ``PUBLISH_SLICE`` at a
    time, so their bytes are not all alive at once; a card whose slice is still to come is
    read as it is now, from the publish, not from the older store."""
    table = _Table()
    cards = CardTable(table)
    n = 2 * PUBLISH_SLICE + 88
    for i in range(n):
        cards[str(i).encode()] = b"new"
    last = str(n - 1).encode()
    table.data[last] = b"old"  # what the store held before this publish
    seen_meanwhile: list[tuple[bytes | None, bytes | None, bool]] = []

    async def run() -> None:
        publishing = asyncio.create_task(cards.publish())
        await asyncio.sleep(0)  # the first slice is being sent
        seen_meanwhile.append((cards.read(last, 0), cards.get(last),
                               dict(cards.scan()).get(last) == b"new"))
        await publishing

    asyncio.run(run())
    assert seen_meanwhile == [(b"new", b"new", True)]
    assert table.app.producer.kafka.batches == [PUBLISH_SLICE, PUBLISH_SLICE, 88]
    assert len(table.app.producer.sent) == n and table.data[last] == b"new"
    assert cards.publishing == {}
