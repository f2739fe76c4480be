"""The ``scores`` topic's messages: one score, or envelopes of the scores of one batch.

Why envelopes: a Faust worker's cost is per Kafka message, not per byte (``docs/contracts.md``).
A worker in envelope mode already reads a hundred transactions per message; answering each
with its own message made the output, not the input, the bottleneck (measured: a third of the
worker's time went to handing score and changelog messages to the producer). So a worker in
envelope mode answers each batch with one message per partition (more when one would pass
``MAX_ENVELOPE_BYTES``), each keyed by the card of its first score (the scores of one
partition's cards stay in that partition, as the transactions do), and every reader of
``scores`` goes through ``decode_scores``, which accepts both forms.

>>> one = {"v": 1, "tx_id": 7, "customer_id": 3, "score": 0.25}
>>> decode_scores(encode_score(one)) == [one]
True
>>> decode_scores(encode_scores([one, dict(one, tx_id=8)]))[1]["tx_id"]
8
>>> many = [dict(one, tx_id=i) for i in range(1000)]
>>> envelopes = encode_score_envelopes(many, max_bytes=20_000)
>>> len(envelopes), max(len(message) for _, message in envelopes) <= 20_000
(4, True)
>>> [b["tx_id"] for _, message in envelopes for b in decode_scores(message)] == list(range(1000))
True
>>> [scores[0]["tx_id"] for scores, _ in envelopes]
[0, 250, 500, 750]
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

ENVELOPE = "envelope"
KIND = "score"


def encode_score(body: dict[str, Any]) -> bytes:
    """One score as its own message (orjson: the standard encoder cost 5% of a worker's
    CPU in envelope mode; the output is the same compact JSON)."""
    _check_finite(body)
    return orjson.dumps(body)


def encode_scores(bodies: list[dict[str, Any]]) -> bytes:
    """Several scores (of one partition's cards) as one envelope."""
    for body in bodies:
        _check_finite(body)
    return orjson.dumps({"v": 1, "type": ENVELOPE, "kind": KIND, "events": bodies})


MAX_ENVELOPE_BYTES = 512 * 1024
"""The largest envelope of scores a worker sends: about half the producer's default largest
request (Faust's ``producer_max_request_size``, 1,000,000 bytes), which a larger message fails
whole. Measured: one batch of eight 500-transaction envelopes answered with one 1.3 MB
message, the producer refused it and the scoring agent crashed."""


def encode_score_envelopes(
    bodies: list[dict[str, Any]], max_bytes: int = MAX_ENVELOPE_BYTES
) -> list[tuple[list[dict[str, Any]], bytes]]:
    """The scores of one partition's cards as envelopes of at most ``max_bytes`` each, in
    order, each with the scores it holds (halved until they fit; a single score always
    goes, whatever its size)."""
    message = encode_scores(bodies)
    if len(message) <= max_bytes or len(bodies) == 1:
        return [(bodies, message)]
    half = len(bodies) // 2
    return (encode_score_envelopes(bodies[:half], max_bytes)
            + encode_score_envelopes(bodies[half:], max_bytes))


def _check_finite(body: dict[str, Any]) -> None:
    """orjson writes NaN as null where ``json`` refused it: a score must be a number."""
    if not math.isfinite(body.get("score", 0.0)):
        raise ValueError(f"score of transaction {body.get('tx_id')} is {body.get('score')}")


def decode_scores(value: bytes | str) -> list[dict[str, Any]]:
    """The score bodies of one ``scores`` message, single or enveloped.

    Raises ``ValueError`` (JSON) or ``TypeError``/``KeyError`` on what no worker wrote."""
    obj = json.loads(value)
    if type(obj) is dict and obj.get("type") == ENVELOPE:
        if obj.get("kind") != KIND:
            raise ValueError(f"not an envelope of scores: {obj.get('kind')!r}")
        return list(obj["events"])
    if type(obj) is not dict:
        raise TypeError(f"a score is a JSON object, not {type(obj).__name__}")
    return [obj]
