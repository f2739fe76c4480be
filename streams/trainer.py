"""``fraudstream trainer``: one process learns from every label and publishes model snapshots.

The alternative to each worker learning from the labels of its own partitions ("local"
learning): scorers run with ``FRAUDSTREAM_LEARNING=trainer``, never learn, and swap in each
snapshot the trainer announces on the ``model-snapshots`` topic. One model sees all labels
(better accuracy for the partitions' sum) at the price of staleness: scorers use a model that
is up to one snapshot period old. ``fraudstream bench`` measures the two against each other.

Two kinds of model:

* **online** (River): learns each label as it is joined, snapshots every N labels;
* **batch** (scikit-learn): the lambda architecture's batch layer, as a bank runs its
  baseline. Every ``FRAUDSTREAM_RETRAIN_EVERY_DAYS`` of event time (7) it refits a fresh
  estimator on the labels known by then (optionally only the last
  ``FRAUDSTREAM_RETRAIN_WINDOW_DAYS`` of transactions) and publishes the snapshot. Event time
  is the newest transaction time in ``scores``, so a replay retrains on the same days as live
  traffic would. The refit moments are fixed in event time (every period from the first
  transaction's UTC midnight, as the offline evaluator's ``replay_batch`` refits), and each
  refit uses exactly the labels known at its moment, however late the trainer reads it: it
  waits until the labels it has read reach that moment (at most ``LABEL_WAIT_DAYS`` of event
  time more). What a refit learns depends on the data, not on how the topics were batched.

The trainer needs the features a transaction was scored with; they travel in the score
message, so it joins ``scores`` and ``labels`` by transaction id. It is a plain consumer of all
partitions (no Faust): one process, no state to partition.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections import deque
from typing import Any

import numpy as np

from infra.settings import READ_COMMITTED, Settings
from models.catalog import is_online, make_model
from models.features import DAY, FEATURE_NAMES
from models.registry import Registry
from producers.events import DELAYED

log = logging.getLogger(__name__)

FEATURE_TTL_DAYS = 45.0
LABEL_WAIT_DAYS = 1.0  # a due refit waits this long (event time) for the labels to catch up


class Trainer:
    """Joins scores with labels by transaction id, learns, snapshots when due.

    Online models snapshot every N labels. A batch model collects the joined examples and is
    refitted every ``retrain_every_days`` of event time on those known by then:

    >>> from infra.settings import Settings
    >>> t = Trainer(Settings(model="batch_logreg", registry_dir="/tmp/fs-doctest-reg"),
    ...             retrain_every_days=7.0)
    >>> for i in range(40):  # 40 days, one transaction a day, every 4th a fraud
    ...     t.on_score({"tx_id": i, "ts": i * DAY, "features": [float(i % 4 == 0)] * 15})
    ...     t.on_label({"tx_id": i, "fraud": int(i % 4 == 0), "known_at": i * DAY + 3600})
    ...     if t.snapshot_due():
    ...         _ = t.fit_batch()
    >>> t.refits, t.model.fitted  # refitted on days 7, 14, 21, 28 and 35
    (5, True)
    >>> t.model.n_fitted  # labels known on day 35 of the 28 days before it: days 8 to 34
    27
    >>> t.fitted_at / DAY  # the moment the snapshot stands for
    35.0
    """

    def __init__(self, settings: Settings, snapshot_every: int | None = None,
                 retrain_every_days: float | None = None,
                 retrain_window_days: float | None = None) -> None:
        self.settings = settings
        self.online = is_online(settings.model)
        self.model: Any = make_model(settings.model)
        self.registry = Registry(settings.registry_dir,
                                 settings.model_signing_key.get_secret_value())
        self.name = f"{settings.app_id}-{settings.model}-trainer"
        self.snapshot_every = snapshot_every or settings.snapshot_every_labels
        self.retrain_every = (retrain_every_days or settings.retrain_every_days) * DAY
        window = retrain_window_days or settings.retrain_window_days
        self.retrain_window = None if window is None else window * DAY
        self.features: dict[int, tuple[float, list[float]]] = {}  # tx_id -> (ts, features)
        self.early: dict[int, tuple[int, float, str]] = {}  # labels whose score is not read yet
        self.done: dict[int, float] = {}  # tx_id -> ts of labels learned: a repeat is dropped
        self.examples: deque[tuple[float, float, int, list[float], int]] = deque()
        """Batch models: (known_at, ts, tx_id, features, fraud) of every label joined so far."""
        self.learned = 0
        self.since_snapshot = 0
        self.version = 0
        self.refits = 0
        self.now = -np.inf  # event time: the newest transaction seen in ``scores``
        self.next_refit: float | None = None
        self.label_clock = -np.inf  # the newest known_at among the labels read
        self.fitted_at: float | None = None  # event time the last batch refit stands for
        self._latest_ts = 0.0

    def on_score(self, body: dict[str, Any]) -> None:
        tx_id = int(body["tx_id"])
        ts = float(body["ts"])
        feats = [float(v) for v in body["features"]]
        if ts > self.now:
            self.now = ts
            if self.next_refit is None:
                self.next_refit = float(np.floor(ts / DAY) * DAY) + self.retrain_every
        held = self.early.pop(tx_id, None)
        if held is not None:
            self._learn(tx_id, feats, held[0], ts, held[1], held[2])
            return
        if tx_id not in self.done:
            self.features[tx_id] = (ts, feats)
        if ts > self._latest_ts + DAY:
            self._latest_ts = ts
            horizon = self._latest_ts - FEATURE_TTL_DAYS * DAY
            self.features = {k: v for k, v in self.features.items() if v[0] >= horizon}
            self.done = {k: v for k, v in self.done.items() if v >= horizon}

    def on_label(self, body: dict[str, Any]) -> None:
        """Learn a label once (a feedback label and the later delayed one of the same
        transaction: the first to arrive), with its source (``models.aggregate``)."""
        tx_id = int(body["tx_id"])
        if tx_id in self.done:
            return
        known_at = float(body.get("known_at", 0.0))
        self.label_clock = max(self.label_clock, known_at)
        source = str(body.get("source", DELAYED))
        entry = self.features.pop(tx_id, None)
        if entry is None:
            held = self.early.get(tx_id)
            if held is None or known_at < held[1]:
                self.early[tx_id] = (int(body["fraud"]), known_at, source)
            return
        self._learn(tx_id, entry[1], int(body["fraud"]), entry[0], known_at, source)

    def _learn(self, tx_id: int, feats: list[float], fraud: int, ts: float, known_at: float,
               source: str = DELAYED) -> None:
        self.done[tx_id] = ts
        if self.online and getattr(self.model, "uses_source", False):
            self.model.learn_one(dict(zip(FEATURE_NAMES, feats, strict=True)), fraud, source)
        elif self.online:
            self.model.learn_one(dict(zip(FEATURE_NAMES, feats, strict=True)), fraud)
        else:
            self.examples.append((known_at, ts, tx_id, feats, fraud))
        self.learned += 1
        self.since_snapshot += 1

    def snapshot_due(self) -> bool:
        if self.online:
            return self.since_snapshot >= self.snapshot_every
        due = self.next_refit
        return due is not None and self.now >= due and (
            self.label_clock >= due or self.now >= due + LABEL_WAIT_DAYS * DAY)

    def fit_batch(self) -> bool:
        """Refit the batch model at the due moment on the labels known then; True if it was
        refitted (a window with a single class keeps the previous model). A trainer that
        fell more than a period behind refits once, at the newest due moment."""
        assert self.next_refit is not None
        while self.next_refit + self.retrain_every <= self.now:
            self.next_refit += self.retrain_every
        at = self.next_refit
        self.next_refit = at + self.retrain_every
        horizon = -np.inf if self.retrain_window is None else at - self.retrain_window
        while self.examples and self.examples[0][1] <= horizon:  # roughly in ts order
            self.examples.popleft()
        # in (ts, tx_id) order, as the evaluator holds its rows: an estimator that splits off a
        # validation share (HistGradientBoosting past 10,000 rows) then draws the same rows
        known = sorted((ts, i, f, y) for k, ts, i, f, y in self.examples
                       if k <= at and ts > horizon)
        y = np.array([fraud for *_, fraud in known], dtype=np.int8)
        if len(np.unique(y)) < 2:  # nothing to separate yet
            return False
        self.model.fit(np.array([f for _, _, f, _ in known]), y)
        self.refits += 1
        self.fitted_at = at
        log.info("refitted %s on %d labels known by %s", self.settings.model, len(known),
                 time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)))
        return True

    def _event_time(self) -> float | None:
        """What a snapshot stands for: a batch refit's moment, an online model's clock."""
        if not self.online and self.fitted_at is not None:
            return self.fitted_at
        return self.now if self.now > 0 else None

    def snapshot(self) -> dict[str, Any]:
        path = self.registry.save(self.model, self.name,
                                  extra={"learned": self.learned, "model": self.settings.model,
                                         "event_time": self._event_time()})
        self.version = int(path.stem.lstrip("v"))
        self.since_snapshot = 0
        if self.settings.snapshot_keep:  # a worker behind by more reads the next one
            self.registry.prune(self.name, self.settings.snapshot_keep)
        return {"name": self.name, "version": self.version, "path": str(path.resolve()),
                "learned": self.learned, "published_at": time.time()}


def _events(value: bytes) -> list[dict[str, Any]]:
    body = json.loads(value)
    return body["events"] if body.get("type") == "envelope" else [body]


def run_trainer(settings: Settings, max_seconds: float | None = None) -> Trainer:
    """Consume scores and labels until SIGTERM/SIGINT (or ``max_seconds``)."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    trainer = Trainer(settings)
    t = settings.topics
    kwargs = settings.kafka.kafka_python_kwargs()
    # One trainer per pipeline: its partitions are assigned, not balanced by a group. kafka-python
    # 3.0 could hang in the group's join (a second generation whose assignment never came; seen
    # on a loaded machine, the trainer then read nothing); the group id is kept for its offset
    # commits, so a restarted trainer resumes where it stopped. The declared partition count is
    # used, as streams.log_follower does: a topic nobody wrote to yet may not be in the metadata.
    consumer = KafkaConsumer(
        group_id=f"{settings.app_id}-trainer", auto_offset_reset="earliest",
        enable_auto_commit=True, **READ_COMMITTED, **kwargs,
    )
    consumer.assign([TopicPartition(topic, p) for topic in (t.scores, t.labels)
                     for p in range(t.partitions)])
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
                if not trainer.online and not trainer.fit_batch():
                    continue  # nothing to fit yet: the workers keep what they have
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
