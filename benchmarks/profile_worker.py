"""Where a draining worker's time goes: py-spy samples grouped by the pipeline's stages.

    python -m benchmarks.profile_worker [--bootstrap HOST:PORT] [--envelope 1] [--seconds 20]
                                        [--out reports/profile/event.md]

``fraudstream bench`` says how fast each configuration is; this says why. It puts a backlog on
the broker, starts a real ``fraudstream worker`` on it, lets it warm up, records it with
py-spy (``pip install -e '.[profile]'``; it needs ptrace rights over the worker) and prints the share of
the worker's busy main-thread samples per stage: is it the model, the card state, JSON, the
producer, or Faust itself? One run on whatever else the machine is doing: shares, not rates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model (predict)", ("ModelRuntime.predict_many",)),
    ("model (learn, snapshots)", ("ModelRuntime.learn", "FraudApp._snapshot")),
    ("features", ("customer_features", "time_features", "TerminalReplica.features",
                  "TerminalReplica.record_tx")),
    ("card state: decode, encode, store write", ("Processor._store", "Processor._card")),
    ("input JSON decode and checks", ("Processor.decode_transactions",)),
    ("score and alert JSON", ("Processor._score_message", "Processor._alert_message")),
    ("other processor work", ("Processor.score", "Processor.learn")),
    ("changelog messages to the producer", ("CardTable.publish",)),
    ("score/alert/DLQ messages to the producer", ("FraudApp._send",)),
)
"""Checked in order: a sample goes to the first stage one of whose frames is on its stack."""

OTHER = "Faust: delivery to the agent, acks, commits, timers"
MAIN_THREAD = "run_worker"  # frames of the worker's own event loop, not the consumer thread


def stage_shares(collapsed: Iterable[str]) -> tuple[Counter[str], int]:
    """Samples per stage among the busy main-thread samples of a py-spy ``raw`` profile.

    >>> lines = ["run_worker;Handle._run;Processor.score;ModelRuntime.predict_many 3",
    ...          "run_worker;BaseEventLoop._run_once;EpollSelector.select (selectors.py:468) 5",
    ...          "run_worker;Handle._run;Stream._c_aiter 1", "Thread._bootstrap;Fetcher 9"]
    >>> shares, idle = stage_shares(lines)
    >>> dict(shares), idle
    ({'model (predict)': 3, 'Faust: delivery to the agent, acks, commits, timers': 1}, 5)
    """
    shares: Counter[str] = Counter()
    idle = 0
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or MAIN_THREAD not in stack:
            continue
        frames = [frame.split(" (")[0] for frame in stack.split(";")]
        if frames[-1].endswith(".select"):
            idle += int(count)
            continue
        on_stack = set(frames)
        stage = next((name for name, marks in STAGES if on_stack.intersection(marks)), OTHER)
        shares[stage] += int(count)
    return shares, idle


def markdown(shares: Counter[str], idle: int) -> str:
    busy = sum(shares.values())
    rows = ["| stage | share of busy samples |", "|---|---|"]
    for name in [n for n, _ in STAGES] + [OTHER]:
        rows.append(f"| {name} | {100 * shares[name] / max(busy, 1):.1f}% |")
    total = busy + idle
    rows.append(f"\n{busy:,} busy and {idle:,} idle main-thread samples "
                f"({100 * idle / max(total, 1):.0f}% idle).")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start a throwaway one)")
    parser.add_argument("--tx", type=int, default=80_000, help="transactions in the backlog")
    parser.add_argument("--envelope", type=int, default=1, help="transactions per message")
    parser.add_argument("--model", default="logreg")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to record")
    parser.add_argument("--warmup", type=float, default=5.0, help="scoring time before it")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        parser.exit(2, "profile_worker: py-spy is not installed (pip install py-spy)\n")

    from benchmarks.pipeline import Bench, World, make_backlog
    from benchmarks.producer_bench import broker_or_throwaway
    from infra.settings import Settings
    from infra.topics import ensure_topics
    from streams.demo_processes import WorkerProcess

    work = Path(tempfile.mkdtemp(prefix="fraudstream-profile-"))
    with broker_or_throwaway(args.bootstrap) as bootstrap:
        bench = Bench(Settings().with_bootstrap(bootstrap), work)
        backlog = make_backlog(bench, "profile", World(2000, 4000, 60), args.tx, args.envelope)
        mode = "event" if args.envelope == 1 else "envelope"
        settings = bench.settings(backlog.topics, app_id=f"profile-{bench.tag}",
                                  model=args.model, processing_mode=mode)
        ensure_topics(settings)
        worker = WorkerProcess(settings, "w0", work / "logs").start()
        try:
            worker.wait_ready(180)
            deadline = time.monotonic() + 180
            while float(worker.stats()["totals"]["transactions"]) == 0:
                if time.monotonic() > deadline:
                    parser.exit(1, "profile_worker: the worker scored nothing in 180 s\n")
                time.sleep(0.2)
            time.sleep(args.warmup)
            out = work / "profile.txt"
            subprocess.run([py_spy, "record", "-p", str(worker.process.pid), "-d",  # type: ignore[union-attr]
                            str(int(args.seconds)), "-r", "200", "-f", "raw", "-o", str(out)],
                           check=True, capture_output=True)
            scored = float(worker.stats()["totals"]["transactions"])
        finally:
            worker.stop()
    shares, idle = stage_shares(out.read_text().splitlines())
    command = "python -m benchmarks.profile_worker " + " ".join(argv or sys.argv[1:])
    report = (f"# Worker profile: {args.model}, {mode}, {args.envelope} tx per message\n\n"
              f"`{command.strip()}` on {time.strftime('%Y-%m-%d %H:%M %Z')}, "
              f"{os.cpu_count()} cores. "
              f"py-spy, {args.seconds:.0f} s at 200 Hz after {args.warmup:.0f} s of scoring; "
              f"{scored:,.0f} of {args.tx:,} transactions scored at the end; their labels flow "
              f"too (the backlog has them), so the worker learns while it scores.\n\n"
              + markdown(shares, idle))
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report + "\n")
    return report


if __name__ == "__main__":
    main()
