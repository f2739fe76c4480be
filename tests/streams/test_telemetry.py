"""The worker's metrics: a batch observed at once reads exactly as one value at a time."""

from __future__ import annotations

import time

from streams.stage_times import STAGES, StageTimes
from streams.telemetry import Telemetry


def _latency_lines(t: Telemetry) -> list[str]:
    return [line for line in t.prometheus().decode().splitlines()
            if line.startswith("fraudstream_e2e_latency_seconds_")
            and "_created" not in line]


def test_bulk_latencies_fill_the_same_buckets_as_single_observations() -> None:
    values = [0.0, 0.0005, 0.001, 0.0011, 0.025, 0.3, 2.5, 30.0, 100.0]  # bounds included
    one, bulk = Telemetry("a"), Telemetry("b")
    for v in values:
        one.observe_latency(v)
    bulk.observe_latencies(values[:4])
    bulk.observe_latencies(values[4:])
    bulk.observe_latencies([])
    assert _latency_lines(one) == _latency_lines(bulk)
    assert any(line.endswith(" 9.0") for line in _latency_lines(bulk))  # the +Inf bucket


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def test_processor_time_is_what_the_timed_stages_left() -> None:
    times = StageTimes()
    begun = times.begin()
    t = times.start()
    _busy(20)
    times.stop("model", t)
    _busy(10)
    times.end(begun)
    s = times.seconds()
    assert set(s) == set(STAGES)
    assert s["model"] >= 0.020 and 0.010 <= s["processor"] < s["model"]
    assert s["decode"] == s["state"] == 0.0
