"""The ``bad-input`` scenario: the malformed corpus mixed with valid transactions, sent
through a real worker process on a real broker.

The claims: the worker survives with no agent crash, every valid transaction is scored and
nothing else is, and every malformed message is in its dead-letter topic exactly once, with
a reason, its key and its exact bytes (a malformed event of an otherwise good envelope: that
event alone, its envelope's other events scored) (the first ``MAX_DLQ_ORIGINAL`` of them, flagged
``truncated``, when it is larger). The messages themselves come from
``reliability.bad_input_corpus``.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from infra.settings import Settings
from reliability.bad_input_corpus import (
    MAX_DEAD_LETTERABLE,
    Case,
    collect_examples,
    malformed_strategy,
    oversized_cases,
    valid_cases,
)
from reliability.scenario import Report, collect_while_alive, log_crashes, metric, scenario_settings
from streams.demo_processes import WorkerProcess, read_topic
from streams.processor import MAX_DLQ_ORIGINAL


def _producer(settings: Settings) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(acks="all", max_request_size=1_048_576, linger_ms=5,
                         **settings.kafka.kafka_python_kwargs())


def _send_cases(settings: Settings, cases: list[Case]) -> None:
    producer = _producer(settings)
    topics = {"transactions": settings.topics.transactions, "labels": settings.topics.labels}
    try:
        for case in cases:
            producer.send(topics[case.topic], key=case.key, value=case.value)
        producer.flush(timeout=120)
    finally:
        producer.close()


def run_bad_input(
    base: Settings, work_dir: Path, n_malformed: int = 10_000, n_valid: int | None = None,
    seed: int = 7, max_oversize: int = MAX_DEAD_LETTERABLE,
) -> Report:
    """Malformed events mixed with valid ones through a real worker; check DLQ and scores."""
    from infra.topics import ensure_topics

    report = Report("bad input")
    started = time.monotonic()
    settings = scenario_settings(base, work_dir, "bad")
    n_valid = n_valid if n_valid is not None else n_malformed
    n_big = max(3, n_malformed // 500)
    malformed = collect_examples(malformed_strategy(), n_malformed - n_big, seed)
    malformed += oversized_cases(n_big, seed, max_oversize)
    good = valid_cases(n_valid, seed)
    cases = malformed + good
    random.Random(seed).shuffle(cases)
    expected_ids = {i for c in cases for i in c.tx_ids}  # a damaged envelope's valid events too
    by_category = Counter(c.category for c in malformed)
    report.figures.update({
        "malformed sent": len(malformed),
        "malformed by category": dict(sorted(by_category.items())),
        "valid transactions sent": len({i for c in good for i in c.tx_ids}),
        "valid transactions in damaged envelopes": len({i for c in malformed for i in c.tx_ids}),
        "largest message (bytes)": max(len(c.value) for c in cases),
    })

    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", work_dir).start()
    try:
        worker.wait_ready()
        _send_cases(settings, cases)
        scores = collect_while_alive(worker, settings, expected_ids, timeout_s=300)
        dead: list[dict[str, Any]] = []
        want_dead = sum(len(c.letters) for c in malformed)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            dead = [json.loads(r.value) for t in (settings.topics.transactions_dlq,
                                                   settings.topics.labels_dlq)
                    for r in read_topic(settings, t, idle_s=1.5)]
            if len(dead) >= want_dead or not worker.alive():
                break
            time.sleep(2)
        metrics = worker.get("/metrics").decode()
        alive = worker.alive()
    finally:
        worker.stop()

    scored = set(scores.counts)
    report.figures.update({
        "valid scored": len(scored & expected_ids),
        "valid lost": len(expected_ids - scored),
        "scores for non-valid ids": len(scored - expected_ids),
        "dead-lettered": len(dead),
        "dlq_total in /metrics": int(metric(metrics, "fraudstream_dlq_total")),
        "worker alive at the end": alive,
        "agent crashes in log": len(log_crashes(worker)),
    })
    report.check(alive, "the worker process died")
    report.check(not log_crashes(worker), f"agent crashed: {log_crashes(worker)[:2]}")
    report.check(expected_ids <= scored,
                 f"{len(expected_ids - scored)} valid transactions never scored")
    report.check(scored <= expected_ids, f"scores for ids that were not valid: "
                 f"{sorted(scored - expected_ids)[:5]}")
    _check_dead_letters(report, settings, malformed, dead)
    report.seconds = time.monotonic() - started
    return report


def _check_dead_letters(
    report: Report, settings: Settings, malformed: list[Case], dead: list[dict[str, Any]]
) -> None:
    """Every malformed message is in its DLQ once, with a reason and its exact bytes and key.

    Originals above ``MAX_DLQ_ORIGINAL`` are kept as their first bytes, flagged ``truncated``
    with their full length: a dead letter must fit the broker's message limit.
    """
    topic_of = {"transactions": settings.topics.transactions, "labels": settings.topics.labels}
    want = Counter((topic_of[c.topic], c.key, v[:MAX_DLQ_ORIGINAL], len(v))
                   for c in malformed for v in c.letters)
    got: Counter[tuple[str, bytes | None, bytes, int]] = Counter()
    no_reason = 0
    for d in dead:
        key = base64.b64decode(d["key_b64"]) if d.get("key_b64") is not None else None
        value = base64.b64decode(d["value_b64"])
        length = d.get("original_bytes", -1)
        if d.get("truncated") is not (length > len(value)):
            length = -1  # the flag must say whether bytes are missing
        got[(d["source_topic"], key, value, length)] += 1
        no_reason += not (isinstance(d.get("reason"), str) and d["reason"].strip())
    # Kafka cannot tell an empty key from none for every client: compare None and b"" alike.
    def norm(c: Counter[tuple[str, bytes | None, bytes, int]]
             ) -> Counter[tuple[str, bytes, bytes, int]]:
        out: Counter[tuple[str, bytes, bytes, int]] = Counter()
        for (t, k, v, n_bytes), n in c.items():
            out[(t, k or b"", v, n_bytes)] += n
        return out

    want_n, got_n = norm(want), norm(got)
    missing = want_n - got_n
    extra = got_n - want_n
    report.figures["dead letters without a reason"] = no_reason
    report.check(not missing, f"{sum(missing.values())} malformed messages not dead-lettered "
                 f"intact, e.g. {[(t, k, v[:200]) for (t, k, v, _) in list(missing)[:3]]}; "
                 f"unexpected: {[(t, k, v[:200]) for (t, k, v, _) in list(extra)[:3]]}")
    report.check(not extra, f"{sum(extra.values())} unexpected dead letters")
    report.check(no_reason == 0, f"{no_reason} dead letters without a reason")
