"""The ``scores`` topic's messages: one score, or an envelope of the scores of one batch.

Why envelopes: a Faust worker's cost is per Kafka message, not per byte (``docs/contracts.md``).
A worker in envelope mode already reads a hundred transactions per message; answering each
with its own message made the output, not the input, the bottleneck (measured: a third of the
worker's time went to handing score and changelog messages to the producer). So a worker in
envelope mode answers each batch with one message per partition, keyed by the card of its
first score (the scores of one partition's cards stay in that partition, as the transactions
do), and every reader of ``scores`` goes through ``decode_scores``, which accepts both forms.

>>> one = {"v": 1, "tx_id": 7, "customer_id": 3, "score": 0.25}
>>> decode_scores(encode_score(one)) == [one]
True
>>> decode_scores(encode_scores([one, dict(one, tx_id=8)]))[1]["tx_id"]
8
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
