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


class TerminalReplica:
    """Every terminal's state, plus the deltas this worker has yet to publish."""

    def __init__(self, delay_days: float = DEFAULT_DELAY_DAYS) -> None:
        self.delay_days = float(delay_days)
        self.states: dict[int, TerminalState] = {}
        self.out_tx: list[list[float]] = []
        self.out_fraud: list[list[float]] = []
        self.applied_messages = 0
        self.ready = asyncio.Event()
        self._seen: set[int] = set()  # tx ids applied, pruned past the retention
        self._seen_days: dict[int, array[int]] = {}
        """The ids of ``_seen`` by event-time day, to prune a day at once: 8 bytes an id in
        an array, where a deque of (ts, id) tuples held 64 (24 MB of a 600,000-transaction
        run at the default world's rate, ``tracemalloc``, 2026-12-02)."""
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
        seen = self._seen
        if tx_id in seen:
            return  # already recorded (our own delta read back, or a re-publication)
        seen.add(tx_id)
        day = int(ts // DAY)
        ids = self._seen_days.get(day)
        if ids is None:
            ids = self._seen_days[day] = array("q")
        ids.append(tx_id)
        self._state(terminal_id).add_transaction(ts)
        if ts > self._latest + DAY:
            # forget the ids of the days past the retention, once per event-time day (a dict
            # rebuilt per day cost 3% of the worker); an id that came out of order is kept
            # until the next pass, which only keeps it longer
            self._latest = ts
            horizon_day = int((ts - (self.delay_days + MAX_WINDOW_DAYS + 1) * DAY) // DAY)
            for old_day in [d for d in self._seen_days if d < horizon_day]:
                seen.difference_update(self._seen_days.pop(old_day))

    def remembered_ids(self) -> int:
        """How many transaction ids the replica remembers to ignore repeats."""
        return len(self._seen)

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
