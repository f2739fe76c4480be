"""The ``crash`` scenario: SIGKILL the worker at seeded moments and restart it on its state.

A kill gives the worker no chance to commit, flush or leave its group, which is what a lost
machine does. The claims, read back from Kafka and from the learning audit
(``reliability.learning_audit``): no transaction goes unscored, re-sent scores equal the
first ones, every label reaches some model and none is twice in the final one, and the card
windows rebuilt from the changelog give the features an offline ``FeatureEngine`` gives.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import threading
import time
from pathlib import Path
from typing import Any

from infra.settings import Settings
from reliability.learning_audit import AuditedWorker, read_audit
from reliability.scenario import (
    Report,
    collect_until_stalled,
    dead_letter_sources,
    duplicate_copies_agree,
    metric,
    scenario_settings,
    send_malformed,
    start_producer,
    stop_process,
    valid_tx_ids,
    wait_first_score,
    world_args,
)
from streams.demo_processes import WorkerProcess, read_topic


def feature_mismatches(
    settings: Settings, bodies: dict[int, dict[str, Any]], n_check: int, seed: int
) -> tuple[int, list[str]]:
    """Compare amount, time and customer features of late scores with ``FeatureEngine``.

    Offline, the transactions read back from Kafka go through ``FeatureEngine`` in (ts, tx_id)
    order, which is each card's processing order in the stream. A card whose window was
    rebuilt wrongly from its changelog (or that counted a re-delivered transaction twice)
    shows up as a different ``cust_n_*`` or ``cust_mean_*``. Terminal features come from the
    eventually consistent terminal replica and are not compared.
    """
    from models.features import FeatureEngine
    from producers.events import InvalidEvent, decode_transactions

    txs = []
    for record in read_topic(settings, settings.topics.transactions, idle_s=2.0):
        with contextlib.suppress(InvalidEvent, TypeError):
            txs.extend(decode_transactions(record.value))
    txs.sort(key=lambda t: (t.ts, t.tx_id))
    engine = FeatureEngine(settings.label_delay_days)
    offline = {t.tx_id: engine.features(t.ts, t.customer_id, t.terminal_id, t.amount)[:9]
               for t in txs}
    late = [t.tx_id for t in txs[-max(n_check * 5, 200):]]
    sample = random.Random(seed).sample(late, min(n_check, len(late)))
    bad = []
    for tx_id in sample:
        online = bodies[tx_id]["features"][:9] if tx_id in bodies else None
        if online is None or not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
                                     for a, b in zip(online, offline[tx_id], strict=True)):
            bad.append(f"tx {tx_id}: stream {online} offline {list(offline[tx_id])}")
    return len(sample), bad


def run_worker_crash(
    base: Settings, work_dir: Path, n_tx: int = 200_000, kills: int = 5, seed: int = 11,
    rate: float | None = None, restart_delay_s: float = 0.0,
) -> Report:
    """SIGKILL the worker ``kills`` times during a run; restart it on the same state each time.

    ``restart_delay_s`` keeps the worker down that long after each kill while the producer
    goes on: the labels of the transactions it was scoring are then already on Kafka when it
    comes back, ahead of the re-read (the case where, before labels were held in event time,
    a re-read transaction found its row learned and dropped and was answered with nothing).
    """
    from infra.topics import ensure_topics

    report = Report(f"worker crash ({kills} x SIGKILL"
                    + (f", restarted after {restart_delay_s:.0f} s)" if restart_delay_s else ")"))
    started = time.monotonic()
    settings = scenario_settings(base, work_dir, "crash", snapshot_every_labels=1000)
    ensure_topics(settings)
    audit = work_dir / "learn-audit.log"
    rng = random.Random(seed)
    rate = rate or max(500.0, n_tx / 60.0)
    produce_s = n_tx / rate
    # Kill moments: seeded, spread over the producing time, at least 8 s apart so that each
    # incarnation gets its partitions back and does some work before it dies.
    moments = sorted(rng.uniform(3.0, produce_s) for _ in range(kills))
    for i in range(1, len(moments)):
        moments[i] = max(moments[i], moments[i - 1] + 8.0)

    def new_worker() -> AuditedWorker:
        return AuditedWorker(settings, "w0", work_dir, audit_path=audit)

    worker = new_worker().start()
    producer = None
    kill_log: list[dict[str, Any]] = []
    # Malformed messages trickle in all run long, so that each restart re-reads some whose
    # dead letters are already out: none may be dead-lettered twice (``streams.dead_letters``).
    trickle_stop = threading.Event()
    trickle: list[int] = []
    trickler = threading.Thread(target=lambda: trickle.append(send_malformed(
        settings, 100_000, every_s=0.5, stop=trickle_stop)), daemon=True)
    try:
        worker.wait_ready(180)
        producer = start_producer(settings, work_dir / "producer.log", *world_args(n_tx, seed),
                                   "--rate", f"{rate:.0f}")
        trickler.start()
        t0 = time.monotonic()
        for moment in moments:
            while time.monotonic() - t0 < moment:
                time.sleep(0.2)
            with contextlib.suppress(OSError, ValueError):
                before = worker.stats()["totals"]
            killed = time.monotonic()
            worker.kill()
            kill_log.append({"at_s": round(killed - t0, 1), **before})
            time.sleep(restart_delay_s)
            restarted = time.monotonic()
            worker = new_worker().start()
            worker.wait_ready(180)
            if producer.poll() is None:  # else there may be nothing new left to score
                resumed = wait_first_score(worker, restarted, timeout_s=60.0)
                kill_log[-1]["resumed_s"] = None if resumed is None else round(resumed, 1)
        producer.wait(timeout=max(600.0, 4 * produce_s))
        trickle_stop.set()
        trickler.join(timeout=30)
        report.check(producer.returncode == 0, f"producer exited {producer.returncode}")
        expected = valid_tx_ids(settings)
        scores = collect_until_stalled(settings, expected, stall_s=60.0)
        _wait_labels_settled(worker)
        metrics = worker.get("/metrics").decode()
    finally:
        trickle_stop.set()
        stop_process(producer)
        worker.stop()

    label_ids = [json.loads(r.value)["tx_id"]
                 for r in read_topic(settings, settings.topics.labels, idle_s=2.0)]
    labels_sent = len(label_ids)
    audited = read_audit(audit)
    unlearned = sorted(set(label_ids) - audited.learned)
    duplicates_consistent = duplicate_copies_agree(settings, scores.counts)
    checked, mismatched = feature_mismatches(settings, scores.bodies, 50, seed)
    missing = expected - set(scores.counts)
    final = audited.final_model
    letters = dead_letter_sources(settings)
    malformed = trickle[0] if trickle else 0
    report.figures.update({
        "transactions sent": len(expected),
        "kills at (s)": [k["at_s"] for k in kill_log],
        "malformed messages sent meanwhile": malformed,
        "dead letters (raw)": len(letters),
        "dead letters (unique sources)": len(set(letters)),
        "re-read malformed not dead-lettered again (last incarnation)": int(
            metric(metrics, "fraudstream_dlq_repeats_total")),
        # from the restart (kill + restart_delay_s) to the restarted worker's first new score
        "scoring resumed after restart (s)": [k.get("resumed_s") for k in kill_log],
        "transactions lost": len(missing),
        "lost tx ids (first 10)": sorted(missing)[:10],
        "score messages (raw)": scores.raw_messages,
        "duplicates before dedup": scores.duplicates,
        "duplicates after dedup by tx_id": 0 if not missing else "n/a",
        "duplicate copies identical": duplicates_consistent,
        "replayed (last incarnation)": int(metric(metrics,
                                                   "fraudstream_transactions_replayed_total")),
        "rescored (last incarnation)": int(metric(metrics,
                                                   "fraudstream_transactions_rescored_total")),
        "labels sent": labels_sent,
        "labels never learned": len(unlearned),
        "unlearned label tx ids (first 10)": unlearned[:10],
        "learn calls, all incarnations": audited.learn_calls,
        "distinct labels learned": audited.distinct,
        # A label re-learned by a later incarnation, whose first learning died with the killed
        # process (not in any surviving model): wasted work, not double counting.
        "labels re-learned after a kill": len(audited.repeated_calls),
        "labels learned twice by one incarnation": len(audited.repeated_in_one),
        "labels twice in final model": len(audited.twice_in_final_model),
        "labels in final model": len(final),
        "labels lost to snapshot rollback": audited.distinct - len(final),
        "feature spot-checks": f"{checked - len(mismatched)}/{checked} equal offline",
    })
    report.check(not missing, f"{len(missing)} transactions never scored")
    report.check(len(letters) == len(set(letters)) == malformed,
                 f"{len(letters)} dead letters ({len(set(letters))} unique) for {malformed} "
                 "malformed messages")
    report.check(audited.incarnations == kills + 1,
                 f"audit saw {audited.incarnations} incarnations, expected {kills + 1}")
    report.check(not audited.repeated_in_one,
                 f"{len(audited.repeated_in_one)} labels learned twice by one incarnation, e.g. "
                 f"{audited.repeated_in_one[:5]}")
    report.check(not audited.twice_in_final_model, "a label is twice in the final model")
    report.check(not unlearned, f"{len(unlearned)} labels never reached any model, e.g. "
                                f"{unlearned[:5]}")
    report.check(duplicates_consistent, "re-sent scores differ from the first ones")
    report.check(not mismatched, f"{len(mismatched)} features differ: {mismatched[:2]}")
    report.seconds = time.monotonic() - started
    return report


def _wait_labels_settled(worker: WorkerProcess, quiet_s: float = 4.0, max_s: float = 120) -> None:
    """Until the worker's lag is zero, no label is held for a later event time, and its
    learned count stops moving for ``quiet_s`` (held labels of the stream's last days are
    released once its partitions are idle: ``FRAUDSTREAM_LABEL_IDLE_S``)."""
    deadline = time.monotonic() + max_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            text = worker.get("/metrics").decode()
            series = worker.stats()["series"]  # its lag sums every partition (the gauge does not)
            now = (metric(text, "fraudstream_labels_learned_total"),
                   series[-1]["lag"] if series else 1.0,
                   metric(text, "fraudstream_labels_held"))
            if now != last:
                last, since = now, time.monotonic()
            elif now[1] == 0 and now[2] == 0 and time.monotonic() - since >= quiet_s:
                return
        time.sleep(0.5)
