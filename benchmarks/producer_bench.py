"""Benchmark of the producers package: simulator speed offline, producer speed to a broker.

    python -m benchmarks.producer_bench [--bootstrap HOST:PORT] [--tx 200000] [--json]

Without ``--bootstrap`` a throwaway Apache Kafka broker is started (``infra.broker``) and
stopped at the end. Measured, each as a single run on whatever else the machine is doing:

* simulator: the default handbook world (5,000 cards, 10,000 terminals, 183 days) generated
  and merged with its labels into the event-time timeline - events/s counts transactions and
  labels, tx/s transactions only;
* producer: pre-generated transactions (labels off, so tx/s is what it says) sent to a fresh
  4-partition topic with the production settings of ``producers.sender``, one message per
  transaction and in envelopes of 100; the clock includes encoding and the final flush
  (every message acknowledged), not the simulation.

Targets (issue 3): >= 100,000 simulated events/s; >= 25,000 tx/s one message per
transaction; >= 150,000 tx/s with envelopes of 100.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import uuid
from collections.abc import Iterator

import pandas as pd

TARGETS = {"simulator_events_per_s": 100_000, "producer_tx_per_s_envelope_1": 25_000,
           "producer_tx_per_s_envelope_100": 150_000}


def bench_simulator() -> dict[str, float]:
    from producers.simulator import Simulator
    from producers.timeline import TX, timeline

    started = time.perf_counter()
    n_tx = n_events = 0
    for segment in timeline(Simulator().days()):
        n_events += len(segment)
        n_tx += int((segment["kind"] == TX).sum())
    elapsed = time.perf_counter() - started
    return {"simulator_tx": n_tx, "simulator_events": n_events, "simulator_s": elapsed,
            "simulator_tx_per_s": n_tx / elapsed, "simulator_events_per_s": n_events / elapsed}


def _segments(n_tx: int) -> list[pd.DataFrame]:
    from producers.simulator import Simulator
    from producers.timeline import limit_blocks, timeline
    from producers.world import WorldConfig

    days = max(2, n_tx // 9_000 + 2)
    return list(timeline(limit_blocks(Simulator(WorldConfig(n_days=days)).days(), n_tx),
                         labels=False))


def bench_producer(bootstrap: str, n_tx: int, envelope: int) -> dict[str, float]:
    from infra.settings import TopicSpec, get_settings
    from infra.topics import ensure_topics
    from producers.sender import Sender, close_producer, make_producer

    settings = get_settings().with_bootstrap(bootstrap)
    topic = f"bench-tx-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(topic, 4), TopicSpec(topic + "-labels", 4)])
    segments = _segments(n_tx)
    producer = make_producer(settings.kafka.kafka_python_kwargs())
    try:
        sender = Sender(producer, topic, topic + "-labels", envelope=envelope)
        report = sender.send(segments)
    finally:
        close_producer(producer)
    if report.failed:
        raise RuntimeError(f"{report.failed} sends failed: {report.first_error}")
    key = f"envelope_{envelope}"
    return {f"producer_tx_{key}": report.transactions, f"producer_messages_{key}": report.messages,
            f"producer_s_{key}": report.elapsed_s,
            f"producer_tx_per_s_{key}": report.tx_per_s,
            f"producer_msg_per_s_{key}": report.messages_per_s}


@contextlib.contextmanager
def broker_or_throwaway(bootstrap: str | None) -> Iterator[str]:
    """``bootstrap`` when given, else a throwaway broker (``infra.broker.managed_broker``)
    started for the run and stopped at the end: the one every benchmark command uses."""
    if bootstrap:
        yield bootstrap
        return
    from infra.broker import managed_broker

    with managed_broker() as broker:
        yield broker.bootstrap


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start a throwaway one)")
    parser.add_argument("--tx", type=int, default=200_000, help="transactions per producer run")
    parser.add_argument("--envelope-tx", type=int, default=500_000,
                        help="transactions for the envelope run (it is fast: give it more)")
    parser.add_argument("--skip-producer", action="store_true", help="simulator only")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    from producers.summary import kafka_python_warnings

    results: dict[str, float] = bench_simulator()
    if not args.skip_producer:
        with broker_or_throwaway(args.bootstrap) as bootstrap:
            results.update(bench_producer(bootstrap, args.tx, 1))
            results.update(bench_producer(bootstrap, args.envelope_tx, 100))
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    for warning in kafka_python_warnings():
        print(f"warning: {warning}")
    print(f"simulator: {results['simulator_tx']:,} tx + labels = "
          f"{results['simulator_events']:,} events in {results['simulator_s']:.2f} s -> "
          f"{results['simulator_events_per_s']:,.0f} events/s "
          f"({results['simulator_tx_per_s']:,.0f} tx/s)")
    for env in (1, 100):
        key = f"envelope_{env}"
        if f"producer_tx_per_s_{key}" in results:
            print(f"producer, envelope {env:>3}: {results[f'producer_tx_{key}']:,} tx in "
                  f"{results[f'producer_messages_{key}']:,} messages, "
                  f"{results[f'producer_s_{key}']:.2f} s -> "
                  f"{results[f'producer_tx_per_s_{key}']:,.0f} tx/s "
                  f"({results[f'producer_msg_per_s_{key}']:,.0f} msg/s)")
    for name, target in TARGETS.items():
        if name in results:
            verdict = "ok" if results[name] >= target else "BELOW TARGET"
            print(f"  {name}: {results[name]:,.0f} (target {target:,}) {verdict}")
    return results


if __name__ == "__main__":
    main()
