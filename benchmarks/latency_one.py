"""One worker at a fixed offered rate: end-to-end latency quantiles of one configuration.

    python -m benchmarks.latency_one [--bootstrap HOST:PORT] [--model logreg]
                                     [--mode event|microbatch|envelope] [--envelope 1]
                                     [--rate 2000] [--tx 20000] [--linger-ms 20]
                                     [--visible]

``fraudstream bench`` measures the latency of four modes in its run; this measures one in a
minute, to compare two commits or two settings (run each alternately: this machine's speed
drifts). Latency is ``scored_at - produced_at`` of every score, as in the bench: the
producer's batching (``--linger-ms``, and ``--max-wait-ms`` of envelopes), the broker, the
worker's buffers and its scoring. The slowest 1% are also shown as clusters of consecutive
transactions: a cluster is a stall (a collector pass, a flush), scattered ones are load.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def slow_clusters(produced_at: np.ndarray, latency_ms: np.ndarray, gap: int = 20,
                  quantile: float = 99.0) -> list[tuple[float, int, float]]:
    """``(first produced_at, size, worst ms)`` of each run of transactions above the
    ``quantile``, in production order; two slow ones at most ``gap`` transactions apart are
    one run.

    >>> t = np.arange(10.0); lat = np.array([1, 1, 9, 9, 1, 1, 1, 1, 1, 8.0])
    >>> slow_clusters(t, lat, gap=2, quantile=70)
    [(2.0, 2, 9.0), (9.0, 1, 8.0)]
    """
    order = np.argsort(produced_at, kind="stable")
    produced_at, latency_ms = produced_at[order], latency_ms[order]
    slow = np.flatnonzero(latency_ms > np.percentile(latency_ms, quantile))
    if not len(slow):
        return []
    runs = np.split(slow, np.flatnonzero(np.diff(slow) > gap) + 1)
    return [(float(produced_at[r[0]]), len(r), float(latency_ms[r].max())) for r in runs]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency_one",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start a throwaway one)")
    parser.add_argument("--model", default="logreg")
    parser.add_argument("--mode", choices=("event", "microbatch", "envelope"), default="event")
    parser.add_argument("--envelope", type=int, default=1, help="transactions per message")
    parser.add_argument("--rate", type=float, default=2000.0, help="offered tx/s")
    parser.add_argument("--tx", type=int, default=20_000, help="transactions sent")
    parser.add_argument("--linger-ms", type=int, default=None,
                        help="the producer's linger.ms (default: fraudstream produce's, 20)")
    parser.add_argument("--visible", action="store_true",
                        help="also when each score became readable (read_committed)")
    args = parser.parse_args(argv)
    if args.envelope < 1 or args.tx < 100 or args.rate <= 0:
        parser.error("--envelope must be at least 1, --tx at least 100, --rate above 0")
    if args.mode == "envelope" and args.envelope < 2:
        parser.error("--mode envelope needs --envelope 2 or more")

    from benchmarks.pipeline import Bench, World, run_latency
    from benchmarks.producer_bench import broker_or_throwaway
    from infra.settings import Settings

    with broker_or_throwaway(args.bootstrap) as bootstrap:
        bench = Bench(Settings().with_bootstrap(bootstrap),
                      Path(tempfile.mkdtemp(prefix="fraudstream-latency-")))
        r = run_latency(bench, World(2000, 4000, 120), args.model, args.mode, args.envelope,
                        args.tx, args.rate, linger_ms=args.linger_ms, visible=args.visible)
    # the scores after the warm-up, as run_latency kept them
    clusters = slow_clusters(np.asarray(r["_produced_at"], dtype=float),
                             np.asarray(r["_lat_ms"], dtype=float))
    print(f"{args.model}/{args.mode} {args.envelope}, {r['offered_tx_per_s']:,.0f} tx/s offered, "
          f"linger {args.linger_ms if args.linger_ms is not None else 'default'}: "
          f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f}, p99 {r['p99_ms']:.1f}, "
          f"max {r['max_ms']:.1f} ({r['n']:,} scores after the warm-up); slowest 1% in "
          f"{len(clusters)} runs, the largest {max((c[1] for c in clusters), default=0)} "
          f"transactions", flush=True)
    if args.visible and "visible_p50_ms" in r:
        print(f"readable by a read_committed consumer ({r['visible_n']:,} scores): "
              f"p50 {r['visible_p50_ms']:.1f} ms, p95 {r['visible_p95_ms']:.1f}, "
              f"p99 {r['visible_p99_ms']:.1f}", flush=True)
    return {k: v for k, v in r.items() if not k.startswith("_")}


if __name__ == "__main__":
    main(sys.argv[1:])
