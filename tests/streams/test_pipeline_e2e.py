"""End to end on the real broker: producer process -> Kafka -> worker process -> scores/DLQ."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from producers.events import InvalidEvent, decode_transactions
from reliability.harness import collect_scores, produce
from streams.demo_processes import WorkerProcess, read_topic

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

N_TX = 20_000

MALFORMED: list[tuple[bytes, bytes]] = [
    (b"1", b"{not json"),
    (b"2", b'{"v": 1, "type": "transaction", "tx_id": 1}'),
    (b"3", json.dumps({"v": 1, "type": "transaction", "tx_id": 9_000_001, "ts": 1.5e9,
                       "customer_id": 3, "terminal_id": 4, "amount": -5.0,
                       "produced_at": 1.5e9}).encode()),
    (b"4", json.dumps({"v": 99, "type": "transaction", "tx_id": 9_000_002, "ts": 1.5e9,
                       "customer_id": 4, "terminal_id": 4, "amount": 5.0,
                       "produced_at": 1.5e9}).encode()),
    (b"5", json.dumps({"v": 1, "type": "transaction", "tx_id": "x", "ts": 1.5e9,
                       "customer_id": 5, "terminal_id": 4, "amount": 5.0,
                       "produced_at": 1.5e9}).encode()),
    (b"999", json.dumps({"v": 1, "type": "transaction", "tx_id": 9_000_003, "ts": 1.5e9,
                         "customer_id": 6, "terminal_id": 4, "amount": 5.0,
                         "produced_at": 1.5e9}).encode()),  # key is not the card
    (b"7", b"\xff\xfe\x00binary"),
]


def _inject(settings: Settings, records: list[tuple[bytes, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka.kafka_python_kwargs())
    for key, value in records:
        producer.send(settings.topics.transactions, key=key, value=value)
    producer.flush()
    producer.close()


def test_every_transaction_scored_and_bad_ones_dead_lettered(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "snapshot_every_labels": 2000,
    })
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        _inject(settings, MALFORMED[:3])
        produce(settings, "--customers", "1000", "--terminals", "2000", "--days", "40",
                "--max-tx", str(N_TX), "--seed", "7")
        _inject(settings, MALFORMED[3:])

        expected = set()
        for record in read_topic(settings, settings.topics.transactions, idle_s=2.0):
            with contextlib.suppress(InvalidEvent):
                expected.update(tx.tx_id for tx in decode_transactions(record.value))
        expected.discard(9_000_003)  # valid body, wrong key: dead-lettered on purpose
        assert len(expected) == N_TX

        scores = collect_scores(settings, expected, timeout_s=240)
        missing = expected - set(scores.counts)
        log.warning("scores: %d messages for %d transactions, %d duplicates, %d missing",
                    scores.raw_messages, len(scores.counts), scores.duplicates, len(missing))
        assert not missing, f"{len(missing)} transactions never scored"
        assert set(scores.counts) == expected

        body = scores.bodies[min(expected)]
        assert {"tx_id", "score", "model", "model_version", "ts", "produced_at",
                "scored_at", "features"} <= set(body)
        assert 0.0 <= body["score"] <= 1.0 and len(body["features"]) == 15

        dead = [json.loads(r.value) for r in
                read_topic(settings, settings.topics.transactions_dlq, idle_s=2.0)]
        assert len(dead) == len(MALFORMED)
        originals = {base64.b64decode(d["value_b64"]) for d in dead}
        assert originals == {value for _, value in MALFORMED}
        assert all(d["reason"] for d in dead)

        # Labels arrive after their transactions; the model learns and snapshots.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = worker.stats()
            if stats["totals"]["learned"] >= 4000:
                break
            time.sleep(1)
        metrics = worker.get("/metrics").decode()
        assert "fraudstream_transactions_in_total" in metrics
        assert "fraudstream_e2e_latency_seconds_bucket" in metrics
        version = float(next(line.split()[1] for line in metrics.splitlines()
                             if line.startswith("fraudstream_model_version ")))
        assert version >= 1, "no model snapshot after thousands of labels"
        assert stats["totals"]["learned"] >= 4000
        assert (settings.registry_dir / f"{settings.app_id}-{settings.model}-w0").is_dir()
    finally:
        worker.stop()
    assert worker.process is not None and worker.process.returncode is not None
