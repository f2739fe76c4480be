"""``python -m benchmarks.latency_one --visible`` against the session broker: besides when each
transaction was scored, when a ``read_committed`` consumer could read its score."""

from __future__ import annotations

import pytest

from benchmarks.latency_one import main

pytestmark = pytest.mark.integration


def test_a_score_is_readable_after_it_is_scored(kafka_bootstrap: str, capsys: object) -> None:
    result = main(["--bootstrap", kafka_bootstrap, "--tx", "1500", "--rate", "500",
                   "--model", "sgd_logreg", "--visible"])
    assert result["visible_n"] == result["n"] > 0  # every kept score was seen by the reader
    # each score is read after its transaction commits, which is after it was scored
    for q in (50, 95, 99):
        assert result[f"visible_p{q}_ms"] >= result[f"p{q}_ms"]
    assert "readable by a read_committed consumer" in capsys.readouterr().out  # type: ignore[attr-defined]
