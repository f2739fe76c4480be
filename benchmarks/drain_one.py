"""One worker draining one backlog: tx/s, CPU-µs per transaction by stage, card writes.

    python -m benchmarks.drain_one [--bootstrap HOST:PORT] [--model sgd_logreg,logreg]
                                   [--envelope 500] [--tx 100000] [--no-labels]
                                   [--mode event|microbatch|envelope]
                                   [--workers 2 --learning local|shared|trainer]
                                   [--stop-after N] [--backlogs FILE]

``fraudstream bench`` measures everything in half an hour; this measures one configuration in
a minute, which is what comparing two commits needs. The backlog (a simulated world, the
same as the bench's) is put on the broker once and its topics are remembered in ``--backlogs``
(default ``.fraudstream/drain-backlogs.json``), so a second run, or a run of another checkout
against the same broker (``PYTHONPATH=/path/to/checkout python /path/to/drain_one.py``),
drains the very same messages. With labels, the AP of the scores read back is printed too
(against the simulator's ground truth for the same world).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _backlog(bench: Any, path: Path, envelope: int, n_tx: int) -> Any:
    from benchmarks.pipeline import Backlog, World, make_backlog
    from infra.settings import TopicSettings

    key = f"{bench.base.kafka.bootstrap_servers}|{envelope}|{n_tx}"
    saved = json.loads(path.read_text()) if path.exists() else {}
    if key in saved:
        b = saved[key]
        return Backlog(b["name"], TopicSettings(**b["topics"]), b["n_tx"], envelope)
    backlog = make_backlog(bench, f"drain{envelope}", World(2000, 4000, 120), n_tx, envelope)
    saved[key] = {"name": backlog.name, "topics": backlog.topics.model_dump(),
                  "n_tx": backlog.n_tx}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1))
    return backlog


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drain_one",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start a throwaway one)")
    parser.add_argument("--model", default="sgd_logreg", help="comma-separated model names")
    parser.add_argument("--envelope", type=int, default=500, help="transactions per message")
    parser.add_argument("--tx", type=int, default=100_000, help="transactions in the backlog")
    parser.add_argument("--no-labels", action="store_true", help="scoring only")
    parser.add_argument("--mode", choices=("event", "microbatch", "envelope"),
                        help="processing mode (default: envelope for --envelope > 1, else event);"
                             " FRAUDSTREAM_* variables set the rest (e.g. _MICROBATCH_WITHIN_S)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--learning", choices=("local", "shared", "trainer"), default="local",
                        help="who learns with several workers (FRAUDSTREAM_LEARNING)")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop once this many transactions are scored (a prefix)")
    parser.add_argument("--backlogs", type=Path, default=Path(".fraudstream/drain-backlogs.json"))
    args = parser.parse_args(argv)
    if args.envelope < 1 or args.tx < 1 or args.workers < 1:
        parser.error("--envelope, --tx and --workers must be at least 1")

    import tempfile

    from benchmarks.pipeline import Bench, RunSpec, World, accuracy, ground_truth, run_drain
    from benchmarks.producer_bench import broker_or_throwaway
    from infra.settings import Settings

    results = []
    with broker_or_throwaway(args.bootstrap) as bootstrap:
        bench = Bench(Settings().with_bootstrap(bootstrap), Path(tempfile.mkdtemp(
            prefix="fraudstream-drain-")))
        backlogs = args.backlogs if args.bootstrap else bench.work / "backlogs.json"
        backlog = _backlog(bench, backlogs, args.envelope, args.tx)
        mode = args.mode or ("envelope" if args.envelope > 1 else "event")
        truth = None if args.no_labels else ground_truth(bench, World(2000, 4000, 120), args.tx)
        for model in args.model.split(","):
            r = run_drain(bench, RunSpec(f"{model}/{mode} {args.envelope}", model, mode,
                                         backlog, learn=not args.no_labels,
                                         workers=args.workers, learning=args.learning,
                                         stop_after=args.stop_after))
            quality = ""
            if truth is not None and r.get("_rows") is not None:
                r.update(accuracy(r["_rows"], truth))
                quality = f"AP {r['ap']:.3f} AUC {r['auc']:.3f}, "
            stages = " ".join(f"{k}={v:.1f}" for k, v in r.get("stages_us", {}).items())
            print(f"{r['label']}{'' if args.no_labels else ', labels'}: {r['scored']:,} scored, "
                  f"{r['tx_per_s']:,.0f} tx/s, {quality}{r['cpu_s_per_mtx']:,.0f} CPU-us per tx "
                  f"[{stages}] card writes per tx {r.get('card_writes_per_tx', 0):.2f}, "
                  f"peak RSS {r.get('peak_rss_mb', 0):.0f} MB, longest event-loop stall "
                  f"{r.get('loop_stall_max_s', 0):.2f} s", flush=True)
            results.append({k: v for k, v in r.items() if not k.startswith("_")})
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
