"""One registry of model names, online and batch, for the CLI, the evaluator and the worker."""

from __future__ import annotations

from models.batch import BATCH_FACTORIES, BatchModel, make_batch_model
from models.online import ONLINE_FACTORIES, OnlineModel, SGDLogReg, make_online_model

Model = OnlineModel | SGDLogReg | BatchModel

ONLINE_NAMES: tuple[str, ...] = (*ONLINE_FACTORIES, "sgd_logreg")
BATCH_NAMES: tuple[str, ...] = tuple(BATCH_FACTORIES)
MODEL_NAMES: tuple[str, ...] = ONLINE_NAMES + BATCH_NAMES


def is_online(name: str) -> bool:
    """True for models that learn one label at a time."""
    return name in ONLINE_NAMES


def make_model(name: str, seed: int = 0) -> Model:
    """A fresh model by name; an unknown name is a user error listing the valid ones."""
    from fraudstream.errors import FraudstreamError

    if name in ONLINE_NAMES:
        return make_online_model(name, seed)
    if name in BATCH_NAMES:
        return make_batch_model(name, seed)
    raise FraudstreamError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
