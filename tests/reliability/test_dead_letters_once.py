"""Dead letters once: a malformed message re-read after a crash or a rebalance is not
dead-lettered a second time (``streams.dead_letters``; issue 15 measured 152 DLQ messages for 44
malformed events after three kills)."""

from __future__ import annotations

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
    processor.dead_lettered = {("transactions", 3, 5)}
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
    processor.dead_lettered = {("labels", 1, 40)}
    assert processor.learn([Record(b"7", b"{]", "labels", 1, 40)]).dead == []
    assert len(processor.learn([Record(b"7", b"{]", "labels", 1, 41)]).dead) == 1
