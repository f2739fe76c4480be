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


def bench_json(command: str, args: list[str], kafka_bootstrap: str, work_root: Path,
               timeout_s: float = 900) -> dict:
    """``fraudstream bench COMMAND ARGS --out WORK/report --json`` against the session broker,
    its temporary files under ``work_root``; the one JSON object it printed."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, TMPDIR=str(work_root), KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    done = subprocess.run(
        [sys.executable, "-m", "fraudstream", "bench", command, *args, "--out",
         str(work_root / "report"), "--json"],
        capture_output=True, text=True, timeout=timeout_s, env=env, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])
