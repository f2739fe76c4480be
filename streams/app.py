"""The Faust application: topics, the card table, the scoring and learning agents, the web views.

``create_app(settings)`` builds a fresh app (tests and benchmarks run several with different
topic names); ``fraudstream worker`` runs one. Agents use ``concurrency=1`` on purpose:
faust-streaming can commit past an in-flight message with higher concurrency (issue #606), and
per-partition order is what the card state needs anyway. Scale out with more workers instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from time import thread_time_ns
from typing import Any, NamedTuple
from urllib.parse import quote

import faust
from faust.types import TP, EventT
from mode import CrashingSupervisor

from fraudstream.errors import FraudstreamError
from infra.settings import Settings
from models.features import FEATURE_NAMES
from models.registry import Registry
from producers.wire import last_event_time
from streams.alert_policy import make_alert_policy
from streams.card_table import CardTable
from streams.challengers import Challengers, Contender
from streams.dead_letters import read_dead_letters
from streams.label_clock import event_time_limit
from streams.label_wait import LABEL_WAIT_S, labels_behind
from streams.lease import Lease
from streams.model_runtime import Captured, ModelRuntime
from streams.output_transactions import Output, PartitionTransactions
from streams.process_age import age_text
from streams.processor import Outgoing, Processor, Record
from streams.prompt_fetch import PromptFetchApp
from streams.prompt_tables import PromptTableManager
from streams.published import read_published
from streams.rewind import install_rewind
from streams.seek_gate import SeekGate
from streams.shared_learning import SharedExamples
from streams.telemetry import QUALITY_EVERY_S, Telemetry
from streams.terminal_replica import TerminalReplica

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
TERMINAL_FLUSH_EVERY_S = 0.2
ALIGN_EVERY_S = 0.2
LOOP_PROBE_S = 0.25  # how often the event loop's responsiveness is sampled
ENVELOPE_WITHIN_S = 0.005
"""How long an envelope-mode batch waits for ``envelope_batch`` envelopes: in a backlog they
are already buffered; live, an envelope waits at most this long for others."""
READBACK_WAIT_S = 10.0
"""The longest the agents wait for a read-back of what is already out (``_before_reread``):
it takes about a second after a rejoin; it is bounded so that a slow one delays scoring,
never stops it."""
CARDS_STAGED_MAX = 20_000
"""Staged cards that make an agent publish them at once rather than wait for the next flush
or tick (``streams.card_table``): bounds a RocksDB write batch (~4 KB a card) and the work of
one flush."""
CARDS_PUBLISH_EVERY_S = 1.0
"""Staged cards are published at least this often, even when no offset is committed (labels
released on an idle partition change cards without a new offset). The timer skips a tick
that follows a publish by less than this: the flushes before the offset commits (every
``broker_commit_interval``, also 1 s) already publish, and a tick out of step with them
wrote every busy card twice a second (card writes per transaction 0.35 in an envelope drain,
2026-12-02)."""
SNAPSHOT_WAIT_S = 2.0
"""A captured snapshot waits this long for a flush (one comes with every offset commit,
``broker_commit_interval``); then the worker flushes for it (an idle worker commits none)."""
ALIGN_MIN_GAP_S = 0.01
"""The alignment also runs after each batch, at most this often (it reads every assigned
partition's high-water mark)."""
ALIGN_SLACK_S = 3600.0
"""How far in event time a transaction partition may run ahead of the slowest one still
reading (``streams.label_clock.event_time_limit``); live, every partition is caught up."""


class PendingSnapshot(NamedTuple):
    """A captured model snapshot waiting for a flush numbered above ``after_flush``."""

    after_flush: int
    captured_at: float
    captures: list[tuple[ModelRuntime, Captured]]


class FraudApp:
    """A Faust app plus the objects its agents share (model, replica, telemetry)."""

    def __init__(self, settings: Settings, worker_id: str = "w0") -> None:
        self.settings = settings
        self.worker_id = worker_id
        t = settings.topics
        data_dir = Path(settings.state_dir).resolve() / f"{settings.app_id}-{worker_id}"
        data_dir.mkdir(parents=True, exist_ok=True)  # two workers on a host: separate stores
        instance_id = settings.group_instance_id(worker_id)
        self.app = PromptFetchApp(
            settings.app_id,
            **settings.kafka.faust_kwargs(),
            store=settings.store,
            datadir=str(data_dir),
            autodiscover=False,
            topic_partitions=t.partitions,
            topic_replication_factor=t.replication,
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
            consumer_group_instance_id=instance_id,
            # Faust puts this URL in the group's assignment and asserts, when an assignment
            # comes back, that it is still its own. A static member restarted gets the
            # assignment its previous incarnation was given, so the URL must not change with
            # the web port (the coordinator thread died on that assert and the worker hung).
            # Nothing here routes requests by it (no table routing between workers).
            **({"canonical_url": f"http://127.0.0.1/workers/{quote(instance_id)}"}
               if instance_id else {}),
            web_enabled=settings.web_port > 0,
            web_port=settings.web_port or 6066,
            web_bind=settings.web_host,
            web_in_thread=False,
            producer_linger_ms=settings.producer_linger_ms,
            producer_max_batch_size=256 * 1024,
            broker_commit_every=10_000,
            broker_commit_interval=1.0,
            # Small fetches and buffers keep the partitions in event-time step (see
            # ``consumer_buffer``); the alignment pauses act on what is fetched next.
            stream_buffer_maxsize=settings.stream_buffer(),
            consumer_max_fetch_size=settings.fetch_bytes(),
            broker_max_poll_records=max(1, settings.stream_buffer() // 2),
            table_cleanup_interval=60.0,
            TableManager=PromptTableManager,
            logging_config=None,
            event_time_topics=[t.transactions] if settings.merges_event_time() else [],
        )
        app = self.app
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
               "value_serializer": "raw"}
        self.tx_topic = app.topic(t.transactions, partitions=t.partitions, **raw)
        self.labels_topic = app.topic(t.labels, partitions=t.partitions, **raw)
        self.scores_topic = app.topic(t.scores, partitions=t.partitions, **raw)
        self.alerts_topic = app.topic(t.alerts, partitions=t.partitions, **raw)
        self.tx_dlq = app.topic(t.transactions_dlq, partitions=1, **raw)
        self.labels_dlq = app.topic(t.labels_dlq, partitions=1, **raw)
        self.terminal_topic = app.topic(t.terminal_events, partitions=t.partitions, **raw)
        self.heartbeat_topic = app.topic(t.heartbeats, partitions=1, **raw)
        self.examples_topic = app.topic(t.learned_examples, partitions=t.partitions, **raw)
        # Keyed by the card id bytes, the same bytes as the source topics' keys; each card is
        # written in its records' partition (``CardTable.stage``).
        self.cards = app.Table(
            "cards", default=None, partitions=t.partitions,
            key_type=bytes, value_type=bytes,  # bytes -> "raw" codec: CardState.to_bytes
            options={"write_buffer_size": settings.rocksdb_write_buffer_mb << 20,
                     "max_write_buffer_number": 2,
                     "block_cache_size": settings.rocksdb_block_cache_mb << 20},
        )
        self.card_table = CardTable(self.cards)  # written behind: ``streams.card_table``
        self.telemetry = Telemetry(worker_id)
        self.replica = TerminalReplica(settings.label_delay_days)
        registry = Registry(settings.registry_dir, settings.model_signing_key.get_secret_value())
        self.runtime = ModelRuntime(
            settings.model, registry, snapshot_name=f"{settings.app_id}-{settings.model}-{worker_id}",
            snapshot_every=settings.snapshot_every_labels,
            learn=settings.learning in ("local", "shared"), warm_start=settings.model_snapshot,
            from_trainer=settings.learning == "trainer", keep=settings.snapshot_keep,
        )
        self.runtime.start()  # newest valid snapshot, or a fresh online model
        self.telemetry.model_version.set(self.runtime.version)
        self.processor = Processor(
            self.card_table, self.replica, self.runtime, self.telemetry,
            alert_threshold=settings.alert_threshold, worker_id=worker_id,
            partitions=settings.topics.partitions, hold_max=settings.label_hold_max,
            alert_policy=make_alert_policy(settings.alert_policy, settings.alert_budget,
                                           settings.alert_threshold),
        )
        self.challengers = self.processor.challengers = self._challengers(registry)
        self.shared: SharedExamples | None = None
        self._examples_from: dict[int, int] = {}
        if settings.learning == "shared":
            self.shared = self.processor.shared = SharedExamples(len(FEATURE_NAMES))
            self._examples_from = self.shared.restore(self.runtime.resume.get("shared"))
        # a batch is answered with one score message per partition (``score_messages``)
        self.processor.pack_scores = settings.processing_mode in ("envelope", "microbatch")
        self.seek_gate = SeekGate()
        install_rewind(self.app.consumer, (t.transactions, t.labels), settings.replay_on_assign,
                       on_rewound=self._before_reread,
                       on_seeking=self.seek_gate.seek_begins)
        self._positions: dict[Any, int] = {}  # per source partition: highest offset read
        self._tx_arrival: dict[int, float] = {}  # per partition: when a transaction last came
        self._tx_paused: set[Any] = set()  # transaction partitions ahead in event time
        self._aligned_at = 0.0
        self._scores_name, self._alerts_name = t.scores, t.alerts
        self.floors: tuple[float, float] = (math.inf, math.inf)  # sent in heartbeats
        self._floors_sent: tuple[float, float] | None = None
        self.started_at = time.time()
        self._sending = asyncio.Lock()
        """Held while an agent hands its results to the producer: the two agents' sends never
        interleave, so each one's CPU time can be told apart from the other's."""
        self.started_mono = time.monotonic()
        self._first_score_sent = False
        self._cards_published_at = 0.0  # monotonic time of the last ``publish_cards``
        self._reread_known = self.seek_gate.open
        """Clear while the worker seeks and reads back which re-read messages already have a
        score or a dead letter out (``_before_reread``): the agents wait for it, at most
        ``READBACK_WAIT_S``."""
        self._labels_progress = asyncio.Event()
        """Set after every batch of labels is read: a batch of transactions waiting for its
        labels (``_await_labels``) looks again."""
        self._sends_open = 0
        self._sends_idle = asyncio.Event()
        """Set while no agent is between scoring a batch and having handed its results over
        (``_send``): a read-back waits for it, so that it reads every score this worker sent."""
        self._sends_idle.set()
        self.outputs: PartitionTransactions | None = None
        """Scores, alerts and shadow scores in per-partition Kafka transactions
        (``streams.output_transactions``); None: through Faust's idempotent producer."""
        self._outputs_assigned: asyncio.Future[None] | None = None
        if settings.output_transactions:
            self.outputs = PartitionTransactions(
                f"{settings.app_id}-{t.transactions}",
                {**settings.kafka.aiokafka_kwargs(), "linger_ms": settings.producer_linger_ms,
                 "max_batch_size": 256 * 1024,
                 "transaction_timeout_ms": settings.transaction_timeout_ms},
                commit_every_s=settings.transaction_commit_ms / 1000)
            # Faust flushes its producer before it commits offsets: the transactions then
            # commit first, so no committed offset is ahead of a score that is not out
            self.app.producer.flush_hooks.append(self.outputs.commit)
        # and the staged cards go out first, so no committed offset is ahead of its cards
        self.app.producer.flush_first.append(self.publish_cards)
        # a captured model snapshot is written once a flush has sent its labels' cards
        self.app.producer.flush_hooks.append(self._save_snapshot)
        self._snapshot_pending: PendingSnapshot | None = None
        self.lease = Lease(settings.kafka.session_timeout_ms / 1000,
                           settings.kafka.heartbeat_interval_ms / 1000)
        """Renewed by every answered heartbeat: a worker cut off from its coordinator for
        longer than its session holds its events instead of scoring them (``streams.lease``)."""
        self._wire()

    def _challengers(self, registry: Registry) -> Challengers | None:
        """The shadow models of ``Settings.challengers`` (``streams.challengers``), or None."""
        s = self.settings
        names = s.challenger_names()
        if not names:
            return None
        from models.catalog import MODEL_NAMES

        for name in names:
            if name not in MODEL_NAMES:
                raise FraudstreamError(f"unknown challenger {name!r} (FRAUDSTREAM_CHALLENGERS); "
                                       f"choose from: {', '.join(MODEL_NAMES)}")
        shadows = []
        for name in names:
            runtime = ModelRuntime(
                name, registry, snapshot_name=f"{s.app_id}-challenger-{name}-{self.worker_id}",
                snapshot_every=10**12,  # written with the champion's snapshots (``_snapshot``)
                learn=s.learning in ("local", "shared"), keep=s.snapshot_keep)
            runtime.start()
            shadows.append(Contender(runtime, make_alert_policy(
                s.alert_policy, s.alert_budget, s.alert_threshold)))
        champion = Contender(self.runtime, self.processor.alert_policy)
        return Challengers(champion, shadows)

    def promote(self, name: str) -> bool:
        """Make challenger ``name`` the champion (``fraudstream promote``); False if refused."""
        from models.registry import RegistryError

        if self.challengers is None or name == self.runtime.name:
            return False
        try:
            path = self.challengers.promote(name)
        except (KeyError, RegistryError) as exc:
            log.error("promotion of %s refused: %s", name, exc)
            self.telemetry.promotions_refused.inc()
            return False
        self.processor.alert_policy = self.challengers.champion.policy
        self.telemetry.promotions.inc()
        self.telemetry.observe_models(self.challengers.quality())
        log.info("champion is now %s (from %s)", self.runtime.label, path)
        return True

    # ---------------------------------------------------------------------------------
    async def _send(self, out: Outgoing, dlq: faust.TopicT) -> None:
        """Hand results to the producer before the agent takes the next event.

        ``await send`` (not ``send_soon``): Faust flushes the producer before it commits an
        offset, but not its own ``send_soon`` buffer, so a score left there could be lost to a
        crash after its source offset was committed. The cards these results depend on are
        staged, and go out with the next flush, before any offset after them is committed
        (``streams.card_table``).
        """
        self._sends_open += 1  # before any await: the batch was scored just now
        self._sends_idle.clear()
        try:
            await self._hand_over(out, dlq)
        finally:
            self._sends_open -= 1
            if not self._sends_open:
                self._sends_idle.set()

    async def _hand_over(self, out: Outgoing, dlq: faust.TopicT) -> None:
        shared = self.shared
        if shared is not None:  # the examples first: re-sent after a crash rather than lost
            for examples in shared.take_outgoing():
                await self.examples_topic.send(key=self.worker_id.encode(), value=examples)
        stages = self.processor.stages
        async with self._sending:  # one agent's results at a time: see ``_sending``
            if len(self.card_table.staged) >= CARDS_STAGED_MAX:
                await self.publish_cards()
            # CPU time, not wall (an await that waits must not count), less what the
            # processor did meanwhile (the other agent's batch, counted in its own stages)
            sent, counted_sent = thread_time_ns(), stages.total_ns()
            if self.outputs is not None:
                await self._send_in_transactions(out)
            else:
                send = self.app.producer.send  # not Topic.send: see ``streams.card_table``
                for key, value in out.scores:
                    await send(self._scores_name, key, value, None, None, None)
                for key, value in out.alerts:
                    await send(self._alerts_name, key, value, None, None, None)
                for key, value in out.shadow:
                    await send(self.settings.topics.shadow_scores, key, value, None, None, None)
            if not self._first_score_sent and out.scores:
                self._first_score_sent = True  # a restart's last phase (``process_age``)
                log.info("first score sent at process age %s", age_text())
            for key, value in out.dead:
                await dlq.send(key=key, value=value)
            stages.add_cpu("output",
                           thread_time_ns() - sent - (stages.total_ns() - counted_sent))
        if out.pause or out.resume:
            self._label_flow(out.pause, out.resume)
        now = time.monotonic()
        if now - self._aligned_at >= ALIGN_MIN_GAP_S:  # after batches too, not only on the
            self._aligned_at = now  # timer: a tick's worth of transactions overran the labels
            self._align_event_time()
        if out.snapshot_due:
            began = thread_time_ns()
            self._capture_snapshot()
            stages.add_cpu("model", thread_time_ns() - began)

    async def publish_cards(self) -> None:
        """Write the staged cards and publish their changelog (``CardTable.publish``): before
        every producer flush, on a timer, and when too many are staged."""
        stages = self.processor.stages
        began, counted = thread_time_ns(), stages.total_ns()
        self._cards_published_at = time.monotonic()
        written = await self.card_table.publish()
        # CPU time less what the processor did meanwhile (an agent's batch, counted apart)
        stages.add_cpu("state", thread_time_ns() - began - (stages.total_ns() - counted))
        if written:
            self.telemetry.card_writes.inc(written)

    async def _send_in_transactions(self, out: Outgoing) -> None:
        """Scores, alerts and shadow scores into their card's partition's transaction
        (every one is keyed by its card: ``Processor.partition_of``)."""
        if not (out.scores or out.alerts or out.shadow):
            return
        partition_of = self.processor.partition_of
        sends: list[Output] = [(partition_of(k), self._scores_name, k, v) for k, v in out.scores]
        if out.alerts:
            sends += [(partition_of(k), self._alerts_name, k, v) for k, v in out.alerts]
        if out.shadow:
            shadow = self.settings.topics.shadow_scores
            sends += [(partition_of(k), shadow, k, v) for k, v in out.shadow]
        await self.outputs.send(sends)  # type: ignore[union-attr]

    def _label_flow(self, pause: list[int], resume: list[int]) -> None:
        """Stop fetching labels for partitions holding too many, resume them at half.

        Faust's own back-pressure calls are used (``on_buffer_full``/``on_buffer_drop``), not
        ``pause_partitions``: a paused partition's records already fetched in the current
        batch are dropped by Faust's fetch loop while the consumer's position has moved past
        them (measured: labels never learned, AP 0.573 instead of 0.635 on a 117,229-label
        backlog), whereas a "buffered" partition still delivers what was fetched. Faust may
        resume such a partition on its own (its queue drained, a rebalance): the processor
        asks again after every batch for as long as the partition is over the bound.
        """
        consumer = self.app.consumer
        topic = self.settings.topics.labels
        assigned = set(consumer.assignment())
        for partition in pause:
            tp = TP(topic, partition)
            if tp in assigned:
                consumer.on_buffer_full(tp)
        for partition in resume:
            tp = TP(topic, partition)
            if tp in assigned:
                consumer.on_buffer_drop(tp)

    def _caught_up(self, tp: Any) -> bool:
        """Whether every message of ``tp`` the broker has was handed to the agents."""
        highwater = self.app.consumer.highwater(tp)
        position = self._positions.get(tp)
        return highwater is not None and (0 if position is None else position + 1) >= highwater

    def _event_time_floors(self) -> tuple[float, float]:
        """(smallest transaction watermark, smallest label ``known_at`` read) over this
        worker's partitions that still have messages to read (inf: all caught up)."""
        t, clock = self.settings.topics, self.processor.clock
        tx_floor = label_floor = math.inf
        with contextlib.suppress(Exception):  # consumer not started yet
            for tp in self.app.consumer.assignment():
                if tp.topic not in (t.transactions, t.labels) or self._caught_up(tp):
                    continue
                if tp.topic == t.transactions:
                    tx_floor = min(tx_floor, clock.watermark(tp.partition))
                else:
                    label_floor = min(label_floor,
                                      clock.labels_read.get(tp.partition, -math.inf))
        return tx_floor, label_floor

    def _align_event_time(self) -> None:
        """Pause this worker's transaction partitions that run ahead in event time.

        The floors are the smallest over this worker and every live peer (their heartbeats
        carry them), so two workers keep each other's pace too; see
        ``streams.label_clock.event_time_limit``. Faust's buffered-partition calls stop the
        fetching and still deliver what was fetched (``_label_flow`` says why not
        ``pause_partitions``); a pause is asked again every tick while the partition is ahead.
        """
        tx_floor, label_floor = self.floors = self._event_time_floors()
        source = self.assigned_source()  # asked once a tick: it goes to the consumer thread
        self.processor.clock.reading = {tp.partition for tp in source if not self._caught_up(tp)}
        if self.settings.merges_event_time():
            # this worker's own partitions reach the agent in event time already
            # (``streams.event_time_merge``): pausing the one ahead of the others stalls the
            # merge, which waits for that partition's next message before the others' go on
            # (``drain_one`` of logreg, 2026-12-02: 3,500 tx/s instead of 11,800 with the
            # merge's wait at 5 s; at 0.25 s the merge gave up its order, 12-26% of rows with
            # a feature off in ``bench parity``). The peers' floors and the labels bound it.
            tx_floor = math.inf
        now = time.time()
        for beat in self.telemetry.peers.values():
            if str(beat.get("worker")) == self.worker_id or now - float(beat.get("t", 0)) > 10:
                continue
            peer_tx, peer_label = (math.inf if f is None else float(f)
                                   for f in beat.get("floors") or (None, None))
            tx_floor, label_floor = min(tx_floor, peer_tx), min(label_floor, peer_label)
        limit = event_time_limit(tx_floor, label_floor, tx_slack=ALIGN_SLACK_S, label_slack=0.0)
        consumer, clock, paused = self.app.consumer, self.processor.clock, self._tx_paused
        for tp in source:
            if clock.watermark(tp.partition) > limit:
                consumer.on_buffer_full(tp)
                paused.add(tp)
            elif tp in paused:
                consumer.on_buffer_drop(tp)
                paused.discard(tp)
        self.telemetry.partitions_paused.set(len(paused))

    async def _release_idle_labels(self) -> None:
        """Release the held labels of caught-up transaction partitions that have been idle
        for ``label_idle_s`` (a replay's end, a quiet partition: see ``streams.label_clock``)."""
        processor = self.processor
        held = processor.clock.partitions()
        if not held:
            return
        now = time.monotonic()
        for tp in self.assigned_source():
            if tp.partition not in held:
                continue
            if now - self._tx_arrival.get(tp.partition, self.started_mono) < self.settings.label_idle_s:
                continue
            if not self._caught_up(tp):
                continue  # transactions are still to be read: their event time decides
            await self._send(processor.release_idle(tp.partition), self.labels_dlq)

    async def _before_reread(self, starts: dict[Any, int]) -> None:
        """Before re-reading, learn which of those messages already have a score or a dead
        letter out (read together: both are on the path to the first score).

        Faust seeks twice after an assignment and lets the agents process between the two,
        so the second read-back runs while re-read messages are being answered: what the
        first one found stays in use until the second is done, and is then replaced (it
        used to be cleared when the second began: a rejoined worker scored again, with its
        own model, transactions whose scores were out, in the 0.2-0.8 s of that read-back,
        measured with ``reliability.link_cut``). A revocation clears it (``on_revoked``).

        The agents wait while it runs (``_may_process``): Faust may resume the flow before it
        is done, and a rejoined worker then scored again, in the second before its only
        read-back ended, 48 transactions whose scores were out (``fraudstream chaos --only
        link-cut --seed 7``, 2026-12-01). Of overlapping read-backs, only the one begun last
        is used, and only its end lets the agents go on (``streams.seek_gate``)."""
        ticket = self.seek_gate.read_back_begins()
        log.info("reading back what is out for re-read partitions %s",
                 sorted((tp.topic, tp.partition, offset) for tp, offset in starts.items()))
        try:
            await self._read_back(starts, ticket)
        finally:
            self.seek_gate.read_back_ends(ticket)

    async def _read_back(self, starts: dict[Any, int], ticket: int) -> None:
        if self._outputs_assigned is not None:
            # fenced first: the previous owner's open transaction is aborted before
            # the read-back, and nothing it sends later is added
            await self._outputs_assigned
        if self.outputs is not None:
            # and this worker's own scores out: Faust lets the agents process between
            # its two seeks, and a score still in an open transaction is not read back
            # (a re-read then sent it again: 3 duplicates, ``tests/reliability/
            # test_link_cut.py``, 2026-12-02). A batch scored before the agents were
            # held is waited for first (its scores went into a transaction opened after
            # the commit, and were sent again: 2 duplicates, ``fraudstream chaos --seed
            # 7``, 05:34).
            try:
                await asyncio.wait_for(self._sends_idle.wait(), READBACK_WAIT_S)
            except TimeoutError:
                log.warning("a batch still being sent after %.0f s: reading back "
                            "without it", READBACK_WAIT_S)
            await self.outputs.commit()
        await asyncio.gather(self._load_published(starts, ticket),
                             self._load_dead_letters(starts, ticket))

    async def _load_published(self, starts: dict[Any, int], ticket: int) -> None:
        """Which re-read transactions already have a score out (``streams.published``)."""
        t = self.settings.topics
        tx_starts = {tp: offset for tp, offset in starts.items() if tp.topic == t.transactions}
        began = time.monotonic()
        try:
            read_back = await read_published(self.settings.kafka.aiokafka_kwargs(), t.scores,
                                             tx_starts, t.partitions)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # degrade to re-scoring, never stop the worker for this
            log.warning("could not read back published scores (%s); re-read transactions "
                        "without a card record will be scored again", exc)
            return
        if not self.seek_gate.is_latest(ticket):  # a later seek's read-back replaces it
            return
        self.processor.keep_published(read_back.scores, read_back.source_ends,
                                      {(tp.topic, tp.partition): offset
                                       for tp, offset in tx_starts.items()})
        log.info("%d published scores read back for %d re-read partition(s) in %.1f s",
                 len(read_back.scores), len(tx_starts), time.monotonic() - began)

    async def _load_dead_letters(self, starts: dict[Any, int], ticket: int) -> None:
        """Which re-read messages already have a dead letter out (``streams.dead_letters``)."""
        t = self.settings.topics
        try:
            sources = await read_dead_letters(self.settings.kafka.aiokafka_kwargs(),
                                              (t.transactions_dlq, t.labels_dlq), starts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # degrade to dead-lettering again, never stop the worker
            log.warning("could not read back dead letters (%s); re-read malformed messages "
                        "will be dead-lettered again", exc)
            return
        if not self.seek_gate.is_latest(ticket):
            return
        self.processor.dead_lettered = sources
        if sources:
            log.info("%d dead letters read back: not sent again on re-read", len(sources))

    def _heartbeat(self) -> None:
        """Tell peers and the dashboard how this worker is doing (``heartbeats`` topic)."""
        now = time.time()
        self.telemetry.heartbeat.set(now)
        self._floors_sent = self.floors
        body = {
            "worker": self.worker_id, "t": now, "pid": os.getpid(),
            "tx_total": self.telemetry.tx_in._value.get(),
            "model_version": self.runtime.version,
            "partitions": sorted(tp.partition for tp in self.assigned_source()),
            # JSON has no infinities (the dashboard's JSON.parse refuses them): all caught
            # up is null, no watermark yet is 0 (the epoch: every partition waits for it)
            "floors": [None if f == math.inf else max(f, 0.0) for f in self.floors],
        }
        self.heartbeat_topic.send_soon(key=self.worker_id.encode(),
                                       value=json.dumps(body).encode())

    def _capture_snapshot(self) -> None:
        """Capture the model now; ``_save_snapshot`` writes it after the next flush.

        The cards marking this model's labels learned must be on Kafka before a snapshot
        that holds them: else a restart from it learns them again. They are all staged
        now (the processor stages a batch's cards before it returns), so the first flush
        that starts from now sends them (its ``publish_cards``) and waits for them. Before,
        the scoring agent flushed for every snapshot and snapshotted after: twice a second
        in a drain, half the card writes of the run (2026-12-02), and a label learned by
        the other agent during that flush was in the snapshot without its card.
        """
        auc, ap = self.telemetry.rolling_quality()
        resume = {"shared": self.shared.checkpoint()} if self.shared is not None else None
        captures = [(self.runtime,
                     self.runtime.capture({"rolling_auc": auc, "rolling_ap": ap}, resume))]
        if self.challengers is not None:
            captures += [(shadow.runtime, shadow.runtime.capture())
                         for shadow in self.challengers.challengers
                         if shadow.runtime.learn_enabled]
        # a newer capture replaces one still waiting: it holds every label of the older
        self._snapshot_pending = PendingSnapshot(self.app.producer.flushes_started,
                                                 time.monotonic(), captures)

    async def _save_snapshot(self) -> None:
        """After a flush: write the captured snapshot if that flush began after it."""
        pending = self._snapshot_pending
        if pending is None or self.app.producer.flushed_through <= pending.after_flush:
            return
        self._snapshot_pending = None
        for runtime, captured in pending.captures:
            runtime.save(captured)
        self.telemetry.model_version.set(self.runtime.version)

    def _record(self, event: EventT) -> Record:
        m = event.message
        position = self._positions
        if m.offset >= position.get(m.tp, -1):
            position[m.tp] = m.offset
        if m.topic == self.settings.topics.transactions:
            self._tx_arrival[m.partition] = time.monotonic()
        return Record(m.key, m.value, m.topic, m.partition, m.offset, event)

    def _wire(self) -> None:
        app, s = self.app, self.settings
        t = s.topics
        mode = s.processing_mode

        # An agent that raises stops the worker (mode's CrashingSupervisor), not restarted in
        # place as Faust's default would: the events of its batch in flight are acked by
        # Faust all the same, so a restarted agent goes on without them (measured: an
        # oversized score message crashed the agent, 20,000 transactions were never scored
        # and the drain stalled). A worker started again re-reads from before its committed
        # offsets (``streams.rewind``, ``replay_on_assign`` messages a partition).
        @app.agent(self.tx_topic, concurrency=1, supervisor_strategy=CrashingSupervisor)
        async def score_transactions(stream: faust.StreamT) -> None:
            await self.replica.ready.wait()
            if self.shared is not None:  # the peers' examples the snapshot lacks come first
                await self.shared.ready.wait()
            if mode == "event" or (mode == "envelope" and s.envelope_batch == 1):
                async for event in stream.events():
                    if not (self.lease.held() and self._reread_known.is_set()):
                        await self._may_process(1)  # a coroutine only when one is out
                    await self._send(self.processor.score([self._record(event)]), self.tx_dlq)
                return
            # A micro-batch of messages, or of envelopes: the processor reads and writes each
            # card once per batch, so several envelopes of a partition cost one card write
            size, within = ((s.microbatch_size, s.microbatch_within_s) if mode == "microbatch"
                            else (s.envelope_batch, ENVELOPE_WITHIN_S))
            waits_for_labels = s.merges_event_time()  # 1 MiB fetches: see streams.label_wait
            async for events in stream.take_events(size, within):
                if not (self.lease.held() and self._reread_known.is_set()):
                    await self._may_process(len(events))
                if waits_for_labels:
                    await self._await_labels(events)
                await self._send(self.processor.score([self._record(e) for e in events]),
                                 self.tx_dlq)

        @app.agent(self.labels_topic, concurrency=1, supervisor_strategy=CrashingSupervisor)
        async def learn_labels(stream: faust.StreamT) -> None:
            await self.replica.ready.wait()
            if self.shared is not None:
                await self.shared.ready.wait()
            async for events in stream.take_events(500, 0.05):
                if not (self.lease.held() and self._reread_known.is_set()):
                    await self._may_process(len(events))
                await self._send(self.processor.learn([self._record(e) for e in events]),
                                 self.labels_dlq)
                self._labels_progress.set()

        @app.task
        async def follow_terminals() -> None:
            kwargs = s.kafka.aiokafka_kwargs()
            while True:
                try:
                    await self.replica.follow(s.topics.terminal_events, t.partitions, kwargs)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker restart: resume by replaying the log
                    log.warning("terminal replica lost its consumer (%s); restarting", exc)
                    await asyncio.sleep(1.0)

        @app.timer(TERMINAL_FLUSH_EVERY_S)
        async def publish_terminal_deltas() -> None:
            body = self.replica.take_outgoing()
            if body is not None:
                self.terminal_topic.send_soon(key=self.worker_id.encode(), value=body)

        @app.timer(ALIGN_EVERY_S)
        async def align_event_time() -> None:
            self._align_event_time()

        @app.timer(1.0)
        async def release_idle_labels() -> None:
            await self._release_idle_labels()

        @app.timer(1.0)
        async def sample_telemetry() -> None:
            self.telemetry.alert_threshold.set(self.processor.alert_policy.threshold)
            if self.shared is not None:
                self.telemetry.peer_examples_waiting.set(self.shared.waiting())
            self.telemetry.sample(self.consumer_lag())
            if self.outputs is not None:
                self._count_outputs(self.outputs)

        @app.timer(HEARTBEAT_EVERY_S)
        async def heartbeat() -> None:
            self._heartbeat()

        @app.timer(ALIGN_EVERY_S)
        async def announce_floors() -> None:
            # Peers pause their partitions against these floors: a floor two seconds old
            # held two workers in a stop-and-go lockstep (measured, ``python -m
            # benchmarks.scaling --tx 40000 --repeats 1``: two workers 581 tx/s with a beat
            # every 2 s, 1,412 with one every 0.2 s). Sent only when they changed: live and
            # caught up, they do not.
            if self.floors != self._floors_sent:
                self._heartbeat()

        @app.task
        async def follow_heartbeats() -> None:
            await self._follow_heartbeats()

        if self.shared is not None:

            @app.task
            async def follow_learned_examples() -> None:
                await self._follow_examples()

        if s.learning == "trainer":

            @app.task
            async def follow_model_snapshots() -> None:
                await self._follow_snapshots()

        if self.challengers is not None:

            @app.task
            async def follow_promotions() -> None:
                await self._follow_promotions()

            @app.timer(QUALITY_EVERY_S)
            async def sample_models() -> None:
                self.telemetry.observe_models(self.challengers.quality())  # type: ignore[union-attr]

        @app.task
        async def watch_event_loop() -> None:
            # A stall of the loop delays the consumer's heartbeats as much: against the
            # session timeout, this is the margin before the group takes the worker for dead.
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                await asyncio.sleep(LOOP_PROBE_S)
                self.telemetry.observe_loop_stall(loop.time() - started - LOOP_PROBE_S)

        @app.timer(CARDS_PUBLISH_EVERY_S)
        async def publish_cards() -> None:
            now, pending = time.monotonic(), self._snapshot_pending
            if pending is not None and now - pending.captured_at >= SNAPSHOT_WAIT_S:
                await self.app.producer.flush()  # no commit came (idle): publish, then save
            elif now - self._cards_published_at >= CARDS_PUBLISH_EVERY_S:
                await self.publish_cards()

        if self.outputs is not None:
            outputs = self.outputs

            @app.timer(s.transaction_commit_ms / 1000)
            async def commit_outputs() -> None:
                await outputs.commit_due()

            @app.on_before_shutdown.connect
            async def stop_outputs(app_: faust.App, *args: Any, **kwargs: Any) -> None:
                await outputs.stop()

        @app.on_partitions_revoked.connect
        async def on_revoked(app_: faust.App, *args: Any, **kwargs: Any) -> None:
            self.processor.invalidate()
            self.processor.keep_published({}, {}, {})  # read again for the next assignment
            self._positions.clear()  # re-learnt from the next events (a rewind re-reads)
            self._tx_paused.clear()  # Faust makes every assigned partition active again

        @app.on_partitions_assigned.connect
        async def on_assigned(app_: faust.App, *args: Any, **kwargs: Any) -> None:
            # the held-label index is rebuilt from the cards of these partitions
            assigned = args[0] if args else kwargs.get("assigned", set())
            mine = {tp.partition for tp in assigned if tp.topic == t.transactions}
            self.telemetry.assignments.inc()
            self.lease.install(self.app.consumer)
            self.lease.renew()
            self.processor.invalidate(mine)
            self.processor.clock.reading = set(mine)  # until the first alignment tick
            if self.outputs is not None:  # fences the partitions' previous owners
                self._outputs_assigned = asyncio.ensure_future(self.outputs.assign(mine))
                await self._outputs_assigned
            if mine:  # the daily alert budget is shared by the partitions' owners
                self.processor.alert_policy.set_share(len(mine) / t.partitions)

        from streams.web import register_views

        register_views(self)

    # ---------------------------------------------------------------------------------
    async def _may_process(self, n_events: int) -> None:
        """Wait while a read-back of what is already out is running (at most
        ``READBACK_WAIT_S``: past it the worker scores again, as without the read-back), then
        while this worker's lease on its partitions is out (``streams.lease``), then for a
        read-back that began meanwhile. The agents call it only when one of the two is out,
        so the per-event path costs a clock read and a flag test.

        Why the read-back is looked at until it is seen done, and again after a lease wait:
        a batch was scored while a read-back ran, without the scores it was reading (391
        duplicate scores of re-read transactions in one run of
        ``tests/reliability/test_link_cut.py``, 2026-12-02: the new owner scored them 0.14-0.40
        s into a 0.4 s read-back that began 25 ms after the previous one ended). Two ways in:
        a waiter woken by the end of one read-back resumes after the next has begun, and a
        lease wait ends with a rebalance, which begins one."""
        await self._await_read_back(n_events)
        lease = self.lease
        if lease.held():
            return
        waits, released = lease.waits, lease.released
        await lease.allows(lambda: bool(self.app.rebalancing), n_events)
        self.telemetry.lease_waits.inc(lease.waits - waits)
        self.telemetry.lease_released.inc(lease.released - released)
        await self._await_read_back(n_events)

    def _labels_behind(self, events: list[EventT]) -> dict[int, float]:
        last: dict[int, bytes] = {}
        for event in events:  # a partition's messages come in offset order: its last is latest
            last[event.message.partition] = event.message.value
        needs = {p: t for p, raw in last.items() if (t := last_event_time(raw)) is not None}
        if not needs:
            return {}
        labels, clock = self.settings.topics.labels, self.processor.clock
        return labels_behind(needs, clock.labels_read, self.processor.paused,
                             lambda p: self._caught_up(TP(labels, p)))

    async def _await_labels(self, events: list[EventT]) -> None:
        """Hold a batch until its partitions' labels have been read up to its event time, at
        most ``LABEL_WAIT_S`` (``streams.label_wait``). Looked at again after every labels
        batch, and every 50 ms for a labels partition that turns out to be all read."""
        if not self._labels_behind(events):
            return
        self.telemetry.label_waits.inc()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LABEL_WAIT_S
        while self._labels_behind(events):
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.telemetry.label_waits_expired.inc()
                return
            self._labels_progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._labels_progress.wait(), min(remaining, 0.05))

    async def _await_read_back(self, n_events: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READBACK_WAIT_S
        while not self._reread_known.is_set():  # set, then cleared by the next: wait on
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("read-back of published scores still running after %.0f s: "
                            "processing %d held event(s); re-read ones may be scored again",
                            READBACK_WAIT_S, n_events)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reread_known.wait(), remaining)

    def _count_outputs(self, outputs: PartitionTransactions) -> None:
        """The output transactions' counts into the worker's metrics."""
        tel = self.telemetry
        tel.output_transactions.inc(outputs.commits - tel.output_transactions._value.get())
        tel.outputs_fenced.inc(outputs.fenced - tel.outputs_fenced._value.get())

    def assigned_source(self) -> set[Any]:
        with contextlib.suppress(Exception):
            return {tp for tp in self.app.consumer.assignment()
                    if tp.topic == self.settings.topics.transactions}
        return set()

    def consumer_lag(self) -> float:
        """Messages between the consumer's position and the log end, over the source topics."""
        per_topic = {self.settings.topics.transactions: 0.0, self.settings.topics.labels: 0.0}
        try:
            consumer = self.app.consumer
            for tp in consumer.assignment():
                if tp.topic not in per_topic:
                    continue
                highwater = consumer.highwater(tp)
                position = self._positions.get(tp)  # last offset handed to the agents
                if highwater is None:
                    continue
                next_offset = 0 if position is None else position + 1
                per_topic[tp.topic] += max(0, highwater - next_offset)
        except Exception:  # consumer not started yet
            return 0.0
        for topic, lag in per_topic.items():
            self.telemetry.lag.labels(topic).set(lag)
        return sum(per_topic.values())

    async def _follow(self, topic: str, offset_reset: str, handle: Any) -> None:
        """Read ``topic`` outside the consumer group (every worker sees every record),
        calling ``handle(value)``; reconnect after broker trouble, until cancelled."""
        from aiokafka import AIOKafkaConsumer

        while True:
            consumer = AIOKafkaConsumer(topic, group_id=None, auto_offset_reset=offset_reset,
                                        **self.settings.kafka.aiokafka_kwargs())
            try:
                await consumer.start()
                async for record in consumer:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        handle(json.loads(record.value))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("follower of %s restarting: %s", topic, exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _follow_examples(self) -> None:
        """Read the peers' learned examples (``streams.shared_learning``); after broker
        trouble, carry on from the last message read."""
        shared, topic = self.shared, self.settings.topics.learned_examples
        assert shared is not None
        while True:
            try:
                await shared.follow(topic, self.settings.topics.partitions,
                                    self.settings.kafka.aiokafka_kwargs(), self._examples_from)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("learned-examples reader restarting: %s", exc)
                await asyncio.sleep(1.0)

    async def _follow_snapshots(self) -> None:
        """Swap in each snapshot the trainer publishes (verified; a bad one is refused).

        The trainer's versions are their own lineage (a worker may have started from another
        snapshot, whose version says nothing about them): a note is taken when it is newer
        than the last trainer note taken."""
        taken = {"version": 0}

        def on_note(note: dict[str, Any]) -> None:
            version = int(note["version"])
            if version > taken["version"] and self.runtime.reload_from(note["path"]):
                taken["version"] = version
                self.telemetry.model_version.set(self.runtime.version)

        await self._follow(self.settings.topics.model_snapshots, "earliest", on_note)

    async def _follow_promotions(self) -> None:
        """Act on ``fraudstream promote`` notes (key ``promote`` on ``model-snapshots``).

        Read from the earliest: a worker restarted after a promotion whose champion snapshot
        was not written yet applies the note again; one whose champion already is the named
        model ignores it."""
        def on_note(note: dict[str, Any]) -> None:
            name = note.get("promote")
            if isinstance(name, str):
                self.promote(name)

        await self._follow(self.settings.topics.model_snapshots, "earliest", on_note)

    async def _follow_heartbeats(self) -> None:
        def on_beat(beat: dict[str, Any]) -> None:
            self.telemetry.peers[str(beat["worker"])] = beat
            now = time.time()
            alive = sum(1 for b in self.telemetry.peers.values() if now - b["t"] < 10)
            self.telemetry.workers_alive.set(alive)
            if alive > 1 and self.settings.learning == "local" and not warned:
                warned.append(True)
                log.warning("%d workers share this group with FRAUDSTREAM_LEARNING=local: each "
                            "model learns only its own partitions' labels; "
                            "FRAUDSTREAM_LEARNING=shared makes every model learn all of them",
                            alive)

        warned: list[bool] = []

        await self._follow(self.settings.topics.heartbeats, "latest", on_beat)


def create_app(settings: Settings, worker_id: str = "w0") -> FraudApp:
    return FraudApp(settings, worker_id)
