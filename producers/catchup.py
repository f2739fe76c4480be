"""Waiting, between a backfill and live traffic, until the workers have consumed the backfill.

A bank that bootstraps a stream from history opens live traffic once its workers are
current; live events sent while the workers still chew on weeks of backfill would only queue
behind it, and their latency would measure the backfill, not the pipeline. The workers'
progress is their consumer group's committed offsets on the transactions topic (Faust commits
about every second), against the topic's end offsets once the backfill is flushed.

Reading a group's committed offsets does not join the group (no ``poll``, no subscription),
so the workers are not rebalanced by the producer looking at them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class OffsetSource(Protocol):
    """The two calls of kafka-python's KafkaConsumer this module needs."""

    def end_offsets(self, partitions: list[Any]) -> dict[Any, int]: ...

    def committed(self, partition: Any) -> int | None: ...


@dataclass
class CatchUp:
    """How the wait ended: seconds waited and messages still unconsumed (0: caught up)."""

    waited_s: float
    behind: int


def behind(source: OffsetSource, partitions: list[Any], ends: dict[Any, int]) -> int:
    """Messages of ``ends`` the group has not committed yet (no commit: all of them)."""
    return sum(max(0, ends[tp] - (source.committed(tp) or 0)) for tp in partitions)


def wait_until_consumed(
    source: OffsetSource, partitions: list[Any], max_s: float, poll_s: float = 0.5,
    on_poll: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> CatchUp:
    """Poll until the group committed the current end of ``partitions``, or ``max_s`` passed."""
    ends = source.end_offsets(partitions)
    started = clock()
    while True:
        left = behind(source, partitions, ends)
        if on_poll is not None:
            on_poll(left)
        if left == 0 or clock() - started >= max_s:
            return CatchUp(clock() - started, left)
        sleep(poll_s)


def wait_for_group(kafka_kwargs: dict[str, Any], group: str, topic: str,
                   max_s: float, on_poll: Callable[[int], None] | None = None) -> CatchUp:
    """``wait_until_consumed`` for consumer group ``group`` on every partition of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(group_id=group, enable_auto_commit=False, **kafka_kwargs)
    try:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in parts]
        return wait_until_consumed(consumer, tps, max_s, on_poll=on_poll)
    finally:
        consumer.close(autocommit=False)
