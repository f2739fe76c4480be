"""The worker's fast decoder agrees with the contract's exact checks, and salvages envelopes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from producers import events as ev
from producers.wire import split_labels, split_transactions
from tests.producers.test_event_schemas import LB, MALFORMED_LABEL, MALFORMED_TX, TX, _set


def _raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_valid_events_decode_to_the_same_objects() -> None:
    for obj, split, slow in ((TX, split_transactions, ev.decode_transactions),
                             (LB, split_labels, ev.decode_labels),
                             (_set(LB, "source", "feedback"), split_labels, ev.decode_labels)):
        envelope = {"v": 1, "type": "envelope", "kind": obj["type"], "events": [obj, obj]}
        for message in (obj, envelope):
            decoded = split(_raw(message))
            assert decoded.events == slow(_raw(message)) and not decoded.rejects
            assert all(type(e) is type(slow(_raw(obj))[0]) for e in decoded.events)


@pytest.mark.parametrize(("reason", "obj"), MALFORMED_TX)
def test_every_malformed_transaction_is_refused_with_the_exact_reason(reason: str,
                                                                      obj: Any) -> None:
    decoded = split_transactions(_raw(obj))
    assert decoded.events == []
    [reject] = decoded.rejects
    assert reject.index is None and reject.raw == _raw(obj)
    with pytest.raises(ev.InvalidEvent) as exact:
        ev.decode_transactions(_raw(obj))
    assert reject.reason == exact.value.reason


@pytest.mark.parametrize(("reason", "obj"), MALFORMED_LABEL)
def test_every_malformed_label_is_refused_with_the_exact_reason(reason: str, obj: Any) -> None:
    decoded = split_labels(_raw(obj))
    assert decoded.events == [] and len(decoded.rejects) == 1
    with pytest.raises(ev.InvalidEvent) as exact:
        ev.decode_labels(_raw(obj))
    assert decoded.rejects[0].reason == exact.value.reason


def test_one_bad_event_of_an_envelope_is_set_aside_with_its_own_bytes() -> None:
    bad = _set(TX, "amount", -1)
    envelope = {"v": 1, "type": "envelope", "kind": "transaction",
                "events": [TX, bad, _set(TX, "tx_id", 9), LB]}
    decoded = split_transactions(_raw(envelope))
    assert [e.tx_id for e in decoded.events] == [TX["tx_id"], 9]
    assert [r.index for r in decoded.rejects] == [1, 3]
    assert decoded.rejects[0].reason.startswith("envelope event 1: amount")
    assert json.loads(decoded.rejects[0].raw) == bad  # the event's own original bytes
    assert "expected 'transaction'" in decoded.rejects[1].reason


def test_a_broken_frame_refuses_the_whole_message() -> None:
    good = {"v": 1, "type": "envelope", "kind": "transaction", "events": [TX]}
    for bad in (_set(good, "kind", "score"), _set(good, "events", []), _set(good, "v", 2)):
        decoded = split_transactions(_raw(bad))
        assert decoded.events == [] and [r.index for r in decoded.rejects] == [None]
    nan = (b'{"v":1,"type":"transaction","tx_id":1,"ts":1.0,"customer_id":1,'
           b'"terminal_id":1,"amount":NaN,"produced_at":1}')
    assert "finite" in split_transactions(nan).rejects[0].reason
    assert split_transactions(b"{nope").rejects[0].reason.startswith("not valid JSON")
    assert split_labels(None).rejects[0].reason == "empty message (null value)"  # type: ignore[arg-type]
