"""The demo's process launcher: a real ``fraudstream worker`` subprocess, and a topic read back.

``fraudstream demo`` runs the pipeline as a user would: it starts the same command a user runs
(``fraudstream worker``) with the settings passed through the environment, and reads what came
out of Kafka. That is product code (the demo ships), so it stays in ``streams``. Tests,
benchmarks and ``reliability`` reuse it, so what they measure or assert is that same deployed
process, not a stand-in; what only they need (running a producer to completion, collecting
every score) is in ``reliability.harness``.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fraudstream.errors import FraudstreamError
from infra.broker import free_port
from infra.settings import READ_COMMITTED, Settings, child_env

FRAUDSTREAM = [sys.executable, "-m", "fraudstream"]


class WorkerProcess:
    """One ``fraudstream worker`` subprocess with its own web port and log file."""

    def __init__(
        self, settings: Settings, worker_id: str, log_dir: Path, web_port: int | None = None,
        extra_env: dict[str, str] | None = None, launcher: Sequence[str] = (),
    ) -> None:
        self.worker_id = worker_id
        self.launcher = list(launcher)
        """Prefix of the command, e.g. ``ip netns exec HOST`` to run it on another host."""
        self.web_port = web_port or free_port()
        self.settings = settings.model_copy(update={"web_port": self.web_port})
        self.log_path = Path(log_dir) / f"worker-{worker_id}.log"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = child_env(self.settings, OMP_NUM_THREADS="1", **self.extra_env)
        self.process = subprocess.Popen(
            [*self.launcher, *FRAUDSTREAM, "worker", "--worker-id", self.worker_id, "--loglevel", "INFO"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def url(self) -> str:
        host = self.settings.web_host
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.web_port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str, timeout_s: float = 5.0) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout_s) as resp:
            return resp.read()

    def stats(self) -> dict[str, Any]:
        return json.loads(self.get("/api/stats"))

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until /health says the worker has replayed its state and can score."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise FraudstreamError(f"worker {self.worker_id} exited: {self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.get("/health", 2.0)).get("ok"):
                    return
            time.sleep(0.3)
        raise FraudstreamError(f"worker {self.worker_id} not ready in {timeout_s:.0f}s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.strip().splitlines()[-lines:])
        return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop (SIGTERM: Faust commits and leaves the group), then kill."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no chance to commit, flush or leave the group (the crash case)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def read_topic(settings: Settings, topic: str, idle_s: float = 3.0,
               max_s: float = 300.0, until: int | None = None) -> Iterator[Any]:
    """All records of ``topic`` from the start, until ``until`` records or ``idle_s`` of quiet."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **READ_COMMITTED,
                             **settings.kafka.kafka_python_kwargs())
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        n = 0
        deadline = time.monotonic() + max_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=250, max_records=10_000)
            if batch:
                last = time.monotonic()
            for records in batch.values():
                for record in records:
                    n += 1
                    yield record
            if until is not None and n >= until:
                return
            if time.monotonic() - last > idle_s:
                return
    finally:
        consumer.close()
