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
    """Nanoseconds spent per stage since the worker started."""

    __slots__ = ("ns",)

    def __init__(self) -> None:
        self.ns: dict[str, int] = dict.fromkeys(STAGES, 0)

    @staticmethod
    def start() -> int:
        return perf_counter_ns()

    def stop(self, stage: str, started: int) -> int:
        """Add the time since ``started`` to ``stage``; returns now (to chain stretches)."""
        now = perf_counter_ns()
        self.ns[stage] += now - started
        return now

    def add(self, stage: str, ns: int) -> None:
        self.ns[stage] += ns

    def total_ns(self) -> int:
        return sum(self.ns.values())

    def inner_ns(self) -> int:
        """The time of every stage but ``processor`` (read before a processor call)."""
        ns = self.ns
        return sum(ns.values()) - ns["processor"]

    def begin(self) -> tuple[int, int]:
        """Start a processor call: this thread's CPU clock and the stages so far."""
        return thread_time_ns(), self.inner_ns()

    def end(self, begun: tuple[int, int]) -> None:
        """End a processor call: the CPU it took that its timed stages did not account for
        goes to ``processor``, so the call's stages add up to its CPU time exactly."""
        cpu = thread_time_ns() - begun[0]
        self.ns["processor"] += cpu - (self.inner_ns() - begun[1])

    def seconds(self) -> dict[str, float]:
        return {stage: ns / 1e9 for stage, ns in self.ns.items()}
