"""Champion and challengers: shadow models scored on live traffic, never alerting.

A bank does not swap the model that raises alerts on the strength of an offline table: it runs
the candidate beside the champion on the same transactions (*shadow mode*), compares them on the
labels as they arrive, and promotes the challenger when it is better. Here each challenger is a
``ModelRuntime`` of its own that scores every new transaction the champion scores, learns
every label the worker learns (with its source), and decides its own alerts with its own copy
of the alert policy, which are counted, never sent. Its scores go to the ``shadow-scores``
topic, one message per transaction (``{"v", "tx_id", "customer_id", "ts", "champion",
"scores": {name: score}}``), never to ``scores`` or ``alerts``.

Live quality per model (the champion too, measured the same way): exact AUC and AP over the
last ``window`` labelled transactions, and the precision of the alerts it raised (or would
have) among them. The scores waiting for their labels are kept for the last ``keep``
transactions, in memory: after a restart, transactions scored before it count for no model.

Promotion (``fraudstream promote NAME``, ``promote``): the challenger's model is written as a
signed snapshot and loaded back through the registry's verification into the champion's
runtime, so what the worker serves was checked the same way as every other snapshot; a
snapshot that fails verification is refused and the champion stays. The old champion's model
becomes the challenger in its place, so the comparison goes on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models.catalog import is_online
from models.ranking import average_precision, roc_auc
from streams.alert_policy import AlertPolicy
from streams.model_runtime import ModelRuntime, snapshot_model_name

log = logging.getLogger(__name__)


@dataclass
class Contender:
    """One model's runtime, its alert policy and its labelled (score, fraud, alerted) window."""

    runtime: ModelRuntime
    policy: AlertPolicy
    window: deque[tuple[float, int, bool]] = field(default_factory=lambda: deque(maxlen=5000))
    labels: int = 0
    alerts: int = 0

    @property
    def name(self) -> str:
        return self.runtime.name

    def quality(self) -> dict[str, Any]:
        """Exact AUC/AP over the window (None without both classes) and alert precision."""
        scores = [s for s, _, _ in self.window]
        frauds = [f for _, f, _ in self.window]
        alerted = [f for _, f, a in self.window if a]
        auc = ap = None
        if 0 < sum(frauds) < len(frauds):
            auc = roc_auc(frauds, scores)
            ap = average_precision(frauds, scores)
        return {"name": self.name, "model": self.runtime.label, "rolling_auc": auc,
                "rolling_ap": ap, "alert_precision": sum(alerted) / len(alerted)
                if alerted else None, "alerts": self.alerts, "labels": self.labels}


class Challengers:
    """The champion's and the challengers' scores of recent transactions, and their quality.

    The champion is the processor's own runtime (``champion.runtime is processor.runtime``);
    the processor tells this object what it scored and alerted (``scored``) and learned
    (``learned``)."""

    def __init__(self, champion: Contender, challengers: Sequence[Contender],
                 keep: int = 200_000) -> None:
        self.champion = champion
        self.challengers = list(challengers)
        self.keep = keep
        self._pending: OrderedDict[int, list[tuple[float, bool]]] = OrderedDict()

    @property
    def contenders(self) -> list[Contender]:
        return [self.champion, *self.challengers]

    def scored(self, txs: Sequence[Any], rows: list[list[float]], scores: Sequence[float],
               alerted: Sequence[bool]) -> list[dict[str, float]]:
        """The champion scored (and alerted on) ``txs``: the challengers score the same rows
        and decide their own (unsent) alerts. Returns each transaction's shadow scores."""
        if not txs:
            return []
        per_model = [c.runtime.predict_many(rows) for c in self.challengers]
        shadow = []
        pending = self._pending
        for i, tx in enumerate(txs):
            entry = [(float(scores[i]), bool(alerted[i]))]
            self.champion.alerts += bool(alerted[i])
            out = {}
            for c, s in zip(self.challengers, per_model, strict=True):
                score = float(s[i])
                alert = c.policy.decide(tx.customer_id, tx.ts, score)
                c.alerts += alert
                entry.append((score, alert))
                out[c.name] = score
            pending[tx.tx_id] = entry
            shadow.append(out)
        while len(pending) > self.keep:
            pending.popitem(last=False)
        return shadow

    def learned(self, tx_id: int, features: Sequence[float], fraud: int, source: str) -> None:
        """The worker learned a label: every challenger learns it too; all windows see it."""
        for c in self.challengers:
            c.runtime.learn(features, fraud, source)
        entry = self._pending.pop(tx_id, None)
        if entry is None:
            return
        for c, (score, alerted) in zip(self.contenders, entry, strict=False):
            c.window.append((score, fraud, alerted))
            c.labels += 1

    def quality(self) -> list[dict[str, Any]]:
        rows = []
        for role, c in [("champion", self.champion)] + [("challenger", c)
                                                          for c in self.challengers]:
            rows.append({"role": role, **c.quality()})
        return rows

    def promote(self, name: str) -> str:
        """Make challenger ``name`` the champion through a signed snapshot; returns the path.

        The alert policy moves with its model (its threshold tracks that model's scores): the
        caller serves alerts from ``self.champion.policy`` afterwards. Raises ``KeyError`` for
        an unknown challenger and ``RegistryError`` when the written snapshot does not verify
        (nothing changes then)."""
        index = next((i for i, c in enumerate(self.challengers) if c.name == name), None)
        if index is None:
            raise KeyError(f"no challenger {name!r}; challengers: "
                           f"{', '.join(c.name for c in self.challengers) or 'none'}")
        challenger = self.challengers[index]
        champion = self.champion.runtime
        old_model, old_name = champion.model, champion.name
        path = challenger.runtime.snapshot({"promoted_over": old_name})
        snap = champion.registry.load_path(path)  # verified: a tampered file raises here
        champion.model = snap.model
        champion.name = snapshot_model_name(snap) or name
        champion.online = challenger.runtime.online
        champion.learn_enabled = challenger.runtime.learn_enabled
        challenger.runtime.model, challenger.runtime.name = old_model, old_name
        challenger.runtime.online = is_online(old_name)
        challenger.runtime.learn_enabled = challenger.runtime.online and champion.learn_enabled
        ours, theirs = self.champion, challenger
        for attr in ("window", "labels", "alerts", "policy"):  # the record follows the model
            mine = getattr(ours, attr)
            setattr(ours, attr, getattr(theirs, attr))
            setattr(theirs, attr, mine)
        for entry in self._pending.values():
            entry[0], entry[index + 1] = entry[index + 1], entry[0]
        log.info("promoted %s over %s (snapshot %s)", name, old_name, path)
        return path
