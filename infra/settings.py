"""Typed configuration for every fraudstream process.

All environment reads of the project happen here, so that a producer, a worker and a test
configured by the same environment agree on the broker, the security settings and the topic
names. Variable names follow Kafka's usual ones (``KAFKA_BOOTSTRAP_SERVERS``, ...); the rest
are prefixed ``FRAUDSTREAM_``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic the pipeline uses: its name, partitions and retention policy."""

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None


READ_COMMITTED: dict[str, Any] = {"isolation_level": "read_committed"}
"""Every consumer of the workers' outputs reads committed records only: a worker's scores and
alerts are written in Kafka transactions (``streams.output_transactions``), and what an
aborted one holds (a fenced worker's late scores) must never be read. Both kafka-python and
aiokafka take this argument; topics written without transactions read the same either way."""


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "fraudstream"


class KafkaSettings(BaseSettings):
    """Connection settings, read from Kafka's conventional environment variables."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_check_hostname: bool = True
    session_timeout_ms: int = Field(default=10_000, ge=1000, le=90_000)
    """``session.timeout.ms`` of the workers' consumer group: how long a worker that stopped
    answering keeps its partitions. Faust's default is 60 s, which is what a crashed worker's
    partitions used to wait; 10 s is the issue's resume target. Brokers refuse values below
    their ``group.min.session.timeout.ms`` (6 s by default). Too short and a stall of the
    worker's event loop (a long batch, a snapshot, a GC pause) reads as a death and rebalances
    the group: the worker's ``fraudstream_event_loop_stall_seconds`` shows the margin."""
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    """``heartbeat.interval.ms``: Kafka's default; under a third of the session timeout."""
    group_instance_id: str | None = None
    """``group.instance.id`` (static membership, KIP-345). Unset: ``APP_ID-WORKER_ID`` when
    ``FRAUDSTREAM_STATIC_MEMBERSHIP`` is on (the default), so that a worker restarted with the
    same ``--worker-id`` takes its partitions back at once instead of waiting for its old
    session to expire."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_not_empty(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is empty")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"bootstrap server {server!r} is not host:port")
        return ",".join(servers)

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> KafkaSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                f"KAFKA_HEARTBEAT_INTERVAL_MS ({self.heartbeat_interval_ms}) must be at most a "
                f"third of KAFKA_SESSION_TIMEOUT_MS ({self.session_timeout_ms})")
        return self

    @property
    def servers(self) -> list[str]:
        return self.bootstrap_servers.split(",")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def _check_sasl(self) -> None:
        if self.uses_sasl and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security protocol {self.security_protocol} needs KAFKA_SASL_MECHANISM, "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context trusting ``ssl_cafile`` (or the system store), or None for plaintext."""
        if not self.uses_ssl:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        ctx.check_hostname = self.ssl_check_hostname
        return ctx

    def _sasl_kwargs(self) -> dict[str, Any]:
        """The SASL part, spelled the same by kafka-python and aiokafka."""
        if not self.uses_sasl:
            return {}
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password.get_secret_value(),  # type: ignore[union-attr]
        }

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer/KafkaConsumer/KafkaAdminClient."""
        self._check_sasl()
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
        }
        kwargs.update(self._sasl_kwargs())
        if self.uses_ssl:
            if self.ssl_cafile:
                kwargs["ssl_cafile"] = str(self.ssl_cafile)
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
        return kwargs

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's AIOKafkaConsumer/AIOKafkaProducer."""
        self._check_sasl()
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        kwargs.update(self._sasl_kwargs())
        if self.uses_ssl:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def faust_kwargs(self) -> dict[str, Any]:
        """``broker`` and ``broker_credentials`` for ``faust.App(...)``."""
        import faust

        self._check_sasl()
        kwargs: dict[str, Any] = {
            "broker": ";".join(f"kafka://{s}" for s in self.servers),
            "broker_session_timeout": self.session_timeout_ms / 1000.0,
            "broker_heartbeat_interval": self.heartbeat_interval_ms / 1000.0,
        }
        if self.uses_sasl:
            kwargs["broker_credentials"] = faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.get_secret_value(),  # type: ignore[union-attr]
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        elif self.uses_ssl:
            kwargs["broker_credentials"] = self.ssl_context()
        return kwargs


class TopicSettings(BaseSettings):
    """The topic map: one place that names every topic and its partition count."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_TOPIC_", extra="ignore")

    transactions: str = "transactions"
    labels: str = "labels"
    scores: str = "scores"
    alerts: str = "alerts"
    transactions_dlq: str = "transactions-dlq"
    labels_dlq: str = "labels-dlq"
    terminal_events: str = "terminal-events"
    model_snapshots: str = "model-snapshots"
    heartbeats: str = "heartbeats"
    learned_examples: str = "learned-examples"
    shadow_scores: str = "shadow-scores"
    partitions: int = Field(default=4, ge=1, le=1024)
    replication: int = Field(default=1, ge=1, le=32)
    """Replicas of every topic the project creates, the workers' changelogs included. On a
    cluster: 3, with ``min.insync.replicas`` 2 (set from it) and producers that wait for all
    in-sync replicas, so a broker can die without losing an acknowledged event."""

    def renamed(self, name: Callable[[str, str], str]) -> TopicSettings:
        """A copy whose every topic is ``name(field, current name)``; partitions and
        replication stay (tests, benchmarks and the demo give each run its own topics)."""
        fields = {f: name(f, getattr(self, f)) for f, info in type(self).model_fields.items()
                  if info.annotation in (str, "str")}
        return self.model_copy(update=fields)

    def min_insync(self) -> int | None:
        """``min.insync.replicas`` for the topics: a write is acknowledged when that many
        replicas have it; None (the broker's default, 1) without replication.

        >>> TopicSettings(replication=3).min_insync(), TopicSettings().min_insync()
        (2, None)
        """
        return min(2, self.replication - 1) if self.replication > 1 else None

    def specs(self) -> list[TopicSpec]:
        """Every topic with its layout; derived topics share the source's partition count."""
        day = 24 * 3600 * 1000
        p = self.partitions
        return [
            TopicSpec(self.transactions, p, retention_ms=7 * day),
            TopicSpec(self.labels, p, retention_ms=60 * day),
            TopicSpec(self.scores, p, retention_ms=7 * day),
            TopicSpec(self.alerts, p, retention_ms=30 * day),
            TopicSpec(self.transactions_dlq, 1, retention_ms=30 * day),
            TopicSpec(self.labels_dlq, 1, retention_ms=30 * day),
            TopicSpec(self.terminal_events, p, retention_ms=60 * day),
            TopicSpec(self.model_snapshots, 1, compacted=True),
            TopicSpec(self.heartbeats, 1, retention_ms=day),
            TopicSpec(self.learned_examples, p, retention_ms=60 * day),
            TopicSpec(self.shadow_scores, p, retention_ms=7 * day),
        ]


class Settings(BaseSettings):
    """Everything a fraudstream process needs to know, from the environment."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    state_dir: Path = Path(".fraudstream")
    registry_dir: Path = Path("registry")
    model_signing_key: SecretStr = SecretStr("fraudstream-dev-key-change-me")
    app_id: str = "fraudstream"
    store: str = "rocksdb://"
    rocksdb_write_buffer_mb: int = Field(default=4, ge=1, le=1024)
    """Size of one RocksDB memtable of the card table, per partition (two per partition at
    most). Faust's defaults (64 MB, three of them, and a 2 GB block cache, for each of the
    worker's partition databases) let the memtables alone reach 768 MB on 4 partitions.
    Cards are written behind, a tenth of a write per transaction in a drain, so small
    memtables cost little: ``python -m benchmarks.drain_one --model sgd_logreg --envelope 500
    --tx 200000`` (2026-12-02) peaked at 406 MB with 4 MB memtables and an 8 MB block cache
    against 449-463 MB with 16 and 64, at the same rate (17,444 tx/s against 15,243-16,728);
    with the in-memory store, 369 MB."""
    rocksdb_block_cache_mb: int = Field(default=8, ge=1, le=8192)
    """RocksDB block cache of the card table, per partition. Cards are read from the
    processor's decoded cache, and from RocksDB only after a restart or a rebalance."""
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    """Address the worker's dashboard and /metrics listen on. Loopback by default (nothing
    is exposed by accident); a worker on a host of its own that Prometheus scrapes from
    elsewhere needs its host's address, or ``0.0.0.0``."""
    model: str = "logreg"
    processing_mode: Literal["event", "microbatch", "envelope"] = "event"
    microbatch_size: int = Field(default=200, ge=1)
    microbatch_within_s: float = Field(default=0.05, gt=0)
    envelope_batch: int = Field(default=8, ge=1)
    """Envelope mode: envelopes handed to the processor at once when that many are waiting
    (1: one at a time). Each card is written once per batch. Measured 2026-12-01 (logreg,
    ``fraudstream bench parity --data P --envelope 100 --partitions 4``, P = 60 days of 1,000
    customers, 117,229 tx): 2,802 tx/s at 230 CPU-µs/tx with 8, 2,241 at 295 with 1, AP
    -0.0011 and -0.0031 from the offline evaluator. (The stall the bench saw with 8 was an
    oversized score message crashing the agent: ``streams.score_messages``.)"""
    alert_threshold: float = Field(default=0.9, ge=0, le=1)
    alert_policy: Literal["budget", "threshold"] = "budget"
    """``budget``: at most ``alert_budget`` cards alerted per event-time day (a threshold that
    tracks the matching score quantile online); ``threshold``: every score >= alert_threshold."""
    alert_budget: int = Field(default=100, ge=1)
    """Cards investigators can check per event-time day (the handbook's k = 100)."""
    challengers: str = ""
    """Shadow models, comma-separated catalog names (``agg_sgd_logreg,logreg_x``): each scores
    every transaction beside the champion (``model``) and learns every label, its scores go to
    ``shadow-scores``, never to ``scores`` or ``alerts`` (``streams.challengers``);
    ``fraudstream promote NAME`` makes one the champion without a restart."""
    model_snapshot: str | None = None
    """Start from this registry snapshot (``NAME`` or ``NAME@VERSION``) when the worker has no
    snapshot of its own yet (warm start); see ``streams.model_runtime``."""
    label_hold_max: int = Field(default=50_000, ge=100)
    """Labels held per partition waiting for the transaction stream's event time; above it the
    labels partition is paused until half are released (``streams.label_clock``)."""
    consumer_buffer: int | None = Field(default=None, ge=1)
    """Messages a worker's stream buffers ahead of its agent (Faust's
    ``stream_buffer_maxsize``); default 16 in envelope mode, 1024 otherwise. Why small: Faust
    fills the buffer partition by partition, so in a replay a deep buffer holds days of one
    partition's traffic before the next one's, and the terminal features and the shared model
    then see the partitions out of event-time order (measured, 4 partitions, envelopes of
    100: AP 0.520 against 0.635 offline with Faust's 8,192 and 1 MB fetches, 0.631 with 16 and
    64 KB, at 727 tx/s instead of 809)."""
    consumer_fetch_bytes: int | None = Field(default=None, ge=1024, le=64 * 1024 * 1024)
    """Per-partition fetch size of a worker's consumer; default 1 MiB (Faust's) in envelope
    mode with ``event_time_merge``, 64 KiB otherwise (``fetch_bytes``). Without the merge a
    large fetch brings days of one partition's event time ahead of the others
    (``fraudstream bench parity --data /tmp/parity-small.parquet --model logreg --envelope
    500 --partitions 4``, 2026-12-02: AP
    -0.057 against the offline evaluator, 49% of rows with a feature off); small fetches kept
    the partitions in step but paced the drain by its round trips. With the merge, 1 MiB
    fetches (same command, 2026-12-02): 12,984 tx/s, AP +0.0004, 4.5% of rows with a feature
    off, against 8,497 tx/s, +0.0044 and 15.8% with 64 KiB and no merge."""
    event_time_merge: bool = True
    """In envelope mode, hand the transactions of a worker's partitions to its agent in event
    time, across partitions (``streams.event_time_merge``; ``merges_event_time``); off: in
    the order fetches return them."""
    label_idle_s: float = Field(default=5.0, gt=0)
    """A caught-up transaction partition idle this long releases its held labels (the end of a
    replay, a quiet partition): Kafka Streams' ``max.task.idle.ms``."""
    label_delay_days: float = Field(default=7.0, ge=0)
    snapshot_every_labels: int = Field(default=5000, ge=1)
    snapshot_keep: int = Field(default=50, ge=0)
    """Snapshots a worker (and ``fraudstream trainer``) keeps of its own lineage, newest first;
    older ones are deleted after each new one (0: keep them all). A worker snapshots every
    ``snapshot_every_labels`` labels, a new file every half second in a drain (2026-12-02),
    so keeping all of them fills the disk of a worker that runs for weeks. A score's
    ``model_version`` then names a deleted file once 50 newer ones exist."""
    retrain_every_days: float = Field(default=7.0, gt=0)
    """``fraudstream trainer`` with a batch model: refit every this many days of event time."""
    retrain_window_days: float | None = Field(default=28.0, gt=0)
    """... on the labels of the transactions of the last this many days (unset: all of them;
    memory grows with the traffic then)."""
    producer_linger_ms: int = Field(default=50, ge=0, le=1000)
    output_transactions: bool = True
    """Scores, alerts and shadow scores go out in Kafka transactions, one transactional id per
    source partition (``streams.output_transactions``): a worker cut off from the cluster
    cannot add a score after its partition's next owner started, so no transaction is
    scored twice. Off: the idempotent producer alone (duplicates after a link cut)."""
    transaction_commit_ms: int = Field(default=100, ge=1, le=60_000)
    """How long an output transaction stays open at most: its scores are invisible to
    ``read_committed`` readers until it commits (committed also before every offset commit)."""
    transaction_timeout_ms: int = Field(default=900_000, ge=1000)
    """``transaction.timeout.ms`` of the output producers: the broker aborts a transaction
    open longer, and the producer is then fenced as if another worker owned its partition.
    Long on purpose (the brokers' default maximum, ``transaction.max.timeout.ms``): a fence
    must mean a new owner, never a stall or an outage, and an orphaned transaction is aborted
    anyway by the next owner's start, at once."""
    static_membership: bool = True
    """Workers join their consumer group as static members (``KAFKA_GROUP_INSTANCE_ID``, by
    default ``APP_ID-WORKER_ID``): a worker killed and restarted with the same id resumes
    without a rebalance; a gracefully stopped one leaves the group so its partitions move at
    once. Off: dynamic members, as before (a restart waits for the session timeout)."""
    learning: Literal["local", "shared", "off", "trainer"] = "local"
    """Who learns the labels: ``local``, each worker those of its own partitions; ``shared``,
    each worker every label, its peers' read from the ``learned-examples`` topic
    (``streams.shared_learning``); ``trainer``, one ``fraudstream trainer`` process whose
    snapshots the workers load; ``off``, nobody."""
    replay_on_assign: int = Field(default=1000, ge=0)
    """Messages re-read before the committed offset of a newly assigned partition (0: off);
    see ``streams.rewind``. The re-read is the longest phase of a restart, but 250 is not
    enough: with 250 a killed worker scored again 5.1-6.1 s after its restart instead of
    7.8-9.6 s (``fraudstream chaos --only crash --scale 0.5 --seed 7``, 2026-12-02), and a
    graceful fail-over of ``tests/streams/test_two_workers.py`` lost a transaction in one of
    two runs (none in any run with 1,000)."""

    def challenger_names(self) -> list[str]:
        """``challengers`` as a list, blanks dropped, the champion left out."""
        names = [n.strip() for n in self.challengers.split(",") if n.strip()]
        return [n for i, n in enumerate(names) if n != self.model and n not in names[:i]]

    def fetch_bytes(self) -> int:
        """``consumer_fetch_bytes``, or its default: 1 MiB in envelope mode with
        ``event_time_merge``, else 64 KiB. The merge orders the transaction partitions among
        themselves; against the labels they are kept in step by pausing fetches, and what a
        fetch already brought still goes on. One message per event, a 1 MiB fetch is days of a
        small world: ``tests/benchmarks/test_parity_integration.py`` (one partition, event
        mode, 18 days) failed its 0.005 bound with it (2026-12-02)."""
        if self.consumer_fetch_bytes is not None:
            return self.consumer_fetch_bytes
        return 1024 * 1024 if self.merges_event_time() else 64 * 1024

    def merges_event_time(self) -> bool:
        """Whether the worker merges its transaction partitions in event time: with
        ``event_time_merge``, in envelope mode. One message per event it is off: the
        full suite of 2026-12-02 failed three event-mode tests with it (parity on one
        partition, the bad-input worker, the link cut), unexplained yet."""
        return self.event_time_merge and self.processing_mode == "envelope"

    def stream_buffer(self) -> int:
        """``consumer_buffer``, or its default for the processing mode."""
        if self.consumer_buffer is not None:
            return self.consumer_buffer
        return 16 if self.processing_mode == "envelope" else 1024

    def group_instance_id(self, worker_id: str) -> str | None:
        """This worker's ``group.instance.id``, or None for a dynamic member."""
        if not self.static_membership:
            return None
        return self.kafka.group_instance_id or f"{self.app_id}-{worker_id}"

    def with_bootstrap(self, bootstrap_servers: str) -> Settings:
        """A copy pointing at another broker (tests and the demo use throwaway brokers)."""
        kafka = self.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
        return self.model_copy(update={"kafka": kafka})


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a child process (worker, producer) that should see ``settings``.

    The inverse of reading the settings: tests, benchmarks and the demo start real processes
    and configure them the way a user would, through the environment.
    """
    import os

    env = dict(os.environ)
    for name in KafkaSettings.model_fields:
        value = getattr(settings.kafka, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            env.pop(f"KAFKA_{name.upper()}", None)
        else:
            env[f"KAFKA_{name.upper()}"] = str(value)
    for name in TopicSettings.model_fields:
        env[f"FRAUDSTREAM_TOPIC_{name.upper()}"] = str(getattr(settings.topics, name))
    for name in Settings.model_fields:
        if name in ("kafka", "topics"):
            continue
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            env.pop(f"FRAUDSTREAM_{name.upper()}", None)
            continue
        env[f"FRAUDSTREAM_{name.upper()}"] = str(value)
    env.update(extra)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
