"""The ``backpressure`` scenario: produce faster than the worker scores, then watch lag drain.

The worker's capacity is measured first, from its own counter while it drains a backlog, so
that "three times faster" is relative to this machine on this day. The claims: lag grows past
a second of work and shows on the dashboard's series, drains once the producer stops, and no
transaction is lost.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from infra.settings import Settings
from reliability.harness import collect_scores
from reliability.scenario import (
    Report,
    metric,
    scenario_settings,
    start_producer,
    stop_process,
    valid_tx_ids,
    world_args,
)
from streams.demo_processes import WorkerProcess


def run_backpressure(
    base: Settings, work_dir: Path, burst_s: float = 60.0, factor: float = 3.0, seed: int = 3,
) -> Report:
    """Produce ``factor`` times faster than the worker scores for ``burst_s``; lag must drain."""
    from infra.topics import ensure_topics

    report = Report(f"backpressure ({factor:g}x for {burst_s:g} s)")
    started = time.monotonic()
    settings = scenario_settings(base, work_dir, "bp")
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", work_dir).start()
    samples: list[tuple[float, float, float]] = []  # (t, lag in /metrics, lag in /api/stats)
    producer = None
    try:
        worker.wait_ready(180)
        capacity = _measure_capacity(settings, worker, work_dir, seed)
        rate = factor * capacity
        n_tx = int(rate * burst_s)
        producer = start_producer(settings, work_dir / "producer.log",
                                   *world_args(n_tx, seed + 1), "--rate", f"{rate:.0f}")
        t0 = time.monotonic()
        produced_s = drained_at = None
        while time.monotonic() - t0 < burst_s * 10 + 120:
            with contextlib.suppress(OSError, ValueError):
                lag = metric(worker.get("/metrics").decode(), "fraudstream_consumer_lag")
                series = worker.stats()["series"]
                samples.append((time.monotonic() - t0, lag, series[-1]["lag"] if series else 0))
            if produced_s is None and producer.poll() is not None:
                produced_s = time.monotonic() - t0
            # Drained by both readings: the /api/stats series sums every partition, while the
            # /metrics gauge holds one partition per topic (see test_known_gaps).
            if produced_s is not None and samples and samples[-1][1] == samples[-1][2] == 0:
                drained_at = time.monotonic() - t0
                break
            time.sleep(0.5)
        expected = valid_tx_ids(settings)
        scores = collect_scores(settings, expected, timeout_s=300)
        stats_series = worker.stats()["series"]
    finally:
        stop_process(producer)
        worker.stop()
    missing = expected - set(scores.counts)
    max_lag = max((s[1] for s in samples), default=0)
    max_series_lag = max((p["lag"] for p in stats_series), default=0)
    report.figures.update({
        "worker capacity (tx/s)": round(capacity),
        "producer rate (tx/s)": round(rate),
        "transactions sent": len(expected),
        "producer finished after (s)": None if produced_s is None else round(produced_s, 1),
        "max lag in /metrics (messages)": int(max_lag),
        "max lag in /api/stats series": int(max_series_lag),
        "lag drained after (s)": None if drained_at is None else round(drained_at, 1),
        "time to drain after producer end (s)": (
            None if drained_at is None or produced_s is None else round(drained_at - produced_s, 1)
        ),
        "transactions lost": len(missing),
    })
    report.check(max_lag > capacity, f"lag never grew past one second of work ({max_lag:.0f})")
    report.check(max_series_lag > 0, "the dashboard series never showed any lag")
    report.check(drained_at is not None, "lag did not drain")
    report.check(not missing, f"{len(missing)} transactions never scored")
    report.figures["lag samples"] = len(samples)
    (work_dir / "lag.json").write_text(json.dumps(samples))
    report.seconds = time.monotonic() - started
    return report


def _measure_capacity(settings: Settings, worker: WorkerProcess, work_dir: Path, seed: int) -> float:
    """Transactions per second the worker scores flat out (a burst produced unthrottled).

    Measured from the worker's own transaction counter while it drains a backlog, so that
    the producer's speed does not enter the figure. Labels are sent too, as in the burst:
    they cost the worker as much as transactions, and "3x faster" is about the same mix.
    """
    n = 6_000
    proc = start_producer(settings, work_dir / "warmup.log", *world_args(n, seed))
    proc.wait(timeout=300)
    points: list[tuple[float, float]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            tx = metric(worker.get("/metrics").decode(), "fraudstream_transactions_in_total")
            points.append((time.monotonic(), tx))
            if tx >= n:
                break
        time.sleep(0.25)
    busy = [p for p in points if 0 < p[1] < n]
    if len(busy) < 2:
        return n / max(points[-1][0] - points[0][0], 1.0) if points else 1000.0
    return (busy[-1][1] - busy[0][1]) / max(busy[-1][0] - busy[0][0], 1e-3)
