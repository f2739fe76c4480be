"""``fraudstream bench parity``: does the streaming pipeline score as well as the offline evaluator?

The offline evaluator (``models.evaluate``) replays a file in event time and is the project's
accuracy reference; the pipeline (``fraudstream worker`` on Kafka) runs the same feature and
model code. If both see labels at the same event times, their AUC/AP/CP@100 on the same rows
should agree, and any gap is the pipeline's doing (labels learned early or late, state lost,
features skewed). This command measures that gap on one file, together with what the pipeline
cost to get there (drain rate, CPU per transaction, peak memory):

1. read the file with the readers and presets of ``fraudstream replay`` / ``evaluate``; every
   label is known ``--label-delay-days`` after its transaction on both sides (the evaluator's
   default ``--labels fixed``), and the terminal features use the same delay;
2. offline: ``evaluate_handbook`` or ``evaluate_prequential``, as ``fraudstream evaluate``;
3. pipeline: fresh topics and app id, the whole file replayed with its labels *before* the
   workers start (``benchmarks.parity_run``), then W workers drain it;
4. both score arrays judged on the same rows (``benchmarks.parity_eval``).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import parity_eval, parity_run
from fraudstream.errors import FraudstreamError
from infra.settings import Settings
from models.features import DAY

MB = 2**20


@dataclass(frozen=True)
class ParityArgs:
    """The command line, validated before anything is started."""

    data: Path
    preset: str | None = None
    model: str = "logreg"
    envelope: int = 1
    partitions: int = 4
    workers: int = 1
    label_delay_days: float = 7.0
    learning: str | None = None
    """``local`` or ``shared`` (``streams.shared_learning``); None: local for one worker,
    shared for more (with local learning each of W models learns 1/W of the labels)."""

    @property
    def learning_mode(self) -> str:
        return self.learning or ("local" if self.workers == 1 else "shared")

    def validate(self) -> None:
        """Bad arguments fail here, in one line, before the broker or a worker is touched."""
        from models.catalog import MODEL_NAMES
        from producers.reader import PRESETS

        if not self.data.is_file():
            raise FraudstreamError(f"no such file: {self.data}")
        if self.preset is not None and self.preset not in PRESETS:
            raise FraudstreamError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
        if self.model not in MODEL_NAMES:
            raise FraudstreamError(
                f"unknown model {self.model!r}; choose one of: {', '.join(MODEL_NAMES)}")
        if self.envelope < 1:
            raise FraudstreamError(f"--envelope must be at least 1, not {self.envelope}")
        if self.partitions < 1:
            raise FraudstreamError(f"--partitions must be at least 1, not {self.partitions}")
        if self.workers < 1:
            raise FraudstreamError(f"--workers must be at least 1, not {self.workers}")
        if self.workers > self.partitions:
            raise FraudstreamError(
                f"--workers {self.workers} > --partitions {self.partitions}: a worker without a "
                "partition would only idle (Kafka gives each partition to one group member)")
        if self.learning not in (None, "local", "shared"):
            raise FraudstreamError(f"--learning must be local or shared, not {self.learning!r}")
        if not (self.label_delay_days >= 0 and math.isfinite(self.label_delay_days)):
            raise FraudstreamError(
                f"--label-delay-days must be a number >= 0, not {self.label_delay_days}")


def load(args: ParityArgs) -> tuple[pd.DataFrame, Any, np.ndarray]:
    """``(frame to replay, prepared data, tx_id per prepared row)``.

    ``label_ts`` is set to ``ts + delay`` for every row, the evaluator's ``fixed`` label timing:
    a simulated file's own label times would otherwise reach the pipeline (``replay`` sends
    them) but not the evaluator, and the two would not learn the same labels at the same times.
    """
    from models.evaluate import prepare
    from producers.reader import read_transactions

    frame = read_transactions(args.data, preset=args.preset,
                              label_delay_days=args.label_delay_days)
    if frame.empty:
        raise FraudstreamError(f"{args.data}: no transactions")
    if "fraud" not in frame.columns:
        raise FraudstreamError(f"{args.data} has no fraud labels: nothing to measure against")
    frame["label_ts"] = frame["ts"] + args.label_delay_days * DAY
    data = prepare(frame, args.label_delay_days, "fixed")
    # prepare() sorts by (ts, tx_id), stably, as read_transactions already did: same order
    tx_ids = frame.sort_values(["ts", "tx_id"], kind="stable")["tx_id"].to_numpy(np.int64)
    return frame, data, tx_ids


def run_parity(args: ParityArgs, base: Settings, log: parity_run.Log = print,
               keep_work: bool = False) -> dict[str, Any]:
    """The whole measurement (see the module docstring); returns the ``--json`` object."""
    args.validate()
    frame, data, tx_ids = load(args)
    protocol = parity_eval.choose_protocol(data)
    parity_eval.check_model_fits(args.model, protocol)
    log(f"{len(data):,} transactions ({int(data.fraud.sum()):,} fraudulent); protocol "
        f"{protocol.name}: {protocol.n:,} evaluated transactions, {protocol.window}")
    log(f"offline evaluator: {args.model} ...")
    offline, fitted = parity_eval.offline_scores(args.model, data, protocol)

    work = Path(tempfile.mkdtemp(prefix="fraudstream-parity-"))
    failed = True
    try:
        path = work / "replay.parquet"
        frame.to_parquet(path, index=False)
        del frame
        with parity_run.broker(base, log) as on_broker:
            settings = parity_run.run_settings(
                on_broker, work, partitions=args.partitions, model=args.model,
                envelope=args.envelope, label_delay_days=args.label_delay_days,
                learning=args.learning_mode)
            sign_batch_model(settings, args.model, fitted, data)
            try:
                log(f"replaying {len(data):,} transactions and their labels into "
                    f"{args.partitions} partition(s) (envelope {args.envelope}) ...")
                replay_s = parity_run.replay(settings, path, args.envelope, len(data))
                log(f"  replayed in {replay_s:.1f} s; starting {args.workers} worker(s) "
                    f"({settings.processing_mode} mode)")
                collector = parity_run.ScoreCollector(settings, tx_ids)
                try:
                    drained = parity_run.drain(settings, args.workers, collector,
                                               work / "logs", log)
                finally:
                    collector.close()
            finally:
                if keep_work:  # a kept run can be read back (its scores, its deltas)
                    log(f"topics kept: {settings.topics.scores} and the others of {settings.app_id}")
                else:
                    parity_run.delete_run_topics(settings, log)
        failed = False
    finally:
        if failed or keep_work:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    parity = parity_eval.compare(data, protocol, collector.score, offline, collector.features)
    return result_dict(args, parity, drained, collector.n_scored, len(data), replay_s)


def sign_batch_model(settings: Settings, model: str, fitted: Any, data: Any) -> None:
    """A batch model scores in the workers as the very model the evaluator fitted."""
    from models.catalog import is_online
    from models.registry import Registry

    if is_online(model):
        return
    registry = Registry(settings.registry_dir, settings.model_signing_key.get_secret_value())
    registry.save(fitted, model, data_range=(float(data.ts[0]), float(data.ts[-1])))


def _metrics(scores: Any) -> dict[str, float]:
    return {"auc": scores.auc, "ap": scores.ap, "cp_at_100": scores.cp_at_100}


def result_dict(args: ParityArgs, parity: parity_eval.Parity, drained: parity_run.Drain,
                n_scored: int, n_tx: int, replay_s: float) -> dict[str, Any]:
    """The ``--json`` object: the brief's keys first, then what helps read them.

    ``tx_per_s`` is timed from the first score to the last (the workers' ``scored_at``), so
    start-up and group join are left out, as in the other drain figures; ``startup_s`` says
    how long they took. ``cpu_us_per_tx`` counts the workers' CPU from readiness to the last
    score; ``peak_rss_mb`` is the largest worker's VmHWM (MB = 2^20 bytes).
    """
    drain_s = drained.drain_s
    return {
        "pipeline": _metrics(parity.pipeline),
        "offline": _metrics(parity.offline),
        "diff": parity.diff(),
        "tx_per_s": (n_scored - 1) / drain_s if drain_s > 0 else float("nan"),
        "cpu_us_per_tx": drained.cpu_s / max(n_scored, 1) * 1e6,
        "peak_rss_mb": max(drained.peak_rss_bytes, default=0) / MB,
        "n_tx": n_tx,
        "n_scored": n_scored,
        "protocol": parity.protocol.name,
        "model": args.model,
        "partitions": args.partitions,
        "workers": args.workers,
        "learning": args.learning_mode,
        "envelope": args.envelope,
        "label_delay_days": args.label_delay_days,
        "window": parity.protocol.window,
        "n_eval": parity.pipeline.n,
        "n_fraud_eval": parity.pipeline.n_fraud,
        "drain_timed_from": "first score",
        "drain_s": drain_s,
        "startup_s": drained.startup_s,
        "cpu_s": drained.cpu_s,
        "cpu_total_s": drained.cpu_total_s,
        "peak_rss_mb_per_worker": [b / MB for b in drained.peak_rss_bytes],
        "replay_s": replay_s,
        "duplicate_scores": drained.duplicates,
        "score_max_abs_diff": parity.score_max_abs_diff,
        "feature_max_abs_diff": parity.feature_max_abs_diff,
        "feature_diff_share": parity.feature_diff_share,
        "feature_worst": parity.feature_worst,
        "data": str(args.data),
    }


def jsonable(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null; numpy scalars become Python ones."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render(result: dict[str, Any]) -> list[Any]:
    """Two Rich tables: accuracy side by side, then what the pipeline cost."""
    from rich.table import Table

    def f(v: Any, fmt: str) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    title = (f"pipeline vs offline · {result['model']} · {result['protocol']} "
             f"({result['window']}) · {result['partitions']} partition(s), "
             f"{result['workers']} worker(s) ({result['learning']} learning), "
             f"envelope {result['envelope']}")
    acc = Table(title=title, title_justify="left")
    for col in ("metric", "pipeline", "offline", "pipeline − offline"):
        acc.add_column(col, justify="left" if col == "metric" else "right")
    for key, name in (("auc", "AUC"), ("ap", "AP"), ("cp_at_100", "CP@100")):
        acc.add_row(name, f(result["pipeline"][key], ".4f"), f(result["offline"][key], ".4f"),
                    f(result["diff"][key], "+.4f"))
    cost = Table(title="pipeline run", title_justify="left")
    cost.add_column("measure")
    cost.add_column("value", justify="right")
    for name, value in (
        ("drain tx/s (first to last score)", f(result["tx_per_s"], ",.0f")),
        ("CPU-µs per transaction (all workers)", f(result["cpu_us_per_tx"], ",.0f")),
        ("peak RSS MB (largest worker)", f(result["peak_rss_mb"], ",.0f")),
        ("transactions", f"{result['n_tx']:,}"),
        ("scored", f"{result['n_scored']:,}"),
        ("evaluated (frauds)", f"{result['n_eval']:,} ({result['n_fraud_eval']:,})"),
        ("start-up to first score, s", f(result["startup_s"], ".1f")),
        ("drain, s", f(result["drain_s"], ".1f")),
        ("largest |score diff| on evaluated rows", f(result["score_max_abs_diff"], ".2e")),
        ("largest |feature diff| on evaluated rows", f(result["feature_max_abs_diff"], ".2e")
         + (f" ({result['feature_worst']})" if result["feature_worst"] else "")),
        ("evaluated rows with a feature diff > 1e-9", f(result["feature_diff_share"], ".1%")),
    ):
        cost.add_row(name, value)
    return [acc, cost]
