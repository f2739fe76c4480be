"""The worker's per-message logic without Kafka: idempotence, late/early/repeated labels, DLQ."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from models.registry import Registry
from producers.events import Label, Transaction, encode_label, encode_transaction
from streams.alert_policy import FixedThreshold
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica

DAY = 86_400.0


@pytest.fixture
def proc(tmp_path: Path) -> Processor:
    runtime = ModelRuntime("logreg", Registry(tmp_path, "k"), "test-logreg-w0", snapshot_every=3)
    runtime.start()
    return Processor({}, TerminalReplica(), runtime, Telemetry("w0"), alert_threshold=0.99)


def tx_record(tx_id: int, customer: int = 1, terminal: int = 5, ts: float = 1e9,
              amount: float = 10.0, offset: int = 0) -> Record:
    tx = Transaction(tx_id, ts, customer, terminal, amount, 0.0)
    return Record(str(customer).encode(), encode_transaction(tx), "transactions", 0, offset)


def label_record(tx_id: int, fraud: int, customer: int = 1, terminal: int = 5,
                 tx_ts: float = 1e9, known_at: float = 1e9 + DAY) -> Record:
    label = Label(tx_id, customer, terminal, tx_ts, fraud, known_at, 0.0)
    return Record(str(customer).encode(), encode_label(label), "labels", 0, 0)


def test_one_score_per_transaction_with_features(proc: Processor) -> None:
    out = proc.score([tx_record(1), tx_record(2, ts=1e9 + 60, amount=30.0)])
    assert [json.loads(v)["tx_id"] for _, v in out.scores] == [1, 2]
    second = json.loads(out.scores[1][1])
    assert second["features"][:4] == [30.0, second["features"][1], second["features"][2], 2.0]
    assert second["features"][4] == pytest.approx(20.0)  # mean of 10 and 30 over one day
    # keyed by the card: the card's partition picks the output transaction
    assert [k for k, _ in out.scores] == [b"1", b"1"]


def test_redelivered_transaction_is_answered_not_counted_twice(proc: Processor) -> None:
    first = proc.score([tx_record(1)])
    assert proc.score([tx_record(1)]).scores == []  # this process answered it already
    proc.invalidate()  # a new assignment: the previous answer may not be out
    again = proc.score([tx_record(1)])
    assert json.loads(again.scores[0][1])["score"] == json.loads(first.scores[0][1])["score"]
    card = proc._card(b"1", 0)
    assert len(card.customer.ts) == 1
    assert proc.telemetry.replayed._value.get() == 2
    later = json.loads(proc.score([tx_record(3, ts=1e9 + 10)]).scores[0][1])
    assert later["features"][3] == 2.0  # two transactions in the day, not three


def test_label_is_learned_once(proc: Processor) -> None:
    proc.score([tx_record(1)])
    proc.learn([label_record(1, 1)])  # known a day later: held
    proc.learn([label_record(1, 1)])  # repeated while held
    proc.score([tx_record(2, ts=1e9 + DAY)])  # releases it
    proc.learn([label_record(1, 1)])  # repeated after learning
    assert proc.telemetry.learned._value.get() == 1
    assert proc.telemetry.label_dupes._value.get() == 2
    assert proc.runtime.learned == 1


def test_label_before_its_transaction_waits_for_its_known_at(proc: Processor) -> None:
    """An early label is not learned the moment its transaction arrives (that would be
    learning with zero delay) but when the partition's transactions reach its known_at."""
    proc.learn([label_record(7, 1)])
    assert proc.telemetry.labels_early._value.get() == 1 and proc.runtime.learned == 0
    proc.score([tx_record(7)])
    assert proc.runtime.learned == 0
    proc.score([tx_record(8, ts=1e9 + DAY)])
    assert proc.runtime.learned == 1


def test_snapshot_becomes_due_after_n_labels(proc: Processor) -> None:
    proc.score([tx_record(i, ts=1e9 + i) for i in range(3)])
    out = proc.learn([label_record(i, i % 2, tx_ts=1e9 + i, known_at=1e9 + i)
                      for i in range(3)])  # late labels: learned at once
    assert out.snapshot_due
    proc.runtime.snapshot()
    assert proc.runtime.version == 1


def test_fraud_label_feeds_the_terminal_replica(proc: Processor) -> None:
    proc.score([tx_record(1, terminal=9)])
    proc.learn([label_record(1, 1, terminal=9, known_at=1e9 + DAY)])
    feats = json.loads(proc.score([tx_record(2, customer=2, terminal=9, ts=1e9 + 7.5 * DAY)])
                       .scores[0][1])["features"]
    assert feats[9:11] == [1.0, 1.0]  # one transaction 7.5 days ago, a known fraud


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "JSON"),
    (b'{"v": 1, "type": "transaction"}', "missing"),
    (json.dumps({"v": 2, "type": "transaction", "tx_id": 1, "ts": 1.0, "customer_id": 1,
                 "terminal_id": 1, "amount": 1.0, "produced_at": 0.0}).encode(), "version"),
    (json.dumps({"v": 1, "type": "transaction", "tx_id": 1, "ts": 1.0, "customer_id": 1,
                 "terminal_id": 1, "amount": -1.0, "produced_at": 0.0}).encode(), "amount"),
])
def test_malformed_events_go_to_the_dlq_with_reason_and_bytes(
    proc: Processor, value: bytes, reason: str
) -> None:
    out = proc.score([Record(b"1", value, "transactions", 3, 42), tx_record(5)])
    assert len(out.scores) == 1  # the stream goes on
    assert len(out.dead) == 1
    dead = json.loads(out.dead[0][1])
    assert reason.lower() in dead["reason"].lower()
    assert base64.b64decode(dead["value_b64"]) == value
    assert (dead["source_topic"], dead["partition"], dead["offset"]) == ("transactions", 3, 42)


def test_wrong_key_is_dead_lettered(proc: Processor) -> None:
    good = tx_record(1, customer=1)
    out = proc.score([good._replace(key=b"2")])
    assert not out.scores and "not the card id" in json.loads(out.dead[0][1])["reason"]


def test_transaction_with_a_published_score_keeps_it(proc: Processor) -> None:
    """A crash lost the card's record of tx 1 but not its score: the re-read transaction
    keeps the published score and features, is not sent again, and its label learns them."""
    proc.published = {1: (0.25, [7.0] * 15)}
    out = proc.score([tx_record(1)])
    assert out.scores == []
    card = proc._card(b"1", 0)
    entry = card.scored(1)
    assert (entry.score, entry.features) == (0.25, [7.0] * 15)
    assert len(card.customer.ts) == 1  # the card counts it, as the first incarnation did
    assert proc.telemetry.tx_in._value.get() == 0
    assert proc.telemetry.replayed._value.get() == 1
    learned = proc.runtime.learned
    proc.learn([label_record(1, 1, known_at=1e9)])  # late: learned at once
    assert proc.runtime.learned == learned + 1
    assert proc.telemetry.tx_in._value.get() == 0


def test_recognised_transaction_with_a_published_score_is_not_sent_again(
    proc: Processor,
) -> None:
    first = json.loads(proc.score([tx_record(1)]).scores[0][1])
    proc.published = {1: (first["score"], first["features"])}
    again = proc.score([tx_record(1), tx_record(2, ts=1e9 + 5)])
    assert [json.loads(v)["tx_id"] for _, v in again.scores] == [2]


def test_replayed_transaction_above_threshold_repeats_its_alert(proc: Processor) -> None:
    proc.alert_policy = FixedThreshold(0.0)  # every score alerts
    assert len(proc.score([tx_record(1)]).alerts) == 1
    proc.invalidate()  # re-read after an assignment
    assert len(proc.score([tx_record(1)]).alerts) == 1  # an alert may repeat, never vanish


def test_published_scores_are_dropped_once_the_reread_is_past(proc: Processor) -> None:
    """The map serves re-read offsets only; the batch that reaches the end still uses it."""
    proc.keep_published({1: (0.25, [7.0] * 15), 9: (0.5, [1.0] * 15)}, {("transactions", 0): 2},
                        {("transactions", 0): 1})
    out = proc.score([tx_record(1, offset=1)])  # offset 1: the last re-read one
    assert out.scores == [] and proc._card(b"1", 0).scored(1).score == 0.25
    assert proc.published == {}
    assert len(proc.score([tx_record(9, ts=1e9 + 5, offset=2)]).scores) == 1  # new: scored


def test_a_message_from_past_the_reread_does_not_end_the_need_for_published_scores(
        proc: Processor) -> None:
    """A message fetched before the seek, from further on, arrives before the re-read: the
    map stays until the re-read itself reaches its end, and a re-read transaction whose card
    lost its write keeps its published score."""
    proc.keep_published({1: (0.25, [7.0] * 15)}, {("transactions", 0): 5},
                        {("transactions", 0): 3})
    early = proc.score([tx_record(9, customer=2, ts=1e9 + 9, offset=7)])  # past the end
    assert len(early.scores) == 1 and proc.published
    assert proc.score([tx_record(2, customer=3, offset=3)]).scores  # new, re-read in order
    assert proc.published  # offset 4 is still to come
    out = proc.score([tx_record(1, offset=4)])  # its score is out: not sent again
    assert out.scores == [] and proc._card(b"1", 0).scored(1).score == 0.25
    assert proc.published == {}


def test_alert_carries_its_policy_threshold_and_three_reasons(proc: Processor) -> None:
    from models.features import FEATURE_NAMES
    from streams.alert_policy import AlertBudget

    proc.alert_policy = AlertBudget(budget_per_day=1, initial_threshold=0.0)
    out = proc.score([tx_record(1, customer=1), tx_record(2, customer=2, ts=1e9 + 5)])
    assert len(out.alerts) == 1  # a budget of one card a day
    body = json.loads(out.alerts[0][1])
    assert body["threshold"] == 0.0 and body["customer_id"] == 1
    assert len(body["reasons"]) == 3
    assert {r["feature"] for r in body["reasons"]} <= set(FEATURE_NAMES)


def test_a_batch_is_answered_with_one_score_envelope_per_partition(proc: Processor) -> None:
    """Envelope mode: the scores of a batch leave as one message per partition, keyed by
    the card of its first score, and every reader decodes them as separate scores."""
    from producers.partitioning import murmur2_partition
    from streams.score_messages import decode_scores

    proc.pack_scores = True
    cards = [1, 2, 3, 4, 5, 6, 7, 8]
    records = [tx_record(i, customer=c, ts=1e9 + i) for i, c in enumerate(cards, start=1)]
    records = [r._replace(partition=murmur2_partition(r.key, 4)) for r in records]
    out = proc.score(records)
    partitions = {murmur2_partition(str(c).encode(), 4) for c in cards}
    assert len(out.scores) == len(partitions) < len(cards)
    seen = []
    for key, value in out.scores:
        bodies = decode_scores(value)
        assert key == str(bodies[0]["customer_id"]).encode()
        assert {murmur2_partition(str(b["customer_id"]).encode(), 4) for b in bodies} == {
            murmur2_partition(key, 4)}
        seen += [b["tx_id"] for b in bodies]
    assert sorted(seen) == list(range(1, len(cards) + 1))
    assert proc.telemetry.scores_out._value.get() == len(cards)


def test_a_large_batch_is_answered_with_envelopes_the_producer_accepts(proc: Processor) -> None:
    """4,000 scores of one partition (eight envelopes of 500 taken at once) made one 1.3 MB
    message, over the producer's largest request: it is split, in order, under the bound."""
    from streams.score_messages import MAX_ENVELOPE_BYTES, decode_scores

    proc.pack_scores = True
    records = [tx_record(i, customer=7, ts=1e9 + i, offset=i) for i in range(1, 4001)]
    out = proc.score(records)
    assert len(out.scores) > 1
    assert max(len(value) for _, value in out.scores) <= MAX_ENVELOPE_BYTES
    seen = [b["tx_id"] for _, value in out.scores for b in decode_scores(value)]
    assert seen == list(range(1, 4001))
    assert {key for key, _ in out.scores} == {b"7"}
