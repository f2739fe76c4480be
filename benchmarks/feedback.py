"""``fraudstream bench feedback``: what investigators' feedback is worth, offline and in the stream.

Three contenders on the same simulated world (Dal Pozzolo et al., IEEE TNNLS 2017):

* **delayed only**: the online model learns every label when it is known the usual way (a
  chargeback, or the feedback window passing); alerts are raised and nobody checks them;
* **feedback + delayed, one model**: investigators check the alerted cards (at most ``budget``
  a day) and label their recent transactions hours later; the same model learns those labels
  and the delayed ones of every other transaction;
* **aggregation**: the same feedback, learned by a feedback-only model, the delayed labels by a
  delayed-only model, posteriors averaged (``models.aggregate``, ``alpha``).

Each contender's alerts come from its own scores, so each one's investigators see different
cards. Measured per contender: CP@k (the card precision of the ``k`` = ``budget`` daily
alerts, ``P_k`` in the paper; the handbook's protocol, detected cards left out of the following
days) and AP, over the days from ``eval_from_day``. The ceiling is what a perfect ranking would
reach (the labels as scores, same rule): how much room there is above the contenders.

Offline (``models.feedback_replay``) the replay is exact. Through the pipeline, the file is
replayed in event time (``--day-seconds`` a simulated day) to Kafka while one worker scores and
alerts, and ``fraudstream investigate`` reads its alerts and publishes feedback labels; the
worker holds each label until its event time reaches ``known_at``. A feedback label that reaches
the worker after that is learned on arrival (a few hours of event time late): the pipeline's
figures differ from the offline ones by that, and the report gives both.
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

from benchmarks import parity_run
from fraudstream.errors import FraudstreamError
from infra.settings import Settings
from models.features import DAY

DELAYED_ONLY = "delayed only"
ONE_MODEL = "feedback + delayed, one model"
AGGREGATION = "aggregation"
ANCHOR = ("Dal Pozzolo et al. (IEEE TNNLS 2017, real transactions): P_k of the 100 daily "
          "alerts 0.57-0.68 for one model learning all labels, 0.69-0.75 with the aggregation")
CARDS_PER_ALERT = 50  # the default budget: 100 cards a day in the 5,000-card world


@dataclass(frozen=True)
class FeedbackArgs:
    """The command line, validated before anything is simulated or started."""

    days: int = 70
    customers: int = 1000
    seed: int = 0
    model: str = "sgd_logreg"
    budget: int | None = None  # None: customers / 50 (100 on the 5,000-card default world)
    hours: float = 4.0
    alpha: float = 0.5
    eval_from_day: int = 28
    pipeline: bool = True
    day_seconds: float = 3.0
    envelope: int = 20
    drift: str | None = None  # e.g. "night_gang@42" (``producers.drift``); None: no drift

    @property
    def k(self) -> int:
        return self.budget if self.budget is not None else max(1, self.customers // CARDS_PER_ALERT)

    def validate(self) -> None:
        from models.catalog import AGGREGATE_BASES

        if self.model not in AGGREGATE_BASES:
            raise FraudstreamError(f"--model {self.model!r}: choose one of "
                                   f"{', '.join(AGGREGATE_BASES)} (it is run alone and as "
                                   "the two parts of the aggregation)")
        if self.customers < 50:
            raise FraudstreamError(f"--customers must be at least 50, not {self.customers}")
        if not 0 <= self.eval_from_day < self.days - 7:
            raise FraudstreamError(f"--eval-from-day must be in [0, {self.days - 7}) for "
                                   f"--days {self.days}")
        if self.budget is not None and self.budget < 1:
            raise FraudstreamError("--budget must be at least 1 card a day")
        if not self.hours > 0:
            raise FraudstreamError("--hours must be > 0")
        if not 0 <= self.alpha <= 1:
            raise FraudstreamError("--alpha must be in [0, 1]")
        if not self.day_seconds > 0 or self.envelope < 1:
            raise FraudstreamError("--day-seconds must be > 0 and --envelope at least 1")
        if self.drift is not None:
            from producers.drift import parse_drift

            try:
                parse_drift(self.drift)
            except ValueError as exc:
                raise FraudstreamError(f"--drift: {exc}") from None


def contenders(args: FeedbackArgs) -> list[tuple[str, str, bool]]:
    """``(name, catalog model, investigators on)`` of each run."""
    return [(DELAYED_ONLY, args.model, False), (ONE_MODEL, args.model, True),
            (AGGREGATION, f"agg_{args.model}", True)]


def simulate(args: FeedbackArgs) -> pd.DataFrame:
    from producers.drift import parse_drift
    from producers.simulator import Simulator
    from producers.world import WorldConfig

    drifts = parse_drift(args.drift) if args.drift else ()
    return Simulator(WorldConfig(n_customers=args.customers, n_terminals=2 * args.customers,
                                 n_days=args.days, seed=args.seed), drifts=drifts).frame()


def _model(name: str, alpha: float) -> Any:
    from models.aggregate import FeedbackAggregate
    from models.catalog import make_model

    if name.startswith("agg_"):
        return FeedbackAggregate.of(name.removeprefix("agg_"), alpha=alpha)
    return make_model(name, 0)


def offline_runs(args: FeedbackArgs, data: Any) -> dict[str, Any]:
    """Each contender's ``models.feedback_replay.FeedbackRun``."""
    from models.feedback_replay import history_of, replay_with_feedback
    from producers.investigation import Investigator

    history = history_of(data)
    runs = {}
    for name, model, investigators in contenders(args):
        team = (Investigator(history, budget=args.k, hours=args.hours) if investigators
                else None)
        runs[name] = replay_with_feedback(_model(model, args.alpha), data, team,
                                          alert_budget=args.k)
    return runs


def evaluated(args: FeedbackArgs, data: Any) -> np.ndarray:
    day0 = math.floor(data.ts[0] / DAY) * DAY
    return data.ts >= day0 + args.eval_from_day * DAY


def ceiling(data: Any, mask: np.ndarray, k: int) -> float:
    """CP@k of a perfect ranking (the oracle's scores: the labels), with the handbook's rule
    that a card found fraudulent is left out of the following days: what any model could
    reach at most on these days."""
    from models.metrics import card_precision_at_k

    fraud = data.fraud[mask].astype(np.float64)
    cp, _ = card_precision_at_k(data.ts[mask], data.customer_id[mask], fraud, fraud, k)
    return float(cp)


def figures(args: FeedbackArgs, data: Any, scores: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per contender: CP@k, AP, AUC over the evaluated days (rows it scored)."""
    from models.metrics import score_all

    mask = evaluated(args, data)
    rows = []
    for name, s in scores.items():
        m = mask & ~np.isnan(s)
        figs = score_all(data.ts[m], data.customer_id[m], data.fraud[m], s[m], k=args.k)
        rows.append({"name": name, "cp_at_100": figs.cp_at_100, "ap": figs.ap, "auc": figs.auc,
                     "k": args.k, "n": int(m.sum()), "missing": int((mask & np.isnan(s)).sum())})
    return rows


def feedback_published(settings: Settings, ts: np.ndarray | None = None,
                       scored_at: np.ndarray | None = None) -> dict[str, int]:
    """The feedback labels on the run's ``labels`` topic: how many, distinct transactions,
    frauds among those (read to the end offsets, outside any group); with the transactions'
    event times ``ts`` (sorted) and the wall-clock times they were scored, also how many
    labels were published after the worker had scored past their ``known_at`` (learned on
    arrival, later in event time than offline)."""
    from kafka import KafkaConsumer, TopicPartition

    from producers.events import FEEDBACK
    from producers.wire import split_labels

    topic = settings.topics.labels
    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None,
                             **settings.kafka.kafka_python_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        labels, frauds, late, seen = 0, 0, 0, set()
        passed = None
        if ts is not None and scored_at is not None:  # when the worker passed each time
            passed = np.fmin.accumulate(scored_at[::-1])[::-1]
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500, max_records=20_000).values():
                for record in records:
                    for label in split_labels(record.value).events:
                        if label.source != FEEDBACK:
                            continue
                        labels += 1
                        if label.tx_id not in seen:
                            seen.add(label.tx_id)
                            frauds += label.fraud
                        if passed is not None:
                            i = int(np.searchsorted(ts, label.known_at, side="left"))
                            late += int(i < len(ts) and passed[i] < label.produced_at)
        counts = {"feedback_labels_published": labels, "feedback_transactions": len(seen),
                  "feedback_frauds": frauds}
        if passed is not None:
            counts["feedback_published_late"] = late
        return counts
    finally:
        consumer.close()


def pipeline_scores(args: FeedbackArgs, frame: pd.DataFrame, tx_ids: np.ndarray,
                    base: Settings, log: parity_run.Log,
                    published: dict[str, dict[str, int]] | None = None,
                    ts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each contender through a broker, a worker and (with feedback) the investigators;
    ``ts``: the event time of each of ``tx_ids`` (sorted), to count late feedback labels."""
    from benchmarks.drift import paced_run
    from streams.demo_processes import FRAUDSTREAM

    work = Path(tempfile.mkdtemp(prefix="fraudstream-feedback-"))
    out: dict[str, np.ndarray] = {}
    try:
        path = work / "world.parquet"
        frame.to_parquet(path, index=False)
        with parity_run.broker(base, log) as on_broker:
            for name, model, investigators in contenders(args):
                run_dir = work / name.replace(" ", "-").replace(",", "")
                settings = parity_run.run_settings(
                    on_broker, run_dir, partitions=1, model=model, envelope=args.envelope,
                    label_delay_days=7.0)
                settings = settings.model_copy(update={"alert_policy": "budget",
                                                       "alert_budget": args.k})
                helpers: tuple[tuple[str, list[str]], ...] = ()
                if investigators:
                    helpers = (("investigate", [
                        *FRAUDSTREAM, "investigate", "--data", str(path), "--budget",
                        str(args.k), "--hours", f"{args.hours:g}", "--group",
                        f"investigators-{settings.app_id}"]),)
                log(f"pipeline: {name}: {model}, replaying in event time, "
                    f"{args.day_seconds:g} s a simulated day")
                try:
                    when: list[np.ndarray] = []
                    out[name] = paced_run(settings, path, args.envelope, DAY / args.day_seconds,
                                          tx_ids, run_dir / "logs", log, helpers=helpers,
                                          scored_at=when)
                    if published is not None:
                        published[name] = feedback_published(settings, ts, when[0])
                finally:
                    parity_run.delete_run_topics(settings, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def run_feedback(args: FeedbackArgs, base: Settings, log: parity_run.Log = print,
                 ) -> dict[str, Any]:
    """The study: ``runs`` from the pipeline when it ran (else offline), ``offline`` always."""
    from models.evaluate import prepare
    from models.feedback_replay import feedback_changes_no_feature

    args.validate()
    log(f"simulating {args.days} days, {args.customers:,} customers ...")
    frame = simulate(args)
    data = prepare(frame, delay_days=7.0, labels="data")
    tx_ids = frame.sort_values(["ts", "tx_id"], kind="stable")["tx_id"].to_numpy(np.int64)
    log(f"{len(data):,} transactions ({int(data.fraud.sum()):,} fraudulent); offline replays ...")
    runs = offline_runs(args, data)
    offline = figures(args, data, {n: r.scores for n, r in runs.items()})
    for row in offline:
        row.update(runs[row["name"]].counts())
        row["replay_cpu_s"] = runs[row["name"]].cpu_s
    mask = evaluated(args, data)
    result: dict[str, Any] = {
        "k": args.k, "n_tx": len(data), "n_fraud": int(data.fraud.sum()),
        "ceiling": ceiling(data, mask, args.k), "anchor": ANCHOR,
        "features_unchanged_by_feedback": feedback_changes_no_feature(data),
        "args": vars(args).copy(), "offline": offline, "source": "offline",
    }
    result["runs"] = offline
    if args.pipeline:
        published: dict[str, dict[str, int]] = {}
        pipe = pipeline_scores(args, frame, tx_ids, base, log, published, data.ts)
        rows = figures(args, data, pipe)
        for row in rows:
            twin = next(o for o in offline if o["name"] == row["name"])
            row["offline_ap"], row["offline_cp_at_100"] = twin["ap"], twin["cp_at_100"]
            row.update(published.get(row["name"], {}))
        result["runs"], result["source"] = rows, "pipeline"
    base_row = next(r for r in result["runs"] if r["name"] == DELAYED_ONLY)
    result["gain"] = {r["name"]: {"cp_at_100": r["cp_at_100"] - base_row["cp_at_100"],
                                  "ap": r["ap"] - base_row["ap"]}
                      for r in result["runs"] if r["name"] != DELAYED_ONLY}
    return result


def write_report(result: dict[str, Any], out_dir: Path, command: str) -> Path:
    """``report.md`` (and html), the chart and ``result.json``."""
    import json

    from benchmarks.parity import jsonable
    from benchmarks.report import Chart, Report, Section, Table, chart_feedback, write

    out_dir.mkdir(parents=True, exist_ok=True)
    k = result["k"]
    runs = result["runs"]
    chart_feedback(runs, result["ceiling"], k, f"CP@{k} and AP per contender "
                   f"({result['source']})", out_dir / "feedback.png")
    pipeline = result["source"] == "pipeline"
    cols = ["contender", f"CP@{k}", "AP", "AUC"]
    if pipeline:
        cols += ["offline CP", "offline AP", "feedback labels", "published late"]
    rows = []
    for r in runs:
        row = [r["name"], r["cp_at_100"], r["ap"], r["auc"]]
        if pipeline:
            row += [r["offline_cp_at_100"], r["offline_ap"], r["feedback_labels_published"],
                    r.get("feedback_published_late", 0)]
        rows.append(row)
    off = [[r["name"], r["cp_at_100"], r["ap"], r["alerts"], r["cases"], r["feedback_labels"],
            r["feedback_frauds"], r["delayed_labels"], r["replay_cpu_s"]]
           for r in result["offline"]]
    a = result["args"]
    text = (f"{'Drift ' + a['drift'] + '; ' if a.get('drift') else ''}"
            f"{result['n_tx']:,} transactions ({result['n_fraud']:,} frauds), "
            f"{a['customers']:,} cards, {a['days']} days, seed {a['seed']}; model `{a['model']}`; "
            f"{k} cards investigated a day, labels {a['hours']:g} h after the alert; "
            f"aggregation alpha {a['alpha']:g}; evaluated from day {a['eval_from_day']}. "
            f"CP@{k} of a perfect ranking (ceiling): {result['ceiling']:.3f}. "
            f"Anchor: {result['anchor']}.")
    sections = [Section(f"CP@{k} and AP ({result['source']})", text, [
        Table("feedback_runs", "Contenders", cols, rows),
        Chart("feedback", f"CP@{k} per contender", Path("feedback.png"))]),
        Section("Offline replay: labels and alerts", "`models.feedback_replay`: the same world "
                "replayed in event time, every label learned once at its `known_at`.",
                [Table("feedback_offline", "Offline", [
                    "contender", f"CP@{k}", "AP", "alerts", "cases", "feedback labels",
                    "feedback frauds", "delayed labels", "replay CPU s"], off)])]
    (out_dir / "result.json").write_text(json.dumps(jsonable(result), indent=1) + "\n")
    report = Report("Investigators' feedback: delayed labels, one model, aggregation",
                    [f"Command: `{command}`", "Measured on this machine."], sections)
    md, _ = write(report, out_dir)
    return md
