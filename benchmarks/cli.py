"""``fraudstream bench``: the pipeline benchmark and its report; ``bench parity``: pipeline
accuracy against the offline evaluator on one file.

``fraudstream bench`` alone runs the full benchmark, as it always did: the group's callback is
invoked without a sub-command and does the work only then. Without ``--bootstrap`` a throwaway
Apache Kafka broker is started for the run and stopped at the end, so a benchmark never
competes with (or pollutes) a broker someone else is using.
"""

from __future__ import annotations

import shlex
import signal
import sys
from pathlib import Path

import typer

from fraudstream.errors import FraudstreamError


def _command_line() -> str:
    """The ``fraudstream bench ...`` command as typed, for a report's first line."""
    return "fraudstream bench " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 \
        else "fraudstream bench"


def bench(
    ctx: typer.Context,
    quick: bool = typer.Option(False, "--quick", help="Small data for CI: checks that every "
                               "measurement runs and the report has every table and chart."),
    out: Path = typer.Option(None, "--out", help="Report directory (default reports/bench, "
                             "or reports/bench-quick with --quick)."),
    bootstrap: str = typer.Option(None, "--bootstrap", help="Use this broker instead of "
                                  "starting a throwaway one."),
    keep_work: bool = typer.Option(False, "--keep-work", help="Keep the temporary work "
                                   "directory (worker logs, ground truth) for debugging."),
) -> None:
    """Drain rates, latency, ceilings, scaling, throughput vs accuracy, drift: one report.

    With a sub-command (parity) only that runs.
    """
    if ctx.invoked_subcommand is not None:
        return
    from benchmarks.producer_bench import broker_or_throwaway
    from benchmarks.suite import run_bench
    from infra.settings import get_settings

    # SIGTERM -> SystemExit, so that every worker and the throwaway broker are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out_dir = out or Path("reports/bench-quick" if quick else "reports/bench")
    command = _command_line()
    if not bootstrap:
        typer.echo("starting a throwaway Kafka broker for the benchmark ...", err=True)
    with broker_or_throwaway(bootstrap) as servers:
        settings = get_settings().with_bootstrap(servers)
        path, problems = run_bench(settings, out_dir, quick, command.strip(),
                                   log=lambda msg: typer.echo(msg, err=True),
                                   keep_work=keep_work)
    typer.echo(str(path))
    if problems:
        raise FraudstreamError("report shape check failed: " + "; ".join(problems))


def parity(
    data: Path = typer.Option(..., "--data", help="Transactions file (CSV or Parquet) with "
                              "fraud labels."),
    preset: str = typer.Option(None, "--preset", help="Column layout, e.g. handbook."),
    model: str = typer.Option("logreg", "--model", help="Model the workers and the offline "
                              "evaluator run (see `fraudstream evaluate --help`)."),
    envelope: int = typer.Option(1, "--envelope", help="Transactions per Kafka message; > 1 "
                                 "runs the workers in envelope mode, else event mode."),
    partitions: int = typer.Option(4, "--partitions", help="Partitions of the run's topics."),
    workers: int = typer.Option(1, "--workers", help="Worker processes (at most --partitions)."),
    learning: str = typer.Option(None, "--learning", help="local: each worker learns its own "
                                 "partitions' labels; shared: every worker learns every label "
                                 "(default: local for one worker, shared for more)."),
    label_delay_days: float = typer.Option(None, "--label-delay-days", help="Every label is "
                                           "known this many days after its transaction "
                                           "(default: FRAUDSTREAM_LABEL_DELAY_DAYS, 7)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of "
                                 "tables."),
    keep_work: bool = typer.Option(False, "--keep-work", help="Keep the work directory "
                                   "(worker logs, state) and the run's topics for debugging."),
) -> None:
    """Pipeline vs offline evaluator on one file: AUC, AP, CP@100 on the same rows.

    The whole file (transactions and labels) is on the broker before the workers start; the
    drain rate, CPU per transaction and peak memory of the workers are reported too.
    """
    import json

    from benchmarks.parity import ParityArgs, jsonable, render, run_parity
    from infra.settings import get_settings

    settings = get_settings()
    args = ParityArgs(data, preset, model, envelope, partitions, workers,
                      settings.label_delay_days if label_delay_days is None else label_delay_days,
                      learning)
    args.validate()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # workers and broker get stopped
    result = run_parity(args, settings, log=lambda msg: typer.echo(msg, err=True),
                        keep_work=keep_work)
    if as_json:
        print(json.dumps(jsonable(result)), flush=True)
        return
    from rich.console import Console

    console = Console()
    for table in render(result):
        console.print(table)


def drift(
    spec: str = typer.Option("night_gang@42", "--drift", help="One drift, KIND@DAY (kinds: "
                             "card_testing, terminal_shift, amount_shift, night_gang)."),
    days: int = typer.Option(70, "--days", help="Simulated days (>= drift day + 14)."),
    customers: int = typer.Option(1000, "--customers", help="Customers (terminals: twice)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the simulated world."),
    online: str = typer.Option("logreg", "--online", help="The online model."),
    batch: str = typer.Option("batch_hgb", "--batch", help="The static / retrained batch model."),
    partitions: int = typer.Option(1, "--partitions", help="Partitions of the run's topics."),
    envelope: int = typer.Option(100, "--envelope", help="Transactions per Kafka message."),
    day_seconds: float = typer.Option(6.0, "--day-seconds", help="Paced runs (the trainer-fed "
                                      "models): wall-clock seconds per simulated day."),
    offline_only: bool = typer.Option(False, "--offline-only", help="Skip the pipeline runs."),
    out: Path = typer.Option(None, "--out", help="Write report.md and drift.png here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Incrementality under drift, through the real pipeline and offline.

    Online model, static batch model (fitted a week before the drift on 4+ weeks of labels)
    and the batch model retrained weekly (offline only): AP per day, drop, recovery days.
    """
    import json

    from benchmarks.drift import DriftArgs, run_drift, write_report
    from benchmarks.parity import jsonable
    from infra.settings import get_settings

    args = DriftArgs(spec, days, customers, seed, online, batch, partitions, envelope,
                     pipeline=not offline_only, day_seconds=day_seconds)
    args.validate()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result, curves = run_drift(args, get_settings(), log=lambda msg: typer.echo(msg, err=True))
    if out is not None:
        typer.echo(f"report: {write_report(result, curves, out, _command_line())}", err=True)
    if as_json:
        print(json.dumps(jsonable(result)), flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"drift {result['drift']} · static drop {result['static_drop']:.1%}",
                  title_justify="left")
    for col in ("model", "measured", "AP week before", "AP 2 weeks after", "drop",
                "recovery days"):
        table.add_column(col, justify="left" if col in ("model", "measured") else "right")
    for m in result["models"]:
        rec = "never" if m["recovery_days"] is None else str(m["recovery_days"])
        table.add_row(m["name"], m["source"], f"{m['ap_week_before']:.3f}",
                      f"{m['ap_two_weeks_after']:.3f}", f"{m['drop']:+.1%}", rec)
    Console().print(table)


def delay(
    data: Path = typer.Option(..., "--data", help="Transactions file with fraud labels."),
    delays: str = typer.Option("1,7,14", "--delays", help="Label delays in days, e.g. 1,7,14."),
    model: str = typer.Option("logreg", "--model", help="Model of workers and evaluator."),
    envelope: int = typer.Option(100, "--envelope", help="Transactions per Kafka message."),
    partitions: int = typer.Option(1, "--partitions", help="Partitions of the run's topics."),
    out: Path = typer.Option(None, "--out", help="Write report.md here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list."),
) -> None:
    """AP, AUC and CP@100 per label delay, through the pipeline beside the offline evaluator."""
    import json

    from benchmarks.delay import parse_delays, rows, run_delays, write_report
    from benchmarks.parity import ParityArgs, jsonable
    from infra.settings import get_settings

    days = parse_delays(delays)
    args = ParityArgs(data, None, model, envelope, partitions, 1)
    args.validate()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = run_delays(args, days, get_settings(), log=lambda msg: typer.echo(msg, err=True))
    table_rows = rows(results)
    if out is not None:
        typer.echo(f"report: {write_report(results, out, _command_line())}", err=True)
    if as_json:
        print(json.dumps(jsonable(results)), flush=True)
        return
    from rich.console import Console
    from rich.table import Table as RichTable

    table = RichTable(title=f"label delay · {model}", title_justify="left")
    for col in ("delay days", "AP pipeline", "AP offline", "AP diff", "drain tx/s"):
        table.add_column(col, justify="right")
    for row in table_rows:
        table.add_row(f"{row[0]:g}", f"{row[1]:.4f}", f"{row[2]:.4f}", f"{row[3]:+.4f}",
                      f"{row[10]:,.0f}")
    Console().print(table)


def feedback(
    days: int = typer.Option(70, "--days", help="Simulated days."),
    customers: int = typer.Option(1000, "--customers", help="Customers (terminals: twice)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the simulated world."),
    model: str = typer.Option("sgd_logreg", "--model", help="The online model (alone, and "
                              "twice in the aggregation): sgd_logreg or logreg_x."),
    budget: int = typer.Option(None, "--budget", help="Cards investigated (and alerted) a "
                               "day; default customers / 50, i.e. 100 for 5,000 cards."),
    hours: float = typer.Option(4.0, "--hours", help="Hours from an alert to its labels."),
    alpha: float = typer.Option(0.5, "--alpha", help="Weight of the feedback model's score."),
    eval_from_day: int = typer.Option(28, "--eval-from-day", help="First evaluated day."),
    day_seconds: float = typer.Option(3.0, "--day-seconds", help="Pipeline: wall-clock "
                                      "seconds per simulated day."),
    drift: str = typer.Option(None, "--drift", help="A drifted world, e.g. night_gang@42 "
                              "(kinds: card_testing, terminal_shift, amount_shift, night_gang)."),
    offline_only: bool = typer.Option(False, "--offline-only", help="Skip the pipeline runs."),
    out: Path = typer.Option(None, "--out", help="Write report.md and feedback.png here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Investigators' feedback: delayed labels only, feedback in one model, aggregation.

    CP@k of the daily alerts and AP, through the pipeline (worker + investigators, replayed in
    event time) beside the offline replay.
    """
    import json

    from benchmarks.feedback import FeedbackArgs, run_feedback, write_report
    from benchmarks.parity import jsonable
    from infra.settings import get_settings

    args = FeedbackArgs(days, customers, seed, model, budget, hours, alpha, eval_from_day,
                        pipeline=not offline_only, day_seconds=day_seconds, drift=drift)
    args.validate()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = run_feedback(args, get_settings(), log=lambda msg: typer.echo(msg, err=True))
    if out is not None:
        typer.echo(f"report: {write_report(result, out, _command_line())}", err=True)
    if as_json:
        print(json.dumps(jsonable(result)), flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    k = result["k"]
    table = Table(title=f"feedback ({result['source']}) · CP@{k} ceiling "
                  f"{result['ceiling']:.3f}", title_justify="left")
    for col in ("contender", f"CP@{k}", "AP", "AUC"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for r in result["runs"]:
        table.add_row(r["name"], f"{r['cp_at_100']:.3f}", f"{r['ap']:.3f}", f"{r['auc']:.3f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Mount ``bench`` (a group whose callback is the full benchmark) and ``bench parity``."""
    group = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    group.callback(invoke_without_command=True)(bench)
    group.command("parity")(parity)
    group.command("drift")(drift)
    group.command("delay")(delay)
    group.command("feedback")(feedback)
    app.add_typer(group, name="bench")
