"""Inputs the worker once did not survive, found by the bad-input generator of
``reliability.bad_input_corpus``: each test says what must happen (dead-lettered with a bounded reason, the
stream goes on). Fixed by bounds on ids and amounts, robust decoding, key checks for every
event of an envelope, truncated DLQ records and a lag gauge summed over partitions.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from models.registry import Registry
from streams.demo_processes import WorkerProcess
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica


def _processor(tmp_path: Path) -> Processor:
    runtime = ModelRuntime("logreg", Registry(tmp_path, "k"), "snap")
    runtime.start()
    return Processor({}, TerminalReplica(7.0), runtime, Telemetry("w"))


def _tx(**kw: Any) -> dict[str, Any]:
    event = {"v": 1, "type": "transaction", "tx_id": 1, "ts": 1.53e9, "customer_id": 7,
             "terminal_id": 11, "amount": 5.0, "produced_at": 1.7e9}
    event.update(kw)
    return event


def _label(**kw: Any) -> dict[str, Any]:
    event = {"v": 1, "type": "label", "tx_id": 1, "customer_id": 7, "terminal_id": 11,
             "tx_ts": 1.53e9, "fraud": 1, "known_at": 1.531e9, "produced_at": 1.7e9}
    event.update(kw)
    return event


def _rec(event: dict[str, Any] | bytes | None, key: bytes | None = b"7", offset: int = 0) -> Record:
    value = json.dumps(event).encode() if isinstance(event, dict) else event
    return Record(key, value, "transactions", 0, offset)  # type: ignore[arg-type]


def _outcome(processor: Processor, records: list[Record], learn: bool = False) -> str:
    try:
        out = (processor.learn if learn else processor.score)(records)
    except Exception as exc:  # what crashes the agent in the worker
        return f"raised {type(exc).__name__}"
    return "dead-lettered" if out.dead else "accepted"


def test_huge_finite_amounts_are_refused_or_scored(tmp_path: Path) -> None:
    """Two amounts of 1e308 on one card: the 1-day sum is inf, the score message carries inf
    features and ``json`` (allow_nan=False) raises; the card's cached state keeps the inf, so
    every later transaction of that card raises too. Fix: an upper bound on ``amount`` in
    ``producers.events._number`` (the contract's JSON Schema should say the same, e.g.
    ``maximum: 1e9``), which dead-letters them as "amount out of range"."""
    p = _processor(tmp_path)
    outcomes = [_outcome(p, [_rec(_tx(tx_id=i, amount=1e308), offset=i)]) for i in (1, 2)]
    outcomes.append(_outcome(p, [_rec(_tx(tx_id=3, amount=10.0), offset=3)]))
    assert all(o in ("dead-lettered", "accepted") for o in outcomes), outcomes
    assert outcomes[2] == "accepted", "an ordinary transaction of the same card must be scored"


def test_ids_beyond_int64_are_dead_lettered(tmp_path: Path) -> None:
    """``tx_id = 2**63`` parses (``_id`` has no upper bound), is scored, and its label makes
    ``CardState.to_bytes`` raise OverflowError (``array('q', done)``); ids above 2**53 also
    collide in the feature log, which stores them as doubles. Fix: ``_id`` in
    ``producers.events`` rejects ``value > 2**53`` (or 2**63 - 1 and an int64 feature log)."""
    p = _processor(tmp_path)
    scored = _outcome(p, [_rec(_tx(tx_id=2**63))])
    learned = _outcome(p, [_rec(_label(tx_id=2**63))], learn=True)
    assert scored == "dead-lettered" and learned == "dead-lettered", (scored, learned)


def test_deeply_nested_json_is_dead_lettered(tmp_path: Path) -> None:
    """``[[[[...]]]]`` 100,000 deep (200 KB) makes ``json.loads`` raise RecursionError, which
    ``loads`` does not catch (it catches ValueError and UnicodeDecodeError). Fix: catch
    ``RecursionError`` there too."""
    p = _processor(tmp_path)
    assert _outcome(p, [_rec(b"[" * 100_000 + b"]" * 100_000)]) == "dead-lettered"


def test_null_value_is_dead_lettered(tmp_path: Path) -> None:
    """A record with no value (a tombstone, which any client can send) reaches the agent as
    ``None``: ``json.loads(None)`` raises TypeError, and ``dead_letter`` would also fail on
    ``base64.b64encode(None)``. Fix: in ``Processor.decode_transactions``/``learn`` treat
    ``record.value is None`` as InvalidEvent("null value (tombstone)") and write
    ``"value_b64": null`` for it."""
    p = _processor(tmp_path)
    assert _outcome(p, [_rec(None)]) == "dead-lettered"


def test_events_under_a_foreign_key_are_dead_lettered(tmp_path: Path) -> None:
    """A record is processed on its key's partition, so its cards' state is read and written
    in that partition's store and changelog. A label whose key is not its card, or an envelope
    holding a card of another partition, would split a card's state (wrong features after a
    rebalance). ``Processor`` requires the key to be the first event's card and every card of
    an envelope to share the key's partition (murmur2, 4 partitions: 7, 8 and 9 share
    partition 3; 10 is on partition 2); envelopes of one partition are accepted, as
    ``producers.envelope`` packs them."""
    p = _processor(tmp_path)

    def envelope(*cards: int) -> dict[str, Any]:
        return {"v": 1, "type": "envelope", "kind": "transaction",
                "events": [_tx(tx_id=100 * i + c, customer_id=c) for i, c in enumerate(cards)]}

    foreign = _outcome(p, [_rec(envelope(7, 10), key=b"7")])
    wrong_first = _outcome(p, [_rec(envelope(8, 7), key=b"7")])
    label = _outcome(p, [_rec(_label(customer_id=9), key=b"7")], learn=True)
    assert (foreign, wrong_first, label) == ("dead-lettered",) * 3
    same_partition = p.score([_rec(envelope(7, 8, 9, 7), key=b"7")])
    assert not same_partition.dead
    assert len(same_partition.scores) == 4


def test_dead_letters_of_large_bad_values_fit_the_producer_limit(tmp_path: Path) -> None:
    """``producers.events`` puts ``{value!r}`` of a bad field in the reason. A 450 KB string
    in ``terminal_id`` gives a dead letter of 450 KB (reason) + 600 KB (base64): over Faust's
    1,000,000-byte ``producer_max_request_size``. Fix: truncate the repr in reasons (e.g.
    ``reprlib``-style, 80 characters); and, for originals over ~748 KB that no reason can
    save, dead-letter a record that keeps the first bytes and says it was truncated (or raise
    the DLQ topic's ``max.message.bytes`` and the worker's producer limit together)."""
    p = _processor(tmp_path)
    out = p.score([_rec(_tx(terminal_id="9" * 450_000))])
    assert len(out.dead) == 1
    size = len(out.dead[0][1])
    assert size < 1_000_000, f"dead letter of {size} bytes"


@pytest.mark.integration
def test_a_large_bad_value_does_not_kill_the_worker(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The consequence of the previous gap in a real worker: the dead letter is refused by the
    producer (MessageSizeTooLargeError), Faust's ProducerBuffer crashes and the worker process
    exits ("We experienced a crash!"); the message was not committed, so it kills the next
    incarnation too. One 450 KB message stops the pipeline."""
    from kafka import KafkaProducer

    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "s",
                                                 "registry_dir": tmp_path / "r"})
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        producer = KafkaProducer(**settings.kafka.kafka_python_kwargs())
        producer.send(settings.topics.transactions, key=b"7",
                      value=json.dumps(_tx(terminal_id="9" * 450_000)).encode())
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.alive():
            time.sleep(0.5)
        assert worker.alive(), worker.tail(5)
    finally:
        worker.stop()


def test_dead_letter_records_keep_the_original_bytes_exactly(tmp_path: Path) -> None:
    """Not a gap, the baseline the gaps are measured against: invalid UTF-8 and NUL bytes
    survive the round trip through the DLQ's base64."""
    p = _processor(tmp_path)
    raw = b'{"v": 1, "type": "transaction", \xff\x00}'
    out = p.score([_rec(raw)])
    assert base64.b64decode(json.loads(out.dead[0][1])["value_b64"]) == raw


def test_consumer_lag_gauge_sums_the_partitions_of_a_topic() -> None:
    """``FraudApp.consumer_lag`` sets ``lag.labels(tp.topic)`` once per *partition*, so the
    gauge ends up holding the last partition's lag, not the topic's (measured under
    backpressure: /metrics showed 34,215 while /api/stats, which sums, showed 153,715). Fix:
    add the partitions up per topic, then set each topic's gauge once. (Also: ``(position or
    -1)`` turns a read offset of 0 into -1, one message too many.)"""
    from types import SimpleNamespace

    from streams.app import FraudApp

    class TP(SimpleNamespace):
        def __hash__(self) -> int:
            return hash((self.topic, self.partition))

    tps = [TP(topic="tx", partition=p) for p in range(4)]
    consumer = SimpleNamespace(assignment=lambda: tps, highwater=lambda tp: 100)
    telemetry = Telemetry("w")
    fake = SimpleNamespace(app=SimpleNamespace(consumer=consumer), telemetry=telemetry,
                           _positions={tp: 49 for tp in tps},
                           settings=SimpleNamespace(topics=SimpleNamespace(transactions="tx",
                                                                           labels="lb")))
    total = FraudApp.consumer_lag(fake)  # type: ignore[arg-type]
    assert total == 200  # 4 partitions x 50
    assert telemetry.lag.labels("tx")._value.get() == 200
