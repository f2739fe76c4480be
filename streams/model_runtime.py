"""The worker's current model: scoring, learning, versioning and signed snapshots.

The version is the registry version of the last snapshot this worker wrote or loaded, so a
score names exactly which saved model produced it (plus how many labels were learned since,
for online models that keep moving between snapshots).

Warm start: a worker that has no snapshot of its own yet can start from a named registry
snapshot (``NAME[@VERSION]``, e.g. a model trained offline on history) instead of from an
untrained model. Its own snapshots still win, so a restarted worker continues where it was and
does not jump back to the bootstrap model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.catalog import is_online, make_model
from models.features import FEATURE_NAMES
from models.registry import Registry, RegistryError, Snapshot, parse_ref, pickled
from producers.events import DELAYED

log = logging.getLogger(__name__)

VECTOR_MIN_ROWS = 32
"""Fewer rows than this are scored row by row when the model has a plain-row path
(``predict_proba_vec``): one numpy call costs ~10 µs whatever its size, and in a drain with
labels flowing most stretches between two label releases are a few transactions long
(``sgd_logreg``, 2026-12-02: 6.9 µs per row by twos, 2.2 by eights, 0.9 by 64s, 1.1 alone)."""


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
        warm_start: str | None = None,
        from_trainer: bool = False,
        keep: int = 0,
    ) -> None:
        self.name = name
        self.registry = registry
        self.snapshot_name = snapshot_name
        self.snapshot_every = snapshot_every
        self.keep = keep
        """Versions of ``snapshot_name`` kept after each snapshot (0: all; ``Registry.prune``)."""
        self.online = is_online(name)
        self.learn_enabled = learn and self.online
        self.model: Any = None
        self.version = 0
        self.learned = 0
        self._learned_at_save = 0
        """``learned`` when the current version was written or loaded."""
        self._learned_at_capture = 0
        """``learned`` at the last capture (or load): the next snapshot is due
        ``snapshot_every`` labels after it, not after its write (a capture waits for a
        flush: ``capture``)."""
        self.load_errors: list[str] = []
        self.warm_start = warm_start
        self.warm_started_from: str | None = None  # "NAME@VERSION" after a warm start
        self.resume: dict[str, Any] = {}
        """What the worker's own snapshot it started from says about reading on (its
        ``resume`` entry, e.g. the shared examples' offsets); empty otherwise."""
        self._seed = seed
        self._learner: Any = None
        self._learner_of: Any = None  # the model ``_learner`` was bound to
        self.from_trainer = from_trainer
        """Models come from ``fraudstream trainer``: a batch model may start unfitted (it
        scores 0 until the trainer's first snapshot) instead of refusing to start."""

    def _warm_ref(self) -> str | None:
        return self.warm_start or None

    def start(self) -> None:
        """Pick the model to start with.

        Online models: the worker's own newest valid snapshot; else the warm-start snapshot
        (verified, and of the same model); else a fresh model. Batch models never write
        snapshots of their own, so a named snapshot pins the one to serve; without one they
        serve the newest snapshot under their model name.
        """
        ref = self._warm_ref()
        if self.online:
            if self._load_newest(self.snapshot_name):
                return
            if ref is not None:
                self._warm(ref)
                return
            self.model = make_model(self.name, seed=self._seed)
            log.info("starting a fresh %s model", self.name)
            return
        if ref is not None:
            self._warm(ref)
            return
        if not self._load_newest(self.name):
            if self.from_trainer:
                self.model = make_model(self.name, seed=self._seed)
                log.info("no %s snapshot yet: scoring 0 until the trainer publishes one",
                         self.name)
                return
            raise RegistryError(
                f"batch model {self.name!r} has no valid snapshot in {self.registry.root}: "
                f"train one first with `fraudstream train --model {self.name}`"
            )

    def _load_newest(self, source: str) -> bool:
        """Load the newest snapshot of ``source`` that verifies; False if there is none."""
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
            self._learned_at_save = self._learned_at_capture = self.learned
            self.resume = dict(snap.meta.get("resume") or {})
            held = snapshot_model_name(snap)
            if held and held != self.name and is_online(held) == self.online:
                # a challenger was promoted into this lineage (``streams.challengers``)
                log.info("lineage %s holds a %s model (promoted): serving it", source, held)
                self.name = held
            log.info("loaded model %s v%d (%d labels learned)", source, self.version, self.learned)
            return True
        return False

    def _warm(self, ref: str) -> None:
        """Start from the named snapshot, or fail with one line saying why.

        Failing (rather than falling back to a fresh model) is deliberate: a worker asked to
        start trained that silently starts untrained floods the alert queue.
        """
        name, version = parse_ref(ref)
        try:
            snap = self.registry.load(name, version)
        except RegistryError as exc:
            raise RegistryError(f"warm-start snapshot {ref!r}: {exc}") from None
        held = snapshot_model_name(snap)
        where = f"{name}@{snap.meta['version']}"
        if held != self.name:
            raise RegistryError(
                f"warm-start snapshot {where} holds a {held!r} model but this worker runs "
                f"{self.name!r}; start the worker with --model {held} or pick another snapshot"
            )
        self.model = snap.model
        self.learned = int(snap.meta.get("learned", 0))
        self._learned_at_save = self._learned_at_capture = self.learned
        # An online worker's versions count its own snapshots (v1 is its first); the bootstrap
        # model is v0 of that lineage. A batch model is served as saved: its registry version.
        self.version = 0 if self.online else int(snap.meta["version"])
        self.warm_started_from = where
        log.info("warm start from %s (%d labels learned)", where, self.learned)

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
        self._learned_at_save = self._learned_at_capture = self.learned
        return True

    @property
    def label(self) -> str:
        return f"{self.name}:v{self.version}+{self.learned_since_snapshot}"

    def predict_one(self, features: Sequence[float]) -> float:
        vec = _plain(self.model, "predict_proba_vec")  # no dict for a model that reads rows
        if vec is not None:
            return float(vec(features))
        return float(self.model.predict_proba_one(dict(zip(FEATURE_NAMES, features, strict=True))))

    def predict_many(self, rows: list[Sequence[float]]) -> list[float]:
        if len(rows) < VECTOR_MIN_ROWS:
            vec = _plain(self.model, "predict_proba_vec")
            if vec is not None:  # a short stretch: numpy's fixed cost per call is the price
                return [float(vec(r)) for r in rows]
            if len(rows) == 1:
                return [self.predict_one(rows[0])]
        if self.online and self.name != "sgd_logreg":
            dicts = [dict(zip(FEATURE_NAMES, r, strict=True)) for r in rows]
            return [float(s) for s in self.model.predict_proba_many(dicts)]
        return [float(s) for s in self.model.predict_proba_many(np.asarray(rows, dtype=float))]

    def learn(self, features: Sequence[float], fraud: int, source: str = DELAYED) -> bool:
        """Learn one label; True when a snapshot is due. ``source`` reaches only the models
        that learn the label sources apart (``models.aggregate``)."""
        if not self.learn_enabled:
            return False
        if self._learner_of is not self.model:  # bound once per model, not per label
            self._learner, self._learner_of = _learner_for(self.model), self.model
        self._learner(features, fraud, source)
        self.learned += 1
        return self.learned - self._learned_at_capture >= self.snapshot_every

    @property
    def learned_since_snapshot(self) -> int:
        """Labels learned since the current version was written or loaded."""
        return self.learned - self._learned_at_save

    def snapshot(self, metrics: dict[str, Any] | None = None,
                 resume: dict[str, Any] | None = None) -> str:
        """Write a signed snapshot and advance the version; ``resume`` is kept in its header
        for a worker restarted from it (``self.resume``)."""
        return self.save(self.capture(metrics, resume))

    def capture(self, metrics: dict[str, Any] | None = None,
                resume: dict[str, Any] | None = None) -> Captured:
        """The model as it is now, to be written by ``save`` later: the worker captures it
        while every label it holds is in a staged card, and writes it once those cards
        are on Kafka (``FraudApp``: a snapshot never holds a label its cards do not mark
        learned, which a restart would learn again)."""
        extra: dict[str, Any] = {"learned": self.learned, "model": self.name}
        if resume:
            extra["resume"] = resume
        self._learned_at_capture = self.learned
        return Captured(pickled(self.model), metrics or {}, extra, self.learned)

    def save(self, captured: Captured) -> str:
        """Write a captured model as the next version; older ones beyond ``keep`` go."""
        started = time.perf_counter()
        path = self.registry.save_payload(captured.payload, self.snapshot_name,
                                          metrics=captured.metrics, extra=captured.extra)
        self.version = int(path.stem.lstrip("v"))
        self._learned_at_save = captured.learned
        if self.keep:
            self.registry.prune(self.snapshot_name, self.keep)
        log.info("snapshot %s (%.0f ms)", path, (time.perf_counter() - started) * 1000)
        return str(path)


@dataclass(frozen=True)
class Captured:
    """A model's pickled state and header at one moment (``ModelRuntime.capture``)."""

    payload: bytes
    metrics: dict[str, Any]
    extra: dict[str, Any]
    learned: int


def snapshot_model_name(snap: Snapshot) -> str | None:
    """Which catalog model a snapshot holds: the object's own name, else what its header says.

    The registry name is a free label (``demo-warm``), so it cannot be trusted to say it.
    """
    name = getattr(snap.model, "name", None)
    return str(name) if name is not None else snap.meta.get("model")


def _learner_for(model: Any) -> Any:
    """``learn(features, fraud, source)`` for ``model``: rows straight in when it reads rows,
    a dict otherwise; ``source`` passed on only to models that learn the sources apart."""
    vec = _plain(model, "learn_vec")
    sourced = getattr(model, "uses_source", False)
    if vec is not None:
        return vec if sourced else lambda features, fraud, source: vec(features, fraud)
    learn_one = model.learn_one
    if sourced:
        return lambda features, fraud, source: learn_one(
            dict(zip(FEATURE_NAMES, features, strict=True)), fraud, source)
    return lambda features, fraud, source: learn_one(
        dict(zip(FEATURE_NAMES, features, strict=True)), fraud)


def _plain(model: Any, method: str) -> Any:
    """``model.method`` when the model reads plain rows in ``FEATURE_NAMES`` order
    (``models.online.SGDLogReg``): the row goes in as it is, without a dict to build and
    read back; None for every other model."""
    if tuple(getattr(model, "names", ())) != _NAMES:
        return None
    return getattr(model, method, None)


_NAMES = tuple(FEATURE_NAMES)
