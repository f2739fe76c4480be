"""Produced events validate against the JSON Schemas; malformed ones are rejected by both
the schemas and the hot-path parsers, which agree with each other."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers import events as ev
from producers.partitioning import murmur2_partition
from producers.sender import Sender
from producers.simulator import Simulator
from producers.timeline import limit_blocks, timeline
from producers.validation import schema_errors, validator
from producers.world import WorldConfig
from tests.producers.fakes import RecordingProducer

TX = {"v": 1, "type": "transaction", "tx_id": 5, "ts": 1522540800.5, "customer_id": 12,
      "terminal_id": 99, "amount": 57.16, "produced_at": 1700000000.25}
LB = {"v": 1, "type": "label", "tx_id": 5, "customer_id": 12, "terminal_id": 99,
      "tx_ts": 1522540800.5, "fraud": 1, "known_at": 1522713600.0,
      "produced_at": 1700000000.25}


def _sent(envelope: int) -> list[tuple[str, int, bytes, bytes]]:
    producer = RecordingProducer()
    blocks = limit_blocks(Simulator(WorldConfig(n_days=2)).days(), 3_000)
    Sender(producer, "tx", "lb", envelope=envelope).send(timeline(blocks))
    return producer.sent


@pytest.mark.parametrize("envelope", [1, 25])
def test_produced_messages_validate_and_parse(envelope: int) -> None:
    strict = {n: validator(n, strict_integers=True) for n in ("transaction", "label", "envelope")}
    seen = {"tx": 0, "lb": 0}
    for topic, partition, key, value in _sent(envelope):
        obj = json.loads(value)
        name = obj["type"]
        assert not list(strict[name].iter_errors(obj)), obj
        events = ev.decode_transactions(value) if topic == "tx" else ev.decode_labels(value)
        assert str(events[0].customer_id).encode() == key
        for event in events:  # every event of an envelope belongs on its partition
            assert murmur2_partition(str(event.customer_id).encode(), 4) == partition
        seen[topic] += len(events)
    assert seen == {"tx": 3_000, "lb": 3_000}


def test_round_trip_through_encoders() -> None:
    tx = ev.parse_transaction(TX)
    assert ev.parse_transaction(json.loads(ev.encode_transaction(tx))) == tx
    label = ev.parse_label(LB)
    assert ev.parse_label(json.loads(ev.encode_label(label))) == label
    assert tx.to_dict() == TX and label.to_dict() == LB


def test_a_label_source_is_optional_and_round_trips() -> None:
    """Absent means delayed (the producer's bytes are unchanged); feedback is written out."""
    assert ev.parse_label(LB).source == ev.DELAYED
    assert b"source" not in ev.encode_label(ev.parse_label(LB))
    feedback = ev.parse_label(_set(LB, "source", "feedback"))
    assert feedback.source == ev.FEEDBACK and feedback.to_dict() == _set(LB, "source", "feedback")
    assert ev.parse_label(json.loads(ev.encode_label(feedback))) == feedback
    assert ev.parse_label(_set(LB, "source", "delayed")) == ev.parse_label(LB)
    assert not schema_errors("label", _set(LB, "source", "feedback"))


def _set(obj: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out[key] = value
    return out


def _drop(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


MALFORMED_TX = [
    ("unknown schema version", _set(TX, "v", 2)),
    ("unknown schema version", _set(TX, "v", "1")),
    ("missing field 'v'", _drop(TX, "v")),
    ("type is", _set(TX, "type", "label")),
    ("missing field 'amount'", _drop(TX, "amount")),
    ("unknown field 'fraud'", _set(TX, "fraud", 0)),
    ("amount must be", _set(TX, "amount", -0.01)),
    ("amount must be", _set(TX, "amount", "12.5")),
    ("amount must be", _set(TX, "amount", None)),
    ("tx_id must be", _set(TX, "tx_id", True)),
    ("tx_id must be", _set(TX, "tx_id", -1)),
    ("customer_id must be", _set(TX, "customer_id", "12")),
    ("ts must be", _set(TX, "ts", -5.0)),
    ("not a JSON object", [TX]),
]
MALFORMED_LABEL = [
    ("fraud must be 0 or 1", _set(LB, "fraud", 2)),
    ("fraud must be 0 or 1", _set(LB, "fraud", True)),
    ("missing field 'known_at'", _drop(LB, "known_at")),
    ("unknown schema version", _set(LB, "v", 0)),
    ("source must be 'delayed' or 'feedback'", _set(LB, "source", "rumour")),
    ("source must be 'delayed' or 'feedback'", _set(LB, "source", None)),
]


@pytest.mark.parametrize(("reason", "obj"), MALFORMED_TX)
def test_malformed_transactions_are_rejected_by_both(reason: str, obj: Any) -> None:
    with pytest.raises(ev.InvalidEvent, match=reason):
        ev.parse_transaction(obj)
    assert schema_errors("transaction", obj)


@pytest.mark.parametrize(("reason", "obj"), MALFORMED_LABEL)
def test_malformed_labels_are_rejected_by_both(reason: str, obj: Any) -> None:
    with pytest.raises(ev.InvalidEvent, match=reason):
        ev.parse_label(obj)
    assert schema_errors("label", obj)


def test_non_finite_amounts_are_rejected() -> None:
    # Python's json reads NaN/Infinity; the JSON Schema never sees them (not JSON).
    for bad in (math.nan, math.inf):
        with pytest.raises(ev.InvalidEvent, match="finite"):
            ev.parse_transaction(_set(TX, "amount", bad))
    with pytest.raises(ev.InvalidEvent, match="finite"):
        ev.decode_transactions(b'{"v":1,"type":"transaction","tx_id":1,"ts":1.0,'
                               b'"customer_id":1,"terminal_id":1,"amount":NaN,"produced_at":1}')


def test_envelopes_are_checked_whole() -> None:
    good = {"v": 1, "type": "envelope", "kind": "transaction", "events": [TX, TX]}
    assert len(ev.decode_transactions(good)) == 2
    assert not schema_errors("envelope", good)
    bad_event = _set(good, "events", [TX, _set(TX, "amount", -1)])
    with pytest.raises(ev.InvalidEvent, match="envelope event 1: amount"):
        ev.decode_transactions(bad_event)
    assert schema_errors("envelope", bad_event)
    for bad, why in [
        (_set(good, "events", []), "non-empty"),
        (_set(good, "kind", "score"), "kind"),
        (_set(good, "v", 9), "unknown schema version"),
        (_set(good, "events", [LB]), "envelope event 0"),
    ]:
        with pytest.raises(ev.InvalidEvent, match=why):
            ev.decode_transactions(bad)
        assert schema_errors("envelope", bad)
    with pytest.raises(ev.InvalidEvent, match="envelope of labels"):
        ev.decode_labels(good)
    with pytest.raises(ev.InvalidEvent, match="not valid JSON"):
        ev.decode_transactions(b"{nope")


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(allow_nan=False,
                                                                 allow_infinity=False),
    st.text(max_size=5), st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([("transaction", TX), ("label", LB)]),
    key=st.sampled_from(sorted(set(TX) | set(LB) | {"extra"})),
    value=_values,
    drop=st.booleans(),
)
def test_parser_and_schema_agree(
    base: tuple[str, dict[str, Any]], key: str, value: Any, drop: bool
) -> None:
    name, obj = base
    mutated = _drop(obj, key) if drop else _set(obj, key, value)
    parse = ev.parse_transaction if name == "transaction" else ev.parse_label
    try:
        parse(mutated)
        parsed = True
    except ev.InvalidEvent:
        parsed = False
    schema_ok = not list(validator(name, strict_integers=True).iter_errors(mutated))
    assert parsed == schema_ok, mutated
