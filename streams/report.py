"""A short run report (Markdown + PNG charts) from a worker's time series and the score log.

Used by ``fraudstream demo``. Exact AUC and AP come from scores joined with the labels that
arrived during the run (scikit-learn), not from the dashboard's rolling window.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from streams.demo_quality import AlertDay, Parity


def _chart(path: Path, series: list[dict[str, Any]], keys: list[str], title: str,
           ylabel: str, ylim: tuple[float, float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = series[0]["t"] if series else 0.0
    fig, ax = plt.subplots(figsize=(7, 2.8), dpi=110)
    for key in keys:
        xs = [p["t"] - t0 for p in series if p.get(key) is not None]
        ys = [p[key] for p in series if p.get(key) is not None]
        ax.plot(xs, ys, label=key, linewidth=1.6)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("seconds since the worker started")
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def exact_quality(scores: dict[int, float], labels: dict[int, int]) -> dict[str, float]:
    """AUC and AP over the transactions that have both a score and an arrived label."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    ids = [tx for tx in labels if tx in scores]
    if not ids:
        return {"labelled": 0, "auc": math.nan, "ap": math.nan, "fraud_rate": math.nan}
    y = np.array([labels[tx] for tx in ids])
    s = np.array([scores[tx] for tx in ids])
    both = 0 < y.sum() < len(y)
    return {
        "labelled": len(ids),
        "fraud_rate": float(y.mean()),
        "auc": float(roc_auc_score(y, s)) if both else math.nan,
        "ap": float(average_precision_score(y, s)) if both else math.nan,
    }


def _num(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def parity_markdown(rows: list[Parity], snapshot: str, replay_s: float, target: float) -> str:
    """Live (``scores`` topic) against offline (the evaluator's replay) on the same ids."""
    lines = [
        "## Live pipeline vs offline evaluator",
        "",
        f"Both start from the snapshot `{snapshot}` and see the same events: the offline replay "
        "(`models.evaluate.replay_online` over `prepare`, the worker's feature code) scores every "
        "transaction the producer sent, learning each label at the time the producer sent it; "
        "the live figures are the worker's scores read back from the `scores` topic. Both are "
        "computed on exactly the transaction ids the pipeline scored, against the simulator's "
        f"ground truth. Offline replay: {replay_s:.1f} s.",
        "",
        "| phase | scored | frauds | AUC live | AUC offline | AP live | AP offline | "
        "AP live - offline | CP@100 live | CP@100 offline | mean abs score diff | "
        "scores within 0.01 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.phase} | {r.n:,} | {r.n_fraud:,} | {_num(r.live['auc'])} | "
            f"{_num(r.offline['auc'])} | {_num(r.live['ap'])} | {_num(r.offline['ap'])} | "
            f"{'n/a' if math.isnan(r.ap_diff) else f'{r.ap_diff:+.3f}'} | "
            f"{_num(r.live['cp_at_100'])} | {_num(r.offline['cp_at_100'])} | "
            f"{_num(r.mean_abs_score_diff, 4)} | "
            f"{'n/a' if math.isnan(r.share_within_001) else f'{r.share_within_001:.1%}'} |"
        )
    live = next((r for r in rows if r.phase == "live"), None)
    if live is not None and live.n:
        verdict = "met" if live.within_target else "**not met**"
        lines += ["", f"Target |AP live - AP offline| <= {target:.2f} in the live phase: "
                      f"{verdict} ({abs(live.ap_diff):.3f})."]
    return "\n".join(lines) + "\n"


def alerts_markdown(days: list[AlertDay], totals: dict[str, dict[str, float]],
                    policy: str) -> str:
    """Alerts per event-time day and the precision of the alerted cards."""
    lines = [
        "## Alerts per event-time day",
        "",
        f"From the `alerts` topic (keyed by card; counted by transaction id, since alerts are "
        f"at-least-once). Alert policy: {policy}. A card is a true alert when it had a "
        "fraudulent transaction that day (simulator ground truth). The last day is cut short "
        "by the end of the run.",
        "",
        "| phase | days | alerts per day | cards per day | max cards in a day | "
        "precision of alerted cards |",
        "|---|---|---|---|---|---|",
    ]
    for phase, t in totals.items():
        lines.append(
            f"| {phase} | {int(t['days'])} | {_num(t['alerts per day'], 1)} | "
            f"{_num(t['cards per day'], 1)} | {int(t['max cards in a day'])} | "
            f"{_num(t['precision of alerted cards'])} |"
        )
    lines += ["", "| day | phase | transactions | alerts | cards alerted | cards with a fraud "
                  "| precision |", "|---|---|---|---|---|---|---|"]
    for d in days:
        lines.append(f"| {d.day} | {d.phase} | {d.transactions:,} | {d.alerts:,} | {d.cards:,} | "
                     f"{d.fraud_cards:,} | {_num(d.precision)} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, *, title: str, command: str, settings_summary: dict[str, Any],
                 series: list[dict[str, Any]], totals: dict[str, Any],
                 quality: dict[str, float], latency: dict[str, float],
                 sections: list[str] | None = None) -> Path:
    """Markdown, charts and the time series; ``sections`` go after the totals."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _chart(out_dir / "throughput.png", series, ["tx_per_s"], "Throughput", "tx/s")
    _chart(out_dir / "latency.png", series, ["p50_ms", "p99_ms"], "End-to-end latency", "ms")
    _chart(out_dir / "quality.png", series, ["auc", "ap"],
           "Rolling AUC / AP over arrived labels", "", (0.0, 1.0))
    _chart(out_dir / "lag.png", series, ["lag"], "Consumer lag", "messages")

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    rows = "\n".join(f"| {k} | {fmt(v)} |" for k, v in {**totals, **latency, **quality}.items())
    conf = "\n".join(f"| {k} | {v} |" for k, v in settings_summary.items())
    md = f"""# {title}

Generated {time.strftime('%Y-%m-%d %H:%M:%S')} on {platform.node()} ({platform.machine()},
Python {platform.python_version()}) by:

```
{command}
```

Measured on this machine in this run; the broker, the worker and the producer shared its cores.

## Totals

| measure | value |
|---|---|
{rows}

AUC and AP above are exact (scikit-learn) over the transactions whose label arrived during
the run; the rolling chart below uses the last 5,000 arrived labels at each moment.

{"".join(s + chr(10) for s in sections or [])}## Configuration

| setting | value |
|---|---|
{conf}

## Charts

![throughput](throughput.png)

![latency](latency.png)

![quality](quality.png)

![lag](lag.png)
"""
    (out_dir / "report.md").write_text(md)
    (out_dir / "series.json").write_text(json.dumps(series))
    return out_dir / "report.md"
