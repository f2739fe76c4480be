"""Whether a batch of transactions must wait for its partitions' labels to be read.

Why: a label is learned just before the first transaction at or after its ``known_at``
(``streams.label_clock``), which is the offline evaluator's order, but only if it has been
*read* by then. The transactions and the labels are read by two agents at their own pace. In
envelope mode the worker fetches 1 MiB at a time (``Settings.fetch_bytes``), so
one fetch can bring days of a partition's transactions, and pausing the fetch of partitions
that run ahead of the labels read (``FraudApp._align_event_time``) comes too late: the
transactions agent scored them before the labels agent had read the labels known by then,
and those were learned late. Measured: ``tests/benchmarks/test_drift_bench.py::
test_delay_bench_through_the_pipeline`` (11,003 transactions, one partition, envelopes of
100) failed in CI on 2026-12-02 with AUC -0.0074 against the evaluator (bound 0.005), having
passed before. A batch now waits, at most ``LABEL_WAIT_S``, until each of its partitions'
labels have been read up to the batch's last event time, that partition's labels are all
read, or they are paused for holding too many (waiting for them then could only stall).

>>> behind = labels_behind({0: 120.0, 1: 90.0, 2: 300.0}, labels_read={0: 100.0, 1: 95.0},
...                        paused={2}, caught_up=lambda p: False)
>>> behind
{0: 120.0}
>>> labels_behind({0: 120.0}, labels_read={}, paused=set(), caught_up=lambda p: True)
{}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping

LABEL_WAIT_S = 1.0
"""The longest one batch waits for labels: a labels partition that is slow to be fetched
delays scoring, never stops it (the labels are then learned late, as before)."""


def labels_behind(needs: Mapping[int, float], labels_read: Mapping[int, float],
                  paused: Collection[int], caught_up: Callable[[int], bool]) -> dict[int, float]:
    """The partitions of ``needs`` (partition -> the batch's last event time there) whose
    labels have not been read up to that time and may still come: not all read
    (``caught_up``) and not paused for holding too many (``paused``)."""
    return {p: t for p, t in needs.items()
            if labels_read.get(p, -math.inf) < t and p not in paused and not caught_up(p)}
