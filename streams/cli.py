"""``fraudstream worker`` and ``fraudstream demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from fraudstream.errors import FraudstreamError
from infra.settings import Settings, get_settings

MODES = ("event", "microbatch", "envelope")


def settings_for(
    model: str | None = None,
    mode: str | None = None,
    web_port: int | None = None,
    store: str | None = None,
    bootstrap: str | None = None,
    snapshot: str | None = None,
    challengers: str | None = None,
) -> Settings:
    """The environment's settings with the command line's overrides on top."""
    from models.catalog import MODEL_NAMES
    from models.registry import parse_ref

    settings = get_settings()
    update: dict[str, object] = {}
    if model is not None:
        if model not in MODEL_NAMES:
            raise FraudstreamError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_NAMES)}")
        update["model"] = model
    if mode is not None:
        if mode not in MODES:
            raise FraudstreamError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        update["processing_mode"] = mode
    if web_port is not None:
        update["web_port"] = web_port
    if store is not None:
        if store not in ("rocksdb://", "memory://"):
            raise FraudstreamError("--store must be rocksdb:// or memory://")
        update["store"] = store
    if snapshot is not None:
        parse_ref(snapshot)  # a malformed NAME@VERSION is one line now, not at model load
        update["model_snapshot"] = snapshot
    if challengers is not None:
        update["challengers"] = challengers
    if bootstrap is not None:
        settings = settings.with_bootstrap(bootstrap)
    settings = settings.model_copy(update=update)
    unknown = [n for n in settings.challenger_names() if n not in MODEL_NAMES]
    if unknown:
        raise FraudstreamError(f"unknown challenger {unknown[0]!r}; choose from: "
                               f"{', '.join(MODEL_NAMES)}")
    return settings


def worker(
    model: str = typer.Option(None, help="Model name (default: FRAUDSTREAM_MODEL or logreg)."),
    mode: str = typer.Option(None, help="event | microbatch | envelope"),
    worker_id: str = typer.Option("w0", help="Stable id: names the state dir and model snapshots."),
    web_port: int = typer.Option(None, min=0, max=65535, help="Dashboard/metrics port; 0 = off."),
    store: str = typer.Option(None, help="rocksdb:// (default) or memory://"),
    bootstrap: str = typer.Option(None, help="Override KAFKA_BOOTSTRAP_SERVERS."),
    loglevel: str = typer.Option("WARNING", help="Faust log level."),
    snapshot: str = typer.Option(
        None, help="Warm start: registry snapshot NAME[@VERSION] to start from when this "
                   "worker has no snapshot of its own (default: FRAUDSTREAM_MODEL_SNAPSHOT)."),
    challengers: str = typer.Option(
        None, help="Shadow models scored beside the champion, never alerting, e.g. "
                   "agg_sgd_logreg,logreg_x (default: FRAUDSTREAM_CHALLENGERS)."),
) -> None:
    """Run a stream worker: score every transaction, learn from labels, serve /dashboard."""
    from streams.worker import run_worker

    settings = settings_for(model, mode, web_port, store, bootstrap, snapshot, challengers)
    run_worker(settings, worker_id, loglevel.upper())


def demo(
    duration: float = typer.Option(120.0, min=10, help="Seconds of streaming."),
    model: str = typer.Option("logreg", help="Online model to run."),
    rate: float = typer.Option(250.0, min=1, help="Transactions per second to produce."),
    mode: str = typer.Option("event", help="event | microbatch | envelope"),
    out: Path = typer.Option(Path("reports/demo"), help="Where the report goes."),
    web_port: int = typer.Option(6066, min=1, max=65535, help="Dashboard port."),
    envelope: int = typer.Option(1, min=1, max=1000, help="Transactions per Kafka message."),
    backfill_days: int = typer.Option(
        37, min=0, max=120, help="Days of history sent unpaced before the live traffic (card and "
                                 "terminal state; 37 = label delay + the 30-day windows)."),
    backfill_envelope: int = typer.Option(
        200, min=1, max=2000, help="Events per Kafka message during the backfill (a bulk load)."),
    investigators: bool = typer.Option(
        False, help="Run `fraudstream investigate` beside the worker: alerted cards come back "
                    "as feedback labels (the console shows them)."),
    challengers: str = typer.Option(
        None, help="Shadow models beside the champion, e.g. agg_sgd_logreg (the console "
                   "compares them; `fraudstream promote NAME` swaps one in)."),
) -> None:
    """Train offline, warm-start a worker, backfill, then live traffic; a report with charts."""
    from models.catalog import is_online
    from streams.demo import run_demo

    settings = settings_for(model, mode, web_port, challengers=challengers)
    if not is_online(settings.model):
        raise FraudstreamError(f"the demo trains an online model offline, not {settings.model!r}")
    run_demo(settings, duration_s=duration, rate=rate, out_dir=out, envelope=envelope,
             backfill_days=backfill_days, backfill_envelope=backfill_envelope,
             investigators=investigators)


def trainer(
    model: str = typer.Option(None, help="Model to train (default: FRAUDSTREAM_MODEL): an "
                              "online one learns every label, a batch one is refitted "
                              "every --every-days of event time."),
    bootstrap: str = typer.Option(None, help="Override KAFKA_BOOTSTRAP_SERVERS."),
    max_seconds: float = typer.Option(None, min=1, help="Stop after this long (default: never)."),
    every_days: float = typer.Option(None, min=0.001, help="Batch models: refit every this many "
                                     "days of event time (default: "
                                     "FRAUDSTREAM_RETRAIN_EVERY_DAYS, 7)."),
    window_days: float = typer.Option(None, min=0.001, help="Batch models: fit on the last this "
                                      "many days of labelled transactions (default: "
                                      "FRAUDSTREAM_RETRAIN_WINDOW_DAYS, 28)."),
) -> None:
    """Learn from every label in one process and publish snapshots (workers: LEARNING=trainer)."""
    import logging

    from streams.trainer import run_trainer

    settings = settings_for(model=model, bootstrap=bootstrap)
    update: dict[str, float] = {}
    if every_days is not None:
        update["retrain_every_days"] = every_days
    if window_days is not None:
        update["retrain_window_days"] = window_days
    settings = settings.model_copy(update=update)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    t = run_trainer(settings, max_seconds=max_seconds)
    what = f"{t.refits} refits" if not t.online else f"{t.learned} labels learned"
    typer.echo(f"trainer stopped: {what}, last snapshot v{t.version}")


def promote(
    name: str = typer.Argument(help="The challenger to make champion (a catalog model name)."),
    bootstrap: str = typer.Option(None, help="Override KAFKA_BOOTSTRAP_SERVERS."),
) -> None:
    """Make a challenger the champion on every worker, without a restart.

    Each worker writes its live challenger as a signed snapshot, loads it back through the
    registry's verification as its champion (a snapshot that fails is refused, the champion
    stays) and keeps the old champion as a challenger."""
    import json
    import time

    from infra.topics import ensure_topics
    from models.catalog import MODEL_NAMES
    from producers.sender import close_producer, make_producer

    if name not in MODEL_NAMES:
        raise FraudstreamError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    settings = settings_for(bootstrap=bootstrap)
    ensure_topics(settings)
    producer = make_producer(settings.kafka.kafka_python_kwargs())
    try:
        producer.send(settings.topics.model_snapshots, key=b"promote",
                      value=json.dumps({"promote": name, "requested_at": time.time()}).encode())
        producer.flush(timeout=30)
    finally:
        close_producer(producer)
    typer.echo(f"asked every worker to promote {name} (their /api/stats shows the champion)")


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("promote")(promote)
    app.command("demo")(demo)
    app.command("trainer")(trainer)
