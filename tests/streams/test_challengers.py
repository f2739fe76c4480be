"""Champion and challengers in the processor: shadow scores never alert, every model learns
every label, promotion swaps through a verified snapshot and refuses a tampered one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import Registry, RegistryError
from producers.events import FEEDBACK
from streams.alert_policy import FixedThreshold
from streams.challengers import Challengers, Contender
from streams.model_runtime import ModelRuntime
from streams.processor import Processor
from tests.streams.test_event_time_labels import DAY, _Row, make_proc, tx_rec
from tests.streams.test_label_sources import T0, label_rec


def _with_challenger(tmp_path: Path, champion_threshold: float = 2.0) -> Processor:
    proc = make_proc(tmp_path, name="sgd_logreg")
    proc.alert_policy = FixedThreshold(champion_threshold)
    shadow = ModelRuntime("agg_sgd_logreg", Registry(tmp_path / "reg", "k"),
                          "t-challenger-agg", snapshot_every=10**9)
    shadow.start()
    proc.challengers = Challengers(Contender(proc.runtime, proc.alert_policy),
                                   [Contender(shadow, FixedThreshold(0.0))])
    return proc


def _traffic(proc: Processor, n: int = 40) -> None:
    for i in range(n):
        proc.score([tx_rec(_Row(i, T0 + i * 600.0, customer=1 + i % 4, amount=10.0 + 7 * i))])
    for i in range(n):
        proc.learn([label_rec(i, int(i % 5 == 0), T0 + i * 600.0 + 60.0,
                              FEEDBACK if i % 2 else "delayed", customer=1 + i % 4)])
    proc.score([tx_rec(_Row(10_000, T0 + 2 * DAY))])


def test_shadow_scores_never_alert_and_go_to_their_own_messages(tmp_path: Path) -> None:
    proc = _with_challenger(tmp_path)  # champion never alerts; the challenger always would
    out = proc.score([tx_rec(_Row(1, T0)), tx_rec(_Row(2, T0 + 60.0, customer=2))])
    assert out.alerts == [] and len(out.scores) == 2
    bodies = [json.loads(v) for _, v in out.shadow]
    assert [b["tx_id"] for b in bodies] == [1, 2]
    assert all(set(b["scores"]) == {"agg_sgd_logreg"} and b["champion"] == "sgd_logreg"
               for b in bodies)
    assert proc.challengers.challengers[0].alerts == 2  # counted, never sent
    assert proc.challengers.champion.alerts == 0


def test_every_model_learns_every_label_with_its_source(tmp_path: Path) -> None:
    proc = _with_challenger(tmp_path)
    _traffic(proc)
    shadow = proc.challengers.challengers[0]
    assert proc.runtime.learned == shadow.runtime.learned == 40
    assert shadow.runtime.model.learned == {"feedback": 20, "delayed": 20}
    rows = {r["role"]: r for r in proc.challengers.quality()}
    assert rows["champion"]["labels"] == rows["challenger"]["labels"] == 40
    assert rows["challenger"]["alert_precision"] == pytest.approx(8 / 40)
    assert 0.0 <= rows["champion"]["rolling_auc"] <= 1.0


def test_promotion_swaps_through_a_verified_snapshot(tmp_path: Path) -> None:
    proc = _with_challenger(tmp_path)
    _traffic(proc)
    shadow = proc.challengers.challengers[0]
    before = shadow.runtime.predict_one([50.0] + [1.0] * 14)
    old_champion = proc.runtime.model
    path = proc.challengers.promote("agg_sgd_logreg")
    assert Path(path).exists()
    assert proc.runtime.name == "agg_sgd_logreg"
    assert proc.runtime.predict_one([50.0] + [1.0] * 14) == before
    assert shadow.runtime.name == "sgd_logreg" and shadow.runtime.model is old_champion
    assert proc.challengers.champion.policy.threshold == 0.0  # its policy came along
    proc.alert_policy = proc.challengers.champion.policy
    out = proc.score([tx_rec(_Row(20_000, T0 + 3 * DAY))])
    assert len(out.alerts) == 1 and json.loads(out.shadow[0][1])["champion"] == "agg_sgd_logreg"


def test_a_tampered_snapshot_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    proc = _with_challenger(tmp_path)
    _traffic(proc)
    shadow = proc.challengers.challengers[0]
    write = shadow.runtime.snapshot

    def tampered(*args: object, **kwargs: object) -> str:
        path = write(*args, **kwargs)
        data = bytearray(Path(path).read_bytes())
        data[-10] ^= 0xFF
        Path(path).write_bytes(bytes(data))
        return path

    shadow.runtime.snapshot = tampered  # type: ignore[method-assign]
    model = proc.runtime.model
    with pytest.raises(RegistryError):
        proc.challengers.promote("agg_sgd_logreg")
    assert proc.runtime.model is model and proc.runtime.name == "sgd_logreg"
    assert shadow.runtime.name == "agg_sgd_logreg"
    with pytest.raises(KeyError, match="no challenger"):
        proc.challengers.promote("hat")


def test_each_model_is_measured_on_its_own_scores(tmp_path: Path) -> None:
    """Labels interleaved with scores: two different models get different live figures."""
    proc = make_proc(tmp_path, name="sgd_logreg")
    proc.alert_policy = FixedThreshold(0.5)
    shadow = ModelRuntime("gnb", Registry(tmp_path / "reg", "k"), "t-gnb", snapshot_every=10**9)
    shadow.start()
    proc.challengers = Challengers(Contender(proc.runtime, proc.alert_policy),
                                   [Contender(shadow, FixedThreshold(0.5))])
    for i in range(300):
        amount = 20.0 + (i * 37 % 100) + (250.0 if i % 9 == 0 else 0.0)
        proc.score([tx_rec(_Row(i, T0 + i * 600.0, customer=1 + i % 7, amount=amount))])
        proc.learn([label_rec(i, int(i % 9 == 0), T0 + i * 600.0 + 60.0, customer=1 + i % 7)])
    champion, challenger = proc.challengers.quality()
    assert champion["labels"] == challenger["labels"] >= 299  # the last one: not due yet
    assert champion["rolling_ap"] != challenger["rolling_ap"]
    assert champion["alerts"] != challenger["alerts"]
