"""``CardTable``: store writes at once, changelog messages published in write order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.card_table import CardTable


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, bytes]] = []

    async def send(self, *, key: bytes, value: bytes, partition: int, **_: Any) -> None:
        await asyncio.sleep(0)  # a real send can yield before it appends
        self.sent.append((partition, key, value))


class _Table:
    """What ``CardTable`` uses of a ``faust.Table``."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = _Topic()
        self.partition = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def partition_for_key(self, key: bytes) -> int:
        return self.partition

    def _on_changelog_sent(self, fut: Any) -> None:
        pass


def test_write_is_readable_at_once_and_published_later() -> None:
    table = _Table()
    cards = CardTable(table)
    table.partition = 3
    cards[b"7"] = b"state"
    assert cards.get(b"7") == b"state" and cards[b"7"] == b"state"
    assert cards.get(b"8") is None
    with pytest.raises(KeyError):
        cards[b"8"]
    assert table.changelog_topic.sent == []
    asyncio.run(cards.publish())
    assert table.changelog_topic.sent == [(3, b"7", b"state")]


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
    assert [int(v) for _, _, v in table.changelog_topic.sent] == list(range(100))
