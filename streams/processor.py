"""The per-message work of the worker, free of Faust so that it can be tested and measured alone.

The Faust agents in ``streams.app`` hand it lists of raw Kafka records (one record per call in
event mode, a ``take()`` batch in micro-batch mode; any record may be an envelope of several
transactions) and send what it returns. Feature code comes from ``models.features``, the same
functions the batch trainer and the offline evaluator use.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from models.features import customer_features, time_features
from producers.events import InvalidEvent, Label, Transaction, decode_labels, decode_transactions
from producers.sender import murmur2_partition
from streams.card_state import CardState
from streams.model_runtime import ModelRuntime
from streams.published import Published
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class Record(NamedTuple):
    """The parts of a Kafka record the processor needs (``event``: the framework's handle)."""

    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int
    event: Any = None


KeyValue = tuple[bytes, bytes]


@dataclass
class Outgoing:
    """Messages to send after a batch: scores, alerts and dead letters."""

    scores: list[KeyValue] = field(default_factory=list)
    alerts: list[KeyValue] = field(default_factory=list)
    dead: list[KeyValue] = field(default_factory=list)
    snapshot_due: bool = False


MAX_DLQ_ORIGINAL = 700_000
"""Originals above this are cut (base64 adds a third; the broker's limit is ~1 MB)."""


def dead_letter(record: Record, reason: str) -> KeyValue:
    """The DLQ message: why, where from, and the original bytes (base64) to replay later."""
    value = record.value or b""
    body = {
        "v": 1,
        "reason": reason[:500],
        "original_bytes": len(value),
        "truncated": len(value) > MAX_DLQ_ORIGINAL,
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key_b64": base64.b64encode(record.key).decode() if record.key is not None else None,
        "value_b64": base64.b64encode(value[:MAX_DLQ_ORIGINAL]).decode(),
        "failed_at": time.time(),
    }
    return (record.key or b"", _dumps(body).encode())


class Processor:
    """Scores transactions and learns labels against card state held in a mapping.

    ``cards`` maps the card key (``str(customer_id)`` as bytes, the Kafka key) to
    ``CardState.to_bytes()`` values: a Faust table in the worker, a dict in tests. Decoded
    states are cached here, since decoding a value costs more than the features; the worker
    clears the cache whenever partitions move (``invalidate``).
    """

    def __init__(
        self,
        cards: MutableMapping[bytes, Any],
        replica: TerminalReplica,
        runtime: ModelRuntime,
        telemetry: Telemetry,
        alert_threshold: float = 0.5,
        worker_id: str = "w0",
        partitions: int = 4,
    ) -> None:
        self.cards = cards
        self.partitions = partitions
        self._partition_of: dict[bytes, int] = {}
        self.replica = replica
        self.runtime = runtime
        self.telemetry = telemetry
        self.alert_threshold = alert_threshold
        self.worker_id = worker_id
        self._cache: dict[bytes, CardState] = {}
        self._origin: dict[bytes, Any] = {}
        self.bind_event: Any = lambda event: None
        """Called with a record's ``event`` before its card is stored (see ``streams.app``)."""
        self.published: Published = {}
        """Scores already on Kafka for transactions about to be re-read (``streams.published``)."""
        self._published_until: dict[tuple[str, int], int] = {}

    def keep_published(self, scores: Published, until: dict[tuple[str, int], int]) -> None:
        """Use ``scores`` until every (topic, partition) of ``until`` reaches its offset.

        Past those offsets every transaction is new, so the map is dropped rather than kept
        (it can be large after a long lag) until the next assignment.
        """
        self.published = scores
        self._published_until = dict(until) if scores else {}

    def _passed(self, records: list[Record]) -> None:
        until = self._published_until
        for record in records:
            end = until.get((record.topic, record.partition))
            if end is not None and record.offset + 1 >= end:
                del until[(record.topic, record.partition)]
        if not until:
            self.published = {}

    def invalidate(self) -> None:
        self._cache.clear()

    def _card(self, key: bytes) -> CardState:
        card = self._cache.get(key)
        if card is None:
            raw = self.cards.get(key)
            card = CardState.from_bytes(raw) if raw else CardState()
            self._cache[key] = card
        return card

    def _store(self, keys: set[bytes] | list[bytes]) -> None:
        origin = self._origin
        for key in keys:
            self.bind_event(origin.get(key))
            self.cards[key] = self._cache[key].to_bytes()
        origin.clear()

    # -- transactions --------------------------------------------------------------------
    def _decode(
        self, record: Record, decode: Any, topic: str, out: Outgoing
    ) -> list[tuple[bytes, Any]]:
        """``(card key, event)`` for the events of one record, or [] after dead-lettering it.

        The record's key must be the card of its first event (a single event: its only one),
        and every other event of an envelope must belong to a card of the key's partition,
        as ``producers.envelope`` packs them: each card's state lives in the store and
        changelog of that one partition, and a foreign card would split it.
        """
        try:
            events = decode(record.value)
        except InvalidEvent as exc:
            reason = exc.reason
        except Exception as exc:  # never let one message stop the stream
            reason = f"undecodable: {type(exc).__name__}"
        else:
            keys = [str(event.customer_id).encode() for event in events]  # once per event
            reason = self._routing_error(record.key, keys)
            if reason is None:
                origin = self._origin
                for key in keys:
                    origin[key] = record.event
                return list(zip(keys, events, strict=True))
        out.dead.append(dead_letter(record, reason))
        self.telemetry.dlq.labels(topic).inc()
        return []

    def _routing_error(self, key: bytes | None, cards: list[bytes]) -> str | None:
        if cards[0] != key:
            return f"key {key!r:.40} is not the card id {cards[0].decode()}"
        if len(cards) > 1:
            home = self._partition(key)
            for card in cards[1:]:
                if card != key and self._partition(card) != home:
                    return (f"card {card.decode()} of the envelope keyed {key!r:.40} "
                            f"belongs to another partition")
        return None

    def _partition(self, key: bytes) -> int:
        known = self._partition_of.get(key)
        if known is None:
            if len(self._partition_of) > 1_000_000:  # bounded under a flood of new cards
                self._partition_of.clear()
            known = self._partition_of[key] = murmur2_partition(key, self.partitions)
        return known

    def decode_transactions(
        self, records: list[Record], out: Outgoing
    ) -> list[tuple[bytes, Transaction]]:
        txs: list[tuple[bytes, Transaction]] = []
        for record in records:
            self.telemetry.messages_in.inc()
            txs.extend(self._decode(record, decode_transactions, "transactions", out))
        return txs

    def score(self, records: list[Record]) -> Outgoing:
        """Score the transactions of ``records``; answer re-delivered ones as before.

        A re-delivered transaction (after a crash or a rebalance) is recognised by its card,
        or, when the card's write of it was lost, by its published score: either way it
        keeps the score it was given first, and a score already on Kafka is not sent again.
        """
        out = Outgoing()
        txs = self.decode_transactions(records, out)
        published = self.published  # this batch may still need it, even if it ends the need
        if self._published_until:
            self._passed(records)
        if not txs:
            return out
        fresh: list[tuple[Transaction, bytes, list[float], tuple[float, list[float]] | None]] = []
        dirty: set[bytes] = set()
        replica = self.replica
        replayed = 0
        for key, tx in txs:
            card = self._card(key)
            if card.seen(tx.tx_id):  # re-delivered: answer, do not count twice
                replayed += 1
                entry = card.scored(tx.tx_id)
                if entry is not None:
                    if tx.tx_id not in published:
                        out.scores.append(self._score_message(tx, entry.score, entry.features))
                    if entry.score >= self.alert_threshold:
                        out.alerts.append(self._alert_message(tx, entry.score))  # at least once
                continue
            feats = [
                tx.amount,
                *time_features(tx.ts),
                *customer_features(card.customer, tx.ts, tx.amount),
                *replica.features(tx.terminal_id, tx.ts),
            ]
            replica.record_tx(tx.terminal_id, tx.ts, tx.tx_id)
            known = published.get(tx.tx_id) if published else None
            replayed += known is not None
            fresh.append((tx, key, feats, known))
            dirty.add(key)
        if fresh:
            new = [f for _, _, f, known in fresh if known is None]
            predicted = iter(self.runtime.predict_many(new) if new else ())
            for tx, key, feats, known in fresh:
                if known is None:
                    score = next(predicted)
                    out.scores.append(self._score_message(tx, score, feats))
                else:  # scored before a crash; its card's record of that was lost
                    score, feats = known
                card = self._cache[key]
                card.add_pending(tx.tx_id, tx.ts, tx.terminal_id, score, feats)
                if score >= self.alert_threshold:
                    out.alerts.append(self._alert_message(tx, score))
                early = card.early.pop(tx.tx_id, None)
                if early is not None:  # its label came first: learn now
                    entry = card.pop_pending(tx.tx_id)
                    out.snapshot_due |= self._learn(card, tx.tx_id, int(early[0]), entry)
                if card.n_pending() > 64:
                    card.expire(tx.ts)
        self._store(dirty)
        self.telemetry.replayed.inc(replayed)
        self.telemetry.tx_in.inc(len(txs) - replayed)  # first deliveries only
        self.telemetry.scores_out.inc(len(out.scores))
        self.telemetry.alerts.inc(len(out.alerts))
        return out

    def _score_message(self, tx: Transaction, score: float, feats: list[float]) -> KeyValue:
        now = time.time()
        self.telemetry.observe_latency(max(0.0, now - tx.produced_at))
        body = {
            "v": 1,
            "tx_id": tx.tx_id,
            "customer_id": tx.customer_id,
            "terminal_id": tx.terminal_id,
            "ts": tx.ts,
            "produced_at": tx.produced_at,
            "scored_at": now,
            "score": score,
            "model": self.runtime.name,
            "model_version": self.runtime.version,
            "learned": self.runtime.learned,
            "worker": self.worker_id,
            "features": feats,
        }
        return (str(tx.tx_id).encode(), _dumps(body).encode())

    def _alert_message(self, tx: Transaction, score: float) -> KeyValue:
        body = {
            "v": 1, "tx_id": tx.tx_id, "customer_id": tx.customer_id,
            "terminal_id": tx.terminal_id, "amount": tx.amount, "ts": tx.ts, "score": score,
            "threshold": self.alert_threshold, "model": self.runtime.label,
        }
        return (str(tx.customer_id).encode(), _dumps(body).encode())

    # -- labels --------------------------------------------------------------------------
    def learn(self, records: list[Record]) -> Outgoing:
        out = Outgoing()
        labels: list[tuple[bytes, Label]] = []
        for record in records:
            labels.extend(self._decode(record, decode_labels, "labels", out))
        if not labels:
            return out
        self.telemetry.labels_in.inc(len(labels))
        dirty: set[bytes] = set()
        for key, label in labels:
            if label.fraud:
                self.replica.record_fraud(label.terminal_id, label.tx_ts, label.known_at,
                                          label.tx_id)
            card = self._card(key)
            if label.tx_id in card.done:
                self.telemetry.label_dupes.inc()
                continue
            entry = card.pop_pending(label.tx_id)
            if entry is not None:
                out.snapshot_due |= self._learn(card, label.tx_id, label.fraud, entry)
            else:
                card.early[label.tx_id] = [label.fraud, label.known_at]
                self.telemetry.labels_early.inc()
            dirty.add(key)
        self._store(dirty)
        return out

    def _learn(self, card: CardState, tx_id: int, fraud: int, entry: Any) -> bool:
        card.mark_done(tx_id)
        self.telemetry.observe_label(entry.score, fraud)  # rolling AUC/AP, in every mode
        if self.runtime.learn_enabled:
            self.telemetry.learned.inc()
        return self.runtime.learn(entry.features, fraud)
