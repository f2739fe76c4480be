"""CPU time and peak memory of a process and its descendants, read from Linux ``/proc``.

Why ``/proc`` rather than ``resource.getrusage(RUSAGE_CHILDREN)``: the benchmark must read a
worker's figures *before* stopping it (a graceful stop flushes, commits and leaves the group,
which is not drain work), and ``getrusage`` only sees children once they have been reaped.
Every function returns 0 for a process that is gone, so a sample taken during a race with an
exit never fails a run.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (which may contain spaces)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...), from the ppid links."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and of its children, live (utime+stime) or reaped
    (cutime+cstime, which the kernel adds to the parent when it waits for them)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in (pid, *descendants(pid)):
        fields = _stat_fields(p)
        if fields is not None:  # fields[11:15]: utime, stime, cutime, cstime
            total += sum(int(f) for f in fields[11:15])
    return total / tick


def peak_rss_bytes(pid: int) -> int:
    """High-water resident set (``VmHWM``) of ``pid`` plus that of each live descendant.

    Summing the descendants' peaks is an upper bound on the tree's peak (they need not have
    peaked at the same moment); a worker normally has no children, so it is its own VmHWM.
    """
    total = 0
    for p in (pid, *descendants(pid)):
        try:
            text = (PROC / str(p) / "status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024  # kB
                break
    return total
