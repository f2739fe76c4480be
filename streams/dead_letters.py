"""Dead letters once: which malformed messages about to be re-read are already dead-lettered.

A worker re-reads messages after a crash or a rebalance (those past its committed offsets, and
the rewind margin of ``streams.rewind``). A malformed one among them used to be dead-lettered
again on each re-read: after three kills, 152 DLQ messages for 44 malformed events. Before the
re-read, the worker reads the dead-letter topics' recent tail and notes each dead letter's
source (topic, partition, offset, and the event's index when the letter is for one malformed
event of an envelope whose other events went on); the processor skips what already has one.

Consumers of the DLQ can also deduplicate on that source: every dead letter carries it
(``source_topic``, ``partition``, ``offset``, and ``envelope_index`` for one event of an
envelope; see ``docs/contracts.md``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from streams.published import READBACK_CONSUMER, first_timestamp, read_since

log = logging.getLogger(__name__)

Source = tuple[str, int, int, int]
"""(source topic, partition, offset, envelope index or ``WHOLE``) of a dead letter."""

WHOLE = -1
"""The envelope index of a letter for a whole message."""


def source_of(value: bytes) -> Source | None:
    """The source of a dead letter's value, or None when it has none.

    >>> source_of(b'{"source_topic": "transactions", "partition": 2, "offset": 7}')
    ('transactions', 2, 7, -1)
    >>> source_of(b'{"source_topic": "labels", "partition": 0, "offset": 3, "envelope_index": 4}')
    ('labels', 0, 3, 4)
    >>> source_of(b"not json") is None
    True
    """
    try:
        body = json.loads(value)
        index = body.get("envelope_index")
        return (str(body["source_topic"]), int(body["partition"]), int(body["offset"]),
                WHOLE if index is None else int(index))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


async def read_dead_letters(
    kafka_kwargs: dict[str, Any],
    dlq_topics: Iterable[str],
    starts: Mapping[Any, int],
    slack_s: float = 60.0,
    budget_s: float = 15.0,
) -> set[Source]:
    """Sources of the dead letters written since the first message of ``starts`` was.

    ``starts`` maps each source partition about to be re-read to its first offset. Past
    ``budget_s`` it returns what it has: a dead letter it missed is sent again, as before.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    sources: set[Source] = set()
    if not starts:
        return sources
    deadline = time.monotonic() + budget_s
    consumer = AIOKafkaConsumer(**READBACK_CONSUMER, **kafka_kwargs)
    await consumer.start()
    try:
        first_ms, _ = await first_timestamp(consumer, starts, deadline)
        if first_ms is None:
            return sources
        # One partition each, as declared (``infra.settings.TopicSettings.specs``): a DLQ is
        # rare traffic, kept in the order it was written.
        tps = [TopicPartition(topic, 0) for topic in dlq_topics]

        def note(value: bytes) -> None:
            source = source_of(value)
            if source is not None:
                sources.add(source)

        if await read_since(consumer, tps, first_ms - int(slack_s * 1000), deadline, note):
            log.warning("read %d dead letters in %.0f s and stopped; a malformed message "
                        "re-read beyond them may be dead-lettered twice", len(sources), budget_s)
    finally:
        await consumer.stop()
    return sources
