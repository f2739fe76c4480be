"""The ``node-kill`` scenario: SIGKILL a node of a 3-node cluster under a producer and a worker.

It runs on a cluster of its own (``infra.cluster.managed_cluster``): topics with 3 replicas
and ``min.insync.replicas`` 2, a producer with ``acks=all`` and idempotence, one worker. A third
of the way into the produce run, the node that leads the most of the pipeline's partitions
(``target="leader"``) or the active controller (``target="controller"``) is killed, kept down
``down_s`` and started again on its data. The claims: nothing is lost, no transaction has two
different scores, and the worker rides it out without a restart; the outage the worker saw
is the longest pause between two of its scores around the kill.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from infra.settings import Settings
from reliability.harness import collect_scores
from reliability.scenario import (
    Report,
    check_producer,
    duplicate_copies_agree,
    scenario_settings,
    start_producer,
    stop_process,
    valid_tx_ids,
    world_args,
)
from streams.demo_processes import WorkerProcess


def longest_pause(scored_at: list[float], since: float, until: float) -> float:
    """Longest gap between consecutive score times inside ``[since, until]``.

    >>> longest_pause([1.0, 2.0, 6.5, 7.0, 20.0], since=0.0, until=10.0)
    4.5
    """
    times = sorted(t for t in scored_at if since <= t <= until)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def run_node_kill(
    cache_dir: Path, work_dir: Path, target: str = "leader", n_tx: int = 30_000,
    down_s: float = 10.0, seed: int = 9, rate: float | None = None,
) -> Report:
    """Kill one node of a 3-node cluster mid-run, restart it later; nothing is lost."""
    from infra.cluster import managed_cluster
    from infra.topics import ensure_worker_topics

    if target not in ("leader", "controller"):
        raise ValueError("target is 'leader' or 'controller'")
    report = Report(f"cluster node kill ({target})")
    started = time.monotonic()
    producer = worker = None
    with managed_cluster(3, cache_dir) as cluster:
        base = Settings().with_bootstrap(cluster.bootstrap)
        settings = scenario_settings(base, work_dir, f"kill{target[0]}")
        settings = settings.model_copy(update={
            "topics": settings.topics.model_copy(update={"replication": 3})})
        ensure_worker_topics(settings)
        t = settings.topics
        pipeline_topics = [t.transactions, t.labels, t.scores, f"{settings.app_id}-cards-changelog"]
        try:
            worker = WorkerProcess(settings, "w0", work_dir).start()
            worker.wait_ready(180)
            rate = rate or max(300.0, n_tx / 40.0)
            producer = start_producer(settings, work_dir / "producer.log",
                                      *world_args(n_tx, seed), "--rate", f"{rate:.0f}")
            time.sleep(min(15.0, n_tx / rate / 3))
            leaders = cluster.leaders(pipeline_topics)
            victim = (leaders.most_common(1)[0][0] if target == "leader"
                      else cluster.active_controller())
            controller_before = cluster.active_controller()
            killed_at = time.time()
            cluster.kill(victim)
            time.sleep(down_s)
            cluster.restart(victim)
            back_at = time.time()
            check_producer(report, producer, work_dir / "producer.log", 900)
            expected = valid_tx_ids(settings)
            scores = collect_scores(settings, expected, timeout_s=300)
            alive = worker.alive()
            leaders_after = cluster.leaders(pipeline_topics)
            copies_agree = duplicate_copies_agree(settings, scores.counts)  # reads the cluster
        finally:
            stop_process(producer)
            if worker is not None:
                worker.stop()
    missing = expected - set(scores.counts)
    scored_at = [float(b["scored_at"]) for b in scores.bodies.values() if "scored_at" in b]
    report.figures.update({
        "transactions sent": len(expected),
        "node killed": victim,
        "it led (partitions of the pipeline's topics)": leaders.get(victim, 0),
        "it was the active controller": victim == controller_before,
        "down (s)": down_s,
        "longest pause in scoring around the kill (s)": round(
            longest_pause(scored_at, killed_at - 5, back_at + 60), 1),
        "transactions lost": len(missing),
        "lost tx ids (first 10)": sorted(missing)[:10],
        "duplicate score messages": scores.duplicates,
        "re-sent copies identical": copies_agree,
        "worker survived without restart": alive,
        "leaders after (node: partitions)": dict(sorted(leaders_after.items())),
    })
    report.check(not missing, f"{len(missing)} transactions never scored")
    report.check(copies_agree, "a transaction has two different scores")
    report.check(alive, "the worker died with the node")
    report.seconds = time.monotonic() - started
    return report
