"""The worker's recent alerts and what became of them: the investigators' queue.

The console (``/dashboard``, ``/api/stats``) shows the alert queue newest first, each alert with
its score and reasons and, once its label is learned, the label and where it came from
(``feedback`` from investigators, or ``delayed``). Bounded: the last ``size`` alerts; an alert
that falls out of the window is not tracked any more. In memory only: a restarted worker starts
an empty queue (the alerts themselves are on the ``alerts`` topic).

>>> log = AlertLog(size=2)
>>> log.record({"tx_id": 1, "score": 0.97})
>>> log.record({"tx_id": 2, "score": 0.95})
>>> log.labelled(1, 1, "feedback", 1000.0)
>>> [(a["tx_id"], a.get("label")) for a in log.recent()]
[(2, None), (1, {'fraud': 1, 'source': 'feedback', 'known_at': 1000.0})]
>>> log.stats()["confirmed"], log.stats()["precision"]
(1, 1.0)
"""

from __future__ import annotations

from collections import deque
from typing import Any

from producers.events import FEEDBACK


class AlertLog:
    """The last ``size`` alerts (bodies as sent) with their labels once learned."""

    def __init__(self, size: int = 200) -> None:
        self._alerts: deque[dict[str, Any]] = deque(maxlen=size)
        self._by_tx: dict[int, dict[str, Any]] = {}
        self.feedback_labels = 0
        """Feedback labels this worker read (all, alerted by it or not)."""
        self.feedback_frauds = 0
        self._recent_feedback: deque[dict[str, Any]] = deque(maxlen=20)

    def record(self, alert: dict[str, Any]) -> None:
        if len(self._alerts) == self._alerts.maxlen:
            old = self._alerts[0]
            self._by_tx.pop(int(old["tx_id"]), None)
        entry = dict(alert)
        self._alerts.append(entry)
        self._by_tx[int(alert["tx_id"])] = entry

    def labelled(self, tx_id: int, fraud: int, source: str, known_at: float) -> None:
        """A label was learned; if its transaction is in the queue, the alert shows it."""
        entry = self._by_tx.get(tx_id)
        if entry is not None:
            entry["label"] = {"fraud": int(fraud), "source": source, "known_at": known_at}

    def feedback_read(self, tx_id: int, customer_id: int, fraud: int, known_at: float,
                      arrived_at: float) -> None:
        """A feedback label arrived (it is learned at ``known_at``, event time)."""
        self.feedback_labels += 1
        self.feedback_frauds += fraud
        self._recent_feedback.appendleft({"tx_id": tx_id, "customer_id": customer_id,
                                          "fraud": fraud, "known_at": known_at,
                                          "arrived_at": arrived_at})

    def recent(self, n: int = 50) -> list[dict[str, Any]]:
        """The ``n`` newest alerts, newest first."""
        return [dict(a) for a in list(self._alerts)[::-1][:n]]

    def stats(self) -> dict[str, Any]:
        """Alerts in the queue, how many are labelled, confirmed frauds, their precision, and
        the feedback labels read."""
        labelled = [a["label"] for a in self._alerts if "label" in a]
        confirmed = sum(label["fraud"] for label in labelled)
        return {
            "queued": len(self._alerts),
            "labelled": len(labelled),
            "confirmed": confirmed,
            "precision": confirmed / len(labelled) if labelled else None,
            "by_feedback": sum(1 for label in labelled if label["source"] == FEEDBACK),
            "feedback_labels": self.feedback_labels,
            "feedback_frauds": self.feedback_frauds,
            "recent_feedback": list(self._recent_feedback),
        }
