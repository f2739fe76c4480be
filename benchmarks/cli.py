"""``fraudstream bench``: the pipeline benchmark and its report, one command.

Without ``--bootstrap`` a throwaway Apache Kafka broker is started for the run and stopped at
the end, so a benchmark never competes with (or pollutes) a broker someone else is using.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from fraudstream.errors import FraudstreamError


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from infra.broker import managed_broker

    typer.echo("starting a throwaway Kafka broker for the benchmark ...", err=True)
    with managed_broker() as broker:
        yield broker.bootstrap


def bench(
    quick: bool = typer.Option(False, "--quick", help="Small data for CI: checks that every "
                               "measurement runs and the report has every table and chart."),
    out: Path = typer.Option(None, "--out", help="Report directory (default reports/bench, "
                             "or reports/bench-quick with --quick)."),
    bootstrap: str = typer.Option(None, "--bootstrap", help="Use this broker instead of "
                                  "starting a throwaway one."),
    keep_work: bool = typer.Option(False, "--keep-work", help="Keep the temporary work "
                                   "directory (worker logs, ground truth) for debugging."),
) -> None:
    """Drain rates, latency, ceilings, scaling, throughput vs accuracy, drift: one report."""
    from benchmarks.suite import run_bench
    from infra.settings import get_settings

    # SIGTERM -> SystemExit, so that every worker and the throwaway broker are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out_dir = out or Path("reports/bench-quick" if quick else "reports/bench")
    command = "fraudstream bench " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 \
        else "fraudstream bench"
    with _broker(bootstrap) as servers:
        settings = get_settings().with_bootstrap(servers)
        path, problems = run_bench(settings, out_dir, quick, command.strip(),
                                   log=lambda msg: typer.echo(msg, err=True),
                                   keep_work=keep_work)
    typer.echo(str(path))
    if problems:
        raise FraudstreamError("report shape check failed: " + "; ".join(problems))


def register(app: typer.Typer) -> None:
    """Mount ``bench`` on the ``fraudstream`` app."""
    app.command("bench")(bench)
