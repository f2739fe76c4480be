"""What the worker reports: Prometheus metrics and the time series behind the dashboard.

Latency is end to end: from the producer's ``produced_at`` to the moment the score is sent,
so it includes Kafka, the consumer's buffers and any micro-batch window. Rolling AUC and AP
are exact (scikit-learn) over the last labelled transactions, computed once per sampling
tick rather than per event, because River's ``ROCAUC`` is an approximation that is badly off
at fraud-like score distributions.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from models.ranking import average_precision, roc_auc

QUALITY_EVERY_S = 5.0
"""The rolling AUC/AP is recomputed this often, not at every 1 s sample: an exact AUC over
5,000 labels took 3% of a draining worker's time at once a second (py-spy, 2026-12-01)."""
STALL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Telemetry:
    """Counters for /metrics plus a short history for the dashboard."""

    def __init__(self, worker_id: str, rolling_window: int = 5000, history: int = 600) -> None:
        self.worker_id = worker_id
        self.registry = CollectorRegistry()
        r = self.registry
        self.tx_in = Counter("fraudstream_transactions_in", "Transactions consumed", registry=r)
        self.messages_in = Counter("fraudstream_messages_in", "Kafka messages consumed", registry=r)
        self.scores_out = Counter("fraudstream_scores_out", "Scores produced", registry=r)
        self.replayed = Counter("fraudstream_transactions_replayed",
                                "Re-delivered transactions answered from state", registry=r)
        self.labels_in = Counter("fraudstream_labels_in", "Labels consumed", registry=r)
        self.learned = Counter("fraudstream_labels_learned", "Labels learned", registry=r)
        self.label_dupes = Counter("fraudstream_labels_duplicate", "Repeated labels ignored",
                                   registry=r)
        self.labels_early = Counter("fraudstream_labels_early",
                                    "Labels that arrived before their transaction", registry=r)
        self.labels_late = Counter("fraudstream_labels_late",
                                   "Labels learned on arrival: the transactions were already "
                                   "past their known_at", registry=r)
        self.labels_released = Counter("fraudstream_labels_released",
                                       "Held labels learned when the transactions reached "
                                       "their known_at", registry=r)
        self.labels_held = Gauge("fraudstream_labels_held",
                                 "Labels waiting for the transactions' event time", registry=r)
        self.partitions_paused = Gauge("fraudstream_partitions_paused",
                                       "Transaction partitions paused: ahead of the others in "
                                       "event time", registry=r)
        self.peer_examples = Counter("fraudstream_peer_examples_learned",
                                     "Examples learned from other workers (learning=shared)",
                                     registry=r)
        self.peer_examples_waiting = Gauge("fraudstream_peer_examples_waiting",
                                           "Peers' examples waiting for this worker's event "
                                           "time (learning=shared)", registry=r)
        self.label_waits = Counter("fraudstream_label_waits",
                                   "Batches of transactions held until their partitions' labels "
                                   "were read up to their event time (streams.label_wait)",
                                   registry=r)
        self.label_waits_expired = Counter("fraudstream_label_waits_expired",
                                           "Label waits that ran out (LABEL_WAIT_S): the batch "
                                           "was scored without the labels", registry=r)
        self.labels_expired = Counter("fraudstream_labels_expired",
                                      "Held labels dropped: their transaction never came",
                                      registry=r)
        self.rescored = Counter("fraudstream_transactions_rescored",
                                "Re-read transactions whose first score was lost, scored again",
                                registry=r)
        self.dlq = Counter("fraudstream_dlq", "Events sent to a dead-letter topic", ["topic"],
                           registry=r)
        self.dlq_repeats = Counter("fraudstream_dlq_repeats",
                                   "Re-read malformed messages not dead-lettered again: their "
                                   "dead letter was already out", ["topic"], registry=r)
        self.alerts = Counter("fraudstream_alerts", "Alerts raised", registry=r)
        self.card_writes = Counter("fraudstream_card_writes",
                                   "Card states written (store and changelog), once per card "
                                   "and batch", registry=r)
        self.alert_threshold = Gauge("fraudstream_alert_threshold",
                                     "Score from which an alert is raised today", registry=r)
        self.latency = Histogram("fraudstream_e2e_latency_seconds",
                                 "produced_at to score sent", buckets=LATENCY_BUCKETS, registry=r)
        self.model_version = Gauge("fraudstream_model_version", "Model snapshot version",
                                   registry=r)
        self.rolling_auc = Gauge("fraudstream_rolling_auc", "Exact AUC over recent labels",
                                 registry=r)
        self.rolling_ap = Gauge("fraudstream_rolling_ap", "Average precision over recent labels",
                                registry=r)
        self.lag = Gauge("fraudstream_consumer_lag", "Messages behind the log end", ["topic"],
                         registry=r)
        self.heartbeat = Gauge("fraudstream_heartbeat_timestamp_seconds",
                               "Last heartbeat of this worker", registry=r)
        self.workers_alive = Gauge("fraudstream_workers_alive",
                                   "Workers with a heartbeat in the last 10 s", registry=r)
        self.loop_stall = Histogram("fraudstream_event_loop_stall_seconds",
                                    "How late the event loop woke a 0.25 s sleep: heartbeats "
                                    "to the consumer group are late by as much",
                                    buckets=STALL_BUCKETS, registry=r)
        self.loop_stall_max = Gauge("fraudstream_event_loop_stall_max_seconds",
                                    "Longest event-loop stall since the worker started",
                                    registry=r)
        self.assignments = Counter("fraudstream_partition_assignments",
                                   "Partition assignments received: one at start, one more "
                                   "per rebalance", registry=r)
        self.lease_waits = Counter("fraudstream_lease_waits",
                                   "Times the agents held their events because no heartbeat "
                                   "had answered for a session (streams.lease)", registry=r)
        self.lease_released = Counter("fraudstream_lease_released_events",
                                      "Held events processed because a rebalance started "
                                      "while the lease was out", registry=r)
        self.output_transactions = Counter(
            "fraudstream_output_transactions", "Output transactions committed "
            "(streams.output_transactions)", registry=r)
        self.outputs_fenced = Counter(
            "fraudstream_outputs_fenced", "Scores, alerts and shadow scores dropped because "
            "another worker took their partition's transactional id over", registry=r)
        self.model_auc = Gauge("fraudstream_model_rolling_auc", "Exact AUC over recent labels, "
                               "per model (champion and challengers, streams.challengers)",
                               ["model", "role"], registry=r)
        self.model_ap = Gauge("fraudstream_model_rolling_ap", "Average precision over recent "
                              "labels, per model", ["model", "role"], registry=r)
        self.model_alert_precision = Gauge(
            "fraudstream_model_alert_precision", "Share of frauds among the labelled "
            "transactions a model alerted on (a challenger's alerts are never sent)",
            ["model", "role"], registry=r)
        self.promotions = Counter("fraudstream_promotions", "Challengers promoted to champion",
                                  registry=r)
        self.promotions_refused = Counter("fraudstream_promotions_refused", "Promotions refused "
                                          "(unknown challenger, or a snapshot that did not "
                                          "verify)", registry=r)
        self.models: list[dict[str, Any]] = []
        """Champion and challengers' live quality (``Challengers.quality``), for the views."""
        for topic in ("transactions", "labels"):  # every series from the start, at 0: an
            self.dlq.labels(topic)  # absent series is not a zero to PromQL (rate, alerts)
            self.dlq_repeats.labels(topic)
        self._labelled: deque[tuple[float, int]] = deque(maxlen=rolling_window)
        self._latencies: deque[float] = deque(maxlen=20_000)
        self.series: deque[dict[str, Any]] = deque(maxlen=history)
        self._last_sample: tuple[float, float, float, float] | None = None
        self.peers: dict[str, dict[str, Any]] = {}
        self._quality: tuple[float, float] = (math.nan, math.nan)
        self._quality_at = -math.inf

    def observe_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)
        self._latencies.append(seconds)

    def observe_latencies(self, seconds: list[float]) -> None:
        """A batch's latencies at once: the same histogram as ``observe`` per value, in one
        numpy bucketing and one update per bucket (``Histogram.observe`` takes a lock per
        call: 4% of an envelope-mode worker). prometheus_client has no bulk observe, so this
        uses its documented bucket layout: one counter per bucket, upper bounds inclusive."""
        if not seconds:
            return
        self._latencies.extend(seconds)
        hist = self.latency
        if len(seconds) < 16:  # numpy's fixed cost is more than a few single observations
            for value in seconds:
                hist.observe(value)
            return
        values = np.asarray(seconds, dtype=np.float64)
        bounds = hist._upper_bounds
        counts = np.bincount(np.searchsorted(bounds, values, side="left"),
                             minlength=len(bounds))
        for bucket, count in zip(hist._buckets, counts.tolist(), strict=False):
            if count:
                bucket.inc(count)
        hist._sum.inc(float(values.sum()))

    def observe_loop_stall(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.loop_stall.observe(seconds)
        if seconds > self.loop_stall_max._value.get():
            self.loop_stall_max.set(seconds)

    def observe_models(self, rows: list[dict[str, Any]]) -> None:
        """Each model's live quality (``streams.challengers``): the gauges and the views."""
        self.models = rows
        for gauge, key in ((self.model_auc, "rolling_auc"), (self.model_ap, "rolling_ap"),
                           (self.model_alert_precision, "alert_precision")):
            gauge.clear()  # a promotion changes roles: no stale (model, role) series
            for row in rows:
                value = row[key]
                gauge.labels(row["name"], row["role"]).set(math.nan if value is None else value)

    def observe_label(self, score: float, fraud: int) -> None:
        self._labelled.append((score, fraud))

    def rolling_quality(self) -> tuple[float, float]:
        if len(self._labelled) < 50:
            return math.nan, math.nan
        arr = np.array(self._labelled)
        y = arr[:, 1].astype(int)
        if y.min() == y.max():
            return math.nan, math.nan
        return roc_auc(y, arr[:, 0]), average_precision(y, arr[:, 0])

    def sample(self, lag_total: float) -> dict[str, Any]:
        """One point of the dashboard's history (called about once per second)."""
        now = time.time()
        tx = self.tx_in._value.get()
        alerts = self.alerts._value.get()
        dlq = sum(s.value for m in self.dlq.collect() for s in m.samples
                  if s.name.endswith("_total"))
        rate = alert_rate = 0.0
        if self._last_sample is not None:
            t0, tx0, al0, _ = self._last_sample
            dt = max(now - t0, 1e-6)
            rate = (tx - tx0) / dt
            alert_rate = (alerts - al0) / dt
        self._last_sample = (now, tx, alerts, dlq)
        lat = np.array(self._latencies) if self._latencies else np.array([math.nan])
        self._latencies.clear()
        if now - self._quality_at >= QUALITY_EVERY_S:
            self._quality = self.rolling_quality()
            self._quality_at = now
        auc, ap = self._quality
        if not math.isnan(auc):
            self.rolling_auc.set(auc)
            self.rolling_ap.set(ap)
        point = {
            "t": now,
            "tx_per_s": rate,
            "p50_ms": float(np.nanpercentile(lat, 50) * 1000) if lat.size else None,
            "p99_ms": float(np.nanpercentile(lat, 99) * 1000) if lat.size else None,
            "auc": None if math.isnan(auc) else auc,
            "ap": None if math.isnan(ap) else ap,
            "alerts_per_s": alert_rate,
            "dlq": dlq,
            "lag": lag_total,
            "tx_total": tx,
            "learned": self.learned._value.get(),
            "labels_held": self.labels_held._value.get(),
            "model_version": self.model_version._value.get(),
        }
        for key in ("p50_ms", "p99_ms"):
            if point[key] is not None and math.isnan(point[key]):
                point[key] = None
        self.series.append(point)
        return point

    def prometheus(self) -> bytes:
        return generate_latest(self.registry)
