"""The benchmark report: tables and PNG charts, written as Markdown and HTML, and a shape check.

Why a small document model instead of templating: the same sections are written twice (Markdown
for the repository, HTML for a browser) and checked once (``check``): every table has rows, no
cell is NaN, every chart file exists and is a non-empty PNG. ``fraudstream bench --quick`` fails
when the check does, which is what CI runs.
"""

from __future__ import annotations

import html
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@dataclass
class Table:
    """A titled table; ``rows`` hold raw values (numbers are formatted when written)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class Chart:
    key: str
    title: str
    path: Path  # relative to the report directory
    note: str = ""


@dataclass
class Section:
    title: str
    text: str = ""
    items: list[Table | Chart] = field(default_factory=list)


@dataclass
class Report:
    title: str
    preamble: list[str]
    sections: list[Section]

    def tables(self) -> list[Table]:
        return [i for s in self.sections for i in s.items if isinstance(i, Table)]

    def charts(self) -> list[Chart]:
        return [i for s in self.sections for i in s.items if isinstance(i, Chart)]


def fmt(value: Any) -> str:
    """Numbers with as many digits as they deserve; everything else as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        a = abs(value)
        if a >= 1000:
            return f"{value:,.0f}"
        if a >= 100:
            return f"{value:.0f}"
        if a >= 10:
            return f"{value:.1f}"
        if a >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def pct(share: float) -> str:
    """A ratio as a percentage ("NaN" stays visible, so the shape check catches it)."""
    return "NaN" if math.isnan(share) else f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"


def write(report: Report, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` (charts are already there)."""
    md: list[str] = [f"# {report.title}", ""]
    for paragraph in report.preamble:
        md += [paragraph, ""]
    body: list[str] = [f"<h1>{html.escape(report.title)}</h1>"]
    body += [f"<p>{_inline_html(p)}</p>" for p in report.preamble if p.strip()]
    for section in report.sections:
        md += [f"## {section.title}", ""]
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            md += [section.text, ""]
            body += [f"<p>{_inline_html(p)}</p>" for p in section.text.split("\n\n")]
        for item in section.items:
            if isinstance(item, Table):
                md += [f"**{item.title}**", "", "| " + " | ".join(item.columns) + " |",
                       "|" + "---|" * len(item.columns)]
                md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in item.rows]
                body.append(f"<h3>{html.escape(item.title)}</h3><table><tr>"
                            + "".join(f"<th>{html.escape(c)}</th>" for c in item.columns)
                            + "</tr>")
                body += ["<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row)
                         + "</tr>" for row in item.rows]
                body.append("</table>")
            else:
                md += [f"![{item.title}]({item.path.as_posix()})"]
                body.append(f"<figure><img src=\"{html.escape(item.path.as_posix())}\" "
                            f"alt=\"{html.escape(item.title)}\"><figcaption>"
                            f"{html.escape(item.title)}</figcaption></figure>")
            if item.note:
                md += ["", item.note]
                body.append(f"<p class=\"note\">{_inline_html(item.note)}</p>")
            md.append("")
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text("\n".join(md).rstrip() + "\n")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
             ".note{color:#555;font-size:.9em}code{background:#f3f3f3}")
    html_path.write_text(f"<!doctype html><html><head><meta charset=\"utf-8\"><title>"
                         f"{html.escape(report.title)}</title><style>{style}</style></head>"
                         f"<body>{''.join(body)}</body></html>\n")
    return md_path, html_path


def _inline_html(text: str) -> str:
    """Escape, then turn Markdown ``code`` spans into <code> (the only markup the text uses)."""
    parts = html.escape(text).split("`")
    return "".join(p if i % 2 == 0 else f"<code>{p}</code>" for i, p in enumerate(parts))


def check(report: Report, out_dir: Path, expected_tables: set[str],
          expected_charts: set[str]) -> list[str]:
    """Problems with the report's shape: missing or empty tables and charts, NaN cells."""
    problems: list[str] = []
    tables = {t.key: t for t in report.tables()}
    charts = {c.key: c for c in report.charts()}
    for key in sorted(expected_tables - set(tables)):
        problems.append(f"table {key} missing")
    for key in sorted(expected_charts - set(charts)):
        problems.append(f"chart {key} missing")
    for t in tables.values():
        if not t.rows:
            problems.append(f"table {t.key} has no rows")
        for row in t.rows:
            if len(row) != len(t.columns):
                problems.append(f"table {t.key}: a row has {len(row)} cells for "
                                f"{len(t.columns)} columns")
            for v in row:
                if v is None or (isinstance(v, float) and not math.isfinite(v)) \
                        or fmt(v).lower() in ("nan", "inf", "none"):
                    problems.append(f"table {t.key}: cell {v!r} in row {row[:2]}")
    for c in charts.values():
        p = out_dir / c.path
        if not p.is_file() or p.stat().st_size < 1000 or p.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            problems.append(f"chart {c.key}: {p} is not a PNG")
    for name in ("report.md", "report.html"):
        if not (out_dir / name).is_file():
            problems.append(f"{name} not written")
    return problems


# -- charts --------------------------------------------------------------------------------
def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (higher is better on both)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((x2 >= x and y2 >= y) and (x2 > x or y2 > y)
                        for j, (x2, y2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _log_scale(ax: Any, axis: str, values: list[float]) -> None:
    """Log scale when the data allow it: a failed run (all zeros) still gets its chart."""
    if any(v > 0 for v in values):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def chart_pareto(rows: list[dict[str, Any]], path: Path) -> None:
    """Throughput against AP, one point per model and mode, the Pareto front joined."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    pts = [(r["tx_per_s"], r["ap"]) for r in rows]
    markers = {"event": "o", "microbatch": "s", "envelope": "^"}
    for r in rows:
        ax.scatter(r["tx_per_s"], r["ap"], marker=markers.get(r["mode"], "o"), s=50,
                   color="tab:blue" if r["online"] else "tab:orange")
        ax.annotate(f"{r['model']}/{r['mode_label']}", (r["tx_per_s"], r["ap"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    front = pareto_front(pts)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "r--", lw=1.2,
            label="Pareto front")
    _log_scale(ax, "x", [x for x, _ in pts])
    ax.set_xlabel("drain rate, tx/s (log; labels learned during the drain)")
    ax.set_ylabel("average precision (pipeline scores vs ground truth)")
    ax.scatter([], [], color="tab:blue", label="online (River / lean LR)")
    ax.scatter([], [], color="tab:orange", label="batch (scikit-learn, from registry)")
    for mode, m in markers.items():
        ax.scatter([], [], marker=m, color="grey", label=mode)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Throughput vs accuracy")
    _save(fig, path)


def chart_bars(labels: list[str], values: list[float], colors: list[str], title: str,
               ylabel: str, path: Path, hline: tuple[float, str] | None = None) -> None:
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels) + 2), 4.5))
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=7)
    if hline:
        ax.axhline(hline[0], color="red", ls="--", lw=1, label=hline[1])
        ax.legend(fontsize=8)
    _log_scale(ax, "y", list(values))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def chart_feedback(rows: list[dict[str, Any]], ceiling: float, k: int, title: str,
                   path: Path) -> None:
    """CP@k and AP side by side per contender, the CP@k of a perfect ranking as a line."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = list(range(len(rows)))
    for shift, key, label, color in ((-0.2, "cp_at_100", f"CP@{k}", "#1f77b4"),
                                     (0.2, "ap", "AP", "#ff7f0e")):
        values = [r[key] for r in rows]
        ax.bar([i + shift for i in x], values, width=0.4, label=label, color=color)
        for i, v in zip(x, values, strict=True):
            ax.annotate(f"{v:.3f}", (i + shift, v), ha="center", va="bottom", fontsize=7)
    ax.axhline(ceiling, color="red", ls="--", lw=1, label=f"CP@{k} ceiling {ceiling:.3f}")
    ax.set_xticks(x, [r["name"] for r in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)


def chart_latency(points: list[dict[str, Any]], path: Path, target_ms: float) -> None:
    """Drain rate (capacity) against p99 latency at the fixed load, per processing mode."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in points:
        ax.scatter(p["tx_per_s"], p["p99_ms"], s=50)
        ax.scatter(p["tx_per_s"], p["p50_ms"], s=25, marker="x", color="grey")
        ax.annotate(p["label"], (p["tx_per_s"], p["p99_ms"]), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
    ax.axhline(target_ms, color="red", ls="--", lw=1, label=f"p99 target {target_ms:g} ms")
    ax.scatter([], [], color="tab:blue", label="p99")
    ax.scatter([], [], marker="x", color="grey", label="p50")
    _log_scale(ax, "x", [p["tx_per_s"] for p in points])
    _log_scale(ax, "y", [p["p99_ms"] for p in points] + [p["p50_ms"] for p in points])
    ax.set_xlabel("drain rate, tx/s (capacity)")
    ax.set_ylabel("latency at 2,000 tx/s, ms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("Throughput vs latency by processing mode (online logreg)")
    _save(fig, path)


def chart_drift(curves: dict[str, Any], drift_day: int, path: Path,
                title: str = "Incrementality under drift (offline prequential replay)") -> None:
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for name, df in curves.items():
        axes[0].plot(df["day"], df["ap"], marker=".", label=name)
        axes[1].plot(df["day"], df["cp_at_100"], marker=".", label=name)
    for ax, yl in zip(axes, ("AP per day", "CP@100 per day"), strict=True):
        ax.axvline(drift_day, color="red", ls="--", lw=1)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[0].annotate("drift", (drift_day, axes[0].get_ylim()[1]), color="red", fontsize=8,
                     xytext=(3, -12), textcoords="offset points")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("simulated day")
    axes[0].set_title(title)
    _save(fig, path)


def chart_delay(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        ax.plot([r["delay_days"] for r in rs], [r["ap"] for r in rs], marker="o", label=name)
    ax.set_xlabel("label delay, days")
    ax.set_ylabel("average precision")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("The cost of late feedback")
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- machine and versions ------------------------------------------------------------------
def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        ram = f"{kb / 1024 ** 2:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"cpu": cpu, "cores": str(os.cpu_count()), "ram": ram,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "load average (1/5/15 min)": load}


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("faust-streaming", "aiokafka", "kafka-python", "river", "scikit-learn",
                 "numpy", "pandas", "rocksdict", "matplotlib"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
