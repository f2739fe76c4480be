"""Drive the real pipeline for a measurement: backlogs on the broker, worker processes, results.

Why processes and topics rather than an in-process loop: the figures the issues ask for are those
of the deployed pipeline (``fraudstream worker`` reading Kafka, writing ``scores``), so every run
starts the same command a user runs, with its own consumer group, output topics and state
directory, and everything it reports is read back from the ``scores`` topic:

* drain rate = transactions scored / (last ``scored_at`` - first ``scored_at``): the worker's
  start-up and group join are left out, as they are for the ceilings;
* latency = ``scored_at - produced_at`` of each score message, at a paced load;
* accuracy = exact AUC/AP/CP@100 (``models.metrics``) of the logged scores against the
  simulator's ground truth for the same seed and world;
* cost = the worker process's CPU-seconds (user + system, from ``/proc``) per million
  transactions, which moves less with the machine's load than a rate does.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.procstat import peak_rss_bytes
from fraudstream.errors import FraudstreamError
from infra.settings import READ_COMMITTED, Settings, TopicSettings, child_env
from infra.topics import ensure_worker_topics
from reliability.harness import produce
from streams.demo_processes import FRAUDSTREAM, WorkerProcess, read_topic
from streams.score_messages import decode_scores

PER_RUN_TOPICS = ("scores", "alerts", "transactions_dlq", "labels_dlq", "terminal_events",
                  "model_snapshots", "heartbeats", "learned_examples")


@dataclass(frozen=True)
class World:
    """The simulated world every backlog of a run is drawn from (same seed: same events)."""

    customers: int
    terminals: int
    days: int
    seed: int = 7

    def args(self, seed: int | None = None) -> list[str]:
        return ["--customers", str(self.customers), "--terminals", str(self.terminals),
                "--days", str(self.days), "--seed", str(self.seed if seed is None else seed)]


@dataclass
class Backlog:
    """Transactions (and their labels) already on the broker before a worker starts."""

    name: str
    topics: TopicSettings
    n_tx: int
    envelope: int
    messages: int = 0
    produce_s: float = 0.0


@dataclass
class Bench:
    """One benchmark run: the broker, a work directory, and unique topic/app names."""

    base: Settings
    work: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    log: Any = print

    def topics(self, name: str) -> TopicSettings:
        """A topic map whose every name is unique to this run and ``name``."""
        return self.base.topics.renamed(
            lambda f, _name: f"bench-{self.tag}-{name}-{f.replace('_', '-')}")

    def settings(self, topics: TopicSettings, **update: Any) -> Settings:
        return self.base.model_copy(update={
            "topics": topics, "state_dir": self.work / "state",
            "registry_dir": self.work / "registry", **update,
        })


def message_count(settings: Settings, topic: str) -> int:
    """Records on ``topic`` (sum of end offsets; the topics are fresh, so start = 0)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**READ_COMMITTED, **settings.kafka.kafka_python_kwargs())
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return int(sum(ends.values()))
    finally:
        consumer.close()


def make_backlog(bench: Bench, name: str, world: World, n_tx: int, envelope: int) -> Backlog:
    """Produce ``n_tx`` transactions with their labels, ``envelope`` events per message."""
    topics = bench.topics(name)
    settings = bench.settings(topics)
    ensure_worker_topics(settings)
    started = time.perf_counter()
    produce(settings, *world.args(), "--max-tx", str(n_tx), "--envelope", str(envelope))
    backlog = Backlog(name, topics, n_tx, envelope, produce_s=time.perf_counter() - started)
    backlog.messages = message_count(settings, topics.transactions)
    bench.log(f"backlog {name}: {n_tx:,} tx in {backlog.messages:,} messages "
              f"({backlog.produce_s:.1f} s to produce, labels included)")
    return backlog


def ground_truth(bench: Bench, world: World, n_tx: int, seed: int | None = None,
                 extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The simulator's transactions for the same world and seed as a backlog (fraud per tx_id)."""
    out = bench.work / f"truth-{uuid.uuid4().hex[:6]}.parquet"
    simulate(bench, world, out, "--max-tx", str(n_tx), *extra, seed=seed)
    from producers.reader import read_transactions

    return read_transactions(out)


def simulate(bench: Bench, world: World, out: Path, *extra: str, seed: int | None = None) -> Path:
    """``fraudstream simulate`` of ``world`` into ``out`` (a child process, as a user runs it)."""
    import subprocess

    from infra.settings import child_env

    done = subprocess.run(
        [*FRAUDSTREAM, "simulate", "--out", str(out), *world.args(seed), *extra],
        env=child_env(bench.base), capture_output=True, text=True, check=False, timeout=1800,
    )
    if done.returncode != 0:
        raise FraudstreamError(f"simulate failed: {done.stderr.strip()[-500:]}")
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ScoreRows:
    """The score messages of one run, as arrays."""

    tx_id: np.ndarray
    score: np.ndarray
    scored_at: np.ndarray
    produced_at: np.ndarray
    worker: np.ndarray
    model_version: np.ndarray
    learned: np.ndarray  # labels in the scoring model's lineage when it scored

    def __len__(self) -> int:
        return len(self.tx_id)


def read_scores(settings: Settings, until: int | None = None) -> ScoreRows:
    """Every message on the run's ``scores`` topic (the last one per tx_id wins)."""
    bodies: dict[int, tuple[float, float, float, str, int, int]] = {}
    n = 0
    for record in read_topic(settings, settings.topics.scores, idle_s=3.0):
        for b in decode_scores(record.value):  # one score, or an envelope of them
            n += 1
            bodies[b["tx_id"]] = (b["score"], b["scored_at"], b["produced_at"],
                                  b.get("worker", ""), int(b.get("model_version", 0)),
                                  int(b.get("learned", 0)))
        if until is not None and n >= until:
            break
    ids = np.fromiter(bodies, dtype=np.int64, count=len(bodies))
    vals = list(bodies.values())
    return ScoreRows(
        ids,
        np.array([v[0] for v in vals], dtype=np.float64),
        np.array([v[1] for v in vals], dtype=np.float64),
        np.array([v[2] for v in vals], dtype=np.float64),
        np.array([v[3] for v in vals], dtype=object),
        np.array([v[4] for v in vals], dtype=np.int64),
        np.array([v[5] for v in vals], dtype=np.int64),
    )


def drain_rate(rows: ScoreRows) -> tuple[float, float]:
    """``(tx/s, seconds)``; with several workers, over the span where all of them were scoring.

    With two workers the first one to join starts alone and the other catches up after a
    rebalance; counting only the overlap measures what two workers do together.
    """
    if len(rows) < 2:
        return float("nan"), float("nan")
    workers = sorted(set(rows.worker.tolist()))
    if len(workers) > 1:
        lo = max(rows.scored_at[rows.worker == w].min() for w in workers)
        hi = min(rows.scored_at[rows.worker == w].max() for w in workers)
        if hi > lo:
            n = int(np.sum((rows.scored_at >= lo) & (rows.scored_at <= hi)))
            return n / (hi - lo), hi - lo
    span = float(rows.scored_at.max() - rows.scored_at.min())
    return (len(rows) - 1) / max(span, 1e-6), span


@dataclass
class RunSpec:
    """One worker configuration to measure."""

    label: str
    model: str
    mode: str  # event | microbatch | envelope
    backlog: Backlog
    learn: bool = True  # read the backlog's labels; False: an empty labels topic
    workers: int = 1
    stop_after: int | None = None  # stop once this many are scored (a prefix of the backlog)
    cap_s: float = 600.0  # give up waiting after this long scoring (slow models): partial run
    learning: str = "local"  # local | shared | trainer (a ``fraudstream trainer`` process learns)
    snapshot_every: int | None = None  # labels between snapshots (None: the setting's default)


def _scored(workers: list[Any], last: float) -> float:
    """Transactions the workers have scored so far, or ``last`` when one did not answer in
    time. A worker whose event loop is held by a long batch answers late, and that is not a
    failed run: the stall cap and the liveness check below decide (a 5 s poll timeout failed
    ``matrix/batch_rf/envelope/100`` of ``fraudstream bench`` on 2026-12-03)."""
    try:
        return sum(float(w.stats()["totals"]["transactions"]) for w in workers)
    except OSError:  # a timeout, or a refused connection while a worker restarts
        return last


def run_drain(bench: Bench, spec: RunSpec) -> dict[str, Any]:
    """Start the worker(s) over a backlog, wait until drained (or capped), read the scores."""
    run = uuid.uuid4().hex[:6]
    per_run = bench.topics(f"run-{run}")
    labels = spec.backlog.topics.labels if spec.learn else bench.topics("nolabels").labels
    topics = per_run.model_copy(update={
        "transactions": spec.backlog.topics.transactions, "labels": labels})
    settings = bench.settings(
        topics, app_id=f"bench-{bench.tag}-{run}", model=spec.model,
        processing_mode=spec.mode, learning=spec.learning,
        **({"snapshot_every_labels": spec.snapshot_every} if spec.snapshot_every else {}),
    )
    ensure_worker_topics(settings)
    trainer: subprocess.Popen[bytes] | None = None
    target = min(spec.stop_after or spec.backlog.n_tx, spec.backlog.n_tx)
    workers = [WorkerProcess(settings, f"w{i}", bench.work / "logs" / run)
               for i in range(spec.workers)]
    partial = False
    cpu0: list[float] = []
    cpu1: list[float] = []
    counters0: dict[str, float] = {}
    counters1: dict[str, float] = {}
    rss: list[int] = []
    try:
        if spec.learning == "trainer":
            log_path = bench.work / "logs" / run / "trainer.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                trainer = subprocess.Popen([*FRAUDSTREAM, "trainer"], env=child_env(settings),
                                           stdout=log, stderr=subprocess.STDOUT)
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(timeout_s=180)
        cpu0 = [cpu_seconds(w.process.pid) for w in workers if w.process]
        counters0 = _stage_counters(workers)
        done, last_n, last_change, first_progress = 0.0, -1.0, time.monotonic(), 0.0
        while True:
            done = _scored(workers, done)
            now = time.monotonic()
            if done != last_n:
                last_n, last_change = done, now
                if done and not first_progress:
                    first_progress = now
            if done >= target:
                break
            # A worker that has not scored yet may still be joining its group on a loaded
            # machine: give the first transaction longer than a stall mid-run.
            stalled = now - last_change > (60 if first_progress else 180)
            if stalled or (first_progress and now - first_progress > spec.cap_s):
                partial = True
                break
            if not all(w.alive() for w in workers):
                raise FraudstreamError(f"{spec.label}: a worker died: {workers[0].tail()}")
            time.sleep(0.3)
        # CPU and stage times now, with ``done``: a capped run's worker goes on scoring while
        # the scores below are awaited, and the rows read are cut at ``done`` (sampled after
        # the wait, a capped micro-batch drain reported 294% of a core busy)
        cpu1 = [cpu_seconds(w.process.pid) for w in workers if w.process]
        counters1 = _stage_counters(workers)
        # The worker counts a transaction when it is scored; its score message may still sit
        # in the producer's buffer. Wait until the scores are on the broker (or the message
        # count stops growing: envelope mode sends fewer messages than scores) before
        # stopping the worker, so the run measures published scores.
        published, grown_at = 0, time.monotonic()
        while published < int(done) and time.monotonic() - grown_at < 5:
            now_published = message_count(settings, topics.scores)
            if now_published > published:
                published, grown_at = now_published, time.monotonic()
            time.sleep(0.5)
        rss = [peak_rss_bytes(w.process.pid) for w in workers if w.process]
    finally:
        for w in workers:
            w.stop()
        if trainer is not None:
            trainer.terminate()
            trainer.wait(timeout=30)
    rows = read_scores(settings, until=int(done))
    rate, span = drain_rate(rows)
    cpu = sum(cpu1) - sum(cpu0)
    result: dict[str, Any] = {
        "label": spec.label, "model": spec.model, "mode": spec.mode,
        "envelope": spec.backlog.envelope, "workers": spec.workers, "learn": spec.learn,
        "scored": len(rows), "target": target, "partial": partial,
        "tx_per_s": rate, "seconds": span,
        "cpu_s_per_mtx": cpu / max(len(rows), 1) * 1e6,
        **stage_costs(counters0, counters1, cpu, len(rows)),
        "peak_rss_mb": max(rss, default=0) / 2**20,
        # the worst event-loop stall of the run: the margin against the session timeout
        "loop_stall_max_s": counters1.get("loop_stall_max_s", 0.0),
        "learning": spec.learning, "snapshot_every": settings.snapshot_every_labels,
        **model_freshness(settings, rows, spec.learning),
        "_rows": rows,
    }
    bench.log(f"  {spec.label}: {len(rows):,} scored, {rate:,.0f} tx/s"
              f"{' (PARTIAL: capped)' if partial else ''}, "
              f"{result['cpu_s_per_mtx']:,.0f} CPU-s per million tx")
    return result


STAGE_ORDER = ("decode", "state", "features", "model", "output", "processor")


def _stage_counters(workers: list[WorkerProcess]) -> dict[str, float]:
    """The workers' stage seconds (``streams.stage_times``) and card writes, summed."""
    total: dict[str, float] = {}
    for w in workers:
        stats = w.stats()
        for stage, seconds in stats.get("stage_seconds", {}).items():
            total[stage] = total.get(stage, 0.0) + float(seconds)
        total["card_writes"] = total.get("card_writes", 0.0) + float(
            stats["totals"].get("card_writes", 0))
        total["loop_stall_max_s"] = max(total.get("loop_stall_max_s", 0.0), float(
            stats["totals"].get("event_loop_stall_max_s", 0)))
    return total


def stage_costs(before: dict[str, float], after: dict[str, float], cpu_s: float,
                n: int) -> dict[str, Any]:
    """CPU-µs per transaction by stage over a drain; ``framework`` is the workers' CPU the
    stages do not account for (Faust, the Kafka client, the event loop, other threads).

    >>> c = stage_costs({"model": 1.0}, {"model": 1.5, "card_writes": 500}, 2.0, 1000)
    >>> c["stages_us"]["model"], c["stages_us"]["framework"], c["card_writes_per_tx"]
    (500.0, 1500.0, 0.5)
    """
    n = max(n, 1)
    stages = {stage: (after.get(stage, 0.0) - before.get(stage, 0.0)) / n * 1e6
              for stage in STAGE_ORDER}
    stages["framework"] = cpu_s / n * 1e6 - sum(stages.values())
    writes = (after.get("card_writes", 0.0) - before.get("card_writes", 0.0)) / n
    return {"stages_us": stages, "card_writes_per_tx": writes}


def model_freshness(settings: Settings, rows: ScoreRows, learning: str) -> dict[str, float]:
    """How many labels the scoring model held, and how old it was, when it scored.

    A worker learning locally updates its model at once (age 0) but only from the labels of
    its own partitions. Scorers fed by the trainer use the snapshot they last swapped in: its
    age is ``scored_at`` minus the snapshot's ``published_at`` (from ``model-snapshots``);
    scores made before any snapshot arrived count as ``before first snapshot``.
    """
    out = {"mean_labels_in_model": float(rows.learned.mean()) if len(rows) else float("nan"),
           "labels_in_final_model": float(rows.learned.max()) if len(rows) else float("nan")}
    if learning != "trainer":
        return {**out, "mean_model_age_s": 0.0, "p95_model_age_s": 0.0,
                "share_before_first_snapshot": 0.0, "snapshots_used": 0.0}
    published = {}
    for record in read_topic(settings, settings.topics.model_snapshots, idle_s=2.0):
        note = json.loads(record.value)
        published[int(note["version"])] = float(note["published_at"])
    ages = np.array([at - published[v] for v, at in zip(rows.model_version.tolist(),
                                                         rows.scored_at.tolist(), strict=True)
                     if v in published])
    fresh = len(ages) / max(len(rows), 1)
    return {**out,
            "mean_model_age_s": float(ages.mean()) if len(ages) else float("nan"),
            "p95_model_age_s": float(np.percentile(ages, 95)) if len(ages) else float("nan"),
            "share_before_first_snapshot": 1.0 - fresh,
            "snapshots_used": float(len(set(rows.model_version.tolist()) & set(published)))}


def run_latency(bench: Bench, world: World, model: str, mode: str, envelope: int, n_tx: int,
                rate: float = 2000.0, warmup_s: float = 2.0,
                linger_ms: int | None = None, visible: bool = False) -> dict[str, Any]:
    """A caught-up worker, then ``n_tx`` transactions paced at ``rate`` tx/s: latency quantiles.

    Latency is ``scored_at - produced_at`` per transaction; envelopes include their batching
    window (``--max-wait-ms``, the producer's default 50 ms). The first ``warmup_s`` seconds of
    traffic are left out (connections and JIT-less warm caches, not steady state).

    ``visible``: a ``read_committed`` reader follows the scores as they come, and the result
    also gives ``visible_*_ms``, from ``produced_at`` to the moment that reader got the score.
    That is what a consumer of the scores waits: the worker's outputs are in transactions
    committed every ``transaction_commit_ms`` (``streams.output_transactions``), so a score is
    readable some time after its ``scored_at``. Off by default: the reader takes CPU from the
    worker on a small machine.
    """
    run = uuid.uuid4().hex[:6]
    seen_at: dict[int, float] = {}
    follower = None
    topics = bench.topics(f"lat-{run}")
    settings = bench.settings(topics, app_id=f"bench-{bench.tag}-lat-{run}", model=model,
                              processing_mode=mode)
    ensure_worker_topics(settings)
    worker = WorkerProcess(settings, "w0", bench.work / "logs" / f"lat-{run}")
    try:
        worker.start()
        worker.wait_ready(timeout_s=180)
        time.sleep(2.0)  # let the consumer group settle on its partitions
        follower = _follow_scores(settings, n_tx, seen_at) if visible else None
        linger = () if linger_ms is None else ("--linger-ms", str(linger_ms))
        produce(settings, *world.args(seed=world.seed + 11), "--max-tx", str(n_tx),
                "--envelope", str(envelope), "--rate", str(rate), "--no-labels", *linger)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if worker.stats()["totals"]["transactions"] >= n_tx:
                break
            time.sleep(0.3)
    finally:
        worker.stop()
    if follower is not None:
        follower.join(timeout=60)
    rows = read_scores(settings, until=n_tx)
    if len(rows) < 2:
        raise FraudstreamError(f"latency run {model}/{mode}: only {len(rows)} scores")
    t0 = rows.produced_at.min()
    warmup_s = min(warmup_s, 0.2 * float(rows.produced_at.max() - t0))  # short (quick) runs
    keep = rows.produced_at >= t0 + warmup_s
    lat_ms = (rows.scored_at[keep] - rows.produced_at[keep]) * 1000.0
    offered = (len(rows) - 1) / max(float(rows.produced_at.max() - t0), 1e-6)
    result = {
        "model": model, "mode": mode, "envelope": envelope, "n": int(keep.sum()),
        "linger_ms": linger_ms,
        "offered_tx_per_s": offered,
        "p50_ms": float(np.percentile(lat_ms, 50)), "p95_ms": float(np.percentile(lat_ms, 95)),
        "p99_ms": float(np.percentile(lat_ms, 99)), "max_ms": float(lat_ms.max()),
        "_lat_ms": lat_ms,
        "_produced_at": rows.produced_at[keep],
    }
    if visible:
        got = np.array([seen_at.get(int(t), np.nan) for t in rows.tx_id[keep]])
        seen_ms = (got - rows.produced_at[keep]) * 1000.0
        seen_ms = seen_ms[~np.isnan(seen_ms)]
        result["visible_n"] = len(seen_ms)
        if len(seen_ms):
            result.update({f"visible_p{q}_ms": float(np.percentile(seen_ms, q))
                           for q in (50, 95, 99)})
    bench.log(f"  latency {model}/{mode}/env{envelope}: p50 {result['p50_ms']:.1f} ms, "
              f"p99 {result['p99_ms']:.1f} ms at {offered:,.0f} tx/s")
    return result


def _follow_scores(settings: Settings, n_tx: int, seen_at: dict[int, float]) -> Any:
    """A thread reading the scores topic as a consumer would (``read_committed``), noting
    when each transaction's score was first read."""
    import threading

    def follow() -> None:
        for record in read_topic(settings, settings.topics.scores, idle_s=30.0, max_s=600.0):
            now = time.time()
            for body in decode_scores(record.value):
                seen_at.setdefault(int(body["tx_id"]), now)
            if len(seen_at) >= n_tx:
                return

    thread = threading.Thread(target=follow, name="score-follower", daemon=True)
    thread.start()
    return thread


def accuracy(rows: ScoreRows, truth: pd.DataFrame, warmup_days: float = 0) -> dict[str, float]:
    """Exact AUC, AP and CP@100 of the logged scores against the ground truth, leaving out
    the transactions of the first ``warmup_days`` of the data (a fresh model's first week)."""
    from models.metrics import score_all

    t = truth.set_index("tx_id").loc[rows.tx_id]
    keep = t["ts"].to_numpy() >= float(truth["ts"].min()) + warmup_days * 86_400.0
    t = t[keep]
    s = score_all(t["ts"].to_numpy(), t["customer_id"].to_numpy(), t["fraud"].to_numpy(),
                  np.asarray(rows.score)[keep])
    return {"auc": s.auc, "ap": s.ap, "cp_at_100": s.cp_at_100, "n_fraud": s.n_fraud}


def train_batch_models(bench: Bench, world: World, n_tx: int, names: tuple[str, ...]) -> dict[str, float]:
    """Fit each batch baseline on a separate simulated history and sign it into the registry.

    Trained on the same world generator with another seed, so the backlog the worker then
    scores is unseen data. Returns the fit time per model.
    """
    from models.catalog import make_model
    from models.evaluate import prepare
    from models.registry import Registry

    df = ground_truth(bench, world, n_tx, seed=world.seed + 1)
    data = prepare(df, delay_days=7.0)
    registry = Registry(bench.work / "registry", bench.base.model_signing_key.get_secret_value())
    fit_s: dict[str, float] = {}
    for name in names:
        model = make_model(name)
        started = time.perf_counter()
        model.fit(data.X, data.fraud)  # type: ignore[union-attr]
        fit_s[name] = time.perf_counter() - started
        registry.save(model, name, data_range=(float(data.ts[0]), float(data.ts[-1])))
        bench.log(f"  trained {name} on {len(data):,} tx in {fit_s[name]:.1f} s")
    return fit_s
