"""Against the real broker: alerts in, feedback labels out, on the card's partition, once per
transaction; a malformed alert is counted and skipped; the CLI's bad arguments are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from producers.investigate import investigate
from producers.investigation import CardHistory, Investigator
from producers.partitioning import murmur2_partition
from producers.sender import close_producer, make_producer
from producers.simulator import Simulator
from producers.wire import split_labels
from producers.world import WorldConfig

pytestmark = pytest.mark.integration


def _labels(settings: Settings) -> list[tuple[int, bytes, object]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topics.labels, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5_000,
                             **settings.kafka.kafka_python_kwargs())
    try:
        return [(m.partition, m.key, label) for m in consumer
                for label in split_labels(m.value).events]
    finally:
        consumer.close()


def test_alerts_become_feedback_labels_once(kafka_settings: Settings) -> None:
    world = Simulator(WorldConfig(n_customers=100, n_terminals=200, n_days=5, seed=4)).frame()
    ensure_topics(kafka_settings)
    alerts = world[world.fraud == 1].head(20)
    producer = make_producer(kafka_settings.kafka.kafka_python_kwargs())
    try:
        for row in alerts.itertuples():
            body = {"v": 1, "tx_id": int(row.tx_id), "customer_id": int(row.customer_id),
                    "ts": float(row.ts), "score": 0.99}
            for _ in range(2):  # a repeated alert (a re-read transaction) opens no new case
                producer.send(kafka_settings.topics.alerts, key=str(row.customer_id).encode(),
                              value=json.dumps(body).encode())
        producer.send(kafka_settings.topics.alerts, key=b"x", value=b"not json")
        producer.flush()
    finally:
        close_producer(producer)
    team = Investigator(CardHistory.from_frame(world), budget=100, hours=4.0)
    report = investigate(kafka_settings, team, group=f"inv-{kafka_settings.app_id}",
                         idle_exit_s=3.0)
    assert report.alerts == 41 and report.malformed == 1
    got = _labels(kafka_settings)
    assert len(got) == report.labels == team.labels > 0
    ids = [label.tx_id for _, _, label in got]
    assert len(ids) == len(set(ids))
    truth = world.set_index("tx_id")["fraud"]
    parts = kafka_settings.topics.partitions
    for partition, key, label in got:
        assert label.source == "feedback" and label.fraud == truth[label.tx_id]
        assert key == str(label.customer_id).encode()
        assert partition == murmur2_partition(key, parts)
    assert set(alerts.tx_id) <= set(ids)  # every alerted transaction was labelled


def test_investigate_without_a_fraud_column_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "no-truth.csv"
    pd.DataFrame({"tx_id": [1], "ts": [1.0], "customer_id": [1], "terminal_id": [1],
                  "amount": [1.0]}).to_csv(path, index=False)
    done = subprocess.run([sys.executable, "-m", "fraudstream", "investigate", "--data",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no fraud column" in done.stderr
