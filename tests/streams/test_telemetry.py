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
    bulk.observe_latencies(values[:4])  # a few: one at a time
    bulk.observe_latencies(values[4:])
    bulk.observe_latencies([])
    for v in values * 3:
        one.observe_latency(v)
    bulk.observe_latencies(values * 3)  # many: bucketed with numpy
    assert _latency_lines(one) == _latency_lines(bulk)
    assert any(line.endswith(" 36.0") for line in _latency_lines(bulk))  # the +Inf bucket


def _busy(ms: float) -> None:
    """Burn ``ms`` of this thread's CPU time (not wall time: the machine may be busy)."""
    end = time.thread_time() + ms / 1000
    while time.thread_time() < end:
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
    assert 0.005 < s["processor"] < s["model"]
    assert abs(sum(s.values()) - 0.030) < 0.005  # the call's CPU time, all of it
    assert s["decode"] == s["state"] == 0.0


def test_time_off_the_cpu_inside_a_call_is_not_counted() -> None:
    """A stretch timed on the wall clock while the thread sleeps (as when preempted) is scaled
    down to the call's CPU time: the stages never add up to more than the CPU used."""
    times = StageTimes()
    begun = times.begin()
    cpu0 = time.thread_time()
    t = times.start()
    time.sleep(0.05)
    _busy(5)
    times.stop("model", t)
    times.end(begun)
    cpu = time.thread_time() - cpu0
    total = sum(times.seconds().values())
    assert total <= cpu + 0.002
    assert times.seconds()["model"] < 0.02  # not the 55 ms of wall time
