"""Broker restart: stop the broker under a running producer and worker, start it again.

The scenario starts its own ``LocalBroker`` (the session broker is shared by other tests),
stops it gracefully a third of the way into a paced produce run, keeps it down ~8 s, and
starts it on the same port and data directory. Neither the producer nor the worker is touched:
both must reconnect by themselves (kafka-python retries idempotent sends within
``delivery.timeout.ms``; aiokafka reconnects), the producer must exit 0, and every
transaction must be scored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from reliability.broker_restart import run_broker_restart

pytestmark = pytest.mark.integration


def test_producer_and_worker_ride_out_a_broker_restart(tmp_path: Path) -> None:
    report = run_broker_restart(Settings().cache_dir, tmp_path, n_tx=10_000, down_s=8.0)
    print("\n".join(report.lines()))
    assert report.figures["transactions sent"] == 10_000
    assert report.figures["transactions lost"] == 0
    assert report.figures["outage, stop to ready (s)"] >= 8.0
    assert report.figures["worker survived without restart"] is True
    assert not report.problems, report.problems
