"""``fraudstream bench drift``: does the online model adapt when fraud changes, in the pipeline?

A drifted world (``producers.drift``) is simulated and judged twice:

* offline (``benchmarks.offline.drift_scores``): the online model learning each label at its
  ``known_at``, a static batch model fitted a week before the drift on every label known then
  (4 weeks or more), and the same batch model refitted every 7 days;
* through the real pipeline: the whole file and its labels replayed to Kafka at the simulator's
  own label times, then drained by a worker per contender. The worker releases each label in
  event time (``streams.label_clock``), so the online model learns it where the offline
  evaluator does; the static model is the one fitted offline, signed into the run's registry.

Per simulated day: AP and CP@100 of each contender, read back from the ``scores`` topic.
Recovery is ``benchmarks.offline.recovery_days``. The pipeline and the offline figures are
compared week by week (the parity the drift study stands on).

The models a separate ``fraudstream trainer`` feeds (the batch model refitted every 7 event-time
days, and the online model learning in the trainer and published as snapshots) cannot drain a
backlog: the worker would run days ahead of the trainer and score with the wrong week's model.
They run *paced*: the file is replayed in event time (``replay --speedup``, ``--day-seconds``
of wall clock a simulated day) while the worker and the trainer run, as in production, so a snapshot
reaches the worker a fraction of a simulated day after its refit (the lag is part of what is
measured).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import offline, parity_run
from fraudstream.errors import FraudstreamError
from infra.settings import Settings
from models.features import DAY

FAIR_HISTORY_DAYS = 28  # the static model's history, per issue 13: at least 4 weeks of labels
FAIR_AP_GAP = 0.05  # ... and within this AP of the online model over the pre-drift week
WEEK_PARITY_AP = 0.02  # pipeline and offline agree within this AP per week


@dataclass(frozen=True)
class DriftArgs:
    """The command line, validated before anything is simulated or started."""

    drift: str = "night_gang@42"
    days: int = 70
    customers: int = 1000
    seed: int = 0
    online: str = "logreg"
    batch: str = "batch_hgb"
    partitions: int = 1
    envelope: int = 100
    eval_from_day: int = 14
    pipeline: bool = True
    day_seconds: float = 6.0  # paced runs: wall-clock seconds per simulated day
    snapshot_every: int = 1000  # the online trainer: labels between snapshots

    @property
    def drift_day(self) -> int:
        from producers.drift import parse_drift

        return parse_drift(self.drift)[0].start_day

    def validate(self) -> None:
        from models.catalog import BATCH_NAMES, ONLINE_NAMES
        from producers.drift import parse_drift

        try:
            drifts = parse_drift(self.drift)
        except ValueError as exc:
            raise FraudstreamError(str(exc)) from None
        if len(drifts) != 1:
            raise FraudstreamError(f"--drift takes exactly one KIND@DAY, not {self.drift!r}")
        day = drifts[0].start_day
        if day < offline.STATIC_LEAD_DAYS + 7:
            raise FraudstreamError(
                f"the drift day must be >= {offline.STATIC_LEAD_DAYS + 7}: the static model "
                f"is fitted {offline.STATIC_LEAD_DAYS} days before it on the labels known then")
        if self.days < day + 14:
            raise FraudstreamError(f"--days {self.days}: needs at least two weeks after the "
                                   f"drift (>= {day + 14})")
        if self.online not in ONLINE_NAMES:
            raise FraudstreamError(f"--online {self.online!r} is not an online model; choose "
                                   f"one of: {', '.join(ONLINE_NAMES)}")
        if self.batch not in BATCH_NAMES:
            raise FraudstreamError(f"--batch {self.batch!r} is not a batch model; choose one "
                                   f"of: {', '.join(BATCH_NAMES)}")
        if self.customers < 50:
            raise FraudstreamError(f"--customers must be at least 50, not {self.customers}")
        if self.partitions < 1 or self.envelope < 1:
            raise FraudstreamError("--partitions and --envelope must be at least 1")
        if not self.day_seconds > 0 or self.snapshot_every < 1:
            raise FraudstreamError("--day-seconds must be > 0 and --snapshot-every at least 1")
        if not 0 <= self.eval_from_day < day - 7:
            raise FraudstreamError(f"--eval-from-day must be in [0, {day - 7})")


def simulate(args: DriftArgs) -> pd.DataFrame:
    """The drifted world: terminals twice the customers, as in the project's other studies."""
    from producers.drift import parse_drift
    from producers.simulator import Simulator
    from producers.world import WorldConfig

    config = WorldConfig(n_customers=args.customers, n_terminals=2 * args.customers,
                         n_days=args.days, seed=args.seed)
    return Simulator(config, drifts=parse_drift(args.drift)).frame()


def trainer_name(args: DriftArgs) -> str:
    return f"{args.online} (trainer, snapshot every {args.snapshot_every:,} labels)"


def pipeline_scores(args: DriftArgs, frame: pd.DataFrame, tx_ids: np.ndarray, static: Any,
                    data: Any, base: Settings, log: parity_run.Log,
                    served: dict[str, tuple[np.ndarray, dict[int, dict[str, Any]]]] | None = None,
                    ) -> dict[str, np.ndarray]:
    """Each pipeline contender's score per prepared row (NaN where it published none).

    ``served``, when given, receives for each paced (trainer-fed) contender the model version
    that scored each row and the trainer's snapshot headers by version (``benchmarks.served``).
    """
    from benchmarks.parity import sign_batch_model
    from benchmarks.served import lineage
    from models.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="fraudstream-drift-"))
    out: dict[str, np.ndarray] = {}
    speedup = DAY / args.day_seconds
    runs = [  # (name, model, learning, paced)
        (f"{args.online} (online)", args.online, "local", False),
        (f"{args.batch} static", args.batch, "local", False),
        (f"{args.batch} retrained every 7 days", args.batch, "trainer", True),
        (trainer_name(args), args.online, "trainer", True),
    ]
    try:
        path = work / "replay.parquet"
        frame.to_parquet(path, index=False)
        with parity_run.broker(base, log) as on_broker:
            for name, model, learning, paced in runs:
                run_dir = work / f"{model}-{learning}"
                settings = parity_run.run_settings(
                    on_broker, run_dir, partitions=args.partitions, model=model,
                    envelope=args.envelope, label_delay_days=7.0, learning=learning)
                settings = settings.model_copy(update={
                    "retrain_every_days": 7.0, "retrain_window_days": offline.WEEKLY_TRAIN_DAYS,
                    "snapshot_every_labels": args.snapshot_every,
                    "snapshot_keep": 0})  # every version: the served twins read the lineage
                if name == f"{args.batch} static":
                    sign_batch_model(settings, model, static, data)
                collector = None
                try:
                    if paced:
                        log(f"pipeline: {name}: replaying in event time, "
                            f"{args.day_seconds:g} s a simulated day, with a trainer")
                        versions: list[np.ndarray] = []
                        out[name] = paced_run(settings, path, args.envelope, speedup, tx_ids,
                                              run_dir / "logs", log, versions=versions)
                        if served is not None:
                            registry = Registry(settings.registry_dir,
                                                settings.model_signing_key.get_secret_value())
                            served[name] = (versions[0], lineage(
                                registry, f"{settings.app_id}-{model}-trainer"))
                        continue
                    log(f"pipeline: {name}: replaying {len(frame):,} transactions and labels")
                    parity_run.replay(settings, path, args.envelope, len(frame))
                    collector = parity_run.ScoreCollector(settings, tx_ids)
                    parity_run.drain(settings, 1, collector, run_dir / "logs", log)
                    out[name] = collector.score
                finally:
                    if collector is not None:
                        collector.close()
                    parity_run.delete_run_topics(settings, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def paced_run(settings: Settings, path: Path, envelope: int, speedup: float,
              tx_ids: np.ndarray, log_dir: Path, log: parity_run.Log,
              helpers: tuple[tuple[str, list[str]], ...] | None = None,
              scored_at: list[np.ndarray] | None = None,
              versions: list[np.ndarray] | None = None) -> np.ndarray:
    """The helper processes (by default a trainer) and one worker up first, then the file
    replayed in event time; returns the score of each transaction as read from ``scores``
    (and appends when each was scored, wall clock, to ``scored_at`` if given, and the model
    version that scored it to ``versions``)."""
    from infra.settings import child_env
    from infra.topics import ensure_worker_topics
    from streams.demo_processes import FRAUDSTREAM, WorkerProcess

    if helpers is None:
        helpers = (("trainer", [*FRAUDSTREAM, "trainer"]),)
    ensure_worker_topics(settings)
    log_dir.mkdir(parents=True, exist_ok=True)
    n = len(tx_ids)
    procs: list[subprocess.Popen[bytes]] = []
    worker = WorkerProcess(settings, "w0", log_dir)
    collector = parity_run.ScoreCollector(settings, tx_ids)
    try:
        for name, command in helpers:
            with (log_dir / f"{name}.log").open("ab") as hlog:
                procs.append(subprocess.Popen(command, env=child_env(settings), stdout=hlog,
                                              stderr=subprocess.STDOUT))
        worker.start()
        worker.wait_ready(timeout_s=parity_run.STARTUP_ALLOWANCE_S)
        with (log_dir / "replay.log").open("ab") as rlog:
            replay = subprocess.Popen(
                [*FRAUDSTREAM, "replay", str(path), "--envelope", str(envelope), "--speedup",
                 f"{speedup:.3f}", "--no-progress"], env=child_env(settings), stdout=rlog,
                stderr=subprocess.STDOUT)
        procs.append(replay)
        last_progress, reported = time.monotonic(), 0
        while collector.n_scored < n:
            if collector.poll():
                last_progress = time.monotonic()
            if not worker.alive():
                raise FraudstreamError(f"worker exited: {worker.tail()}")
            code = replay.poll()
            if code not in (None, 0):
                raise FraudstreamError(f"paced replay failed ({code}); log in {log_dir}")
            if time.monotonic() - last_progress > parity_run.STALL_S:
                raise FraudstreamError(f"only {collector.n_scored:,} of {n:,} transactions "
                                       f"scored, none for {parity_run.STALL_S:.0f} s; logs in "
                                       f"{log_dir}")
            if collector.n_scored - reported >= max(n // 10, 1):
                reported = collector.n_scored
                log(f"  {reported:,} / {n:,} transactions scored")
        if scored_at is not None:
            scored_at.append(collector.scored_at.copy())
        if versions is not None:
            versions.append(collector.version.copy())
        return collector.score
    finally:
        collector.close()
        worker.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)


def served_twins(args: DriftArgs, data: Any,
                 served: dict[str, tuple[np.ndarray, dict[int, dict[str, Any]]]],
                 ) -> dict[str, np.ndarray]:
    """The offline twin of each trainer-fed contender, built as the pipeline served it."""
    from benchmarks.served import batch_as_served, online_as_served

    twins = {}
    for name, (versions, heads) in served.items():
        if name == trainer_name(args):
            twins[name] = online_as_served(
                data, versions, {v: int(h["learned"]) for v, h in heads.items()}, args.online)
        else:
            twins[name] = batch_as_served(
                data, versions, {v: float(h["event_time"]) for v, h in heads.items()
                                 if h.get("event_time") is not None},
                args.batch, offline.WEEKLY_TRAIN_DAYS)
    return twins


def snapshot_lags(data: Any, versions: np.ndarray, heads: dict[int, dict[str, Any]],
                  ) -> dict[str, Any]:
    """How long, in event time, each snapshot took to reach the scorer: from the trainer's
    clock when it was made to the first transaction it scored."""
    lags = []
    for v, head in heads.items():
        made, rows = head.get("event_time"), np.flatnonzero(versions == v)
        if made is not None and len(rows):
            lags.append((float(data.ts[rows].min()) - float(made)) / 3600.0)
    return {"snapshots": len(heads), "served": len(lags),
            "median_lag_hours": float(np.median(lags)) if lags else float("nan"),
            "max_lag_hours": float(np.max(lags)) if lags else float("nan")}


def week_diffs(data: Any, pipe: dict[str, np.ndarray], off: dict[str, np.ndarray],
               first_day: int, last_day: int) -> list[dict[str, Any]]:
    """AP per full week, pipeline against offline, on the rows both scored."""
    rows = []
    for name, p in pipe.items():
        o = off[name]
        both_p = np.where(np.isnan(o), np.nan, p)
        for start in range(first_day, last_day - 6, 7):
            ap_p = offline.period_ap(data, both_p, start, 7)
            ap_o = offline.period_ap(data, o, start, 7)
            if math.isnan(ap_o):  # the static model's training weeks: not scored by it
                continue
            rows.append({"model": name, "days": f"{start}-{start + 6}", "pipeline_ap": ap_p,
                         "offline_ap": ap_o, "diff": ap_p - ap_o})
    return rows


def run_drift(args: DriftArgs, base: Settings, log: parity_run.Log = print,
              ) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The whole study: ``(the --json object, per-day curves by model)``; ``models`` come
    from the pipeline when it ran, each model's offline figures are under ``offline``."""
    from models.evaluate import prepare

    args.validate()
    day = args.drift_day
    log(f"simulating {args.days} days, {args.customers:,} customers, drift {args.drift} ...")
    frame = simulate(args)
    data = prepare(frame, delay_days=7.0, labels="data")
    tx_ids = frame.sort_values(["ts", "tx_id"], kind="stable")["tx_id"].to_numpy(np.int64)
    log(f"{len(data):,} transactions ({int(data.fraud.sum()):,} fraudulent); offline replay ...")
    off_scores, seconds, static = offline.drift_scores(data, day, args.online, args.batch)
    off = offline.drift_summary(data, off_scores, day, args.eval_from_day, seconds, log)
    result: dict[str, Any] = {"drift": args.drift, "drift_day": day, "n_tx": len(data),
                              "n_fraud": int(data.fraud.sum()), "args": vars(args).copy()}
    source = off
    if args.pipeline:
        served: dict[str, tuple[np.ndarray, dict[int, dict[str, Any]]]] = {}
        pipe = pipeline_scores(args, frame, tx_ids, static, data, base, log, served)
        before_fit = data.ts < np.floor(data.ts[0] / DAY) * DAY + (day - 7) * DAY
        pipe[f"{args.batch} static"][before_fit] = np.nan  # its training rows, as offline
        twins = served_twins(args, data, served)
        log("pipeline figures:")
        # the trainer-fed contenders against their as-served twins (parity), the twins against
        # the ideal swaps (what the serving lag costs)
        result["week_diffs"] = week_diffs(data, pipe, {**off_scores, **twins},
                                          args.eval_from_day, args.days)
        ideal = {f"{args.batch} retrained every 7 days": f"{args.batch} retrained every 7 days",
                 trainer_name(args): f"{args.online} (online)"}
        result["serving_lag"] = [
            {"model": w["model"], "days": w["days"], "as_served_ap": w["pipeline_ap"],
             "ideal_ap": w["offline_ap"], "diff": w["diff"], "ideal": ideal[w["model"]]}
            for w in week_diffs(
                data, twins, {name: off_scores[ideal[name]] for name in twins},
                args.eval_from_day, args.days)]
        result["snapshots"] = {name: snapshot_lags(data, *served[name]) for name in served}
        source = offline.drift_summary(data, pipe, day, args.eval_from_day, log=log)
    paced = {f"{args.batch} retrained every 7 days", trainer_name(args)}
    models = [{"name": m["model"],
               "source": "offline" if not args.pipeline
               else "pipeline, paced" if m["model"] in paced else "pipeline",
               "pre_drift_ap": m["pre_drift_ap"], "worst_ap_after": m["worst_post_drift_ap_3d"],
               "recovery_days": m["recovery_days"], "drop": m["drop"],
               "ap_week_before": m["ap_week_before"],
               "ap_two_weeks_after": m["ap_two_weeks_after"]} for m in source["summary"]]
    static_row = next(m for m in models if m["name"] == f"{args.batch} static")
    online_row = next(m for m in models if m["name"] == f"{args.online} (online)")
    result["models"] = models
    result["static_drop"] = static_row["drop"]
    gap = static_row["ap_week_before"] - online_row["ap_week_before"]
    result["fair_static"] = {"history_days": day - offline.STATIC_LEAD_DAYS,
                             "ap_gap_to_online_week_before": gap,
                             "fair": (day - offline.STATIC_LEAD_DAYS >= FAIR_HISTORY_DAYS
                                      and abs(gap) <= FAIR_AP_GAP)}
    result["offline"] = off["summary"]
    return result, source["curves"]


def write_report(result: dict[str, Any], curves: dict[str, pd.DataFrame], out_dir: Path,
                 command: str) -> Path:
    """``report.md`` (and html) with the recovery table, the weekly parity and the chart."""
    from benchmarks.parity import jsonable
    from benchmarks.report import Chart, Report, Section, Table, chart_drift, pct, write

    out_dir.mkdir(parents=True, exist_ok=True)
    chart_drift(curves, result["drift_day"], out_dir / "drift.png",
                title=f"{result['drift']}: AP and CP@100 per simulated day")

    def rec(v: int | None) -> str:
        return "never (within the run)" if v is None else f"{v} days"

    rows = [[m["name"], m["source"], m["ap_week_before"], m["ap_two_weeks_after"],
             pct(m["drop"]), m["pre_drift_ap"], m["worst_ap_after"], rec(m["recovery_days"])]
            for m in result["models"]]
    fair = result["fair_static"]
    sections = [Section(
        "Recovery after the drift",
        f"Drift `{result['drift']}` on {result['n_tx']:,} transactions "
        f"({result['n_fraud']:,} frauds). Drop: 1 - AP over the 14 days from the drift / AP "
        "over the 7 days before it (pooled rows). Recovery: days after the drift until the "
        "trailing 3-day mean of per-day AP is back within 10% of the mean of the 7 pre-drift "
        "days, after having dropped below it (0 = never dropped). The static model had "
        f"{fair['history_days']} days of labels; its AP over the pre-drift week is "
        f"{fair['ap_gap_to_online_week_before']:+.3f} from the online model's "
        f"({'fair' if fair['fair'] else 'not a fair opponent'} by issue 13's rule: >= "
        f"{FAIR_HISTORY_DAYS} days, within {FAIR_AP_GAP}).",
        [Table("drift_recovery", "Recovery", ["model", "measured", "AP week before",
                                              "AP 2 weeks after", "drop", "pre-drift AP (mean "
                                              "per day)", "worst AP after (3-day mean)",
                                              "recovery"], rows),
         Chart("drift", "AP and CP@100 per day, drift day marked", Path("drift.png"))])]
    if "week_diffs" in result:
        wrows = [[w["model"], w["days"], w["pipeline_ap"], w["offline_ap"], f"{w['diff']:+.4f}"]
                 for w in result["week_diffs"]]
        worst = max((abs(w["diff"]) for w in result["week_diffs"]), default=float("nan"))
        sections.append(Section(
            "Pipeline against the offline evaluator, per week",
            f"Largest weekly |AP difference| {worst:.4f} (bound {WEEK_PARITY_AP}). The "
            "backlog-drained contenders are compared with the offline evaluator's replay; the "
            "trainer-fed ones (paced) with their offline twins as served (next section).",
            [Table("drift_weeks", "AP per week", ["model", "days", "pipeline", "offline",
                                                  "difference"], wrows)]))
    if "serving_lag" in result:
        lrows = [[w["model"], w["days"], w["as_served_ap"], w["ideal_ap"], f"{w['diff']:+.4f}"]
                 for w in result["serving_lag"]]
        snaps = "; ".join(
            f"{name}: {s['served']} of {s['snapshots']} snapshots served, first score "
            f"{s['median_lag_hours']:.1f} event-hours after the snapshot was made (median; "
            f"max {s['max_lag_hours']:.1f})" for name, s in result["snapshots"].items())
        sections.append(Section(
            "What the serving lag costs",
            "The trainer-fed contenders are compared above with their offline twins as served "
            "(`benchmarks.served`: for each snapshot version the worker scored with, the model "
            "rebuilt offline by the trainer's rule, scoring the rows that version scored). "
            "Here those twins meet the ideal swaps: the weekly refit in service at the very "
            "moment of its refit, and for the trainer's online model every label learnt at once "
            f"(the locally learning online model). {snaps}.",
            [Table("drift_serving_lag", "AP per week, as served against ideal swaps",
                   ["model", "days", "as served", "ideal", "difference"], lrows)]))
    off_rows = [[m["model"], m["ap_week_before"], m["ap_two_weeks_after"], pct(m["drop"]),
                 rec(m["recovery_days"]), m["replay_s"]] for m in result["offline"]]
    sections.append(Section(
        "The same study with the offline evaluator",
        "Same world, same label times (`models.evaluate`, prequential). The full result, "
        "curves aside, is in `result.json` beside this report.",
        [Table("drift_offline", "Offline", ["model", "AP week before", "AP 2 weeks after",
                                            "drop", "recovery", "replay s"], off_rows)]))
    (out_dir / "result.json").write_text(json.dumps(jsonable(result), indent=1) + "\n")
    report = Report(f"Drift through the pipeline: {result['drift']}",
                    [f"Command: `{command}`", "Measured on this machine; the broker ran on the "
                     "same cores."], sections)
    md, _ = write(report, out_dir)
    return md
