"""Rewind newly assigned source partitions a little before the committed offset.

Why: faust-streaming 0.15.3 can commit offsets of messages no agent processed. Measured here
(``tests/streams/test_two_workers.py``, a graceful fail-over at 500 tx/s): 5-10 transactions,
a few consecutive offsets per handed-over partition, were never scored. Faust's offset
bookkeeping across a rebalance is the cause: messages prefetched before it are cleared from
the stream queues or skipped as an older generation, a stale read offset then makes the
next fetched message look like a *gap* that is committed as done (``Consumer._add_gap``),
or a re-fetched message look like one already read (dropped). See faust-streaming issues
#221 and #606.

The fix does not depend on which path lost the message: after Faust seeks a newly assigned
partition to its committed offset, this seeks it ``margin`` messages further back. The worker
then re-reads those messages; every one it had already processed is recognised by id in the
card state (``CardState.seen``) and answered with its recorded score, so nothing is counted
or learned twice and a lost one is processed for the first time. The price is bounded and
visible: up to ``margin`` re-sent scores per partition per rebalance, counted by the
``fraudstream_transactions_replayed_total`` metric (consumers that key by transaction id see one each).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

log = logging.getLogger(__name__)


def rewind_targets(committed: dict[Any, int | None], margin: int) -> dict[Any, int]:
    """Where to seek each partition: ``margin`` before its committed offset, never below 0.

    >>> rewind_targets({"t-0": 1500, "t-1": 40, "t-2": None}, 1000)
    {'t-0': 500, 't-1': 0}
    """
    return {tp: max(0, offset - margin) for tp, offset in committed.items()
            if offset is not None and offset > 0}


class NoReadOffsets(MutableMapping[Any, Any]):
    """A read-offset map that remembers nothing, so Faust neither drops nor "gaps" a message.

    Faust compares each fetched offset with the last one it read per partition: a lower one is
    dropped as already read, a higher one marks the offsets in between as a gap that may be
    committed. Both are wrong after a seek back (ours, or Faust's own after a rebalance) while
    prefetched messages are still arriving. Without them every fetched message reaches the
    agent: a repeat is recognised by transaction id, and commits only advance over offsets
    that were acknowledged one by one (a compacted or transactional input topic would then
    stall commits instead of skipping; fraudstream's inputs are neither).

    >>> offsets = NoReadOffsets()
    >>> offsets["t-0"] = 41
    >>> offsets["t-0"], len(offsets), offsets.pop("t-0", None)
    (None, 0, None)
    """

    def __getitem__(self, key: Any) -> None:
        return None

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __delitem__(self, key: Any) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0


def install_rewind(
    consumer: Any,
    topics: Iterable[str],
    margin: int,
    on_rewound: Callable[[dict[Any, int]], Awaitable[None]] | None = None,
    on_seeking: Callable[[], None] | None = None,
) -> None:
    """Make ``consumer.perform_seek`` (Faust's post-recovery seek) rewind ``topics`` too.

    ``on_rewound`` is awaited with the offset each assigned partition of ``topics`` will be
    re-read from (partitions that never committed are left out), before any is processed.
    ``on_seeking`` is called before the first seek: the agents run between the seeks, and
    what they take from a committed offset is already a re-read (a rejoined worker scored two
    such transactions in the 0.4 s before ``on_rewound`` began, whose scores were out:
    ``tests/reliability/test_link_cut.py``, 2026-12-02).
    """
    if margin <= 0:
        return
    consumer._read_offset = NoReadOffsets()
    names = set(topics)
    seek_to_committed: Callable[[], Awaitable[None]] = consumer.perform_seek

    async def perform_seek() -> None:
        if on_seeking is not None:
            on_seeking()
        await seek_to_committed()
        committed = {tp: offset for tp, offset in consumer._committed_offset.items()
                     if tp.topic in names and tp in consumer.assignment()}
        targets = rewind_targets(committed, margin)
        for tp, offset in targets.items():
            await consumer.seek(tp, offset)  # also resets Faust's read offset for the tp
        if targets:
            log.info("rewound %d partition(s) by up to %d messages to re-check them",
                     len(targets), margin)
        if on_rewound is not None:
            starts = {tp: targets.get(tp, offset) for tp, offset in committed.items()
                      if offset is not None}
            await on_rewound(starts)

    consumer.perform_seek = perform_seek
