"""Dead letters once: a malformed message re-read after a crash or a rebalance is not
dead-lettered a second time (``streams.dead_letters``; issue 15 measured 152 DLQ messages for 44
malformed events after three kills)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from models.registry import Registry
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica

BROKEN = b'{"v": 1, "type": "transaction", "tx_id": '


@pytest.fixture()
def processor(tmp_path: Path) -> Processor:
    runtime = ModelRuntime("logreg", Registry(tmp_path / "reg", "k"), "snap")
    runtime.start()
    return Processor({}, TerminalReplica(7.0), runtime, Telemetry("w"))


def test_a_reread_message_with_a_dead_letter_out_is_not_dead_lettered_again(
    processor: Processor,
) -> None:
    processor.dead_lettered = {("transactions", 3, 5, -1)}
    again = processor.score([Record(b"7", BROKEN, "transactions", 3, 5)])
    other = processor.score([Record(b"7", BROKEN, "transactions", 3, 6)])
    elsewhere = processor.score([Record(b"7", BROKEN, "transactions", 2, 5)])
    assert again.dead == [] and again.scores == []
    assert len(other.dead) == 1 and len(elsewhere.dead) == 1
    body = json.loads(other.dead[0][1])
    assert (body["source_topic"], body["partition"], body["offset"]) == ("transactions", 3, 6)
    repeats = processor.telemetry.dlq_repeats.labels("transactions")._value.get()
    assert repeats == 1


def test_labels_are_deduplicated_the_same_way(processor: Processor) -> None:
    processor.dead_lettered = {("labels", 1, 40, -1)}
    assert processor.learn([Record(b"7", b"{]", "labels", 1, 40)]).dead == []
    assert len(processor.learn([Record(b"7", b"{]", "labels", 1, 41)]).dead) == 1


def _tx(tx_id: int, amount: object = 42.5) -> dict:
    return {"v": 1, "type": "transaction", "tx_id": tx_id, "ts": 1.53e9 + tx_id,
            "customer_id": 7, "terminal_id": 11, "amount": amount, "produced_at": 1.7e9}


def test_a_malformed_event_of_an_envelope_is_dead_lettered_alone(processor: Processor) -> None:
    events = [_tx(1), _tx(2, amount="x"), _tx(3)]
    value = json.dumps({"v": 1, "type": "envelope", "kind": "transaction",
                        "events": events}).encode()
    out = processor.score([Record(b"7", value, "transactions", 0, 9)])
    assert sorted(json.loads(v)["tx_id"] for _, v in out.scores) == [1, 3]
    assert len(out.dead) == 1
    body = json.loads(out.dead[0][1])
    assert body["envelope_index"] == 1 and "event 1" in body["reason"]
    assert base64.b64decode(body["value_b64"]) == json.dumps(events[1]).encode()
    assert body["original_bytes"] == len(json.dumps(events[1]))
    assert (body["source_topic"], body["partition"], body["offset"]) == ("transactions", 0, 9)
    # re-read with that letter out: not sent again; the whole-message letter is another one
    processor.dead_lettered = {("transactions", 0, 9, 1)}
    again = processor.score([Record(b"7", value, "transactions", 0, 9)])
    assert again.dead == []
    processor.dead_lettered = {("transactions", 0, 9, -1)}
    assert len(processor.score([Record(b"7", value, "transactions", 0, 9)]).dead) == 1


def test_an_envelope_of_malformed_events_gets_a_letter_for_each(processor: Processor) -> None:
    value = json.dumps({"v": 1, "type": "envelope", "kind": "transaction",
                        "events": [_tx(4, amount="x"), _tx(5, amount=-1)]}).encode()
    out = processor.score([Record(b"7", value, "transactions", 0, 10)])
    assert out.scores == []
    assert [json.loads(v)["envelope_index"] for _, v in out.dead] == [0, 1]
