"""A drain's progress poll: a worker that answers late is not a failed run."""

from __future__ import annotations

from typing import Any

from benchmarks.pipeline import _scored


class _Worker:
    def __init__(self, scored: float | None) -> None:
        self.scored = scored

    def stats(self) -> dict[str, Any]:
        if self.scored is None:
            raise TimeoutError("timed out")  # what urllib raises when the loop is held
        return {"totals": {"transactions": self.scored}}


def test_progress_is_summed_and_a_late_answer_keeps_the_last_count() -> None:
    assert _scored([_Worker(10), _Worker(5)], 0.0) == 15.0
    assert _scored([_Worker(10), _Worker(None)], 12.0) == 12.0
