"""``CardTable``: store writes at once, changelog messages published in write order."""

from __future__ import annotations

import asyncio
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
