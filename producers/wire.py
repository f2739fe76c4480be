"""The worker's decoder: a whole envelope decoded and checked in C, one bad event set aside.

``producers.events`` holds the contract and its hand-written checks; they name the exact rule
an event breaks, but they run in Python, per field (measured: a fifth of an envelope-mode
worker's processor time). Here the same contract is declared as ``msgspec`` types, so a valid
message (nearly all of them) is decoded, range-checked and turned into ``Transaction`` or
``Label`` objects by msgspec's C decoder in one call. Why msgspec rather than orjson plus the
existing checks: the checks are the cost, and msgspec does them while it parses.

The two must never disagree, so the fast path only ever *accepts*: anything it refuses is
decoded again by ``producers.events``, whose reason is the one reported. A refused envelope is
then taken apart event by event (each event's exact original bytes come from msgspec's
``Raw``): its good events go on, and each bad one comes back alone with its index, reason and
bytes, so one malformed event could cost a dead letter, not the rest of its envelope. The
worker does not use that split yet: it dead-letters a message with any reject whole, because
the bad-input harness (``reliability.bad_input``) counts one intact dead letter per malformed message.

>>> from producers.events import encode_transaction, Transaction
>>> good = encode_transaction(Transaction(1, 10.0, 7, 3, 12.5, 11.0))
>>> split_transactions(good).events
[Transaction(tx_id=1, ts=10.0, customer_id=7, terminal_id=3, amount=12.5, produced_at=11.0)]
>>> bad = b'{"v":1,"type":"envelope","kind":"transaction","events":[' + good + b',{"v":1}]}'
>>> decoded = split_transactions(bad)
>>> len(decoded.events), decoded.rejects[0].index, decoded.rejects[0].reason
(1, 1, "envelope event 1: type is None, expected 'transaction'")
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple, Union

import msgspec

from producers.events import (
    MAX_AMOUNT,
    MAX_ENVELOPE_EVENTS,
    MAX_ID,
    InvalidEvent,
    Label,
    Transaction,
    decode_labels,
    decode_transactions,
    parse_envelope,
)

Id = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
Time = Annotated[float, msgspec.Meta(ge=0, le=1e12)]  # MAX_EVENT_TIME
Amount = Annotated[float, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
_STRICT = {"forbid_unknown_fields": True, "frozen": True, "gc": False, "tag_field": "type"}


class _TxWire(msgspec.Struct, tag="transaction", **_STRICT):  # type: ignore[call-arg]
    v: Literal[1]
    tx_id: Id
    ts: Time
    customer_id: Id
    terminal_id: Id
    amount: Amount
    produced_at: Time


class _LabelWire(msgspec.Struct, tag="label", **_STRICT):  # type: ignore[call-arg]
    v: Literal[1]
    tx_id: Id
    customer_id: Id
    terminal_id: Id
    tx_ts: Time
    fraud: Literal[0, 1]
    known_at: Time
    produced_at: Time
    source: Literal["delayed", "feedback"] = "delayed"


def _envelope(kind: str, event: type) -> type:
    return msgspec.defstruct(
        f"_{kind.title()}Envelope",
        [("v", Literal[1]), ("kind", Literal[kind]),  # type: ignore[valid-type]
         ("events", Annotated[list[event],  # type: ignore[valid-type]
                              msgspec.Meta(min_length=1, max_length=MAX_ENVELOPE_EVENTS)])],
        tag="envelope", **_STRICT,
    )


class _RawEnvelope(msgspec.Struct, tag="envelope", gc=False, tag_field="type"):
    """Only the frame, each event kept as its original bytes (the slow path's split)."""

    events: list[msgspec.Raw]


class Reject(NamedTuple):
    """One event set aside: its index in the envelope (None: the whole message), the reason
    and its original bytes."""

    index: int | None
    reason: str
    raw: bytes


class Decoded(NamedTuple):
    events: list[Any]
    rejects: list[Reject]


class _Kind:
    """The fast decoder of one topic's messages and its slow, exact fallback."""

    def __init__(self, kind: str, wire: type, make: Any, slow: Any) -> None:
        self.kind = kind
        self.decoder = msgspec.json.Decoder(Union[wire, _envelope(kind, wire)])  # noqa: UP007
        self.one = msgspec.json.Decoder(wire)
        self.make = make
        self.slow = slow

    def split(self, raw: bytes) -> Decoded:
        try:
            msg = self.decoder.decode(raw)
        except (msgspec.DecodeError, TypeError):  # TypeError: not bytes (a null value)
            return self._slowly(raw)
        make = self.make
        events = getattr(msg, "events", None)
        if events is None:
            return Decoded([make(msg)], [])
        return Decoded([make(e) for e in events], [])

    def _slowly(self, raw: bytes) -> Decoded:
        """What the exact checks say: the whole message refused, or some of its events."""
        try:
            return Decoded(self.slow(raw), [])
        except InvalidEvent as exc:
            whole = Reject(None, exc.reason, raw or b"")
            if not exc.reason.startswith("envelope event "):
                return Decoded([], [whole])
        try:  # the frame is fine and at least one event is not: keep the others
            frame = msgspec.json.decode(raw, type=_RawEnvelope)
            parse_envelope(msgspec.json.decode(raw))
        except (msgspec.DecodeError, InvalidEvent):
            return Decoded([], [whole])
        events, rejects = [], []
        for index, event in enumerate(frame.events):
            try:
                events.append(self.make(self.one.decode(event)))
            except msgspec.DecodeError:
                try:
                    events.extend(self.slow(bytes(event)))
                except InvalidEvent as exc:
                    rejects.append(Reject(index, f"envelope event {index}: {exc.reason}",
                                          bytes(event)))
        return Decoded(events, rejects)


def _tx(w: _TxWire) -> Transaction:
    return Transaction(w.tx_id, w.ts, w.customer_id, w.terminal_id, w.amount, w.produced_at)


def _label(w: _LabelWire) -> Label:
    return Label(w.tx_id, w.customer_id, w.terminal_id, w.tx_ts, w.fraud, w.known_at,
                 w.produced_at, w.source)


_TRANSACTIONS = _Kind("transaction", _TxWire, _tx, decode_transactions)
_LABELS = _Kind("label", _LabelWire, _label, decode_labels)


def split_transactions(raw: bytes) -> Decoded:
    """A transactions message -> its valid transactions and its rejected parts."""
    return _TRANSACTIONS.split(raw)


def split_labels(raw: bytes) -> Decoded:
    """A labels message -> its valid labels and its rejected parts."""
    return _LABELS.split(raw)


MAX_EVENT_TIME = 1e12
"""The largest ``ts`` the wire accepts (``Time``); a larger one is no time at all."""
_FIRST_TS = re.compile(rb'"ts"\s*:\s*(-?[0-9][0-9.eE+-]*)')


def first_event_time(raw: bytes | None) -> float | None:
    """The ``ts`` of a transactions message's first event, read without decoding it.

    What a worker needs to hand several partitions' messages on in event time
    (``streams.event_time_merge``) before they are decoded: decoding an envelope of 500
    events to read one number would cost as much as the decode the processor does anyway.
    The first ``"ts":`` of the bytes is the first event's (an envelope's frame has none, and
    a label's ``"tx_ts":`` does not match). None when there is none or it is not a number:
    such a message keeps its place behind its partition's previous one. A wrong time here
    only changes the order partitions are interleaved in, never what a message means.

    >>> first_event_time(b'{"v":1,"type":"envelope","kind":"transaction","events":'
    ...                  b'[{"v":1,"type":"transaction","tx_id":4,"ts":1525132800.5,"c":1}]}')
    1525132800.5
    >>> first_event_time(b'{"v":1,"type":"label","tx_ts":7.0}') is None
    True
    """
    if not raw:
        return None
    return _event_time_at(_FIRST_TS.search(raw))


def last_event_time(raw: bytes | None) -> float | None:
    """The ``ts`` of a transactions message's last event (an envelope's events are in event
    time, so its latest), read without decoding it, as ``first_event_time``.

    >>> last_event_time(b'{"events":[{"tx_id":4,"ts":10.5,"c":1},{"tx_id":5,"ts":12.0}]}')
    12.0
    >>> last_event_time(b'{"tx_id":4,"ts":10.5}'), last_event_time(b'{"ts":"x"}')
    (10.5, None)
    """
    if not raw:
        return None
    at = raw.rfind(b'"ts"')
    return None if at < 0 else _event_time_at(_FIRST_TS.match(raw, at))


def _event_time_at(found: re.Match[bytes] | None) -> float | None:
    if found is None:
        return None
    try:
        t = float(found.group(1))
    except ValueError:
        return None
    return t if 0.0 <= t <= MAX_EVENT_TIME else None  # what the decoder accepts, else unknown
