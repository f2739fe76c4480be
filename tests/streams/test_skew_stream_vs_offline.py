"""No training/serving skew: the worker's features and scores equal the offline computation.

A frozen model (learning off), one partition, labels delivered before the transactions (so
that "labels known at t" does not depend on how two topics interleave): every feature in the
``scores`` topic must equal ``models.features.compute_features`` on the same data, and every
score the same model's offline prediction.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from infra.settings import Settings, TopicSettings
from infra.topics import ensure_topics
from models.features import FEATURE_NAMES, compute_features
from models.online import make_online_model
from models.registry import Registry
from producers.events import Label, Transaction, encode_label, encode_transaction
from producers.reader import read_transactions
from reliability.harness import collect_scores
from streams.demo_processes import WorkerProcess

pytestmark = pytest.mark.integration


def test_stream_features_and_scores_equal_offline(kafka_settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "world.parquet"
    subprocess.run(
        [sys.executable, "-m", "fraudstream", "simulate", "--out", str(data), "--customers", "300",
         "--terminals", "500", "--days", "45", "--max-tx", "6000", "--seed", "11"],
        check=True, capture_output=True,
    )
    df = read_transactions(data)
    n = len(df)
    feats = compute_features(df.ts, df.customer_id, df.terminal_id, df.amount, df.fraud,
                             df.label_ts)

    # A model trained offline on the first half, then frozen.
    model = make_online_model("logreg", seed=0)
    fraud = df.fraud.to_numpy()
    for row, y in zip(feats[: n // 2].tolist(), fraud[: n // 2].tolist(), strict=True):
        model.learn_one(dict(zip(FEATURE_NAMES, row, strict=True)), y)
    expected_scores = [model.predict_proba_one(dict(zip(FEATURE_NAMES, r, strict=True)))
                       for r in feats.tolist()]

    topics = kafka_settings.topics.model_copy(update={"partitions": 1})
    assert isinstance(topics, TopicSettings)
    settings = kafka_settings.model_copy(update={
        "topics": topics, "learning": "off", "model": "logreg",
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
    })
    registry = Registry(settings.registry_dir, settings.model_signing_key.get_secret_value())
    registry.save(model, f"{settings.app_id}-logreg-w0")
    ensure_topics(settings)

    from kafka import KafkaProducer

    producer = KafkaProducer(**settings.kafka.kafka_python_kwargs())
    now = time.time()
    rows = list(df.itertuples(index=False))
    for r in rows:
        label = Label(int(r.tx_id), int(r.customer_id), int(r.terminal_id), float(r.ts),
                      int(r.fraud), float(r.label_ts), now)
        producer.send(settings.topics.labels, key=str(r.customer_id).encode(),
                      value=encode_label(label))
    producer.flush()

    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 120
        while worker.stats()["totals"]["labels"] < n and time.monotonic() < deadline:
            time.sleep(0.5)
        assert worker.stats()["totals"]["labels"] == n
        for r in rows:
            tx = Transaction(int(r.tx_id), float(r.ts), int(r.customer_id), int(r.terminal_id),
                             float(r.amount), time.time())
            producer.send(settings.topics.transactions, key=str(r.customer_id).encode(),
                          value=encode_transaction(tx))
        producer.flush()
        producer.close()
        scores = collect_scores(settings, set(df.tx_id.tolist()), timeout_s=180)
        assert worker.stats()["model"].startswith("logreg:v1+0")  # the frozen snapshot
    finally:
        worker.stop()

    assert len(scores.counts) == n
    got = np.array([scores.bodies[int(t)]["features"] for t in df.tx_id])
    np.testing.assert_allclose(got, feats, rtol=0, atol=1e-9)
    got_scores = np.array([scores.bodies[int(t)]["score"] for t in df.tx_id])
    np.testing.assert_allclose(got_scores, expected_scores, rtol=0, atol=1e-9)
    assert {scores.bodies[int(t)]["model_version"] for t in df.tx_id} == {1}
