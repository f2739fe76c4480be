"""Which benchmark processes are still alive (a benchmark must stop everything it started)."""

from __future__ import annotations

from pathlib import Path

WORKER_COMMANDS = ("fraudstream worker", "benchmarks.bare_faust")


def live_workers(work_root: Path) -> list[str]:
    """Command lines of live worker (or bare Faust) processes whose environment names
    ``work_root``: the run's state directory is under it, so another run's are not counted."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if any(c in cmd for c in WORKER_COMMANDS) and str(work_root).encode() in env:
            found.append(cmd)
    return found
