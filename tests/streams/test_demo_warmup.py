"""The demo's bootstrap and its report figures, without a broker.

The demo's claims rest on three things checked here: the producer simulates exactly the
world the demo trains on, the offline snapshot is a verified model of the worker's kind that a
worker can start from, and the live-vs-offline and alert figures count what they say.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fraudstream.cli import app
from models.features import DAY
from models.registry import Registry, RegistryError
from streams.demo_quality import AP_TARGET, alert_totals, alerts_by_day, parity
from streams.model_runtime import ModelRuntime
from streams.warmup import DemoPlan, Replay, offline_scores, train_snapshot

KEY = b"demo-test-key"
SMALL = DemoPlan(seed=3, customers=60, terminals=120, train_days=12, backfill_days=5, live_days=3)


def test_plan_cuts_the_world_into_training_backfill_and_live() -> None:
    plan = DemoPlan.for_run(rate=250, duration_s=120)
    assert plan.backfill_days == 37  # label delay + the longest terminal window
    assert plan.live_days * 1_920 > 250 * 120  # the producer cannot run dry in the demo
    assert plan.days == plan.train_days + plan.backfill_days + plan.live_days
    assert plan.live_from - plan.backfill_from == plan.backfill_days * DAY
    assert plan.live_date == date(2018, 4, 1) + pd.Timedelta(days=97)
    args = plan.produce_args()
    assert args[args.index("--live-from") + 1] == plan.live_date.isoformat()
    assert args[args.index("--backfill-days") + 1] == "37"
    assert DemoPlan.for_run(250, 120, backfill_days=30).backfill_days == 30


def test_the_producer_simulates_the_same_world(tmp_path: Path) -> None:
    args = SMALL.produce_args()
    world = args[: args.index("--live-from")]  # simulate takes the world options, not the pace
    out = tmp_path / "world.parquet"
    result = CliRunner().invoke(app, ["simulate", "--out", str(out), *world])
    assert result.exit_code == 0, result.output
    theirs = pd.read_parquet(out)
    ours = SMALL.simulate()
    cols = ["tx_id", "ts", "customer_id", "terminal_id", "amount", "fraud", "label_ts"]
    pd.testing.assert_frame_equal(theirs[cols].reset_index(drop=True),
                                  ours[cols].reset_index(drop=True), check_dtype=False)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return SMALL.simulate()


def test_snapshot_is_trained_on_history_and_starts_a_worker(
    world: pd.DataFrame, tmp_path: Path
) -> None:
    registry = Registry(tmp_path, KEY)
    boot = train_snapshot(world, SMALL, "logreg", registry, 7.0)
    history = world[world["ts"] < SMALL.backfill_from]
    assert boot.ref == "demo-warm-logreg@1"
    assert boot.transactions == len(history)
    assert boot.labels_learned == int((history["label_ts"] < SMALL.backfill_from).sum())
    assert 0 < boot.labels_learned < len(history)  # the last week's labels are not known yet
    runtime = ModelRuntime("logreg", registry, snapshot_name="demo-w0", warm_start=boot.ref)
    runtime.start()
    assert runtime.warm_started_from == boot.ref
    assert runtime.learned == boot.labels_learned
    with pytest.raises(RegistryError, match="holds a 'logreg' model"):
        ModelRuntime("arf", registry, snapshot_name="demo-w0", warm_start=boot.ref).start()


def test_offline_replay_scores_what_the_producer_sends(world: pd.DataFrame, tmp_path: Path) -> None:
    registry = Registry(tmp_path, KEY)
    boot = train_snapshot(world, SMALL, "logreg", registry, 7.0)
    replay = offline_scores(world, SMALL, registry, boot.ref, 7.0)
    sent = world[world["ts"] >= SMALL.backfill_from]
    assert sorted(replay.tx_id.tolist()) == sent["tx_id"].tolist()
    assert not np.isnan(replay.score).any()
    again = offline_scores(world, SMALL, registry, boot.ref, 7.0)
    np.testing.assert_array_equal(replay.score, again.score)  # deterministic
    cut = float(sent["ts"].iloc[len(sent) // 2])
    prefix = offline_scores(world, SMALL, registry, boot.ref, 7.0, until=cut)
    assert prefix.ts.max() <= cut
    # later transactions do not change earlier scores
    np.testing.assert_array_equal(prefix.score, replay.score[: len(prefix.score)])


def _replay() -> Replay:
    rng = np.random.default_rng(1)
    n = 400
    ts = np.sort(rng.uniform(0, 4 * DAY, n))
    fraud = (rng.uniform(size=n) < 0.1).astype(np.int8)
    score = np.clip(fraud * 0.5 + rng.uniform(0, 0.6, n), 0, 1)
    return Replay(tx_id=np.arange(1000, 1000 + n), ts=ts, customer_id=rng.integers(0, 50, n),
                  fraud=fraud, score=score, seconds=0.0)


def test_parity_uses_exactly_the_scored_transactions() -> None:
    rep = _replay()
    live_from = 2 * DAY
    scored = {int(t): float(s) for t, s in zip(rep.tx_id[:300], rep.score[:300], strict=True)}
    back, live = parity(rep, scored, live_from)
    assert back.phase == "backfill" and live.phase == "live"
    assert back.n + live.n == 300
    assert live.n == int(np.sum(rep.ts[:300] >= live_from))
    assert live.ap_diff == 0.0 and live.within_target and live.share_within_001 == 1.0
    worse = {t: (1 - s if i % 3 == 0 else s) for i, (t, s) in enumerate(scored.items())}
    _, live2 = parity(rep, worse, live_from)
    assert live2.live["ap"] < live2.offline["ap"] - AP_TARGET
    assert not live2.within_target
    assert live2.offline == live.offline  # the offline side does not depend on live scores


def test_alerts_per_day_and_precision() -> None:
    rep = Replay(
        tx_id=np.arange(6), ts=np.array([10.0, 20.0, 30.0, DAY + 1, DAY + 2, DAY + 3]),
        customer_id=np.array([1, 1, 2, 1, 3, 4]), fraud=np.array([0, 1, 0, 0, 0, 1], np.int8),
        score=np.zeros(6), seconds=0.0,
    )
    alerts = [
        {"tx_id": 0, "customer_id": 1, "ts": 10.0},
        {"tx_id": 0, "customer_id": 1, "ts": 10.0},  # at-least-once: a repeat
        {"tx_id": 2, "customer_id": 2, "ts": 30.0},
        {"tx_id": 4, "customer_id": 3, "ts": DAY + 2},
    ]
    days = alerts_by_day(alerts, rep, live_from=DAY, scored_until=DAY + 3)
    assert [(d.phase, d.alerts, d.cards, d.fraud_cards, d.transactions) for d in days] == [
        ("backfill", 2, 2, 1, 3),  # card 1 had a fraud that day (another tx), card 2 none
        ("live", 1, 1, 0, 3),
    ]
    assert days[0].precision == 0.5 and days[1].precision == 0.0
    totals = alert_totals(days)
    assert totals["backfill"]["cards per day"] == 2
    assert totals["live"]["precision of alerted cards"] == 0.0
    quiet = alerts_by_day([], rep, live_from=DAY, scored_until=DAY + 3)
    assert all(d.cards == 0 and math.isnan(d.precision) for d in quiet)
