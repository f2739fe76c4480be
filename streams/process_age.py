"""How long this process has existed: the clock of a restart's phases in the worker's log.

A restarted worker's time to its first new score (issue 15: at most 10 s after a kill) is
spent in phases no single log line shows: the interpreter and imports, Faust's start-up, the
group join and the read-back before a re-read, the re-read itself. Each phase logs the
process's age, measured from the kernel's own start time of the process, so the first one
(imports) is visible too.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_age_s() -> float | None:
    """Seconds since the kernel started this process; None where ``/proc`` is not there.

    >>> age = process_age_s()
    >>> age is None or 0.0 <= age < 86_400 * 365
    True
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        # Fields after the command name (which may hold spaces) start at field 3, "state";
        # field 22 is the start time in clock ticks since boot.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))


def age_text() -> str:
    """``"3.2 s"`` or ``"unknown"``, for log lines.

    >>> age_text().endswith(" s") or age_text() == "unknown"
    True
    """
    age = process_age_s()
    return "unknown" if age is None else f"{age:.1f} s"
