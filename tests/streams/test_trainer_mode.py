"""One trainer learns from all labels; scoring workers pick up its signed snapshots."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from infra.settings import Settings, child_env
from infra.topics import ensure_topics
from reliability.harness import produce
from streams.demo_processes import FRAUDSTREAM, WorkerProcess

pytestmark = pytest.mark.integration


def test_workers_follow_the_trainers_snapshots(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "learning": "trainer", "snapshot_every_labels": 1000,
    })
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    trainer = subprocess.Popen([*FRAUDSTREAM, "trainer", "--max-seconds", "150"],
                               env=child_env(settings), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        worker.wait_ready()
        produce(settings, "--customers", "300", "--terminals", "600", "--days", "25",
                "--max-tx", "5000", "--seed", "9")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = worker.stats()
            if stats["model"].startswith("logreg:v") and not stats["model"].startswith("logreg:v0"):
                break
            time.sleep(1)
        assert not stats["model"].startswith("logreg:v0"), "no trainer snapshot was picked up"
        assert stats["totals"]["learned"] == 0  # the scorer itself never learns in this mode
        assert (settings.registry_dir / f"{settings.app_id}-logreg-trainer").is_dir()
    finally:
        worker.stop()
        trainer.terminate()
        out = trainer.communicate(timeout=30)[0].decode(errors="replace")
    assert "labels learned" in out
    # its partitions are assigned, not group-balanced, but its offsets are committed under its
    # group: a restarted trainer resumes instead of learning every label again
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka.kafka_python_kwargs())
    try:
        group = f"{settings.app_id}-trainer"
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    by_topic = {tp.topic: meta.offset for tp, meta in committed.items()}
    assert by_topic.get(settings.topics.labels, 0) > 0, committed
    assert by_topic.get(settings.topics.scores, 0) > 0, committed


def test_workers_hot_reload_the_batch_retrainers_snapshots(kafka_settings: Settings,
                                                            tmp_path: Path) -> None:
    """The lambda architecture's batch layer: a scikit-learn model refitted every 3 days of
    event time; the worker starts with no snapshot (scores 0) and swaps each refit in."""
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "learning": "trainer", "model": "batch_logreg",
    })
    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    trainer = subprocess.Popen([*FRAUDSTREAM, "trainer", "--max-seconds", "150",
                                "--every-days", "3"],
                               env=child_env(settings), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        worker.wait_ready()
        assert worker.stats()["model"].startswith("batch_logreg:v0")
        # genuine transactions confirmed after a day: a refit needs both classes known
        produce(settings, "--customers", "300", "--terminals", "600", "--days", "25",
                "--max-tx", "5000", "--seed", "9", "--feedback-days", "1")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            model = worker.stats()["model"]
            if not model.startswith("batch_logreg:v0"):
                break
            time.sleep(1)
        assert not model.startswith("batch_logreg:v0"), "no refit was picked up"
        assert (settings.registry_dir / f"{settings.app_id}-batch_logreg-trainer").is_dir()
    finally:
        worker.stop()
        trainer.terminate()
        out = trainer.communicate(timeout=30)[0].decode(errors="replace")
    assert "refitted batch_logreg" in out and "refits" in out
