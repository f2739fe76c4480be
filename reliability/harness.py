"""Feed the real pipeline and read its scores back: for tests, benchmarks and chaos.

``produce`` runs the same ``fraudstream produce`` a user runs, with the settings passed through
the environment, and ``collect_scores`` reads the scores topic from the start, so what is
measured or asserted is the deployed pipeline, not a stand-in. The worker process itself is
the demo's (``streams.demo_processes.WorkerProcess``); these helpers are not, because the
product never needs them.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fraudstream.errors import FraudstreamError
from infra.settings import Settings, child_env
from streams.demo_processes import FRAUDSTREAM, read_topic
from streams.score_messages import decode_scores


def produce(settings: Settings, *args: str, timeout_s: float = 600.0) -> str:
    """Run ``fraudstream produce ARGS`` against ``settings``; returns its output."""
    done = subprocess.run(
        [*FRAUDSTREAM, "produce", "--no-progress", *args], env=child_env(settings),
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    if done.returncode != 0:
        raise FraudstreamError(f"produce failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


@dataclass
class ScoreLog:
    """What the scores topic holds: every score message, and per transaction how many."""

    bodies: dict[int, dict[str, Any]] = field(default_factory=dict)
    counts: Counter[int] = field(default_factory=Counter)

    @property
    def raw_messages(self) -> int:
        return sum(self.counts.values())

    @property
    def duplicates(self) -> int:
        return self.raw_messages - len(self.counts)


def collect_scores(settings: Settings, expected: set[int], timeout_s: float = 300.0) -> ScoreLog:
    """Read ``scores`` until every expected transaction has a score or the time is up."""
    log = ScoreLog()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = ScoreLog()
        for record in read_topic(settings, settings.topics.scores, idle_s=2.0):
            for body in decode_scores(record.value):
                log.counts[body["tx_id"]] += 1
                log.bodies[body["tx_id"]] = body
        if expected <= set(log.counts):
            return log
        time.sleep(2.0)
    return log
