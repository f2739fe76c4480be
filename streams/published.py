"""Read back the scores already published for transactions a worker is about to re-read.

Why: a score, once on the ``scores`` topic, is a decision somebody may have acted on. After a
crash or a rebalance the worker re-reads transactions (uncommitted ones, and the rewind margin
of ``streams.rewind``). Most of them its card state recognises; but a SIGKILL can leave a
score on Kafka while the card's changelog write that recorded it was lost (they go to
different partitions, in different produce requests). Scored again, such a transaction would
get a second, different score from a model that has learned since. With this map the
processor answers it with the score that is already out, and applies it to the card as the
first incarnation did.

Which scores: those produced since the first re-read transaction was (record timestamps,
less ``slack_s`` for clocks), of cards in the partitions this worker was given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from infra.settings import READ_COMMITTED
from producers.partitioning import murmur2_partition
from streams.score_messages import decode_scores

log = logging.getLogger(__name__)

READBACK_CONSUMER: dict[str, Any] = {"group_id": None, "enable_auto_commit": False,
                                     "fetch_max_wait_ms": 20, **READ_COMMITTED}
"""How a read-back consumer is made. ``fetch_max_wait_ms``: a read-back seeks partition after
partition, and a seek waits for the fetch in flight, which the broker holds up to this long
when the partitions it asks for are at their end (aiokafka's default, 500 ms, made each
read-back take 0.5 or 1.0 s: measured in the worker's log, ``fraudstream chaos --only crash
--scale 0.5 --seed 7``, 2026-12-02). It is on the path to a restarted worker's first score.
Committed records only: scores are written in transactions (``streams.output_transactions``)
and an aborted score was never out."""

Published = dict[int, tuple[float, list[float]]]
"""Transaction id -> (score, features) as published."""


class ReadBack(NamedTuple):
    """The scores read back, and where the re-read ends: each source partition's log end
    when they were read. A transaction at or past it was written after the read-back, so it
    was never scored before and the map has nothing for it (the worker drops the map then)."""

    scores: Published
    source_ends: dict[tuple[str, int], int]


def keep_score(body: Mapping[str, Any], partitions: set[int], n_partitions: int) -> bool:
    """Whether a score belongs to a card whose transactions live in ``partitions``.

    >>> keep_score({"customer_id": 7}, {murmur2_partition(b"7", 4)}, 4)
    True
    >>> keep_score({"customer_id": 7}, set(), 4)
    False
    """
    key = str(body["customer_id"]).encode()
    return murmur2_partition(key, n_partitions) in partitions


async def read_published(
    kafka_kwargs: dict[str, Any],
    scores_topic: str,
    starts: Mapping[Any, int],
    n_partitions: int,
    slack_s: float = 60.0,
    budget_s: float = 30.0,
) -> ReadBack:
    """Scores of the cards of ``starts``' partitions published since their re-read begins.

    ``starts`` maps each source partition (anything with ``topic`` and ``partition``) to the
    offset the worker will re-read it from. Past ``budget_s`` it returns what it has read
    and says so: the worker then re-scores the rest, as it would without this map. (It runs
    inside Faust's post-recovery seek, which Faust cancels after ``broker_request_timeout``,
    90 s by default: the budget stays well below.)
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    published: Published = {}
    if not starts:
        return ReadBack(published, {})
    deadline = time.monotonic() + budget_s
    consumer = AIOKafkaConsumer(**READBACK_CONSUMER, **kafka_kwargs)
    await consumer.start()
    try:
        first_ms, source_ends = await first_timestamp(consumer, starts, deadline)
        if first_ms is None:  # nothing to re-read: nothing can have been scored
            return ReadBack(published, source_ends)
        # The scores topic is declared with the sources' partition count (``infra.topics``).
        score_tps = [TopicPartition(scores_topic, p) for p in range(n_partitions)]
        keep = {tp.partition for tp in starts}
        unread = await read_since(
            consumer, score_tps, first_ms - int(slack_s * 1000), deadline,
            lambda value: _add(published, value, keep, n_partitions), max_records=20_000)
        if unread:
            log.warning("read %d published scores in %.0f s and stopped; transactions of "
                        "%d partition(s) beyond them may be scored again", len(published),
                        budget_s, unread)
    finally:
        await consumer.stop()
    return ReadBack(published, source_ends)


def _add(published: Published, value: bytes, keep: set[int], n_partitions: int) -> None:
    try:
        for body in decode_scores(value):
            if keep_score(body, keep, n_partitions):
                published[int(body["tx_id"])] = (float(body["score"]), list(body["features"]))
    except (ValueError, KeyError, TypeError):  # not ours to judge: the worker wrote it
        pass


async def read_since(
    consumer: Any, tps: list[Any], since_ms: int, deadline: float,
    handle: Callable[[bytes], None], max_records: int = 5000,
) -> int:
    """Hand ``handle`` the value of every record of ``tps`` written since ``since_ms``
    (record timestamps), up to each partition's end as it is now, until ``deadline``
    (``time.monotonic()``); returns how many partitions were not read to their end.

    The end is reached when the consumer's position is there, not when a record at the end
    was seen: a transaction's commit marker takes an offset that no record is returned for.
    """
    consumer.assign(tps)
    since = await consumer.offsets_for_times({tp: max(0, since_ms) for tp in tps})
    ends = await consumer.end_offsets(tps)
    todo = {}
    for tp in tps:
        found = since.get(tp)
        start = found.offset if found is not None else ends[tp]
        if start < ends[tp]:
            consumer.seek(tp, start)
            todo[tp] = ends[tp]
    while todo and time.monotonic() < deadline:
        batch = await consumer.getmany(*todo, timeout_ms=500, max_records=max_records)
        for tp, records in batch.items():
            end = todo.get(tp)
            if end is None:
                continue
            for record in records:
                if record.offset >= end:
                    break
                handle(record.value)
        for tp in [tp for tp, end in todo.items() if await consumer.position(tp) >= end]:
            del todo[tp]
    return len(todo)


async def first_timestamp(
    consumer: Any, starts: Mapping[Any, int], deadline: float
) -> tuple[int | None, dict[tuple[str, int], int]]:
    """Record timestamp (ms) of the earliest message at the given source offsets, and each
    source partition's log end."""
    from aiokafka import TopicPartition

    tps = {TopicPartition(tp.topic, tp.partition): offset for tp, offset in starts.items()}
    consumer.assign(list(tps))
    ends = await consumer.end_offsets(list(tps))
    first: int | None = None
    for tp, offset in tps.items():
        if offset >= ends[tp]:
            continue
        consumer.seek(tp, offset)
        while time.monotonic() < deadline:  # the first fetch can come back empty
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            records = batch.get(tp)
            if records:
                stamp = records[0].timestamp
                first = stamp if first is None else min(first, stamp)
                break
    return first, {(tp.topic, tp.partition): end for tp, end in ends.items()}
