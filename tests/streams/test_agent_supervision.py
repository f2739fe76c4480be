"""An agent that raises stops the worker instead of being restarted in place.

Faust's default (one-for-one) restarts a crashed agent, but the events of the batch it was
handling are acked all the same: the restarted agent goes on without them, and with event-time
alignment the partition they came from never advances again (seen: an oversized score message,
20,000 transactions never scored). A worker started again re-reads from before its committed
offsets (``streams.rewind``), so stopping is the safer choice.
"""

from __future__ import annotations

from mode import CrashingSupervisor

from infra.settings import Settings
from streams.app import FraudApp


def test_the_scoring_and_learning_agents_stop_the_worker_when_they_raise() -> None:
    agents = {name.rsplit(".", 1)[-1]: agent
              for name, agent in FraudApp(Settings()).app.agents.items()}
    assert {"score_transactions", "learn_labels"} <= set(agents)
    for name in ("score_transactions", "learn_labels"):
        assert agents[name].supervisor_strategy is CrashingSupervisor, name
