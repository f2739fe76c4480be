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
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

ENVELOPE = "envelope"
KIND = "score"


def encode_score(body: dict[str, Any]) -> bytes:
    """One score as its own message."""
    return _dumps(body).encode()


def encode_scores(bodies: list[dict[str, Any]]) -> bytes:
    """Several scores (of one partition's cards) as one envelope."""
    return _dumps({"v": 1, "type": ENVELOPE, "kind": KIND, "events": bodies}).encode()


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
