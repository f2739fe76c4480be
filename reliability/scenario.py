"""What every chaos scenario shares: its ``Report``, its own topics, and the ways it drives
the real pipeline and reads back what came out.

A scenario returns a ``Report``: its figures plus a list of ``problems``, empty when every
claim held, so a test asserts ``not report.problems`` and a human reads the same numbers.
Each run gets topics, app id, state and registry of its own (``scenario_settings``), so
scenarios can share one broker without reading each other's messages. Producers run as the
``fraudstream produce`` command a user runs, in the background, and results are read from
Kafka and from the worker's /metrics, never from inside the processes.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.settings import Settings, child_env
from reliability.harness import collect_scores
from streams.demo_processes import FRAUDSTREAM, WorkerProcess, read_topic
from streams.score_messages import decode_scores

# The broker-restart scenario's workers lose their group coordinator with the broker; the
# shortest session the broker accepts (its group.min.session.timeout.ms, 6 s) gets them back
# in the group soonest. The worker-crash scenario runs with the defaults a user gets (static
# membership, 10 s), since its resume time is what it measures.
FAST_FAILOVER_ENV = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}


def wait_first_score(worker: WorkerProcess, since: float, timeout_s: float = 60.0) -> float | None:
    """Seconds from ``since`` (a ``time.monotonic()``) until ``worker`` has sent its first
    score, None if it sent none within ``timeout_s``. A restarted worker re-reads what it had
    already scored without sending those scores again, so this is when it scores new
    transactions: when scoring resumed, as a user sees it on the ``scores`` topic."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if worker.stats()["totals"]["scores"] > 0:
                return time.monotonic() - since
        time.sleep(0.1)
    return None


@dataclass
class Report:
    """What a scenario measured (``figures``) and which of its claims failed (``problems``)."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        status = "OK" if self.ok else "FAILED"
        out = [f"== {self.name}: {status} ({self.seconds:.0f} s)"]
        out += [f"   {k:34} {v}" for k, v in self.figures.items()]
        out += [f"   problem: {p}" for p in self.problems]
        return out


def scenario_settings(base: Settings, work_dir: Path, tag: str, **update: Any) -> Settings:
    """``base`` with topics, app id, state and registry unique to one scenario run."""
    suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
    topics = base.topics.renamed(lambda _field, name: f"{name}-{suffix}")
    work_dir.mkdir(parents=True, exist_ok=True)
    return base.model_copy(update={
        "topics": topics, "app_id": f"fraudstream-chaos-{suffix}",
        "state_dir": work_dir / "state", "registry_dir": work_dir / "registry", **update,
    })


def metric(text: str, name: str) -> float:
    """Sum of every sample of a Prometheus metric in a /metrics page (0 when absent)."""
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M):
        total += float(m.group(1))
    return total


def valid_tx_ids(settings: Settings) -> set[int]:
    """Ids of every well-formed transaction on the transactions topic (what must be scored)."""
    from producers.events import InvalidEvent, decode_transactions

    ids: set[int] = set()
    for record in read_topic(settings, settings.topics.transactions, idle_s=2.0):
        with contextlib.suppress(InvalidEvent, TypeError):
            ids.update(tx.tx_id for tx in decode_transactions(record.value))
    return ids


def collect_while_alive(
    worker: WorkerProcess, settings: Settings, expected: set[int], timeout_s: float
) -> Any:
    """``collect_scores``, but give up as soon as the worker process is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        scores = collect_scores(settings, expected, timeout_s=5)
        if expected <= set(scores.counts) or not worker.alive() or time.monotonic() > deadline:
            return scores


def collect_until_stalled(settings: Settings, expected: set[int], stall_s: float = 60.0) -> Any:
    """``collect_scores`` until all are there or no new transaction was scored for ``stall_s``.

    A lost score never arrives: waiting a fixed five minutes for it only makes CI slow.
    """
    best, since = -1, time.monotonic()
    while True:
        scores = collect_scores(settings, expected, timeout_s=5)
        have = len(expected & set(scores.counts))
        if have == len(expected):
            return scores
        if have > best:
            best, since = have, time.monotonic()
        elif time.monotonic() - since > stall_s:
            return scores
        time.sleep(2.0)


def log_crashes(worker: WorkerProcess) -> list[str]:
    """Lines where Faust reports an agent crash: the worker survives them, events do not."""
    with contextlib.suppress(OSError):
        text = worker.log_path.read_text(errors="replace")
        return [ln for ln in text.splitlines() if "Crashed reason=" in ln]
    return []


def start_producer(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    try:
        return subprocess.Popen([*FRAUDSTREAM, "produce", "--no-progress", *args],
                                env=child_env(settings), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        log.close()


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def check_producer(report: Report, producer: subprocess.Popen[bytes], log_path: Path,
                   timeout_s: float) -> None:
    """Wait for a scenario's producer; a non-zero exit is a problem, with its log's end."""
    producer.wait(timeout=timeout_s)
    report.check(producer.returncode == 0, f"producer exited {producer.returncode}: "
                 f"{log_path.read_text(errors='replace')[-300:]}")


def world_args(n_tx: int, seed: int) -> list[str]:
    """Simulator options for about ``n_tx`` transactions (~2.4 per card per day)."""
    customers = max(200, n_tx // 60)
    return ["--customers", str(customers), "--terminals", str(customers * 2), "--days", "40",
            "--max-tx", str(n_tx), "--seed", str(seed)]


def duplicate_copies_agree(settings: Settings, counts: Counter[int]) -> bool:
    """Every copy of a re-sent score carries the same score and features as the first."""
    dup = {t for t, n in counts.items() if n > 1}
    if not dup:
        return True
    seen: dict[int, tuple[float, tuple[float, ...]]] = {}
    for record in read_topic(settings, settings.topics.scores, idle_s=2.0):
        for body in decode_scores(record.value):
            if body["tx_id"] not in dup:
                continue
            sig = (body["score"], tuple(body["features"]))
            if seen.setdefault(body["tx_id"], sig) != sig:
                return False
    return True


MALFORMED_TX = b'{"v": 1, "type": "transaction", "tx_id": '
"""A transaction message cut short: refused by every decoder, dead-lettered."""


def send_malformed(settings: Settings, n: int, every_s: float = 0.0,
                   stop: threading.Event | None = None) -> int:
    """Send up to ``n`` malformed messages to the transactions topic, ``every_s`` apart,
    until ``stop`` is set; returns how many were sent (each must be dead-lettered once)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", **settings.kafka.kafka_python_kwargs())
    sent = 0
    try:
        for i in range(n):
            if stop is not None and stop.is_set():
                break
            producer.send(settings.topics.transactions, key=str(i).encode(),
                          value=MALFORMED_TX + str(i).encode())
            sent += 1
            if every_s:
                producer.flush()
                if stop is not None and stop.wait(every_s):
                    break
        producer.flush()
    finally:
        producer.close()
    return sent


def dead_letter_sources(settings: Settings) -> list[tuple[str, int, int]]:
    """The (source topic, partition, offset) of every message on the transactions DLQ."""
    import json

    records = read_topic(settings, settings.topics.transactions_dlq, idle_s=2.0)
    bodies = [json.loads(r.value) for r in records]
    return [(b["source_topic"], b["partition"], b["offset"]) for b in bodies]
