"""``CardTable``: writes readable at once, stored and published in write order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streams.card_table import CardTable


class _Meta:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic_partition, self.offset = ("cards-changelog", partition), offset


class _Producer:
    """Faust's producer as ``CardTable`` uses it: ``send`` returns a future of metadata."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int,
                   timestamp: Any, headers: Any) -> asyncio.Future:
        await asyncio.sleep(0)  # a real send can yield before it appends
        self.sent.append((partition, key, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(_Meta(partition, len(self.sent) - 1))
        return done


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


def test_two_agents_publishing_at_once_keep_the_write_order() -> None:
    """Both agents write cards; the changelog must never carry a card's writes reordered."""
    table = _Table()
    cards = CardTable(table)

    async def run() -> None:
        for i in range(50):
            cards[b"7"] = str(i).encode()
        first = asyncio.create_task(cards.publish())
        for i in range(50, 100):
            cards[b"7"] = str(i).encode()
        await asyncio.gather(first, cards.publish())

    asyncio.run(run())
    assert [int(v) for _, _, v in table.app.producer.sent] == list(range(100))


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
    assert cards.get(b"7") == b"c" and cards.unwritten == {}
    assert [v for _, _, v in table.app.producer.sent] == [b"a", b"b", b"c"]  # every write
    assert dict(cards.scan()) == {b"7": b"c", b"8": b"b"}
    assert store.persisted == {("cards-changelog", 1): 2, ("cards-changelog", 2): 1}  # newest
