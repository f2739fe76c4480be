"""Worker crash: SIGKILL at five seeded moments, restart on the same state; nothing lost.

``streams.chaos.run_worker_crash`` does the run (20,000 transactions here, 200,000 in
``fraudstream chaos``) and checks, from what is in Kafka and in an append-only audit of every
model update the incarnations made:

* loss = 0: every transaction id on the transactions topic has a score;
* raw duplicates in ``scores`` are counted; keyed by tx_id each id is there once, and every
  re-sent copy carries the same score and features as the first (answered from card state);
* no label went through ``learn_one`` twice, across all incarnations, and none is twice in
  the lineage of the final model (snapshot it loaded + what it learned since, recursively);
* card state recovered from the changelog: amount, time and customer features of late
  transactions equal ``models.features.FeatureEngine`` computed offline on the same events.

Labels learned after the last snapshot are forgotten by the model when the worker dies (the
card state, which is in the changelog, says they are done): reported as "labels lost to
snapshot rollback", not asserted, because it is the current design (see the report).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from streams.chaos import run_worker_crash

pytestmark = pytest.mark.integration


def test_five_sigkills_lose_nothing_and_learn_nothing_twice(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    report = run_worker_crash(kafka_settings, tmp_path, n_tx=20_000, kills=5, seed=11)
    print("\n".join(report.lines()))
    figures = report.figures
    assert figures["transactions sent"] == 20_000
    assert figures["transactions lost"] == 0
    assert figures["labels learned twice (calls)"] == 0
    assert figures["feature spot-checks"] == "50/50 equal offline"
    assert not report.problems, report.problems
