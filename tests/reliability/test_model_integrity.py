"""Model integrity: a snapshot altered on disk is refused, and the running model is kept.

Snapshots are pickles, so loading a tampered one would run whatever its author wrote; the
registry refuses anything whose HMAC does not check out. These tests prove what the *worker*
does with that refusal: at start it falls back to the newest snapshot that does verify (and
says which one it refused), and a hot reload of a bad file leaves the current model in place.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.settings import Settings
from infra.topics import ensure_topics
from models.catalog import make_model
from models.features import FEATURE_NAMES
from models.registry import MAGIC, Registry, RegistryError
from streams.demo_processes import WorkerProcess
from streams.model_runtime import ModelRuntime

KEY = "integrity-test-key"
X = dict(zip(FEATURE_NAMES, [250.0, 0, 1, 3, 80, 9, 70, 30, 60, 4, 0.25, 20, 0.1, 90, 0.05],
             strict=True))


def _model(n: int):
    """A logreg that learned ``n`` labels, so versions are told apart by their predictions."""
    model = make_model("logreg", seed=0)
    for i in range(n):
        model.learn_one(X, i % 2)
    return model


def tamper(path: Path, where: str = "payload") -> None:
    """Flip one byte of the pickle payload, or rewrite a header field, as an attacker would."""
    blob = bytearray(path.read_bytes())
    if where == "payload":
        blob[-3] ^= 0x01
    else:  # header: claim more learned labels than the model has
        end = blob.index(b"\n", len(MAGIC))
        header = blob[len(MAGIC):end].replace(b'"learned":', b'"learned":9')
        blob[len(MAGIC):end] = header
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("where", ["payload", "header"])
def test_start_skips_a_tampered_newest_snapshot(tmp_path: Path, where: str) -> None:
    registry = Registry(tmp_path, KEY)
    registry.save(_model(3), "snap", extra={"learned": 3, "model": "logreg"})
    v2 = registry.save(_model(40), "snap", extra={"learned": 40, "model": "logreg"})
    tamper(v2, where)

    runtime = ModelRuntime("logreg", registry, "snap")
    runtime.start()
    assert runtime.version == 1, "the older, valid snapshot must be loaded"
    assert runtime.learned == 3
    assert runtime.model.predict_proba_one(X) == _model(3).predict_proba_one(X)
    assert len(runtime.load_errors) == 1
    error = runtime.load_errors[0]
    assert "v2.fsm" in error and "signature" in error and "refusing" in error
    assert "\n" not in error, "one clear line, no traceback"


def test_reload_of_a_tampered_file_keeps_the_current_model(tmp_path: Path) -> None:
    registry = Registry(tmp_path, KEY)
    registry.save(_model(5), "snap", extra={"learned": 5, "model": "logreg"})
    runtime = ModelRuntime("logreg", registry, "snap")
    runtime.start()
    model_before, score_before = runtime.model, runtime.predict_one(list(X.values()))

    bad = registry.save(_model(50), "snap", extra={"learned": 50, "model": "logreg"})
    tamper(bad)
    assert runtime.reload_from(str(bad)) is False
    assert runtime.model is model_before
    assert runtime.version == 1 and runtime.learned == 5
    assert runtime.predict_one(list(X.values())) == score_before
    assert "signature" in runtime.load_errors[-1]

    # A file signed with another key is refused the same way (a foreign registry).
    foreign = Registry(tmp_path / "foreign", "someone-else").save(_model(7), "snap")
    assert runtime.reload_from(str(foreign)) is False
    assert runtime.model is model_before

    # And a good one is still taken: the refusal is per file, not a stuck state.
    good = registry.save(_model(60), "snap", extra={"learned": 60, "model": "logreg"})
    assert runtime.reload_from(str(good)) is True
    assert runtime.version == 3 and runtime.learned == 60


def test_every_snapshot_tampered_starts_fresh_rather_than_loading_one(tmp_path: Path) -> None:
    registry = Registry(tmp_path, KEY)
    tamper(registry.save(_model(5), "snap"))
    runtime = ModelRuntime("logreg", registry, "snap")
    runtime.start()
    assert runtime.version == 0 and runtime.learned == 0
    assert len(runtime.load_errors) == 1
    with pytest.raises(RegistryError, match="signature"):
        registry.load("snap")


@pytest.mark.integration
def test_worker_starts_from_the_older_valid_snapshot_and_logs_the_refusal(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={
        "state_dir": tmp_path / "state", "registry_dir": tmp_path / "registry",
        "model_signing_key": kafka_settings.model_signing_key,
    })
    key = settings.model_signing_key.get_secret_value()
    name = f"{settings.app_id}-{settings.model}-w0"
    registry = Registry(settings.registry_dir, key)
    registry.save(_model(3), name, extra={"learned": 3, "model": settings.model})
    tamper(registry.save(_model(40), name, extra={"learned": 40, "model": settings.model}))

    ensure_topics(settings)
    worker = WorkerProcess(settings, "w0", tmp_path).start()
    try:
        worker.wait_ready()
        metrics = worker.get("/metrics").decode()
        version = float(re.search(r"^fraudstream_model_version (\S+)", metrics, re.M)[1])
        assert version == 1.0
        assert worker.stats()["model"].startswith(f"{settings.model}:v1+")
    finally:
        worker.stop()
    log_text = worker.log_path.read_text(errors="replace")
    refusal = [ln for ln in log_text.splitlines() if "refusing snapshot" in ln]
    assert refusal and "v2.fsm" in refusal[0] and "signature" in refusal[0], log_text[-2000:]
    assert "Traceback" not in log_text


def test_chaos_markdown_report_lists_every_figure() -> None:
    from reliability.chaos import markdown_report
    from reliability.scenario import Report

    ok = Report("bad input", {"malformed sent": 10, "categories": "a|b"}, seconds=3.0)
    bad = Report("crash", {"lost": 2}, problems=["2 transactions lost"])
    md = markdown_report([ok, bad], "fraudstream chaos --seed 7", "20261124-190000")
    assert "`fraudstream chaos --seed 7`" in md
    assert "## bad input: OK (3 s)" in md and "| malformed sent | 10 |" in md
    assert "| categories | a\\|b |" in md  # a pipe in a value does not break the table
    assert "## crash: FAILED" in md and "- problem: 2 transactions lost" in md


def test_learning_audit_tells_a_relearn_after_a_kill_from_double_learning(tmp_path: Path) -> None:
    from reliability.learning_audit import read_audit

    audit = tmp_path / "audit"
    # incarnation 1 learns 1, captures its model, learns 2, writes the capture as v1 (after
    # a flush: without 2), dies; incarnation 2 loads v1 and learns 2 (its first learning
    # died with the process) and 3, then 3 again.
    audit.write_text("START\nT 1\nC\nT 2\nS 1\nSTART\nL 1\nT 2\nT 3\nT 3\n")
    a = read_audit(audit)
    assert a.repeated_calls == [2, 3]
    assert a.repeated_in_one == [3]
    assert a.final_model == {1: 1, 2: 1, 3: 2}
