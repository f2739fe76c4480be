"""Sending the timeline to Kafka with kafka-python.

Producer settings, chosen on purpose (``producer_config``):

* ``acks="all"`` + ``enable_idempotence=True``: a retried batch is neither duplicated nor
  reordered (idempotence caps in-flight requests at 5 and the broker rejects out-of-sequence
  batches). Per-card order is part of the contract, and plain retries with several requests
  in flight can reorder a partition. On a single local broker it costs nothing measurable.
* ``linger_ms=20``, ``batch_size=256 KiB``: wait up to 20 ms to fill a batch. Per-request
  overhead dominates small JSON messages; 20 ms of added latency is noise next to a fraud
  decision, and at full speed batches fill before the linger expires anyway. A paced,
  latency-measured stream wants less (``--linger-ms``): at 2,000 tx/s a batch never fills,
  so every transaction waited 0-20 ms before it left the producer.
* no compression by default: JSON of ~200 bytes per event over loopback is cheap to send, and
  on a 2-core machine the codec would compete with event encoding for the same interpreter
  (only gzip, the slowest, is available without extra wheels). For a remote broker pass
  ``--compression lz4`` (or zstd) with the codec installed: JSON compresses 4-6x.
* ``metrics_enabled=False``: kafka-python's client-side metrics cost CPU on every record and
  we report our own numbers.

Partitions are computed here (Kafka's murmur2 of the key, cached per card) rather than left to
the client, because envelopes must know the partition before they are built; the result is the
partition Kafka's own default partitioner would pick for the key, so Faust and plain consumers
agree with it. Record timestamps are left to the client (send time): event times from 2018 as
record timestamps would fall outside the topics' retention and be deleted at once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fraudstream.errors import FraudstreamError
from producers.envelope import Packer
from producers.events import LABEL, TRANSACTION, finish, label_prefix, transaction_prefix
from producers.pacing import Pacer
from producers.partitioning import murmur2_partition
from producers.timeline import TX

MAX_ENVELOPE = 2_000  # ~450 KB of JSON: stays under the broker's default 1 MB message limit
COMPRESSIONS = ("none", "gzip", "lz4", "zstd", "snappy")
PROGRESS_EVERY = 4_096


LINGER_MS = 20
"""The producer's default wait to fill a batch (why: see the module docstring)."""


def producer_config(compression: str = "none", linger_ms: int = LINGER_MS) -> dict[str, Any]:
    """kafka-python KafkaProducer settings (why: see the module docstring)."""
    if compression not in COMPRESSIONS:
        raise FraudstreamError(f"unknown compression {compression!r} ({', '.join(COMPRESSIONS)})")
    if compression not in ("none", "gzip"):
        from kafka import codec

        if not getattr(codec, f"has_{compression}")():
            raise FraudstreamError(
                f"compression {compression} needs its Python codec package installed"
            )
    return {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": linger_ms,
        "batch_size": 256 * 1024,
        "compression_type": None if compression == "none" else compression,
        "max_request_size": 1_048_576,
        "metrics_enabled": False,
        "client_id": "fraudstream-producer",
    }


@dataclass
class SendReport:
    """What was sent, for the closing summary and the benchmark."""

    transactions: int = 0
    labels: int = 0
    messages: int = 0
    envelopes: int = 0
    bytes: int = 0
    failed: int = 0
    first_error: str | None = None
    elapsed_s: float = 0.0
    first_event_time: float | None = None
    last_event_time: float | None = None
    per_topic: dict[str, int] = field(default_factory=dict)

    @property
    def tx_per_s(self) -> float:
        return self.transactions / self.elapsed_s if self.elapsed_s > 0 else math.nan

    @property
    def events_per_s(self) -> float:
        n = self.transactions + self.labels
        return n / self.elapsed_s if self.elapsed_s > 0 else math.nan

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else math.nan


Progress = Callable[[SendReport], None]


class Sender:
    """Sends timeline segments (``producers.timeline``) to the transaction and label topics.

    ``envelope=1`` sends one message per event (the default); ``envelope=N`` packs up to N
    consecutive same-partition events per message, each buffer waiting at most ``max_wait_s``.
    ``backfill_envelope`` (with a pacer's ``live_from``) packs the unpaced backfill differently:
    a backfill is a bulk load, where envelopes multiply what the workers drain, while live
    traffic may want one message per event for latency. The backfill's buffers are emitted
    before the first live event, so every card's events stay in order across the switch.
    ``before_live`` runs once between the backfill (flushed to the broker first) and the
    first live event, e.g. to wait until the workers have consumed the backfill; the live
    pace starts after it returns.
    """

    def __init__(
        self,
        producer: Any,
        tx_topic: str,
        label_topic: str,
        envelope: int = 1,
        max_wait_s: float = 0.05,
        pacer: Pacer | None = None,
        backfill_envelope: int | None = None,
        before_live: Callable[[], None] | None = None,
    ) -> None:
        for name, size in (("--envelope", envelope), ("--backfill-envelope", backfill_envelope)):
            if size is not None and not 1 <= size <= MAX_ENVELOPE:
                raise FraudstreamError(f"{name} must be between 1 and {MAX_ENVELOPE}")
        self.producer = producer
        self.tx_topic, self.label_topic = tx_topic, label_topic
        self.envelope, self.max_wait_s = envelope, max_wait_s
        self.pacer = pacer or Pacer()
        if backfill_envelope is not None and self.pacer.live_from is None:
            raise FraudstreamError("--backfill-envelope needs --live-from (where the backfill ends)")
        self.before_live = before_live
        self.report = SendReport(per_topic={tx_topic: 0, label_topic: 0})
        self._n_tx_parts = self._partitions(tx_topic)
        self._n_label_parts = self._partitions(label_topic)
        self._keys: dict[int, tuple[bytes, int, int]] = {}
        self._live_packers = self._make_packers(envelope)
        self._packers = self._live_packers  # the packers of the current phase
        if backfill_envelope is not None and backfill_envelope != envelope:
            self._packers = self._make_packers(backfill_envelope)

    def _make_packers(self, size: int) -> dict[str, Packer]:
        if size <= 1:
            return {}
        return {
            TRANSACTION: Packer(TRANSACTION, size, self.max_wait_s, self._emitter(self.tx_topic)),
            LABEL: Packer(LABEL, size, self.max_wait_s, self._emitter(self.label_topic)),
        }

    def _go_live(self) -> None:
        """Emit the backfill's buffers, then pack (or not) the live way; ``before_live``."""
        for packer in self._packers.values():
            packer.flush_all(time.time())
        self._packers = self._live_packers
        if self.before_live is not None:
            self.flush()  # the whole backfill on the broker before anyone waits for it
            self.before_live()

    def _partitions(self, topic: str) -> int:
        try:
            parts = self.producer.partitions_for(topic)
        except Exception as exc:  # kafka-python raises KafkaTimeoutError for missing topics
            raise FraudstreamError(f"cannot get partitions of topic {topic!r}: {exc}") from None
        if not parts:
            raise FraudstreamError(f"topic {topic!r} has no partitions (does it exist?)")
        return len(parts)

    def _key(self, customer_id: int) -> tuple[bytes, int, int]:
        entry = self._keys.get(customer_id)
        if entry is None:
            key = str(customer_id).encode()
            entry = (
                key,
                murmur2_partition(key, self._n_tx_parts),
                murmur2_partition(key, self._n_label_parts),
            )
            self._keys[customer_id] = entry
        return entry

    def _on_error(self, exc: BaseException) -> None:
        self.report.failed += 1
        if self.report.first_error is None:
            self.report.first_error = f"{type(exc).__name__}: {exc}"

    def _emitter(self, topic: str) -> Callable[[int, bytes, bytes, int, float], None]:
        def emit(partition: int, key: bytes, value: bytes, n_events: int, wall: float) -> None:
            self._send(topic, partition, key, value)
            self.report.envelopes += 1

        return emit

    def _send(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        try:
            future = self.producer.send(topic, value=value, key=key, partition=partition)
        except Exception as exc:  # buffer full past max_block_ms, closed producer, ...
            raise FraudstreamError(f"sending to {topic!r} failed: {exc}") from None
        future.add_errback(self._on_error)
        report = self.report
        report.messages += 1
        report.bytes += len(value)
        report.per_topic[topic] += 1

    def _wait(self, due: float, progress: Progress | None) -> None:
        """Sleep until ``due`` while flushing envelopes whose max wait expires meanwhile."""
        while True:
            now = time.monotonic()
            if now >= due:
                return
            wake = due
            for packer in self._packers.values():
                if packer.next_deadline <= now:
                    packer.flush_expired(now, time.time())
                wake = min(wake, packer.next_deadline)
            time.sleep(min(max(wake - now, 0.0005), 0.25))
            if progress is not None:
                progress(self.report)

    def send(
        self, segments: Iterable[pd.DataFrame], progress: Progress | None = None
    ) -> SendReport:
        """Send every event of every segment, then flush; returns the report."""
        report, pacer = self.report, self.pacer
        unlimited = pacer.unlimited
        start = time.monotonic()
        started = False
        tx_topic, label_topic = self.tx_topic, self.label_topic
        tx_packer = self._packers.get(TRANSACTION)
        label_packer = self._packers.get(LABEL)
        live_from = pacer.live_from
        switch = live_from is not None  # a backfill first: go live at its end
        monotonic, wall_clock, key_of, send = time.monotonic, time.time, self._key, self._send
        n_tx = n_labels = 0
        for segment in segments:
            if not len(segment):
                continue
            cols = [segment[c].tolist() for c in (
                "kind", "time", "tx_id", "ts", "customer_id", "terminal_id", "amount", "fraud",
            )]
            if not started:
                pacer.start(monotonic(), cols[1][0])
                report.first_event_time = cols[1][0]
                started = True
            rows = enumerate(zip(*cols, strict=True))
            for i, (kind, t, tx_id, ts, cust, term, amount, fraud) in rows:
                if not unlimited:
                    if switch and t >= live_from:  # type: ignore[operator]
                        switch = False
                        report.transactions, report.labels = n_tx, n_labels
                        self._go_live()
                        tx_packer = self._packers.get(TRANSACTION)
                        label_packer = self._packers.get(LABEL)
                    due = pacer.due(t, n_tx)  # after _go_live: the live pace starts now
                    if due > monotonic():
                        report.transactions, report.labels = n_tx, n_labels
                        self._wait(due, progress)
                key, tx_part, label_part = key_of(cust)
                if kind == TX:
                    prefix = transaction_prefix(tx_id, ts, cust, term, amount)
                    if tx_packer is None:
                        send(tx_topic, tx_part, key, finish(prefix, wall_clock()).encode())
                    else:
                        tx_packer.add(tx_part, key, prefix, monotonic(), wall_clock())
                    n_tx += 1
                else:
                    prefix = label_prefix(tx_id, cust, term, ts, fraud, t)
                    if label_packer is None:
                        send(label_topic, label_part, key, finish(prefix, wall_clock()).encode())
                    else:
                        label_packer.add(label_part, key, prefix, monotonic(), wall_clock())
                    n_labels += 1
                if progress is not None and i % PROGRESS_EVERY == 0:
                    report.transactions, report.labels = n_tx, n_labels
                    report.elapsed_s = monotonic() - start
                    progress(report)
            report.last_event_time = cols[1][-1]
        for packer in self._packers.values():
            packer.flush_all(wall_clock())
        report.transactions, report.labels = n_tx, n_labels
        self.flush()
        report.elapsed_s = monotonic() - start
        if progress is not None:
            progress(report)
        return report

    def flush(self, timeout_s: float = 120.0) -> None:
        try:
            self.producer.flush(timeout=timeout_s)
        except Exception as exc:
            raise FraudstreamError(f"flushing the producer failed: {exc}") from None


def make_producer(kafka_kwargs: dict[str, Any], compression: str = "none",
                  linger_ms: int = LINGER_MS) -> Any:
    """A KafkaProducer with ``producer_config``; a broker that does not answer is one line."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(**kafka_kwargs, **producer_config(compression, linger_ms))
    except KafkaError as exc:
        servers = ",".join(kafka_kwargs.get("bootstrap_servers", []))
        raise FraudstreamError(f"cannot connect to Kafka at {servers}: {exc}") from None


def close_producer(producer: Any) -> None:
    with contextlib.suppress(Exception):
        producer.close(timeout=10)
