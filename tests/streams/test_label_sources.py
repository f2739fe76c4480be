"""Feedback and delayed labels in the worker: one label per transaction, learned with its source.

A transaction can be labelled twice: by investigators within hours (feedback) and by the
delayed label days later. The worker learns it once, from the label known first, and the
models that learn the sources apart (``models.aggregate``) get the source.
"""

from __future__ import annotations

from pathlib import Path

from producers.events import FEEDBACK, Label, encode_label
from streams.card_state import CardState, code_label, label_code
from streams.processor import Record
from tests.streams.test_event_time_labels import DAY, _Row, make_proc, tx_rec

T0 = 1e9


def label_rec(tx_id: int, fraud: int, known_at: float, source: str = "delayed",
              customer: int = 1) -> Record:
    label = Label(tx_id, customer, 5, T0, fraud, known_at, 0.0, source)
    return Record(str(customer).encode(), encode_label(label), "labels", 0, 0)


def test_a_label_code_keeps_fraud_and_source() -> None:
    for fraud in (0, 1):
        for source in ("delayed", "feedback"):
            assert code_label(label_code(fraud, source)) == (fraud, source)


def test_a_feedback_label_is_learned_once_and_by_the_feedback_learner(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, name="agg_sgd_logreg")
    proc.score([tx_rec(_Row(1, T0))])
    proc.learn([label_rec(1, 1, T0 + 4 * 3600.0, FEEDBACK)])
    proc.score([tx_rec(_Row(2, T0 + 5 * 3600.0))])  # event time passes the feedback's known_at
    proc.learn([label_rec(1, 1, T0 + 2 * DAY)])  # the delayed label of the same transaction
    proc.score([tx_rec(_Row(3, T0 + 3 * DAY))])
    assert proc.runtime.model.learned == {"feedback": 1, "delayed": 0}
    assert proc.telemetry.label_dupes._value.get() == 1


def test_an_earlier_feedback_label_replaces_a_held_delayed_one(tmp_path: Path) -> None:
    """The delayed label came first (published earlier) but is known later: the feedback
    label, known sooner, takes its place, is learned at its own time, and only once."""
    proc = make_proc(tmp_path, name="agg_sgd_logreg")
    proc.score([tx_rec(_Row(1, T0))])
    proc.learn([label_rec(1, 0, T0 + 2 * DAY)])
    proc.learn([label_rec(1, 1, T0 + 3600.0, FEEDBACK)])
    proc.score([tx_rec(_Row(2, T0 + 2 * 3600.0))])
    assert proc.runtime.model.learned == {"feedback": 1, "delayed": 0}
    proc.score([tx_rec(_Row(3, T0 + 3 * DAY))])  # the delayed one's time: nothing more
    assert proc.runtime.model.learned == {"feedback": 1, "delayed": 0}
    assert proc.clock.held() == 0


def test_a_later_feedback_label_is_a_duplicate(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, name="agg_sgd_logreg")
    proc.score([tx_rec(_Row(1, T0))])
    proc.learn([label_rec(1, 0, T0 + 3600.0)])
    proc.learn([label_rec(1, 0, T0 + 7200.0, FEEDBACK)])
    proc.score([tx_rec(_Row(2, T0 + DAY))])
    assert proc.runtime.model.learned == {"feedback": 0, "delayed": 1}


def test_a_late_feedback_label_is_learned_at_once_with_its_source(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, name="agg_sgd_logreg")
    proc.score([tx_rec(_Row(1, T0)), tx_rec(_Row(2, T0 + DAY))])
    proc.learn([label_rec(1, 1, T0 + 3600.0, FEEDBACK)])  # its time has passed already
    assert proc.runtime.model.learned == {"feedback": 1, "delayed": 0}


def test_a_held_feedback_label_keeps_its_source_across_a_restart(tmp_path: Path) -> None:
    cards: dict[bytes, bytes] = {}
    first = make_proc(tmp_path, cards, name="agg_sgd_logreg")
    first.score([tx_rec(_Row(1, T0))])
    first.learn([label_rec(1, 1, T0 + 3600.0, FEEDBACK)])
    assert code_label(int(CardState.from_bytes(cards[b"1"]).early.get(1)[0])) == (1, FEEDBACK)
    second = make_proc(tmp_path / "again", cards, name="agg_sgd_logreg")
    second.score([tx_rec(_Row(2, T0 + DAY))])
    assert second.runtime.model.learned == {"feedback": 1, "delayed": 0}


def test_models_without_sources_learn_feedback_labels_like_any_other(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, name="sgd_logreg")
    proc.score([tx_rec(_Row(1, T0)), tx_rec(_Row(2, T0 + DAY))])
    proc.learn([label_rec(1, 1, T0 + 3600.0, FEEDBACK)])
    assert proc.runtime.learned == 1


def test_the_alert_queue_shows_each_alert_with_its_label_once_learned(tmp_path: Path) -> None:
    from streams.alert_policy import FixedThreshold

    proc = make_proc(tmp_path, name="agg_sgd_logreg")
    proc.alert_policy = FixedThreshold(0.0)  # every score alerts
    proc.score([tx_rec(_Row(1, T0)), tx_rec(_Row(2, T0 + 60.0))])
    proc.learn([label_rec(1, 1, T0 + 3600.0, FEEDBACK)])
    assert [a["tx_id"] for a in proc.alert_log.recent()] == [2, 1]
    assert "label" not in proc.alert_log.recent()[1]  # read, not learned yet
    proc.score([tx_rec(_Row(3, T0 + 2 * 3600.0))])
    queue = {a["tx_id"]: a for a in proc.alert_log.recent()}
    assert queue[1]["label"] == {"fraud": 1, "source": "feedback", "known_at": T0 + 3600.0}
    stats = proc.alert_log.stats()
    assert (stats["feedback_labels"], stats["confirmed"], stats["by_feedback"]) == (1, 1, 1)


def test_a_peer_learns_a_feedback_label_as_feedback(tmp_path: Path) -> None:
    """Shared learning: the example a worker publishes carries its label's source."""
    from streams.shared_learning import SharedExamples

    first = make_proc(tmp_path / "a", name="agg_sgd_logreg")
    first.shared = SharedExamples(15)
    first.score([tx_rec(_Row(1, T0)), tx_rec(_Row(2, T0 + DAY))])
    first.learn([label_rec(1, 1, T0 + 3600.0, FEEDBACK)])
    [message] = first.shared.take_outgoing()
    peer = make_proc(tmp_path / "b", name="agg_sgd_logreg")
    peer.shared = SharedExamples(15)
    peer.shared.add_message(partition=0, offset=0, value=message)
    peer.score([tx_rec(_Row(3, T0 + 2 * DAY, customer=9))])
    assert peer.runtime.model.learned == {"feedback": 1, "delayed": 0}
