"""The worker's current model: scoring, learning, versioning and signed snapshots.

The version is the registry version of the last snapshot this worker wrote or loaded, so a
score names exactly which saved model produced it (plus how many labels were learned since,
for online models that keep moving between snapshots).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.catalog import is_online, make_model
from models.features import FEATURE_NAMES
from models.registry import Registry, RegistryError

log = logging.getLogger(__name__)


class ModelRuntime:
    """One model, the labels it learned, and when to snapshot it."""

    def __init__(
        self,
        name: str,
        registry: Registry,
        snapshot_name: str,
        snapshot_every: int = 5000,
        learn: bool = True,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.registry = registry
        self.snapshot_name = snapshot_name
        self.snapshot_every = snapshot_every
        self.online = is_online(name)
        self.learn_enabled = learn and self.online
        self.model: Any = None
        self.version = 0
        self.learned = 0
        self.learned_since_snapshot = 0
        self.load_errors: list[str] = []
        self._seed = seed

    def start(self) -> None:
        """Load the newest valid snapshot, or start a fresh model (online models only)."""
        source = self.snapshot_name if self.online else self.name
        for version in reversed(self.registry.versions(source)):
            try:
                snap = self.registry.load(source, version)
            except RegistryError as exc:
                self.load_errors.append(str(exc))
                log.error("refusing snapshot %s v%d: %s", source, version, exc)
                continue
            self.model = snap.model
            self.version = int(snap.meta["version"])
            self.learned = int(snap.meta.get("learned", 0))
            log.info("loaded model %s v%d (%d labels learned)", source, self.version, self.learned)
            return
        if not self.online:
            raise RegistryError(
                f"batch model {self.name!r} has no valid snapshot in {self.registry.root}: "
                f"train one first with `fraudstream train --model {self.name}`"
            )
        self.model = make_model(self.name, seed=self._seed)
        log.info("starting a fresh %s model", self.name)

    def reload_from(self, path: str) -> bool:
        """Swap in a snapshot published by another process; keep the current model if invalid."""
        try:
            snap = self.registry.load_path(path)
        except RegistryError as exc:
            self.load_errors.append(str(exc))
            log.error("keeping model v%d, refusing %s: %s", self.version, path, exc)
            return False
        self.model = snap.model
        self.version = int(snap.meta["version"])
        self.learned = int(snap.meta.get("learned", self.learned))
        return True

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}+{self.learned_since_snapshot}"

    def predict_one(self, features: Sequence[float]) -> float:
        return float(self.model.predict_proba_one(dict(zip(FEATURE_NAMES, features, strict=True))))

    def predict_many(self, rows: list[Sequence[float]]) -> list[float]:
        if len(rows) == 1:
            return [self.predict_one(rows[0])]
        if self.online and self.name != "sgd_logreg":
            dicts = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in rows]
            return [float(s) for s in self.model.predict_proba_many(dicts)]
        return [float(s) for s in self.model.predict_proba_many(np.asarray(rows, dtype=float))]

    def learn(self, features: Sequence[float], fraud: int) -> bool:
        """Learn one label; True when a snapshot is due."""
        if not self.learn_enabled:
            return False
        self.model.learn_one(dict(zip(FEATURE_NAMES, features, strict=True)), fraud)
        self.learned += 1
        self.learned_since_snapshot += 1
        return self.learned_since_snapshot >= self.snapshot_every

    def snapshot(self, metrics: dict[str, Any] | None = None) -> str:
        """Write a signed snapshot and advance the version."""
        started = time.perf_counter()
        path = self.registry.save(
            self.model,
            self.snapshot_name,
            metrics=metrics or {},
            extra={"learned": self.learned, "model": self.name},
        )
        self.version = int(path.stem.lstrip("v"))
        self.learned_since_snapshot = 0
        log.info("snapshot %s (%.0f ms)", path, (time.perf_counter() - started) * 1000)
        return str(path)
