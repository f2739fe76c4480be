"""``python -m benchmarks.processor_alone`` runs the processor over a small world and accounts
for its CPU by stage."""

from __future__ import annotations

from benchmarks.processor_alone import main


def test_the_processor_alone_accounts_for_its_cpu_by_stage(capsys: object) -> None:
    result = main(["--tx", "3000", "--customers", "100", "--terminals", "200", "--days", "30"])
    stages = ("decode", "state", "features", "model", "output", "processor")
    assert all(result[s] >= 0 for s in stages)
    assert 0 < result["score_messages"] < result["tx"] / 100  # envelopes of scores
    assert result["features"] > 0 and result["model"] > 0
    # the stages are the processor's calls' CPU time: at most the run's (which adds the loop)
    assert sum(result[s] for s in stages) <= result["cpu_us_per_tx"] * 1.05
    assert "CPU-us/tx" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_the_event_path_sends_one_score_message_per_transaction(capsys: object) -> None:
    """``--envelope 1 --batch 1``: one transaction per message and per processor call."""
    result = main(["--tx", "1500", "--customers", "100", "--terminals", "200", "--days", "30",
                   "--envelope", "1", "--batch", "1"])
    assert result["score_messages"] == result["tx"] == 1500
    assert result["features"] > 0 and result["output"] > 0
    assert "CPU-us/tx" in capsys.readouterr().out  # type: ignore[attr-defined]
