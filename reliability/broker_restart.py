"""The ``broker-restart`` scenario: stop the broker under a running producer and worker.

It runs on a broker of its own (the others share one), because it stops it: same port, same
data, started again after a few seconds down. The claims: the worker survives without a
restart and no transaction is lost.
"""

from __future__ import annotations

import time
from pathlib import Path

from infra.settings import Settings
from reliability.harness import collect_scores
from reliability.scenario import (
    FAST_FAILOVER_ENV,
    Report,
    check_producer,
    scenario_settings,
    start_producer,
    stop_process,
    valid_tx_ids,
    world_args,
)
from streams.demo_processes import WorkerProcess


def run_broker_restart(
    cache_dir: Path, work_dir: Path, n_tx: int = 50_000, down_s: float = 8.0, seed: int = 5,
    rate: float | None = None,
) -> Report:
    """Stop the broker mid-run and start it again on the same port and data; nothing is lost."""
    from infra.broker import LocalBroker, free_port
    from infra.kafka_dist import fetch_kafka
    from infra.topics import ensure_topics

    report = Report("broker restart")
    started = time.monotonic()
    broker = LocalBroker(work_dir / "broker", fetch_kafka(cache_dir), port=free_port(),
                         heap_mb=512)
    broker.start()
    producer = worker = None
    try:
        settings = scenario_settings(Settings().with_bootstrap(broker.bootstrap), work_dir, "brk")
        ensure_topics(settings)
        worker = WorkerProcess(settings, "w0", work_dir, extra_env=FAST_FAILOVER_ENV).start()
        worker.wait_ready(180)
        rate = rate or max(400.0, n_tx / 40.0)
        producer = start_producer(settings, work_dir / "producer.log", *world_args(n_tx, seed),
                                   "--rate", f"{rate:.0f}")
        time.sleep(min(10.0, n_tx / rate / 3))
        t_stop = time.monotonic()
        broker.stop()
        stopped_s = time.monotonic() - t_stop
        time.sleep(down_s)
        broker.start()
        outage_s = time.monotonic() - t_stop
        check_producer(report, producer, work_dir / "producer.log", 600)
        expected = valid_tx_ids(settings)
        scores = collect_scores(settings, expected, timeout_s=300)
        alive = worker.alive()
    finally:
        stop_process(producer)
        if worker is not None:
            worker.stop()
        broker.stop()
    missing = expected - set(scores.counts)
    report.figures.update({
        "transactions sent": len(expected),
        "broker stop took (s)": round(stopped_s, 1),
        "outage, stop to ready (s)": round(outage_s, 1),
        "transactions lost": len(missing),
        "duplicates before dedup": scores.duplicates,
        "worker survived without restart": alive,
    })
    report.check(not missing, f"{len(missing)} transactions never scored")
    report.check(alive, "the worker died with the broker")
    report.seconds = time.monotonic() - started
    return report
