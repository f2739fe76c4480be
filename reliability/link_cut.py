"""The ``link-cut`` scenario: two workers on hosts of their own, one host cut off under load.

Three hosts made here (``reliability.netns``): the broker on one, a worker on each of the
other two; the producer and the read-back run in the root namespace, on the same bridge. A
third of the way into the produce run, the second worker's link goes down (``ip link set
... down``): its process runs on, cut off. The group's coordinator stops hearing it, its
session expires and its partitions move to the first worker. The link comes back after
``cut_s`` and the cut-off worker rejoins the group (as the same static member).

The claims: nothing is lost, both workers survive, the partitions move, the cut-off worker
rejoins and scores again after it is back, and after its lease ran out (``streams.lease``)
it scores, until it has rejoined, at most the events it held when the rebalance came.
Measured: when the survivor took the partitions over (its assignment, and its first score on
one of them), when the cut-off worker rejoined and scored again, and how many transactions
were scored twice, split by when the cut-off worker made its copy. The copies it made
*before* its lease ran out are a known gap: its producer still held them at the cut and
delivered them once the link was back, after the survivor had scored the same transactions
with its own model. Only Kafka's transactional fencing (a new owner's producer epoch aborts
the old one's open transaction) would keep them out; the project does not use Kafka
transactions.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.settings import Settings
from producers.partitioning import murmur2_partition
from reliability.netns import Host, VirtualNetwork
from reliability.scenario import (
    Report,
    check_producer,
    collect_until_stalled,
    duplicate_copies_agree,
    metric,
    scenario_settings,
    start_producer,
    stop_process,
    valid_tx_ids,
    world_args,
)
from streams.demo_processes import WorkerProcess


def _stats(worker: WorkerProcess) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        return worker.stats()
    return None


def _wait(condition: Any, timeout_s: float, every_s: float = 0.2) -> float | None:
    """Seconds until ``condition()`` is true, None if it is not within ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(every_s)
    return None


def _scores(worker: WorkerProcess) -> float:
    stats = _stats(worker)
    return float(stats["totals"]["scores"]) if stats else -1.0


def _assignments(worker: WorkerProcess) -> float:
    stats = _stats(worker)
    return float(stats["totals"]["partition_assignments"]) if stats else -1.0


def _partitions(worker: WorkerProcess) -> set[int]:
    stats = _stats(worker)
    return set(stats.get("partitions", ())) if stats else set()


def _copies_by_phase(settings: Settings, counts: Any, worker_id: str,
                     moments: dict[str, float], dump: Path) -> dict[str, int]:
    """When the cut-off worker made its copies of twice-scored transactions: phases start at
    the ``moments`` (wall times, in order). Every copy goes to ``dump`` (JSON lines), for a
    closer look."""
    import json

    from streams.demo_processes import read_topic
    from streams.score_messages import decode_scores

    twice = {t for t, n in counts.items() if n > 1}
    phases = dict.fromkeys(moments, 0)
    with dump.open("w") as out:
        for record in read_topic(settings, settings.topics.scores, idle_s=2.0):
            for body in decode_scores(record.value):
                if body["tx_id"] not in twice:
                    continue
                out.write(json.dumps({"partition": record.partition, "offset": record.offset,
                                      **{k: body.get(k) for k in (
                                          "tx_id", "worker", "scored_at", "score", "ts")}})
                          + "\n")
                if body.get("worker") == worker_id:
                    at = float(body["scored_at"])
                    phase = [name for name, t in moments.items() if at >= t]
                    if phase:
                        phases[phase[-1]] += 1
    return phases


def start_hosted_broker(net: VirtualNetwork, host: Host, cache_dir: Path, home: Path) -> Any:
    """A single-node KRaft broker on ``host``, listening on that host's address."""
    from infra.broker import LocalBroker
    from infra.kafka_dist import fetch_kafka

    broker = LocalBroker(home, fetch_kafka(cache_dir), port=9092, controller_port=9093,
                         heap_mb=512, advertised_host=host.address, launcher=host.launcher)
    broker.start(timeout_s=120)
    return broker


def run_link_cut(
    cache_dir: Path, work_dir: Path, n_tx: int = 30_000, cut_s: float = 30.0, seed: int = 13,
    rate: float | None = None,
) -> Report:
    """Cut one of two workers' hosts off mid-run, restore it after ``cut_s``; nothing is lost."""
    from infra.topics import ensure_worker_topics

    report = Report(f"worker host cut off for {cut_s:.0f} s (network namespaces)")
    started = time.monotonic()
    rate = rate or max(200.0, n_tx / 100.0)
    kafka = Settings().kafka
    lease_s = (kafka.session_timeout_ms - kafka.heartbeat_interval_ms) / 1000  # streams.lease
    produce_s = n_tx / rate
    producer = None
    workers: list[WorkerProcess] = []
    with VirtualNetwork() as net, tempfile.TemporaryDirectory(prefix="fraudstream-") as tmp:
        kafka_host = net.add_host("kafka")
        hosts = [net.add_host(f"w{i}") for i in range(2)]
        broker = start_hosted_broker(net, kafka_host, cache_dir, Path(tmp) / "kafka")
        try:
            base = Settings().with_bootstrap(broker.bootstrap)
            settings = scenario_settings(base, work_dir, "cut")
            ensure_worker_topics(settings)
            n_partitions = settings.topics.partitions
            for i, host in enumerate(hosts):
                own = settings.model_copy(update={"web_host": host.address,
                                                  "state_dir": work_dir / f"state-w{i}"})
                workers.append(WorkerProcess(own, f"w{i}", work_dir,
                                             launcher=host.launcher).start())
            for worker in workers:
                worker.wait_ready(180)
            survivor, victim = workers
            producer = start_producer(settings, work_dir / "producer.log",
                                      *world_args(n_tx, seed), "--rate", f"{rate:.0f}")
            t0 = time.monotonic()
            both = _wait(lambda: min(_scores(w) for w in workers) > 0, 120)
            report.check(both is not None, "the two workers never both scored before the cut")
            time.sleep(max(0.0, produce_s / 3 - (time.monotonic() - t0)))
            victim_parts = _partitions(victim)
            survivor_parts = _partitions(survivor)
            assignments = _assignments(victim)
            cut_at, cut_mono = time.time(), time.monotonic()
            hosts[1].cut()
            moved = _wait(lambda: victim_parts <= _partitions(survivor), cut_s)
            time.sleep(max(0.0, cut_s - (time.monotonic() - cut_mono)))
            victim_scores_at_cut = _scores(victim)  # unreachable: -1
            hosts[1].restore()
            back_at = time.time()
            reachable = _wait(lambda: _scores(victim) >= 0, 60)
            # rejoined: a new assignment (its old one is still listed until it is revoked)
            rejoined = _wait(lambda: _assignments(victim) > assignments
                             and bool(_partitions(victim)), 180)
            rejoined_at = time.time()
            rejoined_parts = _partitions(victim)
            check_producer(report, producer, work_dir / "producer.log", 900)
            expected = valid_tx_ids(settings)
            scores = collect_until_stalled(settings, expected, stall_s=60.0)
            copies_agree = duplicate_copies_agree(settings, scores.counts)
            late_copies = _copies_by_phase(
                settings, scores.counts, victim.worker_id,
                {"in flight: scored before its lease ran out": 0.0,
                 "zombie: after its lease ran out, before it rejoined": cut_at + lease_s,
                 "after it rejoined": rejoined_at},
                work_dir / "duplicate-copies.jsonl")
            alive = [w.alive() for w in workers]
            released = fenced = -1.0
            with contextlib.suppress(OSError, ValueError):
                page = victim.get("/metrics").decode()
                released = metric(page, "fraudstream_lease_released_events_total")
                fenced = metric(page, "fraudstream_outputs_fenced_total")
        finally:
            stop_process(producer)
            for worker in workers:
                worker.stop()
            broker.stop()

    missing = expected - set(scores.counts)
    resumed = [float(b["scored_at"]) for b in scores.bodies.values()
               if b.get("worker") == victim.worker_id and float(b["scored_at"]) > rejoined_at]
    took_over = [float(b["scored_at"]) - cut_at for b in scores.bodies.values()
                 if b.get("worker") == survivor.worker_id and float(b["scored_at"]) > cut_at
                 and murmur2_partition(str(b["customer_id"]).encode(), n_partitions)
                 in victim_parts]
    report.figures.update({
        "transactions sent": len(expected),
        "hosts": f"kafka {kafka_host.address}, w0 {hosts[0].address}, w1 {hosts[1].address} "
                 f"(bridge {net.gateway}/{net.subnet.prefixlen if net.subnet else 24})",
        "partitions before the cut (w0 / w1)": f"{sorted(survivor_parts)} / {sorted(victim_parts)}",
        "cut at (s into the run)": round(cut_mono - t0, 1),
        "link down (s)": cut_s,
        "w1's partitions assigned to w0 after (s)": None if moved is None else round(moved, 1),
        "w0's first score on w1's partitions after the cut (s)": round(min(took_over), 1)
        if took_over else None,
        "w1 reachable again after the link came back (s)": None if reachable is None
        else round(reachable, 1),
        "w1 rejoined (new assignment) after the link came back (s)": None
        if rejoined is None else round(rejoined + (reachable or 0.0), 1),
        "w1's first new score after the link came back (s)": round(min(resumed) - back_at, 1)
        if resumed else None,
        "w1's partitions after rejoining": sorted(rejoined_parts),
        "w1 answered during the cut": victim_scores_at_cut >= 0,
        "transactions lost": len(missing),
        "lost tx ids (first 10)": sorted(missing)[:10],
        "score messages (raw)": scores.raw_messages,
        "duplicate score messages": scores.duplicates,
        "duplicate copies identical": copies_agree,
        "w1's copies of duplicated transactions, by when w1 scored them": late_copies,
        "w1's lease (s without an answered heartbeat)": lease_s,
        "events w1 held, then processed when the rebalance came": int(released),
        "w1's outputs dropped as fenced (another worker had their partition)": int(fenced),
        "both workers survived": all(alive),
    })
    report.check(bool(victim_parts), "w1 held no partitions before the cut")
    report.check(moved is not None, f"w1's partitions did not move to w0 within {cut_s:.0f} s")
    report.check(not missing, f"{len(missing)} transactions never scored")
    zombie = late_copies["zombie: after its lease ran out, before it rejoined"]
    report.check(0 <= zombie <= released,
                 f"w1 scored {zombie} transactions after its lease ran out and before it "
                 f"rejoined (another worker owned them); it held {released:.0f} events when "
                 "the rebalance came (the most it may score then)")
    report.check(scores.duplicates == 0,
                 f"{scores.duplicates} duplicate score messages: a fenced worker's scores "
                 "were read (are readers read_committed? are outputs in transactions?)")
    report.check(all(alive), "a worker died")
    report.check(rejoined is not None and bool(resumed),
                 "w1 did not rejoin and score again after its link came back")
    report.seconds = time.monotonic() - started
    return report
