"""Worker crash: SIGKILL at five seeded moments, restart on the same state.

``reliability.worker_crash.run_worker_crash`` does the run once for this module (20,000 transactions
here, 200,000 in ``fraudstream chaos``) and checks, from what is in Kafka and in an
append-only audit of every model update the incarnations made:

* loss: every transaction id on the transactions topic has a score;
* raw duplicates in ``scores`` are counted; keyed by tx_id each id is there once, and every
  re-sent copy carries the same score and features as the first (answered from card state,
  or from the score already published when the kill lost the card's record of it);
* every label reached a model (none waits forever for a card state a kill lost);
* no label went through ``learn_one`` twice, across all incarnations, and none is twice in
  the lineage of the final model (snapshot it loaded + what it learned since, recursively);
* card state recovered from the changelog: amount, time and customer features of late
  transactions equal ``models.features.FeatureEngine`` computed offline on the same events.

Closed gap (was a non-strict xfail): runs lost 3-4 scores and re-learned labels under
SIGKILL. Three fixes closed it: a newly assigned partition is re-read from before its committed
offset and Faust's read-offset bookkeeping is disabled (``streams.rewind``); the rows of
learned transactions stay in card state to answer a re-delivery (``CardState.pop_pending``);
the producer is flushed before a model snapshot, so no snapshot holds a label whose card
state could still be rolled back.
"""

from __future__ import annotations

import pytest

from infra.settings import Settings
from reliability.scenario import Report
from reliability.worker_crash import run_worker_crash

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crash_report(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    base = Settings().with_bootstrap(kafka_bootstrap)
    report = run_worker_crash(base, tmp_path_factory.mktemp("crash"), n_tx=20_000, kills=5,
                              seed=11)
    print("\n".join(report.lines()))
    return report


def test_five_sigkills_learn_nothing_twice_and_recover_card_state(crash_report: Report) -> None:
    figures = crash_report.figures
    assert figures["transactions sent"] == 20_000
    assert figures["labels learned twice by one incarnation"] == 0
    assert figures["labels twice in final model"] == 0
    assert figures["duplicate copies identical"] is True
    assert figures["labels never learned"] == 0, figures["unlearned label tx ids (first 10)"]
    assert figures["feature spot-checks"] == "50/50 equal offline"
    others = [p for p in crash_report.problems if "never scored" not in p]
    assert not others, others


def test_five_sigkills_lose_no_transaction(crash_report: Report) -> None:
    assert crash_report.figures["transactions lost"] == 0, crash_report.figures[
        "lost tx ids (first 10)"]


@pytest.fixture(scope="module")
def slow_restart_report(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Two kills, each followed by 15 s down while the producer goes on (about a week of the
    small world's event time at this rate): the labels of the transactions in flight at the
    kill are on Kafka before the worker re-reads those transactions."""
    base = Settings().with_bootstrap(kafka_bootstrap)
    report = run_worker_crash(base, tmp_path_factory.mktemp("slow"), n_tx=10_000, kills=2,
                              seed=23, rate=400.0, restart_delay_s=15.0)
    print("\n".join(report.lines()))
    return report


def test_labels_waiting_through_a_slow_restart_lose_nothing(slow_restart_report: Report) -> None:
    figures = slow_restart_report.figures
    assert figures["transactions lost"] == 0, figures["lost tx ids (first 10)"]
    assert figures["labels never learned"] == 0, figures["unlearned label tx ids (first 10)"]
    assert figures["labels learned twice by one incarnation"] == 0
    assert figures["labels twice in final model"] == 0
    assert not slow_restart_report.problems, slow_restart_report.problems
