"""HTTP views on Faust's web server: Prometheus metrics, a JSON feed and the live dashboard."""

from __future__ import annotations

import time
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.app import FraudApp

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


def stats(fraud: FraudApp) -> dict[str, Any]:
    """Everything the dashboard draws, as one JSON document."""
    t = fraud.telemetry
    now = time.time()
    return {
        "worker": fraud.worker_id,
        "model": fraud.runtime.label,
        "mode": fraud.settings.processing_mode,
        "uptime_s": now - fraud.started_at,
        "replica_ready": fraud.replica.ready.is_set(),
        "partitions": sorted(tp.partition for tp in fraud.assigned_source()),
        "lease": {"hooked": fraud.lease.installed, "held": fraud.lease.held(),
                  "heard_s_ago": fraud.lease.clock() - fraud.lease.renewed},
        "terminals": len(fraud.replica.states),
        "series": list(t.series),
        "workers": [
            {**beat, "age_s": now - beat["t"], "alive": now - beat["t"] < 10}
            for beat in sorted(t.peers.values(), key=lambda b: str(b["worker"]))
        ],
        "totals": {
            "transactions": t.tx_in._value.get(),
            "scores": t.scores_out._value.get(),
            "labels": t.labels_in._value.get(),
            "learned": t.learned._value.get(),
            "alerts": t.alerts._value.get(),
            "labels_held": t.labels_held._value.get(),
            "rescored": t.rescored._value.get(),
            "card_writes": t.card_writes._value.get(),
            "alert_threshold": t.alert_threshold._value.get(),
            "partition_assignments": t.assignments._value.get(),
            "event_loop_stall_max_s": t.loop_stall_max._value.get(),
        },
        "stage_seconds": fraud.processor.stages.seconds(),
        "models": t.models,
        "alert_queue": fraud.processor.alert_log.recent(50),
        "investigations": fraud.processor.alert_log.stats(),
    }


def register_views(fraud: FraudApp) -> None:
    app = fraud.app
    page = resources.files("streams").joinpath("dashboard.html").read_text()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(fraud.telemetry.prometheus(), content_type=PROMETHEUS_CONTENT_TYPE)

    @app.page("/api/stats")
    async def api_stats(web: Any, request: Any) -> Any:
        return web.json(stats(fraud))

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        ok = fraud.replica.ready.is_set()
        return web.json({"ok": ok, "worker": fraud.worker_id}, status=200 if ok else 503)

    @app.page("/dashboard")
    async def dashboard(web: Any, request: Any) -> Any:
        return web.html(page)
