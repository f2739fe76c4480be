"""``fraudstream bench delay``: the cost of late labels, through the pipeline and offline.

One ``bench parity`` run per label delay on the same file: every label is known ``d`` days after
its transaction on both sides, and the terminal features use the same ``d`` (as in the
handbook). The pipeline's AUC/AP/CP@100 stand beside the offline evaluator's on the same rows,
so the table shows both what a late label costs and that the pipeline pays the same price.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.parity import ParityArgs, run_parity
from benchmarks.parity_run import Log
from fraudstream.errors import FraudstreamError
from infra.settings import Settings


def parse_delays(text: str) -> tuple[float, ...]:
    """``"1,7,14"`` -> ``(1.0, 7.0, 14.0)``; a bad list is a one-line error."""
    try:
        delays = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise FraudstreamError(f"--delays must be numbers separated by commas, not {text!r}") \
            from None
    if not delays or any(not 0 <= d < 1e4 for d in delays):
        raise FraudstreamError(f"--delays needs one or more days >= 0, not {text!r}")
    return delays


def run_delays(args: ParityArgs, delays: tuple[float, ...], base: Settings,
               log: Log = print) -> list[dict[str, Any]]:
    """One parity result per delay, in the order given."""
    results = []
    for d in delays:
        log(f"label delay {d:g} days:")
        results.append(run_parity(replace(args, label_delay_days=d), base, log=log))
    return results


def rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    """delay, then pipeline/offline/difference for AP, AUC and CP@100, then the drain rate."""
    out = []
    for r in results:
        row: list[Any] = [r["label_delay_days"]]
        for key in ("ap", "auc", "cp_at_100"):
            row += [r["pipeline"][key], r["offline"][key], r["diff"][key]]
        out.append([*row, r["tx_per_s"], r["n_eval"], r["n_fraud_eval"]])
    return out


COLUMNS = ["delay days", "AP pipeline", "AP offline", "AP diff", "AUC pipeline", "AUC offline",
           "AUC diff", "CP@100 pipeline", "CP@100 offline", "CP@100 diff", "drain tx/s",
           "evaluated", "frauds"]


def write_report(results: list[dict[str, Any]], out_dir: Path, command: str) -> Path:
    """``report.md`` (and html) with the table, and ``result.json`` beside it."""
    from benchmarks.parity import jsonable
    from benchmarks.report import Report, Section, Table, write

    out_dir.mkdir(parents=True, exist_ok=True)
    r0 = results[0]
    md, _ = write(Report("Label delay through the pipeline", [
        f"Command: `{command}`", f"Model `{r0['model']}`, {r0['partitions']} partition(s), "
        f"envelope {r0['envelope']}, {r0['n_tx']:,} transactions; {r0['protocol']} protocol "
        f"({r0['window']}). Every label known exactly d days after its transaction on both "
        "sides; the terminal features use the same d."],
        [Section("AP per label delay", "", [Table("delay", "Pipeline beside the offline "
                                                  "evaluator", COLUMNS, rows(results))])]),
        out_dir)
    (out_dir / "result.json").write_text(json.dumps(jsonable(results), indent=4) + "\n")
    return md
