"""``fraudstream evaluate``: offline evaluation of one, several or all models on a data file."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import typer

from fraudstream.errors import FraudstreamError

PROTOCOLS = ("handbook", "prequential")
LABEL_TIMINGS = ("fixed", "data")


def _clean(obj: Any) -> Any:
    """JSON without NaN (not valid JSON): NaN becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def evaluate(
    data: Path = typer.Option(..., "--data", help="Transactions file (CSV or Parquet)."),
    preset: str | None = typer.Option(None, "--preset", help="Column layout, e.g. handbook."),
    model: list[str] = typer.Option([], "--model", "-m", help="Model name (repeatable)."),
    all_models: bool = typer.Option(False, "--all", help="Evaluate every model."),
    protocol: str = typer.Option("handbook", "--protocol", help="handbook or prequential."),
    delay_days: float | None = typer.Option(
        None, "--delay-days", help="Label delay in days (default: settings, 7)."
    ),
    labels: str = typer.Option(
        "fixed", "--labels", help="fixed: every label known after the delay; data: label_ts."
    ),
    train_start: str = typer.Option(
        "2018-07-25", "--train-start", help="Handbook protocol: first training day."
    ),
    retrain_days: float = typer.Option(
        7.0, "--retrain-days", help="Prequential batch models: retrain every N days."
    ),
    train_days: float = typer.Option(
        7.0, "--train-days", help="Prequential batch models: days of labelled history."
    ),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per model and line."),
    out: Path | None = typer.Option(None, "--out", help="With --all: write the Markdown table."),
    save: bool = typer.Option(
        False, "--save", help="Save each evaluated model as a signed snapshot in the registry."
    ),
) -> None:
    """Evaluate models offline: event-time replay with delayed labels, exact AUC/AP/CP@100."""
    from models.catalog import MODEL_NAMES, make_model

    if protocol not in PROTOCOLS:
        raise FraudstreamError(f"unknown protocol {protocol!r}; use {' or '.join(PROTOCOLS)}")
    if labels not in LABEL_TIMINGS:
        raise FraudstreamError(f"unknown label timing {labels!r}; use fixed or data")
    if all_models and model:
        raise FraudstreamError("give either --model or --all, not both")
    names = list(MODEL_NAMES) if all_models else model
    if not names:
        raise FraudstreamError(f"give --model NAME or --all; models: {', '.join(MODEL_NAMES)}")
    for name in names:
        make_model(name)  # unknown names fail now, before the data is read
    if out is not None and not all_models:
        raise FraudstreamError("--out writes the --all quality table; add --all")
    try:
        start = date.fromisoformat(train_start)
    except ValueError:
        raise FraudstreamError(f"--train-start {train_start!r} is not a YYYY-MM-DD date") from None
    if delay_days is None:
        from infra.settings import get_settings

        delay_days = get_settings().label_delay_days
    if not data.exists():
        raise FraudstreamError(f"no such file: {data}")

    from threadpoolctl import threadpool_limits

    from models.evaluate import evaluate_handbook, evaluate_prequential, prepare
    from producers.reader import read_transactions

    df = read_transactions(data, preset=preset, label_delay_days=delay_days)
    if "fraud" not in df.columns:
        raise FraudstreamError(f"{data} has no fraud labels: nothing to evaluate against")
    prepared = prepare(df, delay_days, labels)
    del df
    results = []
    with threadpool_limits(1):  # OpenMP under contention collapses; one thread is predictable
        for name in names:
            if protocol == "handbook":
                result = evaluate_handbook(name, prepared, start, seed)
            else:
                result = evaluate_prequential(
                    name, prepared, seed, retrain_days=retrain_days, train_days=train_days
                )
            result.extra["feature_s"] = prepared.feature_s  # features: computed once, shared
            result.extra["feature_cpu_s"] = prepared.feature_cpu_s
            if save:
                result.extra["snapshot"] = str(_save(result, prepared))
            results.append(result)
            if as_json:
                print(json.dumps(_clean(result.as_dict())), flush=True)
    if all_models:
        from models.quality import markdown_table

        text = markdown_table(results, prepared, str(data), protocol, labels)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        if not as_json:
            print(text)
        return
    if not as_json:
        _print_table(results)


def _save(result: Any, prepared: Any) -> Path:
    from models.registry import Registry

    metrics = {k: result.as_dict()[k] for k in ("protocol", "auc", "ap", "cp_at_100")}
    return Registry().save(
        result.fitted_model,
        result.model,
        data_range=(float(prepared.ts[0]), float(prepared.ts[-1])),
        metrics=_clean(metrics),
    )


def _print_table(results: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fraudstream evaluate")
    for col in ("model", "protocol", "AUC", "AP", "CP@100", "events/s", "predict µs", "learn µs"):
        table.add_column(col, justify="left" if col in ("model", "protocol") else "right")
    for r in results:
        table.add_row(
            r.model,
            r.protocol,
            f"{r.scores.auc:.3f}",
            f"{r.scores.ap:.3f}",
            f"{r.scores.cp_at_100:.3f}",
            f"{r.events_per_s:,.0f}",
            f"{r.predict_us:.1f}",
            "n/a" if math.isnan(r.learn_us) else f"{r.learn_us:.1f}",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Mount the models' commands on the ``fraudstream`` app."""
    app.command("evaluate")(evaluate)
