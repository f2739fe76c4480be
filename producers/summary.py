"""What the user sees while and after sending: a progress bar and a closing summary."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.pacing import Pacer
from producers.sender import SendReport


def kafka_python_warnings() -> list[str]:
    """Known kafka-python slow paths that this environment would hit."""
    try:
        from kafka.record import util
    except ImportError:  # pragma: no cover
        return []
    if getattr(util, "crc32c_c", None) is None:
        return [
            "the 'crc32c' package is not installed: kafka-python falls back to a pure-Python "
            "CRC-32C and sends several times slower (pip install crc32c)"
        ]
    return []


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def progress_bar(
    span: tuple[float, float], enabled: bool = True
) -> Iterator[Callable[[SendReport], None] | None]:
    """A rich progress bar over simulated time, refreshed at most 5 times a second.

    Yields the callback for ``Sender.send`` (None when disabled). The bar measures simulated
    time, not events, because a simulation's event count is only known at its end.
    """
    if not enabled:
        yield None
        return
    first, last = span
    progress = Progress(
        TextColumn("[bold]sending"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = progress.add_task("", total=max(last - first, 1.0))
    state = {"shown": 0.0, "started": time.monotonic()}

    def update(report: SendReport) -> None:
        now = time.monotonic()
        if now - state["shown"] < 0.2:
            return
        state["shown"] = now
        elapsed = max(now - state["started"], 1e-9)
        current = report.last_event_time or report.first_event_time or first
        progress.update(
            task,
            completed=min(max(current - first, 0.0), last - first),
            description=(
                f"{report.transactions:,} tx, {report.labels:,} labels, "
                f"{report.transactions / elapsed:,.0f} tx/s"
            ),
        )

    with progress:
        yield update
        progress.update(task, completed=last - first)


def summary_table(report: SendReport, source: str, pacer: Pacer, envelope: int) -> Table:
    """The closing summary: what was sent where, how fast, and any failures."""
    table = Table(title="fraudstream produce: summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    rows = [
        ("source", source),
        ("pacing", pacer.description),
        ("envelope", "one message per event" if envelope == 1 else f"up to {envelope} events"),
        ("transactions sent", f"{report.transactions:,}"),
        ("labels sent", f"{report.labels:,}"),
        ("Kafka messages", f"{report.messages:,}"),
        *((f"  to {topic}", f"{n:,}") for topic, n in report.per_topic.items()),
        ("payload", f"{report.bytes / 1e6:,.1f} MB"),
        ("event time", f"{_iso(report.first_event_time)} .. {_iso(report.last_event_time)}"),
        ("elapsed", f"{report.elapsed_s:,.2f} s"),
        ("rate", f"{report.tx_per_s:,.0f} tx/s, {report.messages_per_s:,.0f} msg/s"),
        ("failed", f"{report.failed:,}" + (f" ({report.first_error})" if report.failed else "")),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table
