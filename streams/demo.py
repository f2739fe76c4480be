"""``fraudstream demo``: the whole pipeline on one machine for a few minutes, then a report.

It starts (or reuses) the managed broker, creates a fresh set of topics for this run, starts
a worker and a producer as separate processes (as they would be deployed), shows progress
with the dashboard's address, and writes ``reports/demo/report.md`` with charts. Whatever it
started, it stops, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fraudstream.errors import FraudstreamError
from infra.settings import Settings, TopicSettings, child_env
from infra.topics import ensure_topics
from streams.harness import FRAUDSTREAM, WorkerProcess, read_topic
from streams.report import exact_quality, write_report

console = Console()


@contextlib.contextmanager
def _broker(settings: Settings) -> Iterator[Settings]:
    """The user's broker if KAFKA_BOOTSTRAP_SERVERS is set, else the managed one (started if
    needed, and then stopped again at the end)."""
    if "bootstrap_servers" in settings.kafka.model_fields_set:
        yield settings
        return
    from infra import service

    with console.status("Starting Apache Kafka (KRaft, single node)..."):
        result = service.up(settings.cache_dir, port=9092)
    console.print(("reusing" if result.reused else "started") +
                  f" the managed Kafka broker at {result.state.bootstrap}")
    try:
        yield settings.with_bootstrap(result.state.bootstrap)
    finally:
        if not result.reused:
            with console.status("Stopping Kafka..."):
                service.down(settings.cache_dir)


def _run_topics(settings: Settings) -> Settings:
    """Fresh topic names and app id for this run, so an old backlog never leaks in."""
    run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    topics = TopicSettings(**{
        name: f"demo-{run}-{getattr(settings.topics, name)}"
        for name in TopicSettings.model_fields if name != "partitions"
    }, partitions=settings.topics.partitions)
    return settings.model_copy(update={"topics": topics, "app_id": f"fraudstream-demo-{run}"})


def _progress_table(stats: dict, elapsed: float, duration: float, url: str) -> Table:
    last = stats["series"][-1] if stats.get("series") else {}
    table = Table(title=f"fraudstream demo · {elapsed:.0f}/{duration:.0f} s · dashboard {url}",
                  title_justify="left")
    for col in ("scored", "tx/s", "p50 ms", "p99 ms", "labels learned", "rolling AUC",
                "rolling AP", "alerts", "lag", "model"):
        table.add_column(col, justify="right")

    def f(v: object, d: int = 0) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{d}f}"

    t = stats.get("totals", {})
    table.add_row(f(t.get("transactions")), f(last.get("tx_per_s")), f(last.get("p50_ms"), 1),
                  f(last.get("p99_ms"), 1), f(t.get("learned")), f(last.get("auc"), 3),
                  f(last.get("ap"), 3), f(t.get("alerts")), f(last.get("lag")),
                  str(stats.get("model", "")))
    return table


def run_demo(settings: Settings, duration_s: float, rate: float, out_dir: Path,
             envelope: int = 1) -> Path:
    command = "fraudstream " + " ".join(sys.argv[1:]) if sys.argv[1:] else "fraudstream demo"
    with _broker(settings) as base:
        settings = _run_topics(base)
        state = Path(settings.state_dir) / "demo"
        settings = settings.model_copy(update={
            "state_dir": state, "registry_dir": state / "registry", "snapshot_every_labels": 2000,
        })
        report = ensure_topics(settings)
        console.print(f"created {len(report.created)} topics for this run ({settings.app_id})")
        worker = WorkerProcess(settings, "demo", state / "logs", web_port=settings.web_port)
        producer: subprocess.Popen[bytes] | None = None
        series: list[dict] = []
        stats: dict = {}
        try:
            worker.start()
            with console.status("Worker starting (recovering tables, replaying terminal state)..."):
                worker.wait_ready()
            console.print(f"dashboard: [bold]{worker.url}/dashboard[/]   metrics: {worker.url}/metrics")
            # A smaller world than the handbook's (1,000 cards, ~1,900 tx per simulated day), so
            # that a few minutes of wall time cover weeks of event time and labels arrive.
            days = max(14, math.ceil(rate * duration_s / 1_900) + 8)
            producer_log = (state / "logs" / "producer.log").open("wb")
            producer = subprocess.Popen(
                [*FRAUDSTREAM, "produce", "--no-progress", "--rate", str(rate), "--days", str(days),
                 "--customers", "1000", "--terminals", "2000", "--envelope", str(envelope),
                 "--seed", "42"],
                env=child_env(settings), stdout=producer_log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            producer_log.close()
            started = time.monotonic()
            with Live(console=console, refresh_per_second=2) as live:
                while (elapsed := time.monotonic() - started) < duration_s:
                    if not worker.alive():
                        raise FraudstreamError(f"the worker died: {worker.tail()}")
                    with contextlib.suppress(OSError, ValueError):
                        stats = worker.stats()
                        live.update(_progress_table(stats, elapsed, duration_s,
                                                    worker.url + "/dashboard"))
                    time.sleep(1.0)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping and writing the report[/]")
        finally:
            if producer is not None and producer.poll() is None:
                producer.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    producer.wait(timeout=15)
                if producer.poll() is None:
                    producer.kill()
            with contextlib.suppress(OSError, ValueError):
                stats = worker.stats()
            worker.stop()
        series = stats.get("series", [])
        scores: dict[int, float] = {}
        latencies: list[float] = []
        for record in read_topic(settings, settings.topics.scores, idle_s=1.5, max_s=60):
            body = json.loads(record.value)
            scores[body["tx_id"]] = body["score"]
            latencies.append(body["scored_at"] - body["produced_at"])
        labels = {}
        for record in read_topic(settings, settings.topics.labels, idle_s=1.5, max_s=60):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                body = json.loads(record.value)
                events = body["events"] if body.get("type") == "envelope" else [body]
                for ev in events:
                    labels[ev["tx_id"]] = int(ev["fraud"])
        import numpy as np

        lat = np.array(latencies) * 1000 if latencies else np.array([math.nan])
        path = write_report(
            out_dir,
            title="fraudstream demo run",
            command=command,
            settings_summary={
                "model": settings.model, "processing mode": settings.processing_mode,
                "producer rate (tx/s)": rate, "envelope": envelope,
                "partitions": settings.topics.partitions, "store": settings.store,
                "alert threshold": settings.alert_threshold, "duration (s)": duration_s,
                "bootstrap": settings.kafka.bootstrap_servers,
            },
            series=series,
            totals={
                "transactions scored": len(scores),
                "labels arrived": len(labels),
                "labels learned": int(stats.get("totals", {}).get("learned", 0)),
                "alerts": int(stats.get("totals", {}).get("alerts", 0)),
                "model at the end": str(stats.get("model", "")),
            },
            quality=exact_quality(scores, labels),
            latency={
                "latency p50 (ms)": float(np.nanpercentile(lat, 50)),
                "latency p99 (ms)": float(np.nanpercentile(lat, 99)),
            },
        )
    console.print(f"report: [bold]{path}[/]")
    return path
