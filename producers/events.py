"""Kafka event encoding and hot-path validation (schema version 1, see ``docs/contracts.md``).

The stream processor calls ``parse_transaction`` / ``parse_label`` once per message, so they
are hand-written instead of going through ``jsonschema`` (which costs tens of microseconds per
event): a key-set comparison, exact type checks (``type(x) is int`` so that ``true`` is not an
id) and a finiteness check, a couple of microseconds in all. They accept exactly what the JSON
Schemas in ``producers/schemas/`` accept, with one deliberate difference: an integral float
such as ``3.0`` is an "integer" to JSON Schema but not to the parser, because it is always a
producer bug here. The tests check the two against each other.

Encoding is string formatting rather than ``json.dumps``: the producer's budget at 150,000
transactions per second is a few microseconds per event. Floats are written with ``repr``,
which is the shortest text that reads back to the same float; the values written are checked
finite upstream (simulator and reader), and NaN/inf never reach here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

SCHEMA_VERSION = 1
MAX_ENVELOPE_EVENTS = 10_000

TRANSACTION = "transaction"
LABEL = "label"
ENVELOPE = "envelope"

DELAYED = "delayed"
"""A label's usual source: a chargeback, or the feedback window passing without a dispute."""
FEEDBACK = "feedback"
"""A label found by investigators checking an alerted card (``producers.investigation``)."""
LABEL_SOURCES = (DELAYED, FEEDBACK)


class InvalidEvent(ValueError):
    """An event that breaks the contract; ``reason`` says which rule, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transaction(msgspec.Struct, frozen=True, gc=False):
    """A card payment. A msgspec struct, not a dataclass: ``producers.wire`` builds one per
    event in the worker's hot path, and a frozen dataclass costs several times more to make."""

    tx_id: int
    ts: float
    customer_id: int
    terminal_id: int
    amount: float
    produced_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION, "type": TRANSACTION, "tx_id": self.tx_id, "ts": self.ts,
            "customer_id": self.customer_id, "terminal_id": self.terminal_id,
            "amount": self.amount, "produced_at": self.produced_at,
        }


class Label(msgspec.Struct, frozen=True, gc=False):
    """The truth about a transaction, known at ``known_at`` (see ``Transaction``)."""

    tx_id: int
    customer_id: int
    terminal_id: int
    tx_ts: float
    fraud: int
    known_at: float
    produced_at: float
    source: str = DELAYED
    """``delayed`` or ``feedback``; optional on the wire, where its absence means delayed."""

    def to_dict(self) -> dict[str, Any]:
        body = {
            "v": SCHEMA_VERSION, "type": LABEL, "tx_id": self.tx_id,
            "customer_id": self.customer_id, "terminal_id": self.terminal_id,
            "tx_ts": self.tx_ts, "fraud": self.fraud, "known_at": self.known_at,
            "produced_at": self.produced_at,
        }
        if self.source != DELAYED:
            body["source"] = self.source
        return body


_TX_KEYS = frozenset(("v", "type", "tx_id", "ts", "customer_id", "terminal_id", "amount",
                      "produced_at"))
_LABEL_KEYS = frozenset(("v", "type", "tx_id", "customer_id", "terminal_id", "tx_ts", "fraud",
                         "known_at", "produced_at"))
_SOURCE_KEY = frozenset(("source",))
_ENVELOPE_KEYS = frozenset(("v", "type", "kind", "events"))
_isfinite = math.isfinite


def _head(obj: Any, kind: str, keys: frozenset[str],
          optional: frozenset[str] = frozenset()) -> None:
    """Object, version, type and field set - the checks every event kind shares."""
    if type(obj) is not dict:
        raise InvalidEvent(f"{kind} is not a JSON object")
    v = obj.get("v")
    if v != SCHEMA_VERSION or type(v) is not int:
        raise InvalidEvent(f"unknown schema version {v!r}" if "v" in obj else "missing field 'v'")
    if obj.get("type") != kind:
        raise InvalidEvent(f"type is {obj.get('type')!r}, expected {kind!r}")
    if obj.keys() != keys and not (optional and obj.keys() == keys | optional):
        missing = sorted(keys - obj.keys())
        if missing:
            raise InvalidEvent(f"missing field {missing[0]!r}")
        raise InvalidEvent(f"unknown field {sorted(obj.keys() - keys)[0]!r}")


MAX_ID = 2**53 - 1
"""Ids travel through float arrays in the worker's feature log: keep them exactly representable."""
MAX_AMOUNT = 1e9
"""Larger amounts are data errors; unbounded ones would overflow window sums to inf."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _id(obj: dict[str, Any], name: str) -> int:
    value = obj[name]
    if type(value) is not int or value < 0 or value > MAX_ID:
        raise InvalidEvent(f"{name} must be an integer in [0, 2**53), got {_short(value)}")
    return value


def _number(obj: dict[str, Any], name: str, limit: float = 1e12) -> float:
    value = obj[name]
    t = type(value)
    if ((t is float and _isfinite(value)) or t is int) and 0 <= value <= limit:
        return float(value)
    raise InvalidEvent(f"{name} must be a finite number in [0, {limit:g}], got {_short(value)}")


def parse_transaction(obj: Any) -> Transaction:
    """A decoded JSON object -> Transaction, or InvalidEvent saying what is wrong."""
    _head(obj, TRANSACTION, _TX_KEYS)
    return Transaction(
        _id(obj, "tx_id"), _number(obj, "ts"), _id(obj, "customer_id"),
        _id(obj, "terminal_id"), _number(obj, "amount", MAX_AMOUNT), _number(obj, "produced_at"),
    )


def parse_label(obj: Any) -> Label:
    """A decoded JSON object -> Label, or InvalidEvent saying what is wrong."""
    _head(obj, LABEL, _LABEL_KEYS, _SOURCE_KEY)
    fraud = obj["fraud"]
    if type(fraud) is not int or (fraud != 0 and fraud != 1):
        raise InvalidEvent(f"fraud must be 0 or 1, got {fraud!r}")
    source = obj.get("source", DELAYED)
    if source != DELAYED and source != FEEDBACK:
        raise InvalidEvent(f"source must be 'delayed' or 'feedback', got {_short(source)}")
    return Label(
        _id(obj, "tx_id"), _id(obj, "customer_id"), _id(obj, "terminal_id"),
        _number(obj, "tx_ts"), fraud, _number(obj, "known_at"), _number(obj, "produced_at"),
        source,
    )


def parse_envelope(obj: Any) -> tuple[str, list[Any]]:
    """Check an envelope's frame and return (kind, raw events); events are not parsed here."""
    _head(obj, ENVELOPE, _ENVELOPE_KEYS)
    kind, events = obj["kind"], obj["events"]
    if kind != TRANSACTION and kind != LABEL:
        raise InvalidEvent(f"envelope kind must be 'transaction' or 'label', got {kind!r}")
    if type(events) is not list or not events:
        raise InvalidEvent("envelope events must be a non-empty array")
    if len(events) > MAX_ENVELOPE_EVENTS:
        raise InvalidEvent(f"envelope holds {len(events)} events, max {MAX_ENVELOPE_EVENTS}")
    return kind, events


def loads(raw: bytes | str) -> Any:
    """JSON text -> object, with undecodable input reported as InvalidEvent."""
    if raw is None:
        raise InvalidEvent("empty message (null value)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise InvalidEvent("JSON nested too deeply") from None


def decode_transactions(raw: bytes | str | dict[str, Any]) -> list[Transaction]:
    """One Kafka message value (a transaction or an envelope of transactions) -> transactions.

    An envelope is all or nothing: one bad event rejects the message, naming its position.
    """
    obj = loads(raw) if not isinstance(raw, dict) else raw
    if type(obj) is dict and obj.get("type") == ENVELOPE:
        kind, events = parse_envelope(obj)
        if kind != TRANSACTION:
            raise InvalidEvent(f"expected an envelope of transactions, got {kind!r}")
        return [_in_envelope(parse_transaction, e, i) for i, e in enumerate(events)]
    return [parse_transaction(obj)]


def decode_labels(raw: bytes | str | dict[str, Any]) -> list[Label]:
    """One Kafka message value (a label or an envelope of labels) -> labels."""
    obj = loads(raw) if not isinstance(raw, dict) else raw
    if type(obj) is dict and obj.get("type") == ENVELOPE:
        kind, events = parse_envelope(obj)
        if kind != LABEL:
            raise InvalidEvent(f"expected an envelope of labels, got {kind!r}")
        return [_in_envelope(parse_label, e, i) for i, e in enumerate(events)]
    return [parse_label(obj)]


def _in_envelope(parse: Any, event: Any, index: int) -> Any:
    try:
        return parse(event)
    except InvalidEvent as exc:
        raise InvalidEvent(f"envelope event {index}: {exc.reason}") from None


# --- encoding --------------------------------------------------------------------------------
# A prefix holds every field but produced_at, which is only known when the message is sent;
# ``finish(prefix, produced_at)`` closes it. Envelopes join finished events with commas.

def transaction_prefix(
    tx_id: int, ts: float, customer_id: int, terminal_id: int, amount: float
) -> str:
    return (
        f'{{"v":1,"type":"transaction","tx_id":{tx_id:d},"ts":{ts!r},'
        f'"customer_id":{customer_id:d},"terminal_id":{terminal_id:d},"amount":{amount!r},'
    )


def label_prefix(
    tx_id: int, customer_id: int, terminal_id: int, tx_ts: float, fraud: int, known_at: float,
    source: str = DELAYED,
) -> str:
    """A delayed label is written without ``source`` (the field's default): the producer's
    bytes stay what they were before feedback labels existed."""
    tail = "" if source == DELAYED else f'"source":"{source}",'
    return (
        f'{{"v":1,"type":"label","tx_id":{tx_id:d},"customer_id":{customer_id:d},'
        f'"terminal_id":{terminal_id:d},"tx_ts":{tx_ts!r},"fraud":{fraud:d},'
        f'"known_at":{known_at!r},{tail}'
    )


def finish(prefix: str, produced_at: float) -> str:
    return f'{prefix}"produced_at":{produced_at!r}}}'


def envelope(kind: str, prefixes: list[str], produced_at: float) -> str:
    """Several events (same kind, same partition, in order) as one envelope."""
    tail = f'"produced_at":{produced_at!r}}}'
    return (
        f'{{"v":1,"type":"envelope","kind":"{kind}","events":['
        + ",".join([p + tail for p in prefixes])
        + "]}"
    )


def encode_transaction(tx: Transaction) -> bytes:
    prefix = transaction_prefix(tx.tx_id, tx.ts, tx.customer_id, tx.terminal_id, tx.amount)
    return finish(prefix, tx.produced_at).encode()


def encode_label(label: Label) -> bytes:
    prefix = label_prefix(
        label.tx_id, label.customer_id, label.terminal_id, label.tx_ts, label.fraud,
        label.known_at, label.source,
    )
    return finish(prefix, label.produced_at).encode()
