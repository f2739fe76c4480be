"""``fraudstream chaos``: the reliability scenarios of issue 7, run against real processes.

Each scenario starts a real ``fraudstream worker`` (and producer) against a real Apache Kafka
broker, does something unpleasant to it and reads back what came out of Kafka:

* ``bad-input``: property-generated malformed events (hypothesis) mixed with valid ones;
* ``crash``: SIGKILL the worker at seeded random moments and restart it on the same state;
* ``broker-restart``: stop and restart the broker under a running producer and worker;
* ``leader-kill`` / ``controller-kill``: on a 3-node cluster, SIGKILL the node leading the most
  partitions (or the active controller) under a running producer and worker, restart it;
* ``link-cut``: two workers on hosts of their own (network namespaces), one host's link cut
  under load and restored later (``reliability.link_cut``; needs root);
* ``backpressure``: produce three times faster than the worker can score, watch lag drain;
* ``sasl``: the whole pipeline on a SASL_SSL + SCRAM-SHA-512 broker, plus refused clients;
* ``integrity``: a tampered model snapshot at start.

The tests in ``tests/reliability`` call the same functions at CI sizes; this command runs them
at full size and prints the figures (sent, lost, duplicated, dead-lettered, lag, drain time).
A scenario returns a ``Report`` (``reliability.scenario``): its figures plus a list of
``problems``, empty when every claim held, so a test asserts ``not report.problems`` and a
human reads the same numbers. Each scenario is a module of its own (``reliability.bad_input``,
``reliability.worker_crash``, ``reliability.broker_restart``, ``reliability.node_kill``,
``reliability.backpressure``,
``reliability.sasl_check``, ``reliability.model_integrity``); this one is the command that
runs them and writes the Markdown report kept in git.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

from fraudstream.errors import FraudstreamError
from infra.settings import Settings
from reliability.backpressure import run_backpressure
from reliability.bad_input import run_bad_input
from reliability.broker_restart import run_broker_restart
from reliability.link_cut import run_link_cut
from reliability.model_integrity import run_integrity
from reliability.node_kill import run_node_kill
from reliability.sasl_check import run_sasl_check
from reliability.scenario import Report
from reliability.worker_crash import run_worker_crash

SCENARIOS = ("bad-input", "crash", "broker-restart", "leader-kill", "controller-kill",
             "link-cut", "backpressure", "sasl", "integrity")


@contextlib.contextmanager
def _kafka(settings: Settings) -> Iterator[str]:
    from infra.kafka_provider import provide_kafka

    with provide_kafka(settings) as provided:
        yield provided.bootstrap


def chaos(
    only: list[str] = typer.Option(None, "--only", help=f"Scenario(s): {', '.join(SCENARIOS)}."),
    scale: float = typer.Option(1.0, min=0.001, help="Multiply every size (0.1 for a quick run)."),
    seed: int = typer.Option(7, help="Seed of the generated events and kill moments."),
    out: Path = typer.Option(Path("reports/chaos"), help="Work directory and report."),
) -> None:
    """Run the reliability scenarios at full size and print the figures (issue 7)."""
    from infra.settings import get_settings

    chosen = list(only or SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise FraudstreamError(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    base = get_settings()
    out = out.resolve()  # the SASL broker reads its keystores from here, in its own cwd
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    reports: list[Report] = []

    def size(n: float) -> int:
        return max(1, int(n * scale))

    def emit(report: Report) -> None:
        reports.append(report)
        for line in report.lines():
            typer.echo(line)

    runs: dict[str, Callable[[Settings, Path], Report]] = {
        "bad-input": lambda s, d: run_bad_input(s, d, n_malformed=size(10_000), seed=seed),
        "crash": lambda s, d: run_worker_crash(s, d, n_tx=size(200_000), seed=seed),
        "backpressure": lambda s, d: run_backpressure(s, d, burst_s=max(10.0, 60.0 * scale),
                                                      seed=seed),
    }
    on_shared = [s for s in chosen if s in runs]
    if on_shared:
        with _kafka(base) as bootstrap:
            for name in on_shared:
                emit(runs[name](base.with_bootstrap(bootstrap), out / f"{stamp}-{name}"))
    if "broker-restart" in chosen:
        emit(run_broker_restart(base.cache_dir, out / f"{stamp}-broker-restart",
                                n_tx=size(50_000), seed=seed))
    for target in ("leader", "controller"):
        if f"{target}-kill" in chosen:
            emit(run_node_kill(base.cache_dir, out / f"{stamp}-{target}-kill", target=target,
                               n_tx=size(30_000), seed=seed))
    if "link-cut" in chosen:
        emit(run_link_cut(base.cache_dir, out / f"{stamp}-link-cut", n_tx=size(30_000),
                          seed=seed))
    if "sasl" in chosen:
        emit(run_sasl_check(base.cache_dir, out / f"{stamp}-sasl", n_tx=size(5_000)))
    if "integrity" in chosen:
        emit(run_integrity(base, out / f"{stamp}-integrity"))
    summary = {r.name: {"ok": r.ok, "seconds": round(r.seconds), **r.figures,
                        "problems": r.problems} for r in reports}
    path = out / f"{stamp}-figures.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    command = "fraudstream chaos" + "".join(f" --only {c}" for c in (only or [])) + (
        f" --scale {scale:g}" if scale != 1.0 else "") + f" --seed {seed}"
    md = out / "report.md"
    md.write_text(markdown_report(reports, command, stamp))
    typer.echo(f"figures: {path}\nreport: {md}")
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def markdown_report(reports: list[Report], command: str, stamp: str) -> str:
    """The figures of a chaos run as Markdown, the form kept in git (work dirs are not)."""
    import platform

    lines = ["# fraudstream chaos", "",
             f"Run `{command}` at {stamp} (local time) on {platform.node() or 'this machine'}: "
             f"{os.cpu_count()} cores, Apache Kafka 4.1 (project-managed, same machine). "
             "Every figure was measured in that run.", ""]
    for r in reports:
        lines += [f"## {r.name}: {'OK' if r.ok else 'FAILED'} ({r.seconds:.0f} s)", "",
                  "| figure | value |", "|---|---|"]
        for k, v in r.figures.items():
            text = str(v).replace("|", "\\|")
            lines.append(f"| {k} | {text if len(text) <= 200 else text[:197] + '...'} |")
        lines += [f"- problem: {p}" for p in r.problems]
        lines.append("")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("chaos")(chaos)

