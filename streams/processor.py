"""The per-message work of the worker, free of Faust so that it can be tested and measured alone.

The Faust agents in ``streams.app`` hand it lists of raw Kafka records (one record per call in
event mode, a ``take()`` batch in micro-batch mode; any record may be an envelope of several
transactions) and send what it returns. Feature code comes from ``models.features``, the same
functions the batch trainer and the offline evaluator use.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, NamedTuple

from models.explain import FeatureMean, reasons
from models.features import customer_features, customer_window_features, time_features
from producers.events import FEEDBACK, Label, Transaction
from producers.partitioning import murmur2_partition
from producers.wire import Decoded, Reject, split_labels, split_transactions
from streams.alert_log import AlertLog
from streams.alert_policy import AlertPolicy, FixedThreshold
from streams.card_state import CardState, code_label, label_code
from streams.challengers import Challengers
from streams.dead_letters import WHOLE, Source
from streams.label_clock import Held, LabelClock
from streams.model_runtime import ModelRuntime
from streams.published import Published
from streams.score_messages import encode_score, encode_score_envelopes
from streams.shared_learning import SharedExamples
from streams.stage_times import StageTimes
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


def _tx_time(item: tuple[bytes, Transaction, int]) -> float:
    return item[1].ts


@dataclass
class Outgoing:
    """Messages to send after a batch: scores, alerts and dead letters."""

    scores: list[KeyValue] = field(default_factory=list)
    score_bodies: list[dict[str, Any]] = field(default_factory=list)
    """Scores to pack into envelopes (``pack_scores``) before they are sent."""
    alerts: list[KeyValue] = field(default_factory=list)
    dead: list[KeyValue] = field(default_factory=list)
    shadow: list[KeyValue] = field(default_factory=list)
    """The challengers' scores (``streams.challengers``), for the ``shadow-scores`` topic."""
    snapshot_due: bool = False
    pause: list[int] = field(default_factory=list)
    """Labels partitions to stop fetching (too many labels held for them)."""
    resume: list[int] = field(default_factory=list)
    """Labels partitions to fetch again."""


Fresh = tuple[Transaction, bytes, int, list[float], "tuple[float, list[float]] | None"]
"""A new transaction of a batch: itself, its card, its partition, features, published score."""


SENT_HERE_MAX = 200_000
"""How many transactions scored since an assignment a worker remembers (``_sent_here``):
the first ones, those a re-read after the assignment can bring again (8 bytes and a set
slot each: a few MB at most)."""

MAX_DLQ_ORIGINAL = 700_000
"""Originals above this are cut (base64 adds a third; the broker's limit is ~1 MB)."""


def dead_letter(record: Record, reason: str, reject: Reject | None = None) -> KeyValue:
    """The DLQ message: why, where from, and the original bytes (base64) to replay later.

    ``reject`` with an index is one malformed event of an envelope whose other events went
    on: its letter carries that event's own bytes and its ``envelope_index``.
    """
    part = reject is not None and reject.index is not None
    value = (reject.raw if part else record.value) or b""
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
    if part:
        body["envelope_index"] = reject.index
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
        hold_max: int = 50_000,
        alert_policy: AlertPolicy | None = None,
    ) -> None:
        self.cards = cards
        self._read_card = getattr(cards, "read", None)
        """A partitioned store reads by the record's partition (``CardTable.read``); a dict
        in tests has no partitions."""
        self._stage_card = getattr(cards, "stage", None)
        """A ``CardTable`` takes changed cards as objects, encoded when it writes them (once
        per flush, however often they changed: ``streams.card_table``); a dict in tests gets
        their bytes at once."""
        self.partitions = partitions
        self._partition_of: dict[bytes, int] = {}
        self.replica = replica
        self.runtime = runtime
        self.telemetry = telemetry
        self.alert_policy: AlertPolicy = alert_policy or FixedThreshold(alert_threshold)
        """Which scores alert (``streams.alert_policy``: a daily budget of cards, or a fixed
        threshold); ``alert_threshold`` is only used when no policy is given."""
        self._feature_mean = FeatureMean()  # occlusion reference for models that keep none
        self.worker_id = worker_id
        self._cache: dict[bytes, CardState] = {}
        self.published: Published = {}
        """Scores already on Kafka for transactions about to be re-read (``streams.published``)."""
        self._published_until: dict[tuple[str, int], int] = {}
        self._reread_next: dict[tuple[str, int], int] = {}
        self._sent_here: set[int] = set()
        """Transactions this process scored since its partitions were last assigned (the
        first ``SENT_HERE_MAX``): a re-delivery of one is not answered again. Faust seeks twice
        after an assignment and messages fetched before the second seek still arrive, so a
        transaction scored after the read-back (``published``) can come again from the
        rewind; its score is in this worker's own producer, and was sent twice (1 duplicate
        in ``fraudstream chaos --only link-cut --seed 8``, 2026-12-02)."""
        self.dead_lettered: set[Source] = set()
        """Sources of messages about to be re-read that already have a dead letter
        (``streams.dead_letters``): not dead-lettered again."""
        self.clock = LabelClock()
        """Event time per partition and the labels held until it (``streams.label_clock``)."""
        self.hold_max = hold_max
        self.paused: set[int] = set()
        self.pack_scores = False
        """Answer each batch with one message per partition (envelope mode), not one per
        transaction (``streams.score_messages``)."""
        self.shared: SharedExamples | None = None
        """With ``learning=shared``: the peers' examples to learn in event time, and this
        worker's to publish (``streams.shared_learning``)."""
        self._read_from: set[int] = set()
        """Partitions read from since the assignment: held labels of another wait for it."""
        self._rebuild: set[int] | None = set(range(partitions))
        self._learned = 0
        self._latencies: list[float] = []  # of the batch's scores, observed together
        self.stages = StageTimes()
        """CPU time per stage (``streams.stage_times``); the app adds its sends to it."""
        self.alert_log = AlertLog()
        """The recent alerts and their labels, for the investigators' console."""
        self.challengers: Challengers | None = None
        """Shadow models scored beside this one, never alerting (``streams.challengers``)."""

    def keep_published(self, scores: Published, until: dict[tuple[str, int], int],
                       starts: dict[tuple[str, int], int]) -> None:
        """Use ``scores`` until every (topic, partition) of ``until`` has been re-read up to
        its offset, from its offset in ``starts``.

        Past those offsets every transaction is new, so the map is dropped rather than kept
        (it can be large after a long lag) until the next assignment. Only the re-read counts:
        an offset handed on in order from ``starts``. A message fetched before the seek can
        still arrive first, from further on; counted as the end of the re-read, it dropped
        the map, and re-read transactions whose card had lost their write were scored again
        (3 duplicates, ``tests/reliability/test_link_cut.py`` in a full suite, 2026-12-03).
        A partition whose offsets skip (a transactional producer's markers) keeps the map,
        at most ``streams.published``'s 20,000 scores, until the next assignment.
        """
        self.published = scores
        self._published_until = dict(until) if scores else {}
        self._reread_next = dict(starts)

    def _passed(self, records: list[Record]) -> None:
        until, following = self._published_until, self._reread_next
        for record in records:
            key = (record.topic, record.partition)
            end = until.get(key)
            if end is None:
                continue
            expected = following.get(key, end)  # no start known: nothing to re-read
            if record.offset == expected:
                expected = following[key] = expected + 1
            if expected >= end:
                del until[key]
        if not until:
            self.published = {}

    def invalidate(self, partitions: set[int] | None = None) -> None:
        """Partitions moved: drop cached cards and rebuild the held-label index for
        ``partitions`` (default: all) from card state before the next batch."""
        self._cache.clear()
        self._sent_here.clear()
        self.clock.clear()
        self._read_from.clear()
        self._rebuild = set(range(self.partitions)) if partitions is None else set(partitions)

    def _card(self, key: bytes, partition: int) -> CardState:
        """The card's state, decoded once and cached; ``partition`` is the one its record
        came from, where its state is stored (``CardTable.read``)."""
        card = self._cache.get(key)
        if card is None:
            started = self.stages.start()
            read = self._read_card
            raw = read(key, partition) if read is not None else self.cards.get(key)
            card = CardState.from_bytes(raw) if raw else CardState()
            self._cache[key] = card
            self.stages.stop("state", started)
        return card

    def _store(self, dirty: dict[bytes, int]) -> None:
        """Hand the batch's changed cards (key -> their records' partition) to the store."""
        started = self.stages.start()
        cache, stage = self._cache, self._stage_card
        if stage is not None:
            for key, partition in dirty.items():  # written with the next publish
                stage(key, partition, cache[key])
        else:
            for key in dirty:
                self.cards[key] = cache[key].to_bytes()
            self.telemetry.card_writes.inc(len(dirty))
        self.stages.stop("state", started)

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
        started = self.stages.start()
        try:
            decoded = decode(record.value)
        except Exception as exc:  # never let one message stop the stream
            decoded = Decoded([], [Reject(None, f"undecodable: {type(exc).__name__}", b"")])
        rejects = decoded.rejects
        whole = next((r for r in rejects if r.index is None), None) if rejects else None
        reason = whole.reason if whole is not None else None
        if whole is None and decoded.events:
            keys = [str(event.customer_id).encode() for event in decoded.events]
            reason = self._routing_error(record.key, keys)
            if reason is None:
                self.stages.stop("decode", started)
                for reject in rejects:  # the envelope's malformed events, each alone
                    self._dead(record, reject.reason, topic, out, reject)
                return list(zip(keys, decoded.events, strict=True))
        self.stages.stop("decode", started)
        if reason is None:  # an envelope whose every event is malformed: a letter for each
            for reject in rejects:
                self._dead(record, reject.reason, topic, out, reject)
        else:
            self._dead(record, reason, topic, out)
        return []

    def _dead(self, record: Record, reason: str, topic: str, out: Outgoing,
              reject: Reject | None = None) -> None:
        """Dead-letter a message (or one event of an envelope) unless a re-read finds its
        letter already out (``streams.dead_letters``)."""
        index = reject.index if reject is not None and reject.index is not None else WHOLE
        if (record.topic, record.partition, record.offset, index) in self.dead_lettered:
            self.telemetry.dlq_repeats.labels(topic).inc()
            return
        out.dead.append(dead_letter(record, reason, reject))
        self.telemetry.dlq.labels(topic).inc()

    def _routing_error(self, key: bytes | None, cards: list[bytes]) -> str | None:
        if cards[0] != key:
            return f"key {key!r:.40} is not the card id {cards[0].decode()}"
        if len(cards) > 1:
            home = self.partition_of(key)
            for card in cards[1:]:
                if card != key and self.partition_of(card) != home:
                    return (f"card {card.decode()} of the envelope keyed {key!r:.40} "
                            f"belongs to another partition")
        return None

    def partition_of(self, key: bytes) -> int:
        """The source partition of a card's key: its outputs go in that partition's
        transaction too (``streams.output_transactions``), keyed by the card."""
        known = self._partition_of.get(key)
        if known is None:
            if len(self._partition_of) > 1_000_000:  # bounded under a flood of new cards
                self._partition_of.clear()
            known = self._partition_of[key] = murmur2_partition(key, self.partitions)
        return known

    def decode_transactions(
        self, records: list[Record], out: Outgoing
    ) -> list[tuple[bytes, Transaction, int]]:
        """``(card key, transaction, partition)`` of every valid event of ``records``."""
        runs: dict[int, list[tuple[bytes, Transaction, int]]] = {}
        read_from = self._read_from
        self.telemetry.messages_in.inc(len(records))
        for record in records:
            partition = record.partition
            read_from.add(partition)
            run = runs.get(partition)
            if run is None:
                run = runs[partition] = []
            run.extend((key, tx, partition)
                       for key, tx in self._decode(record, split_transactions, "transactions",
                                                   out))
        if len(runs) == 1:
            return next(iter(runs.values()))
        # several partitions: one sequence in event time, each partition in its own order
        # (the consumer hands whole messages on in event time, ``streams.event_time_merge``;
        # this interleaves the transactions inside them as the offline evaluator reads them)
        return list(heapq.merge(*runs.values(), key=_tx_time))

    def score(self, records: list[Record]) -> Outgoing:
        """Score the transactions of ``records``; answer re-delivered ones as before.

        Labels held for a partition (``streams.label_clock``) are learned just before the
        first of its transactions at or after their ``known_at`` is scored, so the model
        scores each transaction as the offline evaluator's would. A batch is scored with one
        vectorised call per stretch between two such releases.

        A re-delivered transaction (after a crash or a rebalance) is recognised by its card,
        or, when the card's write of it was lost, by its published score: either way it
        keeps the score it was given first, and a score already on Kafka is not sent again.
        One whose card saw it but kept no score, and whose score is not on Kafka, is scored
        again from the card's state (``rescored``), never dropped.
        """
        out = Outgoing()
        stages = self.stages
        begun = stages.begin()
        txs = self.decode_transactions(records, out)
        published = self.published  # this batch may still need it, even if it ends the need
        if self._published_until:
            self._passed(records)
        if not txs:
            stages.end(begun)
            return out
        self._ensure_index()
        fresh: list[Fresh] = []
        dirty: dict[bytes, int] = {}
        replica, clock = self.replica, self.clock
        replayed = rescored = features_ns = 0
        shared = self.shared
        peers_next = shared.next_known_at() if shared is not None else math.inf
        for key, tx, partition in txs:
            clock.advance(partition, tx.ts)
            due = clock.due_everywhere()  # labels known by now come first
            if due:
                self._score_fresh(fresh, out)
                fresh = []
                for held_partition, labels in due:
                    self._release(labels, held_partition, out, dirty)
            if peers_next <= tx.ts:  # and so do the peers' examples known by now
                self._score_fresh(fresh, out)
                fresh = []
                self._learn_peers(tx.ts, out)
                peers_next = shared.next_known_at()  # type: ignore[union-attr]
            card = self._card(key, partition)
            if card.seen(tx.tx_id):  # re-delivered: answer, do not count twice
                replayed += 1
                entry = card.scored(tx.tx_id)
                if tx.tx_id in self._sent_here:  # answered by this process already
                    continue
                if entry is not None:
                    if tx.tx_id not in published:
                        self._emit_score(out, tx, entry.score, entry.features)
                    self._maybe_alert(tx, entry.score, entry.features, out)  # at least once
                elif tx.tx_id not in published:
                    rescored += 1
                    self._rescore(card, tx, out)
                continue
            began = perf_counter_ns()
            feats = [
                tx.amount,
                *time_features(tx.ts),
                *customer_features(card.customer, tx.ts, tx.amount),
                *replica.features(tx.terminal_id, tx.ts),
            ]
            replica.record_tx(tx.terminal_id, tx.ts, tx.tx_id)
            features_ns += perf_counter_ns() - began
            known = published.get(tx.tx_id) if published else None
            replayed += known is not None
            fresh.append((tx, key, partition, feats, known))
            dirty[key] = partition
        self._score_fresh(fresh, out)
        stages.add("features", features_ns)
        self._store(dirty)
        self._flow(out)
        telemetry = self.telemetry  # a metric update takes a lock: none for a zero
        telemetry.scores_out.inc(len(out.scores) + len(out.score_bodies))
        self._pack(out)
        if replayed:
            telemetry.replayed.inc(replayed)
        if rescored:
            telemetry.rescored.inc(rescored)
        telemetry.tx_in.inc(len(txs) - replayed)  # first deliveries only
        if out.alerts:
            telemetry.alerts.inc(len(out.alerts))
        telemetry.labels_held.set(clock.held())
        self._count_learned()
        stages.end(begun)
        return out

    def _score_fresh(self, fresh: list[Fresh], out: Outgoing) -> None:
        """Score new transactions with the model as it stands, and record them on their card."""
        if not fresh:
            return
        new = [f for _, _, _, f, known in fresh if known is None]
        started = self.stages.start()
        predicted = iter(self.runtime.predict_many(new) if new else ())
        self.stages.stop("model", started)
        clock = self.clock
        shadowed: list[tuple[Transaction, list[float], float, bool]] | None = (
            [] if self.challengers is not None else None)
        for tx, key, partition, feats, known in fresh:
            if known is None:
                score = next(predicted)
                self._emit_score(out, tx, score, feats)
            else:  # scored before a crash; its card's record of that was lost
                score, feats = known
            card = self._cache[key]
            card.add_pending(tx.tx_id, tx.ts, tx.terminal_id, score, feats)
            alerted = self._maybe_alert(tx, score, feats, out)
            if shadowed is not None and known is None:
                shadowed.append((tx, feats, score, alerted))
            held = card.early.get(tx.tx_id)
            if held is not None and clock.is_late(partition, held[1]):
                # its label came first and its time has come (a label known the moment of its
                # own transaction, or one that arrived late): learn now, after the score
                del card.early[tx.tx_id]
                entry = card.pop_pending(tx.tx_id)
                fraud, source = code_label(int(held[0]))
                out.snapshot_due |= self._learn(card, tx.tx_id, fraud, entry, held[1], source)
            expired = card.expire(tx.ts)
            if expired:
                self.telemetry.labels_expired.inc(expired)
        if shadowed:
            self._shadow(shadowed, out)

    def _shadow(self, scored: list[tuple[Transaction, list[float], float, bool]],
                out: Outgoing) -> None:
        """The challengers score what the champion just scored (``streams.challengers``)."""
        started = self.stages.start()
        txs = [t for t, _, _, _ in scored]
        shadow = self.challengers.scored(  # type: ignore[union-attr]
            txs, [f for _, f, _, _ in scored], [s for _, _, s, _ in scored],
            [a for _, _, _, a in scored])
        champion = self.runtime.name
        for tx, scores in zip(txs, shadow, strict=True):
            body = {"v": 1, "tx_id": tx.tx_id, "customer_id": tx.customer_id, "ts": tx.ts,
                    "champion": champion, "scores": scores}
            out.shadow.append((str(tx.customer_id).encode(), _dumps(body).encode()))
        self.stages.stop("model", started)

    def _rescore(self, card: CardState, tx: Transaction, out: Outgoing) -> None:
        """Score a seen transaction whose first score is lost (neither kept nor on Kafka).

        The features are read back without recording anything (the card and the terminals
        already count it); the windows end at the transaction's time, so they equal the
        first computation's unless the card's 30-day state was pruned since. The model is
        today's, so the score may differ from the lost one: the message says ``rescored``.
        """
        feats = [
            tx.amount,
            *time_features(tx.ts),
            *customer_window_features(card.customer, tx.ts),
            *self.replica.features(tx.terminal_id, tx.ts),
        ]
        score = self.runtime.predict_one(feats)
        self._emit_score(out, tx, score, feats, rescored=True)
        self._maybe_alert(tx, score, feats, out)

    def _maybe_alert(self, tx: Transaction, score: float, feats: list[float],
                     out: Outgoing) -> bool:
        """Ask the policy about every score (a budget learns its threshold from all cards'
        daily maxima); an alert carries the score's top 3 reasons (``models.explain``)."""
        if self.alert_policy.decide(tx.customer_id, tx.ts, score):
            out.alerts.append(self._alert_message(tx, score, feats))
            return True
        return False

    def _release(self, due: list[Held], partition: int, out: Outgoing,
                 dirty: dict[bytes, int]) -> None:
        """Learn held labels whose time has come; their cards are stored with the batch."""
        if partition not in self._read_from:
            for known_at, tx_id, key in due:  # nothing read from the partition yet
                self.clock.hold(partition, known_at, tx_id, key)
            return
        released = 0
        for known_at, tx_id, key in due:
            card = self._card(key, partition)
            held = card.early.get(tx_id)
            if held is None:  # learned or expired meanwhile
                continue
            entry = card.pop_pending(tx_id)
            if entry is None:  # its transaction is still to come: learned when it is scored
                continue
            del card.early[tx_id]
            fraud, source = code_label(int(held[0]))
            out.snapshot_due |= self._learn(card, tx_id, fraud, entry, known_at, source)
            released += 1
            dirty[key] = partition
        self.telemetry.labels_released.inc(released)

    def release_idle(self, partition: int) -> Outgoing:
        """The partition's transactions have stopped: release every label held for it.

        Called by the worker when the partition is caught up with its log end and has been
        idle for ``label_idle_s``; its watermark moves to the newest held label.
        """
        out = Outgoing()
        stages = self.stages
        begun = stages.begin()
        self._ensure_index()
        newest = self.clock.newest_held(partition)
        if newest is None or partition not in self._read_from:
            stages.end(begun)
            return out
        self.clock.advance(partition, newest)
        dirty: dict[bytes, int] = {}
        self._release(self.clock.due(partition, newest), partition, out, dirty)
        self._store(dirty)
        self._flow(out)
        self.telemetry.labels_held.set(self.clock.held())
        self._count_learned()
        stages.end(begun)
        return out

    def _emit_score(self, out: Outgoing, tx: Transaction, score: float, feats: list[float],
                    rescored: bool = False) -> None:
        started = perf_counter_ns()
        if len(self._sent_here) < SENT_HERE_MAX:
            self._sent_here.add(tx.tx_id)
        body = self._score_body(tx, score, feats, rescored)
        if self.pack_scores:
            out.score_bodies.append(body)
        else:
            # keyed by the card, as envelopes are: its partition picks the transaction
            out.scores.append((str(tx.customer_id).encode(), encode_score(body)))
        self.stages.add("output", perf_counter_ns() - started)

    def _pack(self, out: Outgoing) -> None:
        """One envelope per partition for the batch's scores (``streams.score_messages``)."""
        if not out.score_bodies:
            return
        started = self.stages.start()
        groups: dict[int, list[dict[str, Any]]] = {}
        for body in out.score_bodies:
            key = str(body["customer_id"]).encode()
            groups.setdefault(self.partition_of(key), []).append(body)
        for bodies in groups.values():
            for scores, message in encode_score_envelopes(bodies):  # keyed by its first card
                out.scores.append((str(scores[0]["customer_id"]).encode(), message))
        out.score_bodies = []
        self.stages.stop("output", started)

    def _score_body(self, tx: Transaction, score: float, feats: list[float],
                    rescored: bool = False) -> dict[str, Any]:
        now = time.time()
        self._latencies.append(max(0.0, now - tx.produced_at))
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
        if rescored:
            body["rescored"] = True
        return body

    def _alert_message(self, tx: Transaction, score: float, feats: list[float]) -> KeyValue:
        started = self.stages.start()
        try:
            why = reasons(self.runtime.model, feats, reference=self._feature_mean.reference)
        except ValueError:  # a tree with no reference yet (no label learned)
            why = []
        body = {
            "v": 1, "tx_id": tx.tx_id, "customer_id": tx.customer_id,
            "terminal_id": tx.terminal_id, "amount": tx.amount, "ts": tx.ts, "score": score,
            "threshold": self.alert_policy.threshold, "model": self.runtime.label,
            "reasons": why,
        }
        self.alert_log.record(body)
        message = (str(tx.customer_id).encode(), _dumps(body).encode())
        self.stages.stop("output", started)
        return message

    # -- labels --------------------------------------------------------------------------
    def learn(self, records: list[Record]) -> Outgoing:
        """Learn labels whose time has come; hold the others in their card's state.

        A label is learned at once when its partition's transactions are already at or past
        its ``known_at`` (a late label) and its transaction has been scored; otherwise it is
        kept in ``CardState.early`` (changelog-backed) and indexed in ``self.clock`` until
        ``score`` reaches its time. Fraud labels feed the terminal replica at once: the
        terminal features only count frauds with ``known_at <= t``, so recording one early
        is exact, and recording it late would not be.
        """
        out = Outgoing()
        stages = self.stages
        begun = stages.begin()
        labels: list[tuple[bytes, Label, int]] = []
        read_from = self._read_from
        for record in records:
            read_from.add(record.partition)
            labels.extend((key, label, record.partition)
                          for key, label in self._decode(record, split_labels, "labels", out))
        if not labels:
            stages.end(begun)
            return out
        self._ensure_index()
        self.telemetry.labels_in.inc(len(labels))
        dirty: dict[bytes, int] = {}
        clock = self.clock
        learn_time: dict[int, float] = {}  # per partition, once per batch (the floor loops)
        dupes = late = early = 0  # counted once per batch: a metric update is a lock
        now = time.time()
        for key, label, partition in labels:
            clock.read_label(partition, label.known_at)
            if label.source == FEEDBACK:
                self.alert_log.feedback_read(label.tx_id, label.customer_id, label.fraud,
                                             label.known_at, now)
            if label.fraud:
                self.replica.record_fraud(label.terminal_id, label.tx_ts, label.known_at,
                                          label.tx_id)
            card = self._card(key, partition)
            if label.tx_id in card.done:
                dupes += 1
                continue
            held = card.early.get(label.tx_id)
            if held is not None and label.known_at >= held[1]:
                dupes += 1  # one label per transaction: the earlier-known one wins
                continue
            until = learn_time.get(partition)
            if until is None:
                until = learn_time[partition] = clock.learn_time(partition)
            if label.known_at <= until:  # late: the transactions are past its known_at
                entry = card.pop_pending(label.tx_id)
                if entry is not None:
                    late += 1
                    if held is not None:
                        del card.early[label.tx_id]
                    out.snapshot_due |= self._learn(card, label.tx_id, label.fraud, entry,
                                                    label.known_at, label.source)
                    dirty[key] = partition
                    continue
                early += 1  # before its transaction
            else:
                clock.hold(partition, label.known_at, label.tx_id, key)
                if not card.seen(label.tx_id):
                    early += 1
            card.early[label.tx_id] = [label_code(label.fraud, label.source), label.known_at]
            dirty[key] = partition
        self._store(dirty)
        self._flow(out)
        t = self.telemetry
        t.label_dupes.inc(dupes)
        t.labels_late.inc(late)
        t.labels_early.inc(early)
        t.labels_held.set(clock.held())
        self._count_learned()
        stages.end(begun)
        return out

    # -- held labels: index rebuild and flow control -----------------------------------
    def _ensure_index(self) -> None:
        """Rebuild the held-label index from card state after partitions moved."""
        partitions = self._rebuild
        if partitions is None:
            return
        self._rebuild = None
        found: dict[int, list[Held]] = {p: [] for p in partitions}
        for key, raw in self._scan():
            if not raw or not CardState.has_early(raw):
                continue
            partition = self.partition_of(key)
            if partition not in found:
                continue
            card = self._cache.get(key) or CardState.from_bytes(raw)
            self._cache[key] = card
            found[partition].extend((known_at, tx, key) for tx, (_, known_at)
                                    in card.early.items())
        for partition, entries in found.items():
            self.clock.rebuild(partition, entries)

    def _scan(self) -> Any:
        scan = getattr(self.cards, "scan", None)
        return scan() if scan is not None else list(self.cards.items())

    def _flow(self, out: Outgoing) -> None:
        """Pause a labels partition holding more than ``hold_max`` labels; resume at half.

        A pause is asked again after every batch while the partition is over the bound (the
        framework may have resumed it meanwhile); a resume is asked once."""
        clock, paused = self.clock, self.paused
        for partition in clock.partitions():
            if clock.held(partition) > self.hold_max:
                paused.add(partition)
                out.pause.append(partition)
        for partition in list(paused):
            if clock.held(partition) <= self.hold_max // 2:
                paused.discard(partition)
                out.resume.append(partition)

    def _learn(self, card: CardState, tx_id: int, fraud: int, entry: Any,
               known_at: float, source: str) -> bool:
        card.mark_done(tx_id)
        self.alert_log.labelled(tx_id, fraud, source, known_at)
        self._feature_mean.update(entry.features)
        self.telemetry.observe_label(entry.score, fraud)  # rolling AUC/AP, in every mode
        shared = self.shared
        if shared is not None:
            if shared.known(tx_id):  # learned from a peer's example (a re-read after a crash)
                return False
            shared.record_local(tx_id, known_at, label_code(fraud, source), entry.features)
        if self.runtime.learn_enabled:
            self._learned += 1  # counted once per batch (``_count_learned``)
        started = self.stages.start()
        due = self.runtime.learn(entry.features, fraud, source)
        if self.challengers is not None:
            self.challengers.learned(tx_id, entry.features, fraud, source)
        self.stages.stop("model", started)
        return due

    def _count_learned(self) -> None:
        if self._latencies:
            self.telemetry.observe_latencies(self._latencies)
            self._latencies = []
        if self._learned:
            self.telemetry.learned.inc(self._learned)
            self._learned = 0

    def _learn_peers(self, t: float, out: Outgoing) -> None:
        """Learn the peers' examples known at or before ``t`` (``streams.shared_learning``)."""
        runtime, learned = self.runtime, 0
        started = self.stages.start()
        for features, code in self.shared.due(t):  # type: ignore[union-attr]
            fraud, source = code_label(code)  # the peer's label and its source
            out.snapshot_due |= runtime.learn(features, fraud, source)
            learned += 1
        self.stages.stop("model", started)
        if runtime.learn_enabled:
            self.telemetry.learned.inc(learned)
        self.telemetry.peer_examples.inc(learned)
