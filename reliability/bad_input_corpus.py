"""The bad-input corpus: malformed messages that break the event contract, and valid ones.

``malformed_strategy`` is a hypothesis strategy with one category per way a message can be
wrong (not JSON, wrong types, missing or extra fields, non-finite numbers, bad envelopes,
wrong keys, ...); ``collect_examples`` draws a reproducible batch of it, ``oversized_cases``
adds large messages up to what a dead letter can carry, and ``valid_cases`` the well-formed
transactions that must still be scored. The corpus is kept apart from the scenario that sends
it (``reliability.bad_input``) because the tests also use it alone, on the processor in
process, where hypothesis can shrink a failing event.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

from fraudstream.errors import FraudstreamError

DLQ_B64_LIMIT = 1_000_000
"""Faust's producer refuses records over ``producer_max_request_size`` (1,000,000 bytes)."""

MAX_DEAD_LETTERABLE = (DLQ_B64_LIMIT - 4_000) * 3 // 4
"""Largest original the DLQ can carry: base64 is 4/3 of it, plus the JSON around it.

Only when the reason is short: ``producers.events`` puts ``repr(value)`` of a bad field in the
reason, so a large bad *value* costs its size twice (``MAX_ECHOED_VALUE``; see
``tests/reliability/test_known_gaps.py``)."""

MAX_ECHOED_VALUE = 250_000
"""Largest bad field value sent: 4/3 of it as base64 plus once more in the reason < 1 MB."""

TX_FIELDS = ("v", "type", "tx_id", "ts", "customer_id", "terminal_id", "amount", "produced_at")
LABEL_FIELDS = ("v", "type", "tx_id", "customer_id", "terminal_id", "tx_ts", "fraud", "known_at",
                "produced_at")
INT_FIELDS = {"tx_id", "customer_id", "terminal_id", "fraud"}
FLOAT_FIELDS = {"ts", "amount", "produced_at", "tx_ts", "known_at"}
VALID_ID_BASE = 50_000_000
"""Valid transactions get ids from here up, so no malformed event can share one."""


@dataclass(frozen=True)
class Case:
    """One message to send: where, its bytes, and what the pipeline must do with it."""

    topic: str  # "transactions" or "labels"
    category: str  # "valid", "valid_envelope" or the kind of damage
    key: bytes | None
    value: bytes
    tx_ids: tuple[int, ...] = ()  # the transactions it must get scored (its valid events)
    dead: tuple[bytes, ...] = ()  # the bytes of each dead letter; () = one for the whole value

    @property
    def letters(self) -> tuple[bytes, ...]:
        """The original bytes its dead letters must carry, one entry per letter."""
        return self.dead or (() if self.valid else (self.value,))

    @property
    def valid(self) -> bool:
        return self.category.startswith("valid")


def _template(kind: str, tx_id: int = 1, customer_id: int = 7) -> dict[str, Any]:
    if kind == "transaction":
        return {"v": 1, "type": "transaction", "tx_id": tx_id, "ts": 1.53e9, "customer_id":
                customer_id, "terminal_id": 11, "amount": 42.5, "produced_at": 1.7e9}
    return {"v": 1, "type": "label", "tx_id": tx_id, "customer_id": customer_id,
            "terminal_id": 11, "tx_ts": 1.53e9, "fraud": 1, "known_at": 1.531e9,
            "produced_at": 1.7e9}


def malformed_strategy() -> Any:
    """Hypothesis strategy of ``Case`` objects that break the event contract in one way each.

    Every category here must be dead-lettered by the worker, with its reason and its bytes
    (an envelope with one malformed event: that event alone, its other events scored).
    Inputs that the contract does *not* reject today (finite amounts that overflow a window
    sum, ids beyond int64, deeply nested JSON, null values, envelopes under a foreign key) are
    left out on purpose: they are the known gaps in ``tests/reliability/test_known_gaps.py``.
    """
    from hypothesis import strategies as st

    kinds = st.sampled_from(["transaction", "transaction", "transaction", "label"])
    json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                             st.floats(allow_nan=False, allow_infinity=False),
                             st.text(max_size=20))
    json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3)
                               | st.dictionaries(st.text(max_size=5), c, max_size=3),
                               max_leaves=6)

    def encode(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    def base() -> Any:
        return st.builds(lambda kind, tx, cust: (kind, _template(kind, tx, cust)),
                         kinds, st.integers(0, 10**6), st.integers(0, 500))

    def key_of(event: dict[str, Any]) -> bytes:
        cust = event.get("customer_id", 7)
        return str(cust).encode() if type(cust) is int else b"7"

    @st.composite
    def invalid_json(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        text = encode(event)
        choice = draw(st.integers(0, 4))
        if choice == 0:  # truncated
            value = text[: draw(st.integers(0, len(text) - 1))]
        elif choice == 1:  # random bytes (not UTF-8 JSON of an object, almost surely)
            value = draw(st.binary(max_size=300))
        elif choice == 2:  # trailing garbage
            value = text + draw(st.sampled_from([b"}", b"x", b",", b"\x00", b" {}"]))
        elif choice == 3:  # Python repr, not JSON
            value = repr(event).encode()
        else:  # Latin-1 bytes inside a string
            value = text.replace(b'"type"', b'"typ\xe9"')
        return kind, key_of(event), value

    @st.composite
    def not_object(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind = draw(kinds)
        value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return kind, b"7", encode(value)

    def wrong_value(field_name: str) -> Any:
        if field_name in INT_FIELDS:
            bad = st.one_of(st.text(max_size=8), st.booleans(), st.none(),
                            st.floats(allow_nan=False, allow_infinity=False),
                            st.lists(st.integers(), max_size=2), st.just({"id": 1}))
            if field_name == "fraud":
                bad = bad | st.integers(2, 10**6) | st.integers(-10**6, -1)
            return bad
        if field_name in FLOAT_FIELDS:
            return st.one_of(st.text(max_size=8), st.booleans(), st.none(),
                             st.lists(st.floats(allow_nan=False), max_size=2), st.just({}))
        if field_name == "type":
            return st.text(max_size=12).filter(lambda t: t not in ("transaction", "label",
                                                                    "envelope")) | st.integers()
        return st.one_of(st.none(), st.text(max_size=4))

    @st.composite
    def wrong_type(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        name = draw(st.sampled_from([f for f in event if f != "v"]))
        event[name] = draw(wrong_value(name))
        return kind, key_of(event), encode(event)

    @st.composite
    def missing_field(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        key = key_of(event)
        for name in draw(st.lists(st.sampled_from(list(event)), min_size=1, max_size=3,
                                  unique=True)):
            del event[name]
        return kind, key, encode(event)

    @st.composite
    def extra_field(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        name = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in event))
        event[name] = draw(json_values)
        return kind, key_of(event), encode(event)

    @st.composite
    def negative(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        names = [f for f in event if f in INT_FIELDS | FLOAT_FIELDS and f != "fraud"]
        name = draw(st.sampled_from(names))
        if name in INT_FIELDS:
            event[name] = draw(st.integers(max_value=-1))
        else:
            event[name] = draw(st.floats(max_value=-1e-300, allow_nan=False,
                                         allow_infinity=False))
        return kind, key_of(event), encode(event)

    @st.composite
    def non_finite(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        name = draw(st.sampled_from([f for f in event if f in FLOAT_FIELDS]))
        event[name] = "@@"
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999",
                                      "9" * 400 + ".0"]))
        return kind, key_of(event), encode(event).replace(b'"@@"', token.encode())

    @st.composite
    def huge_integer_text(draw: Any) -> tuple[str, bytes | None, bytes]:
        # More digits than Python's int parser accepts (4,300): a JSON bomb, refused as JSON.
        kind, event = draw(base())
        name = draw(st.sampled_from([f for f in event if f in INT_FIELDS | FLOAT_FIELDS]))
        event[name] = "@@"
        digits = str(draw(st.integers(1, 9))) * draw(st.integers(4_301, 20_000))
        return kind, key_of(event), encode(event).replace(b'"@@"', digits.encode())

    @st.composite
    def schema_version(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        v = draw(st.one_of(st.integers().filter(lambda i: i != 1), st.just(1.0), st.just(True),
                           st.just("1"), st.none(), st.just([1])))
        if draw(st.booleans()) or v is None:
            event["v"] = v
        else:
            del event["v"]
        return kind, key_of(event), encode(event)

    @st.composite
    def wrong_event_type(draw: Any) -> tuple[str, bytes | None, bytes]:
        kind, event = draw(base())
        other = "label" if kind == "transaction" else "transaction"
        # A well-formed event of the other kind, on this kind's topic.
        return kind, key_of(event), encode(_template(other, event["tx_id"], event["customer_id"]))

    @st.composite
    def bad_envelope(draw: Any) -> tuple[Any, ...]:
        kind, event = draw(base())
        events: Any = [dict(event) for _ in range(draw(st.integers(1, 4)))]
        choice = draw(st.integers(0, 4))
        envelope: dict[str, Any] = {"v": 1, "type": "envelope", "kind": kind}
        if choice == 0:  # one bad event: dead-lettered alone, the others go on
            i = draw(st.integers(0, len(events) - 1))
            events[i]["amount" if kind == "transaction" else "fraud"] = "x"
            envelope["events"] = events
            scored = (event["tx_id"],) if kind == "transaction" and len(events) > 1 else ()
            # json.dumps writes a nested object as it writes it alone: its bytes in the envelope
            return kind, key_of(event), encode(envelope), (encode(events[i]),), scored
        elif choice == 1:
            events = []
        elif choice == 2:
            envelope["kind"] = draw(st.sampled_from(["transactions", "", "envelope", 1]))
        elif choice == 3:
            events = draw(json_values.filter(lambda v: not isinstance(v, list)))
        else:
            envelope["extra"] = True
        envelope["events"] = events
        return kind, key_of(event), encode(envelope)

    @st.composite
    def wrong_key(draw: Any) -> tuple[str, bytes | None, bytes]:
        # Only transactions: the card id is the key that routes a card's state (labels are
        # not key-checked today: see test_known_gaps).
        _, event = draw(base())
        right = key_of(event)
        key = draw(st.one_of(st.none(), st.just(b""), st.binary(max_size=12),
                             st.just(right + b" "), st.just(str(int(right) + 1).encode()))
                   .filter(lambda k: k != right))
        return "transaction", key, encode(event)

    named = {
        "invalid_json": invalid_json(), "not_object": not_object(), "wrong_type": wrong_type(),
        "missing_field": missing_field(), "extra_field": extra_field(), "negative": negative(),
        "non_finite": non_finite(), "huge_integer_text": huge_integer_text(),
        "schema_version": schema_version(), "wrong_event_type": wrong_event_type(),
        "bad_envelope": bad_envelope(), "wrong_key": wrong_key(),
    }

    def to_case(category: str, parts: tuple[Any, ...]) -> Case:
        kind, key, value, *more = parts
        dead, scored = more if more else ((), ())  # a damaged envelope's letters, scored ids
        return Case("transactions" if kind == "transaction" else "labels", category, key, value,
                    tx_ids=scored, dead=dead)

    return st.one_of(*(s.map(lambda p, c=c: to_case(c, p)) for c, s in named.items()))


def collect_examples(strategy: Any, n: int, seed: int) -> list[Any]:
    """``n`` examples of ``strategy``, reproducible from ``seed``, via hypothesis' engine.

    ``@given`` (not ``.example()``) so that generation is the real engine, seeded and without
    the example database; nothing is shrunk because the property is checked afterwards, on the
    whole batch, against a real worker.
    """
    try:
        from hypothesis import HealthCheck, Phase, given
        from hypothesis import seed as hseed
        from hypothesis import settings as hsettings
    except ImportError:  # pragma: no cover - hypothesis is a dev extra
        raise FraudstreamError(
            "the bad-input scenario needs hypothesis: pip install -e '.[dev]'") from None
    out: list[Any] = []

    @hseed(seed)
    @hsettings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
               suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Any) -> None:
        out.append(example)

    collect()
    if len(out) < n:  # hypothesis stops early when it believes the space is exhausted
        rng = random.Random(seed)
        out += [rng.choice(out) for _ in range(n - len(out))]
    return out[:n]


def oversized_cases(n: int, seed: int, max_bytes: int) -> list[Case]:
    """Large messages (64 KB to ``max_bytes``): padding fields, giant strings, giant arrays."""
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        # Sizes spread evenly down from the largest, so that even three cases cover the range.
        size = max_bytes - (max_bytes - 64 * 1024) * i // max(n, 1)
        event = _template("transaction", rng.randint(0, 10**6), rng.randint(0, 500))
        how = i % 3
        if how == 0:  # an unknown field
            event["padding"] = "x" * size
        elif how == 1:  # a bad value (echoed in the reason: kept smaller)
            if i % 2:
                event["terminal_id"] = "9" * min(size, MAX_ECHOED_VALUE)
            else:
                event["amount"] = [1.0] * (min(size, MAX_ECHOED_VALUE) // 5)
        else:  # a large body cut short: not JSON
            event["padding"] = "y" * size
        value = json.dumps(event).encode()
        value = value[:max_bytes] if how != 2 else value[: min(size, max_bytes) - 10]
        cases.append(Case("transactions", "oversized", str(event["customer_id"]).encode(), value))
    return cases


def valid_cases(n: int, seed: int, customers: int = 300, envelope_share: float = 0.05) -> list[Case]:
    """Well-formed transactions (some packed in envelopes) with ids from ``VALID_ID_BASE``."""
    rng = random.Random(seed)
    cases: list[Case] = []
    next_id = VALID_ID_BASE
    ts = 1.53e9
    while sum(len(c.tx_ids) for c in cases) < n:
        cust = rng.randrange(customers)
        k = rng.randint(2, 5) if rng.random() < envelope_share else 1
        events = []
        for _ in range(k):
            ts += rng.uniform(0, 60)
            events.append({"v": 1, "type": "transaction", "tx_id": next_id, "ts": ts,
                           "customer_id": cust, "terminal_id": rng.randrange(1000),
                           "amount": round(rng.uniform(0, 500), 2), "produced_at": time.time()})
            next_id += 1
        ids = tuple(e["tx_id"] for e in events)
        if k == 1:
            cases.append(Case("transactions", "valid", str(cust).encode(),
                              json.dumps(events[0]).encode(), ids))
        else:
            body = {"v": 1, "type": "envelope", "kind": "transaction", "events": events}
            cases.append(Case("transactions", "valid_envelope", str(cust).encode(),
                              json.dumps(body).encode(), ids))
    return cases
