"""Every worker learns every label: the examples its peers learned, read back from a log.

Why: with ``learning=local`` each worker's model learns only the labels of its own partitions,
so with two workers each model sees half the labels (measured: AP 0.503 through the pipeline
against 0.635 offline, 4 partitions, 2 workers). With ``learning=shared`` a worker that learns a
label publishes the *example* (the transaction's features as scored, its label and the label's
``known_at``) on the ``learned-examples`` topic; every worker reads all of that topic's
partitions outside the consumer group and learns its peers' examples too. Each model then
learns every label, as the offline evaluator's does.

The event-time rule of ``streams.label_clock`` holds for a peer's example as for a label: it
waits here until this worker scores a transaction at or after its ``known_at`` and is learned
just before that score. An example can only arrive after its owner's transactions reached its
``known_at``, and the workers keep each other's pace in event time (``streams.app``'s heartbeat
floors), so in a replay it is at most a few batches late; in live traffic it is learned the
moment it arrives.

Exactly once per model: an example is identified by its transaction id; one already learned
(locally, or read earlier) is skipped, so this worker's own examples read back, and examples a
restarted peer publishes again, are not learned twice. A snapshot records where reading must
resume (per partition, the first message with an example still waiting) and the ids already
learned from messages past that point, so a restarted worker re-reads exactly what its
snapshot's model has not learned.

Wire format, one message per batch, keyed by the worker id: ``b"FSX1"`` then float64 rows
(``array('d')``, little-endian as written by this machine's ``array``) of ``tx_id, known_at,
fraud`` followed by the features; ``fraud`` is the label and its source in one number
(``streams.card_state.label_code``: 2 added for a feedback label). Binary, not JSON: there is
one example per transaction, and a JSON encoding of 15 floats per row costs more CPU than the
example's learning.

>>> sx = SharedExamples(n_features=2)
>>> sx.record_local(tx_id=1, known_at=10.0, fraud=0, features=[0.5, 1.0])
>>> [value] = sx.take_outgoing()
>>> peer = SharedExamples(n_features=2)
>>> peer.add_message(partition=0, offset=0, value=value)
1
>>> list(peer.due(9.0)), [(f, y) for f, y in peer.due(10.0)]
([], [([0.5, 1.0], 0)])
>>> peer.add_message(partition=0, offset=1, value=value)  # the same example again: skipped
0
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.log_follower import follow_topic

log = logging.getLogger(__name__)

MAGIC = b"FSX1"
HEAD = 3  # tx_id, known_at, fraud
MAX_ROWS = 4000
"""Examples per message: 4,000 rows of 18 doubles are 576 KB, under the producer's 1 MB."""
DEDUP_HORIZON_S = 90 * 24 * 3600.0
"""How long a learned transaction id is remembered (event time, by ``known_at``): longer than
the topic's retention, so nothing the log can still deliver is learned twice."""


class ExampleFormatError(ValueError):
    """A ``learned-examples`` message this version cannot read."""


def encode_examples(rows: array) -> bytes:
    """The message value for flat rows of ``tx_id, known_at, fraud, *features``."""
    if sys.byteorder != "little":  # the format is little-endian on every machine
        rows = array("d", rows)
        rows.byteswap()
    return MAGIC + rows.tobytes()


def decode_examples(value: bytes, n_features: int) -> array:
    """The flat float64 rows of a message; ``ExampleFormatError`` if it is not one."""
    width = (HEAD + n_features) * 8
    if not value.startswith(MAGIC) or (len(value) - len(MAGIC)) % width:
        raise ExampleFormatError(f"not a learned-examples message of {n_features} features")
    rows = array("d")
    rows.frombytes(value[len(MAGIC):])
    if sys.byteorder != "little":
        rows.byteswap()
    return rows


@dataclass
class _Message:
    """A message read whose examples are not all learned yet, or one after such a message."""

    waiting: int = 0
    done: list[int] = field(default_factory=list)


class SharedExamples:
    """Examples learned here (to publish) and examples read from peers (to learn in time)."""

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.width = HEAD + n_features
        self.outgoing = array("d")
        self.learned: dict[int, float] = {}  # tx_id -> known_at, pruned by event time
        self._unconfirmed: set[int] = set()  # learned here, not yet read back from the log
        self._waiting: list[tuple[float, int, int, list[float], int, int]] = []  # a heap
        self._messages: dict[int, dict[int, _Message]] = {}  # partition -> offset -> message
        self.positions: dict[int, int] = {}  # partition -> next offset to read
        self.learned_from_peers = 0
        self.ready = asyncio.Event()
        self._latest = 0.0
        self._pruned_at = 0.0

    # -- this worker's examples ------------------------------------------------------------
    def known(self, tx_id: int) -> bool:
        """Whether this model already learned the transaction's label."""
        return tx_id in self.learned

    def record_local(self, tx_id: int, known_at: float, fraud: int,
                     features: Sequence[float]) -> None:
        """This worker learned a label: remember it and queue the example for the peers."""
        self._mark(tx_id, known_at)
        self._unconfirmed.add(tx_id)
        self.outgoing.append(float(tx_id))
        self.outgoing.append(float(known_at))
        self.outgoing.append(float(fraud))
        self.outgoing.extend(features)

    def take_outgoing(self) -> list[bytes]:
        """The queued examples as message values of at most ``MAX_ROWS`` rows each.

        Why chunks: a replay's last labels are released together when its partitions go
        idle, and one message of them (2.5 MB, measured) was refused by the producer's 1 MB
        request limit, which stopped the worker."""
        if not self.outgoing:
            return []
        rows, step = self.outgoing, MAX_ROWS * self.width
        self.outgoing = array("d")
        return [encode_examples(rows[i:i + step]) for i in range(0, len(rows), step)]

    # -- the peers' examples -------------------------------------------------------------
    def add_message(self, partition: int, offset: int, value: bytes) -> int:
        """Read one message; its examples not yet learned wait for their time. Returns how
        many wait. A malformed message is logged and skipped (it is our own topic)."""
        self.positions[partition] = offset + 1
        try:
            rows = decode_examples(value, self.n_features)
        except ExampleFormatError as exc:
            log.error("skipping learned-examples message %d@%d: %s", offset, partition, exc)
            return 0
        message = _Message()
        width = self.width
        for start in range(0, len(rows), width):
            tx_id = int(rows[start])
            if tx_id in self._unconfirmed:  # our own, read back
                self._unconfirmed.discard(tx_id)
                message.done.append(tx_id)
                continue
            if tx_id in self.learned:  # already learned: a re-publication
                message.done.append(tx_id)
                continue
            known_at, fraud = rows[start + 1], int(rows[start + 2])
            features = rows[start + HEAD:start + width].tolist()
            heapq.heappush(self._waiting, (known_at, tx_id, fraud, features, partition, offset))
            message.waiting += 1
        kept = self._messages.setdefault(partition, {})
        if message.waiting or kept:  # needed to resume exactly (see ``checkpoint``)
            kept[offset] = message
        return message.waiting

    def waiting(self) -> int:
        return len(self._waiting)

    def next_known_at(self) -> float:
        """The earliest ``known_at`` waiting (inf when none): a cheap test per transaction."""
        return self._waiting[0][0] if self._waiting else math.inf

    def due(self, t: float) -> Iterator[tuple[list[float], int]]:
        """``(features, fraud)`` of every waiting example known at or before ``t``, oldest
        first; each is marked learned as it is yielded."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= t:
            known_at, tx_id, fraud, features, partition, offset = heapq.heappop(waiting)
            self._settle(partition, offset, tx_id)
            if tx_id in self.learned:  # learned here meanwhile (its label was read again)
                continue
            self._mark(tx_id, known_at)
            self.learned_from_peers += 1
            yield features, fraud

    def _settle(self, partition: int, offset: int, tx_id: int) -> None:
        kept = self._messages[partition]
        message = kept[offset]
        message.waiting -= 1
        message.done.append(tx_id)
        while kept:  # drop the leading messages with nothing waiting
            first = next(iter(kept))
            if kept[first].waiting:
                break
            del kept[first]

    def _mark(self, tx_id: int, known_at: float) -> None:
        self.learned[tx_id] = known_at
        if known_at > self._latest:
            self._latest = known_at
            if known_at - self._pruned_at > 24 * 3600.0:
                self._pruned_at = known_at
                horizon = known_at - DEDUP_HORIZON_S
                self.learned = {k: v for k, v in self.learned.items() if v >= horizon}

    # -- snapshots -----------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Where a worker restarted from the current model must resume reading, and which
        examples past that point the model already holds."""
        offsets: dict[str, int] = {}
        done: list[int] = sorted(self._unconfirmed)
        for partition, position in self.positions.items():
            kept = self._messages.get(partition)
            offsets[str(partition)] = next(iter(kept)) if kept else position
            for message in (kept or {}).values():
                done.extend(message.done)
        return {"offsets": offsets, "done": done, "t": self._latest}

    def restore(self, checkpoint: dict[str, Any] | None) -> dict[int, int]:
        """Take a snapshot's checkpoint; returns the offsets to resume reading from."""
        if not checkpoint:
            return {}
        t = float(checkpoint.get("t", 0.0))
        for tx_id in checkpoint.get("done", ()):
            self.learned[int(tx_id)] = t
        self._latest = self._pruned_at = t
        return {int(p): int(o) for p, o in checkpoint.get("offsets", {}).items()}

    # -- reading the log -----------------------------------------------------------------
    async def follow(self, topic: str, partitions: int, consumer_kwargs: dict[str, Any],
                     start: dict[int, int]) -> None:
        """Read ``topic`` from ``start`` (else its beginning; after a reconnection, from the
        last message read) until cancelled; ``ready`` is set once what the log held at the
        start has been read."""
        await follow_topic(topic, partitions, consumer_kwargs, self.add_message, self.ready,
                           lambda p: self.positions.get(p, start.get(p)))
