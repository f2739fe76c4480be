"""``fraudstream trainer``: one process learns from every label and publishes model snapshots.

The alternative to each worker learning from the labels of its own partitions ("local"
learning): scorers run with ``FRAUDSTREAM_LEARNING=trainer``, never learn, and swap in each
snapshot the trainer announces on the ``model-snapshots`` topic. One model sees all labels
(better accuracy for the partitions' sum) at the price of staleness: scorers use a model that
is up to one snapshot period old. ``fraudstream bench`` measures the two against each other.

The trainer needs the features a transaction was scored with; they travel in the score
message, so it joins ``scores`` and ``labels`` by transaction id. It is a plain consumer of all
partitions (no Faust): one process, no state to partition.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from typing import Any

from infra.settings import Settings
from models.catalog import is_online, make_model
from models.features import DAY, FEATURE_NAMES
from models.registry import Registry

log = logging.getLogger(__name__)

FEATURE_TTL_DAYS = 45.0


class Trainer:
    """Joins scores with labels by transaction id, learns, snapshots every N labels."""

    def __init__(self, settings: Settings, snapshot_every: int | None = None) -> None:
        if not is_online(settings.model):
            raise ValueError(f"the trainer needs an online model, not {settings.model!r}")
        self.settings = settings
        self.model: Any = make_model(settings.model)
        self.registry = Registry(settings.registry_dir,
                                 settings.model_signing_key.get_secret_value())
        self.name = f"{settings.app_id}-{settings.model}-trainer"
        self.snapshot_every = snapshot_every or settings.snapshot_every_labels
        self.features: dict[int, tuple[float, list[float]]] = {}  # tx_id -> (ts, features)
        self.early: dict[int, int] = {}  # labels whose score has not been read yet
        self.learned = 0
        self.since_snapshot = 0
        self.version = 0
        self._latest_ts = 0.0

    def on_score(self, body: dict[str, Any]) -> None:
        tx_id = int(body["tx_id"])
        feats = [float(v) for v in body["features"]]
        fraud = self.early.pop(tx_id, None)
        if fraud is not None:
            self._learn(feats, fraud)
            return
        self.features[tx_id] = (float(body["ts"]), feats)
        if body["ts"] > self._latest_ts + DAY:
            self._latest_ts = float(body["ts"])
            horizon = self._latest_ts - FEATURE_TTL_DAYS * DAY
            self.features = {k: v for k, v in self.features.items() if v[0] >= horizon}

    def on_label(self, body: dict[str, Any]) -> None:
        tx_id = int(body["tx_id"])
        entry = self.features.pop(tx_id, None)
        if entry is None:
            self.early[tx_id] = int(body["fraud"])
            return
        self._learn(entry[1], int(body["fraud"]))

    def _learn(self, feats: list[float], fraud: int) -> None:
        self.model.learn_one(dict(zip(FEATURE_NAMES, feats, strict=True)), fraud)
        self.learned += 1
        self.since_snapshot += 1

    def snapshot_due(self) -> bool:
        return self.since_snapshot >= self.snapshot_every

    def snapshot(self) -> dict[str, Any]:
        path = self.registry.save(self.model, self.name,
                                  extra={"learned": self.learned, "model": self.settings.model})
        self.version = int(path.stem.lstrip("v"))
        self.since_snapshot = 0
        return {"name": self.name, "version": self.version, "path": str(path.resolve()),
                "learned": self.learned, "published_at": time.time()}


def _events(value: bytes) -> list[dict[str, Any]]:
    body = json.loads(value)
    return body["events"] if body.get("type") == "envelope" else [body]


def run_trainer(settings: Settings, max_seconds: float | None = None) -> Trainer:
    """Consume scores and labels until SIGTERM/SIGINT (or ``max_seconds``)."""
    from kafka import KafkaConsumer, KafkaProducer

    trainer = Trainer(settings)
    t = settings.topics
    kwargs = settings.kafka.kafka_python_kwargs()
    consumer = KafkaConsumer(
        t.scores, t.labels, group_id=f"{settings.app_id}-trainer", auto_offset_reset="earliest",
        enable_auto_commit=True, **kwargs,
    )
    producer = KafkaProducer(**kwargs)
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    try:
        while not stop["now"]:
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                break
            batch = consumer.poll(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    try:
                        events = _events(record.value)
                    except (ValueError, KeyError, TypeError):
                        continue  # the worker dead-letters bad labels; nothing to learn here
                    for body in events:
                        if tp.topic == t.scores:
                            trainer.on_score(body)
                        elif "fraud" in body:
                            trainer.on_label(body)
            if trainer.snapshot_due():
                note = trainer.snapshot()
                producer.send(t.model_snapshots, key=trainer.name.encode(),
                              value=json.dumps(note).encode())
                producer.flush()
                log.info("published %s v%d (%d labels)", trainer.name, trainer.version,
                         trainer.learned)
    finally:
        consumer.close()
        producer.close()
    return trainer
