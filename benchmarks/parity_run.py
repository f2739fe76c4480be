"""The pipeline half of ``fraudstream bench parity``: a replayed backlog drained by real workers.

Why a backlog first and workers second: a worker that starts behind a whole file reads its
transaction and label partitions as fast as Kafka hands them over, so nothing but the worker's
own event-time alignment keeps a label from being learned before the transactions that precede
its ``known_at``. That is the hardest case for the alignment, and the one this benchmark is
meant to hold to the offline evaluator's figures.

Everything is measured from outside the workers, the way a user would see it: scores are read
back from the ``scores`` topic (distinct ``tx_id``), CPU and peak memory from ``/proc``
(``benchmarks.procstat``), sampled before the workers are stopped.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.procstat import cpu_seconds, peak_rss_bytes
from fraudstream.errors import FraudstreamError
from infra.settings import READ_COMMITTED, Settings, child_env
from infra.topics import ensure_worker_topics
from streams.demo_processes import FRAUDSTREAM, WorkerProcess
from streams.score_messages import decode_scores

STARTUP_ALLOWANCE_S = 180.0  # workers' start and group join on a loaded 2-core machine
MIN_RATE_TX_PER_S = 100.0  # the wait for scores allows this rate (well below any mode's)
STALL_S = 300.0  # no new score for this long after the first one: give up early
N_FEATURES = 15

Log = Callable[[str], None]


@contextlib.contextmanager
def broker(settings: Settings, log: Log) -> Iterator[Settings]:
    """The broker of KAFKA_BOOTSTRAP_SERVERS when set, else the managed one.

    The managed broker is started if it is not running and then stopped at the end; one that
    was already running (someone's ``fraudstream kafka up``) is left running.
    """
    if "bootstrap_servers" in settings.kafka.model_fields_set:
        yield settings
        return
    from infra import service

    log("starting the managed Kafka broker (or reusing a running one) ...")
    result = service.up(settings.cache_dir, port=9092)
    log(("reusing" if result.reused else "started") +
        f" the managed Kafka broker at {result.state.bootstrap}")
    try:
        yield settings.with_bootstrap(result.state.bootstrap)
    finally:
        if not result.reused:
            log("stopping the managed Kafka broker this run started")
            service.down(settings.cache_dir)


def run_settings(base: Settings, work: Path, *, partitions: int, model: str, envelope: int,
                 label_delay_days: float, learning: str = "local") -> Settings:
    """Fresh topic names, app id, state and registry for one run: nothing old leaks in."""
    run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    topics = base.topics.renamed(lambda _field, name: f"parity-{run}-{name}").model_copy(
        update={"partitions": partitions})
    return base.model_copy(update={
        "topics": topics, "app_id": f"parity-{run}", "model": model,
        "processing_mode": "envelope" if envelope > 1 else "event", "learning": learning,
        "state_dir": work / "state", "registry_dir": work / "registry",
        "label_delay_days": label_delay_days, "model_snapshot": None,
    })


def replay(settings: Settings, path: Path, envelope: int, n_tx: int) -> float:
    """``fraudstream replay`` of the whole file with labels, at full speed; returns seconds."""
    ensure_worker_topics(settings)
    started = time.perf_counter()
    done = subprocess.run(
        [*FRAUDSTREAM, "replay", str(path), "--envelope", str(envelope), "--no-progress"],
        env=child_env(settings), capture_output=True, text=True, check=False,
        timeout=120 + n_tx / 2_000,
    )
    if done.returncode != 0:
        raise FraudstreamError(f"replay failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


@dataclass
class ScoreCollector:
    """Reads the run's ``scores`` topic incrementally: first score per transaction wins.

    The first published score is the decision (a re-read transaction keeps it, see the
    README's delivery notes), so a repeat is counted, not used.
    """

    settings: Settings
    tx_ids: np.ndarray  # expected transactions, in the order of the evaluated data
    score: np.ndarray = field(init=False)
    scored_at: np.ndarray = field(init=False)
    version: np.ndarray = field(init=False)  # model_version of the first score (-1: none)
    features: np.ndarray = field(init=False)
    n_scored: int = 0
    duplicates: int = 0
    unexpected: int = 0

    def __post_init__(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        n = len(self.tx_ids)
        self._row = {int(t): i for i, t in enumerate(self.tx_ids.tolist())}
        self.score = np.full(n, np.nan)
        self.scored_at = np.full(n, np.nan)
        self.version = np.full(n, -1, dtype=np.int64)
        self.features = np.full((n, N_FEATURES), np.nan)
        topic = self.settings.topics.scores
        self._consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **READ_COMMITTED,
                                       **self.settings.kafka.kafka_python_kwargs())
        parts: set[int] = set()
        for _ in range(50):  # metadata of a just-created topic can take a moment
            parts = self._consumer.partitions_for_topic(topic) or set()
            if parts:
                break
            time.sleep(0.2)
        if not parts:
            raise FraudstreamError(f"topic {topic} has no partitions")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)

    def poll(self, timeout_ms: int = 500) -> int:
        """Read what is there; returns how many new transactions got their first score."""
        new = 0
        batch = self._consumer.poll(timeout_ms=timeout_ms, max_records=20_000)
        for records in batch.values():
            for record in records:
                for body in decode_scores(record.value):  # one score or an envelope
                    new += self._take(body)
        self.n_scored += new
        return new

    def _take(self, body: dict[str, Any]) -> int:
        i = self._row.get(int(body["tx_id"]))
        if i is None:
            self.unexpected += 1
            return 0
        if not np.isnan(self.score[i]):
            self.duplicates += 1
            return 0
        self.score[i] = float(body["score"])
        self.scored_at[i] = float(body.get("scored_at", np.nan))
        self.version[i] = int(body.get("model_version", -1))
        feats = body.get("features")
        if feats is not None and len(feats) == N_FEATURES:
            self.features[i] = feats
        return 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._consumer.close()


@dataclass
class Drain:
    """What the workers did with the backlog."""

    started_at: float  # wall clock, when the first worker process was started
    first_score_at: float  # scored_at of the first and last score (the workers' clocks)
    last_score_at: float
    cpu_s: float  # all workers, from each one's readiness to the last score
    cpu_total_s: float  # all workers, since their start (imports and group join included)
    peak_rss_bytes: list[int]  # VmHWM per worker
    duplicates: int

    @property
    def drain_s(self) -> float:
        return self.last_score_at - self.first_score_at

    @property
    def startup_s(self) -> float:
        return self.first_score_at - self.started_at


def _ready(worker: WorkerProcess) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return bool(json.loads(worker.get("/health", 1.0)).get("ok"))
    return False


def drain(settings: Settings, n_workers: int, collector: ScoreCollector, log_dir: Path,
          log: Log) -> Drain:
    """Start the workers over the backlog and wait until every transaction has a score.

    CPU is sampled per worker when its ``/health`` first says ready and again after the last
    score, before the stop, so a worker's imports and its graceful shutdown are left out.
    """
    n = len(collector.tx_ids)
    timeout_s = STARTUP_ALLOWANCE_S + n / MIN_RATE_TX_PER_S
    workers = [WorkerProcess(settings, f"w{i}", log_dir) for i in range(n_workers)]
    cpu_at_ready: dict[int, float] = {}
    started_at = time.time()
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + timeout_s
        last_progress = time.monotonic()
        reported = 0
        while collector.n_scored < n:
            for i, w in enumerate(workers):
                if not w.alive():
                    raise FraudstreamError(f"worker {w.worker_id} exited: {w.tail()}")
                if i not in cpu_at_ready and _ready(w):
                    cpu_at_ready[i] = cpu_seconds(w.process.pid)  # type: ignore[union-attr]
            if collector.poll():
                last_progress = time.monotonic()
            now = time.monotonic()
            if collector.n_scored - reported >= max(n // 10, 1):
                reported = collector.n_scored
                log(f"  {reported:,} / {n:,} transactions scored")
            stalled = collector.n_scored and now - last_progress > STALL_S
            if now > deadline or stalled:
                why = (f"no new score for {STALL_S:.0f} s" if stalled else
                       f"timed out after {timeout_s:.0f} s ({STARTUP_ALLOWANCE_S:.0f} s to "
                       f"start + {MIN_RATE_TX_PER_S:.0f} tx/s)")
                raise FraudstreamError(
                    f"only {collector.n_scored:,} of {n:,} transactions scored: {why}; "
                    f"worker logs in {log_dir}; last lines of w0:\n{workers[0].tail(8)}")
        pids = [w.process.pid for w in workers]  # type: ignore[union-attr]
        cpu_end = [cpu_seconds(p) for p in pids]
        rss = [peak_rss_bytes(p) for p in pids]
    finally:
        for w in workers:
            w.stop()
    at = collector.scored_at[~np.isnan(collector.scored_at)]
    return Drain(
        started_at=started_at,
        first_score_at=float(at.min()) if len(at) else float("nan"),
        last_score_at=float(at.max()) if len(at) else float("nan"),
        cpu_s=sum(c - cpu_at_ready.get(i, 0.0) for i, c in enumerate(cpu_end)),
        cpu_total_s=sum(cpu_end),
        peak_rss_bytes=rss,
        duplicates=collector.duplicates,
    )


def delete_run_topics(settings: Settings, log: Log) -> None:
    """Remove the run's topics (its own and Faust's changelogs): a benchmark should not leave
    a backlog of every run on a broker someone keeps using."""
    from kafka import KafkaAdminClient

    prefix = settings.app_id + "-"  # run_settings names every topic of the run after it
    try:
        admin = KafkaAdminClient(client_id="fraudstream-parity",
                                 **settings.kafka.kafka_python_kwargs())
    except Exception as exc:
        log(f"note: could not delete this run's topics: {exc}")
        return
    try:
        names = [t for t in admin.list_topics() if t.startswith(prefix)]
        if names:
            admin.delete_topics(names)
    except Exception as exc:
        log(f"note: could not delete this run's topics: {exc}")
    finally:
        with contextlib.suppress(Exception):
            admin.close()
