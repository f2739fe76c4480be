"""``fraudstream simulate | produce | replay | investigate``: the producers' commands.

Argument errors surface as Typer's BadParameter or as ``FraudstreamError`` (one line, exit 2);
nothing a user types should end in a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer

from fraudstream.errors import FraudstreamError
from producers.sender import LINGER_MS

if TYPE_CHECKING:
    from infra.settings import Settings
    from producers.simulator import Simulator

# --- shared options ---------------------------------------------------------------------------
Seed = Annotated[int, typer.Option(help="Random seed: same seed, same events.")]
Days = Annotated[int, typer.Option(min=1, help="Simulated days.")]
Customers = Annotated[int, typer.Option(min=1, help="Number of customers (cards).")]
Terminals = Annotated[int, typer.Option(min=1, help="Number of terminals.")]
Radius = Annotated[float, typer.Option(min=0.001, help="Distance within which a card shops.")]
StartDate = Annotated[str, typer.Option(help="First simulated day, YYYY-MM-DD (UTC).")]
DriftOpt = Annotated[
    str | None,
    typer.Option(help="Drift schedule, e.g. 'card_testing@60,terminal_shift@90' "
                      "(kinds: card_testing, terminal_shift, amount_shift). Off by default."),
]
FraudDelay = Annotated[
    str, typer.Option(help="Fraud report delay in days, e.g. 'gamma:shape=2,scale=1,max=7', "
                           "'exponential:mean=2', 'fixed:days=3'.")
]
Feedback = Annotated[
    float, typer.Option(min=0, help="Days after which a genuine transaction is confirmed.")
]
MaxTx = Annotated[int | None, typer.Option(min=1, help="Stop after this many transactions.")]
Envelope = Annotated[
    int, typer.Option(min=1, help="Pack up to N same-partition events per Kafka message "
                                  "(1 = one message per event).")
]
MaxWait = Annotated[
    float, typer.Option(min=0, help="Longest an event waits in an envelope, milliseconds.")
]
Speedup = Annotated[
    float | None, typer.Option(min=0.000001, help="Simulated seconds per wall-clock second.")
]
Rate = Annotated[float | None, typer.Option(min=0.001, help="Target transactions per second.")]
Labels = Annotated[bool, typer.Option(help="Also send label events to the labels topic.")]
Compression = Annotated[
    str, typer.Option(help="none, gzip, lz4, zstd or snappy (see producers.sender).")
]
LingerMs = Annotated[
    int, typer.Option(min=0, max=1000, help="How long the producer waits to fill a batch, "
                      "milliseconds (Kafka's linger.ms; lower for paced, latency-measured runs).")
]
Bootstrap = Annotated[
    str | None, typer.Option(help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS).")
]
ProgressOpt = Annotated[bool, typer.Option(help="Show a progress bar.")]
LiveFrom = Annotated[
    str | None,
    typer.Option(help="Event date YYYY-MM-DD (UTC) from which --rate/--speedup applies; "
                      "earlier events are sent as fast as possible (a backfill)."),
]
BackfillEnvelope = Annotated[
    int | None,
    typer.Option(min=1, max=2_000, help="With --live-from: pack the backfill N events per "
                                        "message (a bulk load; default: --envelope)."),
]
WaitForGroup = Annotated[
    str | None,
    typer.Option(help="With --live-from: before the first live event, wait until this consumer "
                      "group (the workers' FRAUDSTREAM_APP_ID) has consumed the backfill."),
]
WaitMax = Annotated[float, typer.Option(min=0, help="Longest wait for --wait-for-group, seconds.")]
BackfillDays = Annotated[
    int | None,
    typer.Option(min=0, help="With --live-from: send only the N days before it; earlier "
                             "simulated days (e.g. a model's offline training history) are "
                             "skipped, their labels too."),
]


def _simulator(
    seed: int, days: int, customers: int, terminals: int, radius: float, start_date: str,
    drift: str | None, fraud_delay: str, feedback_days: float,
) -> Simulator:
    from producers.delays import parse_delay
    from producers.drift import parse_drift
    from producers.simulator import Simulator
    from producers.world import WorldConfig

    try:
        start = date.fromisoformat(start_date)
    except ValueError:
        raise typer.BadParameter(
            f"{start_date!r} is not YYYY-MM-DD", param_hint="--start-date"
        ) from None
    try:
        drifts = parse_drift(drift)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--drift") from None
    for d in drifts:
        if d.start_day >= days:
            raise typer.BadParameter(
                f"{d.kind} starts on day {d.start_day}, after the last day ({days - 1})",
                param_hint="--drift",
            )
    try:
        delay = parse_delay(fraud_delay)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fraud-delay") from None
    config = WorldConfig(customers, terminals, radius, days, start, seed)
    return Simulator(config, drifts, delay, feedback_days)


def _sender_settings(bootstrap: str | None) -> Settings:
    from infra.settings import get_settings

    settings = get_settings()
    return settings.with_bootstrap(bootstrap) if bootstrap else settings


def _send(
    blocks: Iterable[pd.DataFrame], *, span: tuple[float, float], labels: bool,
    default_delay_s: float, envelope: int, max_wait_ms: float, speedup: float | None,
    rate: float | None, compression: str, bootstrap: str | None, progress: bool,
    source: str, live_from: float | None = None, backfill_envelope: int | None = None,
    wait_group: str | None = None, wait_max_s: float = 600.0, linger_ms: int = LINGER_MS,
) -> None:
    """Shared body of ``produce`` and ``replay``: topics, producer, progress, summary."""
    from rich.console import Console

    from infra.topics import ensure_topics
    from producers.pacing import Pacer
    from producers.sender import Sender, close_producer, make_producer
    from producers.summary import kafka_python_warnings, progress_bar, summary_table
    from producers.timeline import timeline

    try:
        pacer = Pacer(speedup=speedup, rate=rate, live_from=live_from)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console = Console(stderr=True)
    for warning in kafka_python_warnings():
        console.print(f"[yellow]warning:[/] {warning}")
    settings = _sender_settings(bootstrap)
    topics = settings.topics
    try:
        ensure_topics(settings)
    except FraudstreamError:
        raise
    except Exception as exc:
        raise FraudstreamError(
            f"cannot create topics at {settings.kafka.bootstrap_servers}: {exc}"
        ) from None
    producer = make_producer(settings.kafka.kafka_python_kwargs(), compression, linger_ms)
    try:
        sender = Sender(
            producer, topics.transactions, topics.labels, envelope=envelope,
            max_wait_s=max_wait_ms / 1000.0, pacer=pacer, backfill_envelope=backfill_envelope,
            before_live=_catch_up(settings, wait_group, wait_max_s, console) if wait_group else None,
        )
        segments = timeline(blocks, labels=labels, default_delay_s=default_delay_s)
        with progress_bar(span, enabled=progress) as update:
            report = sender.send(segments, progress=update)
    finally:
        close_producer(producer)
    Console().print(summary_table(report, source=source, pacer=pacer, envelope=envelope))
    if report.failed:
        raise FraudstreamError(
            f"{report.failed} messages failed to send (first: {report.first_error})"
        )


def _catch_up(settings: Settings, group: str, max_s: float, console: Any) -> Callable[[], None]:
    """The wait between backfill and live (``producers.catchup``), saying what it does."""

    def wait() -> None:
        from producers.catchup import wait_for_group

        console.print(f"backfill sent; waiting for consumer group {group!r} to consume it "
                      f"(at most {max_s:g} s)")
        done = wait_for_group(settings.kafka.kafka_python_kwargs(), group,
                              settings.topics.transactions, max_s)
        left = f", {done.behind:,} messages still unconsumed" if done.behind else ""
        console.print(f"going live after waiting {done.waited_s:.1f} s{left}")

    return wait


def simulate(
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet, .pq or .csv.")],
    seed: Seed = 0, days: Days = 183, customers: Customers = 5_000,
    terminals: Terminals = 10_000, radius: Radius = 5.0, start_date: StartDate = "2018-04-01",
    drift: DriftOpt = None, fraud_delay: FraudDelay = "gamma:shape=2,scale=1,max=7",
    feedback_days: Feedback = 7.0, max_tx: MaxTx = None,
) -> None:
    """Write simulated transactions (with fraud, scenario, label_ts) to Parquet or CSV."""
    from rich.console import Console

    from producers.timeline import limit_blocks
    from producers.writer import output_format, write_days

    output_format(out)
    sim = _simulator(seed, days, customers, terminals, radius, start_date, drift, fraud_delay,
                     feedback_days)
    stats = {"fraud": 0}

    def count(day: pd.DataFrame) -> None:
        stats["fraud"] += int(day["fraud"].sum())

    started = time.perf_counter()
    rows = write_days(limit_blocks(sim.days(), max_tx), out, on_day=count)
    elapsed = time.perf_counter() - started
    share = stats["fraud"] / rows if rows else 0.0
    Console().print(
        f"wrote {rows:,} transactions ({stats['fraud']:,} fraudulent, {share:.2%}) to {out} "
        f"in {elapsed:.1f}s ({rows / max(elapsed, 1e-9):,.0f} tx/s)"
    )


def produce(
    seed: Seed = 0, days: Days = 183, customers: Customers = 5_000,
    terminals: Terminals = 10_000, radius: Radius = 5.0, start_date: StartDate = "2018-04-01",
    drift: DriftOpt = None, fraud_delay: FraudDelay = "gamma:shape=2,scale=1,max=7",
    feedback_days: Feedback = 7.0, max_tx: MaxTx = None, envelope: Envelope = 1,
    max_wait_ms: MaxWait = 50.0, speedup: Speedup = None, rate: Rate = None,
    labels: Labels = True, compression: Compression = "none", bootstrap: Bootstrap = None,
    progress: ProgressOpt = True, live_from: LiveFrom = None, backfill_days: BackfillDays = None,
    backfill_envelope: BackfillEnvelope = None, wait_for_group: WaitForGroup = None,
    wait_max_s: WaitMax = 600.0, linger_ms: LingerMs = LINGER_MS,
) -> None:
    """Simulate transactions and send them, with their labels, to Kafka."""
    from producers.timeline import limit_blocks, skip_before

    sim = _simulator(seed, days, customers, terminals, radius, start_date, drift, fraud_delay,
                     feedback_days)
    first = sim.config.start_ts
    live_ts, send_from = _live_window(first, days, live_from, backfill_days)
    for hint, value in (("--backfill-envelope", backfill_envelope),
                        ("--wait-for-group", wait_for_group)):
        if value is not None and live_ts is None:
            raise typer.BadParameter("needs --live-from (where the backfill ends)",
                                     param_hint=hint)
    span = (send_from or first, first + (days + feedback_days) * 86_400.0)
    source = f"simulator seed {seed}, {days} days, drift {drift or 'off'}"
    if send_from is not None:
        source += f", sent from {_day(send_from)} ({backfill_days} days of backfill)"
    if backfill_envelope is not None:
        source += f", backfill in envelopes of up to {backfill_envelope}"
    _send(
        limit_blocks(skip_before(sim.days(), send_from), max_tx), span=span, labels=labels,
        default_delay_s=feedback_days * 86_400.0, envelope=envelope, max_wait_ms=max_wait_ms,
        speedup=speedup, rate=rate, compression=compression, bootstrap=bootstrap,
        progress=progress, source=source, live_from=live_ts, backfill_envelope=backfill_envelope,
        wait_group=wait_for_group, wait_max_s=wait_max_s, linger_ms=linger_ms,
    )


def _day(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _live_window(
    first: float, days: int, live_from: str | None, backfill_days: int | None
) -> tuple[float | None, float | None]:
    """``(live start, first event time sent)`` as epoch seconds from the produce options.

    Both must fall inside the simulated days: a live start after the last day would silently
    send everything unpaced, and a backfill reaching before the first day would silently be
    shorter than asked.
    """
    from datetime import UTC, datetime

    if live_from is None:
        if backfill_days is not None:
            raise typer.BadParameter("needs --live-from (the backfill is the N days before it)",
                                     param_hint="--backfill-days")
        return None, None
    try:
        live_ts = datetime.combine(date.fromisoformat(live_from), datetime.min.time(),
                                   tzinfo=UTC).timestamp()
    except ValueError:
        raise typer.BadParameter(f"{live_from!r} is not YYYY-MM-DD", param_hint="--live-from") from None
    last = first + days * 86_400.0
    if not first <= live_ts < last:
        raise FraudstreamError(
            f"--live-from {live_from} is outside the simulated days "
            f"({_day(first)} .. {_day(last - 1)})"
        )
    if backfill_days is None:
        return live_ts, None
    send_from = live_ts - backfill_days * 86_400.0
    if send_from < first:
        raise FraudstreamError(
            f"--backfill-days {backfill_days} reaches before the first simulated day "
            f"({_day(first)}); at most {int((live_ts - first) // 86_400)} days"
        )
    return live_ts, send_from


def replay(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of transactions.")],
    preset: Annotated[str | None, typer.Option(help="Known column layout: 'handbook'.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="COLUMN=SOURCE, e.g. --map amount=AMT (repeatable)."),
    ] = None,
    label_delay_days: Annotated[
        float, typer.Option(min=0, help="Label delay when the file has no label_ts column.")
    ] = 7.0,
    max_tx: MaxTx = None, envelope: Envelope = 1, max_wait_ms: MaxWait = 50.0,
    speedup: Speedup = None, rate: Rate = None, labels: Labels = True,
    compression: Compression = "none", bootstrap: Bootstrap = None, progress: ProgressOpt = True,
    linger_ms: LingerMs = LINGER_MS,
) -> None:
    """Send a CSV/Parquet file of transactions (and labels, if it has a fraud column) to Kafka."""
    from producers.reader import parse_mapping, read_transactions
    from producers.timeline import limit_blocks, split_days

    frame = read_transactions(file, preset=preset, mapping=parse_mapping(map_),
                              label_delay_days=label_delay_days)
    if frame.empty:
        raise FraudstreamError(f"{file}: no transactions")
    if labels and "fraud" not in frame:
        labels = False
        typer.echo("note: the file has no fraud column, so no labels are sent", err=True)
    span = (float(frame["ts"].iloc[0]), float(frame.get("label_ts", frame["ts"]).max()))
    _send(
        limit_blocks(split_days(frame), max_tx), span=span, labels=labels,
        default_delay_s=label_delay_days * 86_400.0, envelope=envelope, max_wait_ms=max_wait_ms,
        speedup=speedup, rate=rate, compression=compression, bootstrap=bootstrap,
        progress=progress, source=str(file), linger_ms=linger_ms,
    )


def investigate(
    data: Annotated[Path, typer.Option(help="The world's file (CSV or Parquet, with a fraud "
                                            "column): the investigators' ground truth.")],
    budget: Annotated[int, typer.Option(min=1, help="Cards investigated per event-time day.")] = 100,
    hours: Annotated[float, typer.Option(min=0, help="Hours from an alert to its case's "
                                                     "labels (event time).")] = 4.0,
    lookback_days: Annotated[float, typer.Option(min=0, help="An investigated card's "
                                                             "transactions labelled back this "
                                                             "far before the alert.")] = 1.0,
    group: Annotated[str, typer.Option(help="Consumer group on the alerts topic.")] = "",
    idle_exit: Annotated[float | None, typer.Option(min=0.1, help="Exit after this many "
                                                               "seconds without an alert "
                                                               "(default: run until Ctrl-C).")] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Investigators: read alerts, label the alerted cards' recent transactions (feedback)."""
    from rich.console import Console

    from producers.investigate import GROUP
    from producers.investigate import investigate as run
    from producers.investigation import CardHistory, Investigator
    from producers.reader import read_transactions

    frame = read_transactions(data)
    if "fraud" not in frame:
        raise FraudstreamError(f"{data}: no fraud column, nothing to investigate with")
    if "tx_id" not in frame:
        raise FraudstreamError(f"{data}: no tx_id column, labels could not name transactions")
    team = Investigator(CardHistory.from_frame(frame), budget=budget, hours=hours,
                        lookback_days=lookback_days)
    settings = _sender_settings(bootstrap)
    console = Console(stderr=True)
    console.print(f"investigating alerts on {settings.topics.alerts!r}: {budget} cards a day, "
                  f"labels {hours:g} h after each alert, on {settings.topics.labels!r}")
    report = run(settings, team, group=group or GROUP, idle_exit_s=idle_exit)
    cases = team.stats()
    typer.echo(f"alerts {report.alerts:,}  cases {cases['cases']:,}  refused (budget) "
               f"{cases['refused']:,}  feedback labels {report.labels:,} ({report.frauds:,} "
               f"frauds)  malformed alerts {report.malformed:,}")


def register(app: typer.Typer) -> None:
    """Mount the producers' commands on the ``fraudstream`` app."""
    app.command("simulate")(simulate)
    app.command("produce")(produce)
    app.command("replay")(replay)
    app.command("investigate")(investigate)
