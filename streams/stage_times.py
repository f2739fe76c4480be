"""Where a worker's time goes, stage by stage, counted while it runs.

A sampling profiler says the same thing but needs ptrace rights and a separate run; these
counters cost two clock reads per timed stretch and are always on, so ``fraudstream bench``
can print CPU-µs per transaction by stage for every run it makes, and ``/api/stats`` shows
them live. The clock is ``time.perf_counter_ns`` (wall time of the worker's event-loop
thread): the stretches timed are pure computation on that thread, so their wall time is their
CPU time, at a fraction of a CPU clock's cost (75 ns against 1 µs here). Each processor call
as a whole is timed on the thread's CPU clock, and what its stages did not account for is
``processor``, so a call's stages add up to its CPU time. Whatever the stages do not cover
(Faust, the Kafka client, the event loop, other threads) is the process's CPU time minus
their sum, which the bench reports as "framework".

>>> times = StageTimes()
>>> t = times.start()
>>> _ = times.stop("decode", t)
>>> sorted(times.seconds()) == sorted(STAGES) and times.seconds()["decode"] >= 0
True
"""

from __future__ import annotations

from time import perf_counter_ns, thread_time_ns

STAGES: tuple[str, ...] = ("decode", "state", "features", "model", "output", "processor")
"""decode: JSON and checks; state: card reads, encodes and store writes; features: the
feature definitions and the terminal replica; model: predict and learn (snapshots included);
output: score, alert and dead-letter messages built and handed to the producer, changelog
included; processor: the rest of the processor's own work (event-time label bookkeeping,
re-delivery checks, telemetry)."""


class StageTimes:
    """Nanoseconds of CPU spent per stage since the worker started.

    Within a processor call (``begin``/``end``) stretches are timed on the wall clock, which
    is cheap, into a scratch pad; ``end`` reads the thread's CPU clock once and scales the
    call's stretches by CPU over wall time, so a call preempted by the broker or another
    process on a busy machine does not count the time it was off the CPU.
    """

    __slots__ = ("_open", "ns")

    def __init__(self) -> None:
        self.ns: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._open: dict[str, int] | None = None  # the wall-clock stretches of the open call

    @staticmethod
    def start() -> int:
        return perf_counter_ns()

    def stop(self, stage: str, started: int) -> int:
        """Add the time since ``started`` to ``stage``; returns now (to chain stretches)."""
        now = perf_counter_ns()
        self.add(stage, now - started)
        return now

    def add(self, stage: str, ns: int) -> None:
        """Add wall-clock ``ns`` to ``stage`` (scaled to CPU at the end of the open call)."""
        pad = self._open
        if pad is None:
            self.ns[stage] += ns
        else:
            pad[stage] = pad.get(stage, 0) + ns

    def add_cpu(self, stage: str, ns: int) -> None:
        """Add CPU ``ns`` measured by the caller (outside processor calls)."""
        self.ns[stage] += ns

    def total_ns(self) -> int:
        return sum(self.ns.values())

    def begin(self) -> tuple[int, int]:
        """Start a processor call (calls do not nest): both clocks now."""
        self._open = {}
        return thread_time_ns(), perf_counter_ns()

    def end(self, begun: tuple[int, int]) -> None:
        """End a processor call: its stretches, scaled to its CPU time, go to their stages
        and the CPU they do not account for to ``processor``; the call adds exactly its CPU
        time to the totals."""
        cpu = thread_time_ns() - begun[0]
        wall = perf_counter_ns() - begun[1]
        pad, self._open = self._open or {}, None
        scale = min(1.0, cpu / wall) if wall > 0 else 1.0
        ns = self.ns
        counted = 0
        for stage, spent in pad.items():
            share = int(spent * scale)
            ns[stage] += share
            counted += share
        ns["processor"] += cpu - counted

    def seconds(self) -> dict[str, float]:
        return {stage: ns / 1e9 for stage, ns in self.ns.items()}
