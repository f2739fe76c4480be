"""One registry of model names, online and batch, for the CLI, the evaluator and the worker."""

from __future__ import annotations

from models.aggregate import FeedbackAggregate
from models.batch import BATCH_FACTORIES, BatchModel, make_batch_model
from models.online import ONLINE_FACTORIES, OnlineModel, SGDLogReg, make_online_model

Model = OnlineModel | SGDLogReg | BatchModel | FeedbackAggregate

AGGREGATE_BASES: tuple[str, ...] = ("sgd_logreg", "logreg_x")
"""Online models offered as ``agg_<base>``: a feedback and a delayed learner, averaged."""
AGGREGATE_NAMES: tuple[str, ...] = tuple(f"agg_{base}" for base in AGGREGATE_BASES)
ONLINE_NAMES: tuple[str, ...] = (*ONLINE_FACTORIES, "sgd_logreg", *AGGREGATE_NAMES)
BATCH_NAMES: tuple[str, ...] = tuple(BATCH_FACTORIES)
MODEL_NAMES: tuple[str, ...] = ONLINE_NAMES + BATCH_NAMES


def is_online(name: str) -> bool:
    """True for models that learn one label at a time."""
    return name in ONLINE_NAMES


def make_model(name: str, seed: int = 0) -> Model:
    """A fresh model by name; an unknown name is a user error listing the valid ones."""
    from fraudstream.errors import FraudstreamError

    if name in AGGREGATE_NAMES:
        return FeedbackAggregate.of(name.removeprefix("agg_"), seed=seed)
    if name in ONLINE_NAMES:
        return make_online_model(name, seed)
    if name in BATCH_NAMES:
        return make_batch_model(name, seed)
    raise FraudstreamError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
