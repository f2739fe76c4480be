"""Terminal state, replicated to every worker from the ``terminal-events`` log.

Why a replica and not a re-keyed stream: transactions are partitioned by card, so the
terminal of a transaction can live on any partition. Re-keying by terminal would push every
transaction through Faust a second time, and Faust's cost is per message (it would halve the
pipeline's rate). Terminal features, however, only look at windows that *ended* ``delay``
days ago, so they tolerate a replica that lags by seconds: every worker keeps the state of
*all* terminals, built from small batched deltas that the scoring and label agents publish.

Why not ``faust.GlobalTable``: a table writes one changelog message per key assignment, i.e.
one per transaction, and every worker then reads all of them; the delta log is the same
information at a few messages per second. The log *is* the changelog: on start the replica
replays it from the beginning (its retention covers the 37 days the features need) and the
worker scores nothing until the replay has reached the end offsets it saw at start.

Deltas are idempotent: a transaction id or a fraud label already recorded is ignored, so our
own deltas read back from the log, or deltas re-published after a crash, are not counted twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from array import array
from typing import Any

from models.features import (
    DAY,
    DEFAULT_DELAY_DAYS,
    MAX_WINDOW_DAYS,
    TerminalState,
    terminal_features,
)
from streams.log_follower import follow_topic

log = logging.getLogger(__name__)
_ID = struct.Struct("<q")


def _holds(ids: bytearray, packed: bytes) -> bool:
    """Whether the packed int64s ``ids`` hold ``packed`` (a match across two ids is none).

    >>> _holds(bytearray(_ID.pack(1 << 56) + _ID.pack(2)), _ID.pack(0x201))
    False
    """
    at = ids.find(packed)
    while at > 0 and at % 8:
        at = ids.find(packed, at + 1)
    return at >= 0


class TerminalReplica:
    """Every terminal's state, plus the deltas this worker has yet to publish."""

    def __init__(self, delay_days: float = DEFAULT_DELAY_DAYS) -> None:
        self.delay_days = float(delay_days)
        self.states: dict[int, TerminalState] = {}
        self.out_tx: list[list[float]] = []
        self.out_fraud: list[list[float]] = []
        self.applied_messages = 0
        self.ready = asyncio.Event()
        self._ids: dict[int, bytearray] = {}
        """Per terminal, the ids of the transactions applied (int64s, in the order they came),
        pruned past the retention: 8 bytes an id, searched by ``bytearray.find``. A set of
        every id held ~80 (a set slot and an int object each: ~31 MB of the default world's
        38 days of ids), and the ids of one terminal are few (about 40 in that world)."""
        self._id_days: dict[int, array[int]] = {}
        """The event-time day of each id of ``_ids``, to forget the old ones by day."""
        self._latest = 0.0

    def _state(self, terminal_id: int) -> TerminalState:
        state = self.states.get(terminal_id)
        if state is None:
            state = TerminalState(retention_days=self.delay_days + MAX_WINDOW_DAYS)
            self.states[terminal_id] = state
        return state

    def features(self, terminal_id: int, t: float) -> tuple[float, ...]:
        state = self.states.get(terminal_id)
        if state is None:
            return (0.0,) * 6
        return terminal_features(state, t, self.delay_days)

    def apply_tx(self, terminal_id: int, ts: float, tx_id: int) -> None:
        packed = _ID.pack(tx_id)
        ids = self._ids.get(terminal_id)
        if ids is None:
            ids = self._ids[terminal_id] = bytearray()
            days = self._id_days[terminal_id] = array("i")
        elif _holds(ids, packed):
            return  # already recorded (our own delta read back, or a re-publication)
        else:
            days = self._id_days[terminal_id]
        ids += packed
        days.append(int(ts // DAY))
        self._state(terminal_id).add_transaction(ts)
        if ts > self._latest + DAY:
            # forget the ids of the days past the retention, once per event-time day (a dict
            # rebuilt per day cost 3% of the worker); an id that came out of order, behind a
            # newer one, is kept until that one goes, which only keeps it longer
            self._latest = ts
            self._forget_before(int((ts - (self.delay_days + MAX_WINDOW_DAYS + 1) * DAY) // DAY))

    def _forget_before(self, horizon_day: int) -> None:
        for terminal_id, days in self._id_days.items():
            n = 0
            for day in days:
                if day >= horizon_day:
                    break
                n += 1
            if n:
                del days[:n]
                del self._ids[terminal_id][:8 * n]

    def remembered_ids(self) -> int:
        """How many transaction ids the replica remembers to ignore repeats."""
        return sum(len(days) for days in self._id_days.values())

    def apply_fraud(self, terminal_id: int, tx_ts: float, known_at: float, tx_id: int) -> None:
        self._state(terminal_id).add_label(tx_ts, 1, known_at, tx_id)

    # -- publishing this worker's deltas -------------------------------------------------
    def record_tx(self, terminal_id: int, ts: float, tx_id: int) -> None:
        """Apply locally now (same-worker reads are exact) and queue for the other workers."""
        self.apply_tx(terminal_id, ts, tx_id)
        self.out_tx.append([terminal_id, ts, tx_id])

    def record_fraud(self, terminal_id: int, tx_ts: float, known_at: float, tx_id: int) -> None:
        self.apply_fraud(terminal_id, tx_ts, known_at, tx_id)
        self.out_fraud.append([terminal_id, tx_ts, known_at, tx_id])

    def take_outgoing(self) -> bytes | None:
        """The queued deltas as one message, or None when there are none."""
        if not self.out_tx and not self.out_fraud:
            return None
        body = {"v": 1, "type": "terminal_deltas", "tx": self.out_tx, "fraud": self.out_fraud}
        self.out_tx, self.out_fraud = [], []
        return json.dumps(body, separators=(",", ":")).encode()

    def apply_message(self, value: bytes) -> None:
        try:
            body: dict[str, Any] = json.loads(value)
            for terminal_id, ts, tx_id in body.get("tx", ()):
                self.apply_tx(int(terminal_id), float(ts), int(tx_id))
            for terminal_id, tx_ts, known_at, tx_id in body.get("fraud", ()):
                self.apply_fraud(int(terminal_id), float(tx_ts), float(known_at), int(tx_id))
        except (ValueError, TypeError) as exc:  # our own topic: log, never crash the worker
            log.error("ignoring malformed terminal delta message: %s", exc)
        self.applied_messages += 1

    async def follow(self, topic: str, partitions: int, consumer_kwargs: dict[str, Any]) -> None:
        """Replay ``topic`` from the start, then keep applying new deltas until cancelled."""
        await follow_topic(topic, partitions, consumer_kwargs,
                           lambda _partition, _offset, value: self.apply_message(value),
                           self.ready)
