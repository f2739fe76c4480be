"""``fraudstream demo``: the whole pipeline on one machine for a few minutes, then a report.

It starts (or reuses) the managed broker, creates a fresh set of topics for this run, and
bootstraps the way a bank would (``streams.warmup``): it simulates the world's history, trains
the online model offline on the part before the backfill and saves it as a signed snapshot;
the worker starts from that snapshot; the producer sends the last weeks of history unpaced
(the backfill rebuilds card and terminal state, and the model keeps learning) and then live
traffic at ``--rate``. Worker and producer run as separate processes, as they would be
deployed. The report (``reports/demo/report.md``) sets the live figures next to the offline
evaluator's on the same transactions, and counts alerts per day. Whatever the demo started,
it stops, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from fraudstream.errors import FraudstreamError
from infra.settings import Settings, child_env
from infra.topics import ensure_topics
from models.registry import Registry
from streams.demo_processes import FRAUDSTREAM, WorkerProcess, read_topic
from streams.demo_quality import AP_TARGET, alert_totals, alerts_by_day, parity
from streams.report import alerts_markdown, exact_quality, parity_markdown, write_report
from streams.score_messages import decode_scores
from streams.warmup import Bootstrap, DemoPlan, offline_scores, train_snapshot

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
    topics = settings.topics.renamed(lambda _field, name: f"demo-{run}-{name}")
    return settings.model_copy(update={"topics": topics, "app_id": f"fraudstream-demo-{run}"})


def _phase(producer_log: Path) -> str:
    """Backfill or live, from what the producer says at the switch (``produce --wait-for-group``)."""
    with contextlib.suppress(OSError):
        if "going live" in producer_log.read_text(errors="replace"):
            return "live"
    return "backfill"


def _progress_table(stats: dict, elapsed: float, duration: float, url: str,
                    phase: str = "") -> Table:
    last = stats["series"][-1] if stats.get("series") else {}
    table = Table(title=f"fraudstream demo · {phase} · {elapsed:.0f}/{duration:.0f} s · "
                        f"dashboard {url}", title_justify="left")
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


def _bootstrap(settings: Settings, plan: DemoPlan) -> tuple[Any, Registry, Bootstrap]:
    """Simulate the world and train the model offline on its history; a signed snapshot."""
    registry = Registry(settings.registry_dir, settings.model_signing_key.get_secret_value())
    with console.status(f"Simulating {plan.days} days and training {settings.model} offline on "
                        f"the first {plan.train_days}..."):
        frame = plan.simulate()
        boot = train_snapshot(frame, plan, settings.model, registry, settings.label_delay_days)
    console.print(
        f"trained {settings.model} offline on {boot.transactions:,} transactions "
        f"({boot.labels_learned:,} labels, {boot.seconds:.1f} s): snapshot [bold]{boot.ref}[/]"
    )
    return frame, registry, boot


def _stop(producer: subprocess.Popen[bytes] | None) -> None:
    if producer is not None and producer.poll() is None:
        producer.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            producer.wait(timeout=15)
        if producer.poll() is None:
            producer.kill()


def _investigators(settings: Settings, frame: Any, state: Path) -> subprocess.Popen[bytes]:
    """``fraudstream investigate`` on the demo's world (its truth written where the run's
    state is): the worker's alerts come back as feedback labels hours later in event time."""
    truth = state / "world.parquet"
    frame.to_parquet(truth, index=False)
    log = (state / "logs" / "investigate.log").open("wb")
    proc = subprocess.Popen(
        [*FRAUDSTREAM, "investigate", "--data", str(truth), "--budget",
         str(settings.alert_budget), "--group", f"{settings.app_id}-investigators"],
        env=child_env(settings), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


def run_demo(settings: Settings, duration_s: float, rate: float, out_dir: Path,
             envelope: int = 1, backfill_days: int | None = None,
             backfill_envelope: int | None = 200, investigators: bool = False) -> Path:
    command = "fraudstream " + " ".join(sys.argv[1:]) if sys.argv[1:] else "fraudstream demo"
    plan = DemoPlan.for_run(rate, duration_s, backfill_days)
    with _broker(settings) as base:
        settings = _run_topics(base)
        state = Path(settings.state_dir) / "demo"
        settings = settings.model_copy(update={
            "state_dir": state, "registry_dir": state / "registry", "snapshot_every_labels": 2000,
            # the backfill comes in envelopes: a shallow stream buffer keeps the partitions in
            # event-time step (see Settings.consumer_buffer), whatever the live mode
            "consumer_buffer": settings.consumer_buffer or 64,
        })
        frame, registry, boot = _bootstrap(settings, plan)
        settings = settings.model_copy(update={"model_snapshot": boot.ref})
        report = ensure_topics(settings)
        console.print(f"created {len(report.created)} topics for this run ({settings.app_id})")
        worker = WorkerProcess(settings, "demo", state / "logs", web_port=settings.web_port)
        producer: subprocess.Popen[bytes] | None = None
        team: subprocess.Popen[bytes] | None = None
        stats: dict = {}
        try:
            worker.start()
            if investigators:
                (state / "logs").mkdir(parents=True, exist_ok=True)
                team = _investigators(settings, frame, state)
                console.print(f"investigators: {settings.alert_budget} cards a day, feedback "
                              "labels 4 h (event time) after each alert")
            with console.status("Worker starting (recovering tables, replaying terminal state)..."):
                worker.wait_ready()
            console.print(f"dashboard: [bold]{worker.url}/dashboard[/]   metrics: {worker.url}/metrics")
            console.print(
                f"backfill: {plan.backfill_days} days from "
                f"{(plan.live_date - timedelta(days=plan.backfill_days)).isoformat()} unpaced, "
                f"then live from {plan.live_date.isoformat()} at {rate:g} tx/s"
            )
            producer_log = (state / "logs" / "producer.log").open("wb")
            producer = subprocess.Popen(
                [*FRAUDSTREAM, "produce", "--no-progress", "--rate", str(rate),
                 "--envelope", str(envelope), *plan.produce_args(),
                 *(["--backfill-envelope", str(backfill_envelope)] if backfill_envelope else []),
                 "--wait-for-group", settings.app_id, "--wait-max-s", str(duration_s)],
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
                        phase = _phase(state / "logs" / "producer.log")
                        live.update(_progress_table(stats, elapsed, duration_s,
                                                    worker.url + "/dashboard", phase))
                    time.sleep(1.0)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: stopping and writing the report[/]")
        finally:
            _stop(producer)
            with contextlib.suppress(OSError, ValueError):
                stats = worker.stats()
            worker.stop()
            _stop(team)
        with console.status("Reading the topics back and replaying offline..."):
            path = _report(settings, plan, frame, registry, boot, stats, out_dir, command,
                           producer_log=state / "logs" / "producer.log",
                           rate=rate, envelope=envelope, backfill_envelope=backfill_envelope,
                           duration_s=duration_s, investigators=investigators)
    console.print(f"report: [bold]{path}[/]")
    return path


def _read_bodies(settings: Settings, topic: str) -> list[dict[str, Any]]:
    bodies = []
    for record in read_topic(settings, topic, idle_s=1.5, max_s=90):
        with contextlib.suppress(ValueError, TypeError):
            bodies.append(json.loads(record.value))
    return bodies


def _read_scores(settings: Settings) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    for record in read_topic(settings, settings.topics.scores, idle_s=1.5, max_s=90):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            bodies.extend(decode_scores(record.value))  # one score or an envelope
    return bodies


def _arrived_labels(settings: Settings) -> dict[int, int]:
    labels = {}
    for body in _read_bodies(settings, settings.topics.labels):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            events = body["events"] if body.get("type") == "envelope" else [body]
            for ev in events:
                labels[ev["tx_id"]] = int(ev["fraud"])
    return labels


def _report(settings: Settings, plan: DemoPlan, frame: Any, registry: Registry, boot: Bootstrap,
            stats: dict, out_dir: Path, command: str, *, rate: float, envelope: int,
            backfill_envelope: int | None, duration_s: float, producer_log: Path,
            investigators: bool = False) -> Path:
    """Read scores, alerts and labels back, replay offline, and write the report."""
    import numpy as np

    scored = {b["tx_id"]: b for b in _read_scores(settings)}
    scores = {tx: float(b["score"]) for tx, b in scored.items()}
    alerts = _read_bodies(settings, settings.topics.alerts)
    labels = _arrived_labels(settings)
    scored_until = max((float(b["ts"]) for b in scored.values()), default=plan.live_from)
    replay = offline_scores(frame, plan, registry, boot.ref, settings.label_delay_days,
                            until=scored_until)
    rows = parity(replay, scores, plan.live_from)
    days = alerts_by_day(alerts, replay, plan.live_from, scored_until)
    phases = _phases(scored, plan.live_from)
    with contextlib.suppress(OSError):
        went = re.search(r"going live after waiting ([0-9.]+) s(.*)", producer_log.read_text())
        if went:
            phases["producer waited for the worker to consume the backfill (s)"] = (
                float(went.group(1)))
            if went.group(2).strip():
                phases["at the live start"] = went.group(2).strip(", ")
    warm = min((int(b.get("learned", 0)) for b in scored.values()), default=0)
    policy = (f"at most {settings.alert_budget} cards per event-time day"
              if settings.alert_policy == "budget"
              else f"every score >= {settings.alert_threshold:g}")
    lat = np.array([b["scored_at"] - b["produced_at"] for b in scored.values()]) * 1000
    if not len(lat):
        lat = np.array([math.nan])
    return write_report(
        out_dir,
        title="fraudstream demo run",
        command=command,
        settings_summary={
            "model": settings.model, "processing mode": settings.processing_mode,
            "producer rate (tx/s), live phase": rate, "envelope, live phase": envelope,
            "envelope, backfill": backfill_envelope or envelope,
            "partitions": settings.topics.partitions, "store": settings.store,
            "alert policy": policy, "duration (s)": duration_s,
            "world": f"seed {plan.seed}, {plan.customers:,} cards, {plan.terminals:,} terminals, "
                     f"{plan.days} days from {plan.start_date}",
            "bootstrap snapshot": boot.ref,
            "investigators": ("on: alerts come back as feedback labels; the offline replay "
                              "learns delayed labels only, so the parity below includes what "
                              "feedback changed" if investigators else "off"),
            "challengers": settings.challengers or "none",
            "bootstrap": settings.kafka.bootstrap_servers,
        },
        series=stats.get("series", []),
        totals={
            "transactions scored": len(scores),
            "labels arrived": len(labels),
            "labels learned by the worker": int(stats.get("totals", {}).get("learned", 0)),
            "alerted transactions (alerts topic)": len({a.get("tx_id") for a in alerts}),
            "model at the end": str(stats.get("model", "")),
        },
        quality={f"{k} (arrived labels)": v for k, v in exact_quality(scores, labels).items()},
        latency={
            "latency p50, backfill and live (ms)": float(np.nanpercentile(lat, 50)),
            "latency p99, backfill and live (ms)": float(np.nanpercentile(lat, 99)),
        },
        sections=[
            _warm_markdown(plan, boot, phases, warm),
            parity_markdown(rows, boot.ref, replay.seconds, AP_TARGET),
            alerts_markdown(days, alert_totals(days), policy),
        ],
    )


def _phases(scored: dict[int, dict[str, Any]], live_from: float) -> dict[str, Any]:
    """Wall-clock view of the run from the score messages: backfill drain, live latency."""
    import numpy as np

    back = [b for b in scored.values() if b["ts"] < live_from]
    live = sorted((b for b in scored.values() if b["ts"] >= live_from),
                  key=lambda b: b["produced_at"])
    out: dict[str, Any] = {"backfill scored": len(back), "live scored": len(live)}
    t0 = min((b["produced_at"] for b in scored.values()), default=math.nan)
    if back:
        done = max(b["scored_at"] for b in back)
        out["backfill drained after (s)"] = done - t0
        out["backfill throughput (tx/s)"] = len(back) / max(done - t0, 1e-9)
    if live:
        lat = np.array([b["scored_at"] - b["produced_at"] for b in live])
        out["live latency p50 (ms)"] = float(np.percentile(lat, 50) * 1000)
        out["live latency p99 (ms)"] = float(np.percentile(lat, 99) * 1000)
        slow = np.flatnonzero(lat > 1.0)
        first = int(slow[-1]) + 1 if len(slow) else 0  # from here on, every latency <= 1 s
        after = lat[first:]
        if len(after):
            out["caught up with live traffic after (s)"] = live[first]["produced_at"] - t0
            out["live latency p50 once caught up (ms)"] = float(np.percentile(after, 50) * 1000)
            out["live latency p99 once caught up (ms)"] = float(np.percentile(after, 99) * 1000)
        else:
            out["caught up with live traffic after (s)"] = "not within the run"
    return out


def _warm_markdown(plan: DemoPlan, boot: Bootstrap, phases: dict[str, Any], warm: int) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:,.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    backfill_from = plan.live_date - timedelta(days=plan.backfill_days)
    rows = {
        "offline training": f"{plan.start_date} .. {backfill_from - timedelta(days=1)} "
                            f"({plan.train_days} days, {boot.transactions:,} transactions, "
                            f"{boot.labels_learned:,} labels known before the backfill, "
                            f"{boot.seconds:.1f} s)",
        "snapshot": f"`{boot.ref}` (signed; the worker verifies it at load)",
        "worker started from it": "yes" if warm >= boot.labels_learned > 0 else
                                  f"**no** (first scores' model had learned {warm:,} labels)",
        "backfill": f"{backfill_from} .. {plan.live_date - timedelta(days=1)} "
                    f"({plan.backfill_days} days, sent unpaced)",
        "live": f"from {plan.live_date}, at the producer's --rate",
        **{k: fmt(v) for k, v in phases.items()},
    }
    body = "\n".join(f"| {k} | {v} |" for k, v in rows.items())
    if not phases.get("live scored"):
        body += ("\n\n**The worker had not worked through the backfill when the run ended**, so "
                 "no live transaction was scored: run longer (`--duration`), with a shorter "
                 "`--backfill-days`, or on a less loaded machine.")
    return f"""## Warm start

The model was trained offline on the world's history and deployed as a signed snapshot; the
worker started from it, rebuilt card and terminal state from the backfill (live features need
the last {plan.backfill_days} days: label delay + 30-day windows) and kept learning.

| step | value |
|---|---|
{body}
"""
