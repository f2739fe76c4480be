"""Warm start: a worker without snapshots of its own starts from a named registry snapshot.

Everything runs against a temporary registry; the last test runs the real command line to
check that a missing snapshot is one line on stderr, not a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.catalog import make_model
from models.registry import Registry, RegistryError, parse_ref
from streams.model_runtime import ModelRuntime

KEY = b"warm-start-test-key"
X = {"amount": 250.0, "is_night": 1.0, "cust_nb_tx_1d": 3.0}
Y = {"amount": 12.0, "is_night": 0.0, "cust_nb_tx_1d": 1.0}
FEATURES = [0.0] * 15


def _trained(name: str = "logreg", rounds: int = 50):
    model = make_model(name, seed=0)
    for _ in range(rounds):
        model.learn_one(X, 1)
        model.learn_one(Y, 0)
    return model


def _runtime(registry: Registry, name: str = "logreg", warm: str | None = "bootstrap",
             own: str = "app-logreg-w0") -> ModelRuntime:
    return ModelRuntime(name, registry, snapshot_name=own, snapshot_every=3, warm_start=warm)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry", KEY)


def test_without_own_snapshot_the_named_one_is_loaded(registry: Registry) -> None:
    trained = _trained()
    registry.save(trained, "bootstrap", extra={"learned": 100, "model": "logreg"})
    runtime = _runtime(registry)
    runtime.start()
    assert runtime.model.predict_proba_one(X) == trained.predict_proba_one(X)
    fresh = make_model("logreg", seed=0).predict_proba_one(X)
    assert runtime.model.predict_proba_one(X) > fresh + 0.05  # trained, not a fresh model
    assert runtime.warm_started_from == "bootstrap@1"
    assert runtime.learned == 100  # carried over from the snapshot's header
    assert runtime.version == 0  # the worker's own lineage has no snapshot yet


def test_a_pinned_version_is_loaded_not_the_newest(registry: Registry) -> None:
    old = _trained(rounds=5)
    registry.save(old, "bootstrap")
    registry.save(_trained(rounds=80), "bootstrap")
    runtime = _runtime(registry, warm="bootstrap@1")
    runtime.start()
    assert runtime.warm_started_from == "bootstrap@1"
    assert runtime.model.predict_proba_one(X) == old.predict_proba_one(X)


def test_the_workers_own_snapshot_wins_over_the_named_one(registry: Registry) -> None:
    registry.save(_trained(), "bootstrap")
    first = _runtime(registry)
    first.start()
    for _ in range(3):
        due = first.learn(FEATURES, 0)
    assert due
    first.snapshot()  # what the worker writes while it runs: its own v1
    own = first.model.predict_proba_one(X)
    registry.save(_trained(rounds=1), "bootstrap")  # a newer bootstrap model appears meanwhile

    restarted = _runtime(registry)
    restarted.start()
    assert restarted.warm_started_from is None
    assert restarted.version == 1
    assert restarted.model.predict_proba_one(X) == own


def test_an_invalid_own_snapshot_falls_back_to_the_named_one(registry: Registry) -> None:
    trained = _trained()
    registry.save(trained, "bootstrap")
    own = registry.save(_trained(rounds=1), "app-logreg-w0")
    blob = bytearray(own.read_bytes())
    blob[-3] ^= 0xFF
    own.write_bytes(bytes(blob))
    runtime = _runtime(registry)
    runtime.start()
    assert runtime.warm_started_from == "bootstrap@1"
    assert runtime.model.predict_proba_one(X) == trained.predict_proba_one(X)
    assert "signature" in runtime.load_errors[0]


def test_a_missing_snapshot_is_a_clear_error(registry: Registry) -> None:
    with pytest.raises(RegistryError, match=r"warm-start snapshot 'nope': no snapshot of model"):
        _runtime(registry, warm="nope").start()
    registry.save(_trained(), "bootstrap")
    with pytest.raises(RegistryError, match=r"has no version 7 \(have \[1\]\)"):
        _runtime(registry, warm="bootstrap@7").start()


def test_a_snapshot_of_another_model_is_refused(registry: Registry) -> None:
    registry.save(_trained("sgd_logreg"), "bootstrap")
    with pytest.raises(RegistryError, match="holds a 'sgd_logreg' model but this worker runs "
                                            "'logreg'"):
        _runtime(registry).start()


def test_a_tampered_named_snapshot_is_refused_not_replaced_by_a_fresh_model(
    registry: Registry,
) -> None:
    path = registry.save(_trained(), "bootstrap")
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(RegistryError, match="signature verification"):
        _runtime(registry).start()


def test_a_snapshot_signed_with_another_key_is_refused(registry: Registry) -> None:
    Registry(registry.root, b"someone-else").save(_trained(), "bootstrap")
    with pytest.raises(RegistryError, match="signed with another key"):
        _runtime(registry).start()


@pytest.mark.parametrize("ref", ["bootstrap@", "bootstrap@x", "bootstrap@0", "../etc@1", ""])
def test_malformed_references_are_refused(ref: str) -> None:
    with pytest.raises(RegistryError):
        parse_ref(ref)


def test_reference_forms() -> None:
    assert parse_ref("demo-logreg") == ("demo-logreg", None)
    assert parse_ref("demo-logreg@12") == ("demo-logreg", 12)


def test_without_a_name_a_fresh_model_starts(registry: Registry) -> None:
    runtime = _runtime(registry, warm=None)
    runtime.start()
    assert runtime.warm_started_from is None
    assert runtime.model.predict_proba_one(X) == pytest.approx(0.5)


def test_the_worker_app_starts_from_the_snapshot_its_settings_name(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FRAUDSTREAM_MODEL_SNAPSHOT -> Settings.model_snapshot -> the app's model runtime."""
    from infra.settings import Settings
    from streams.app import FraudApp

    registry.save(_trained(), "bootstrap")
    monkeypatch.setenv("FRAUDSTREAM_MODEL_SNAPSHOT", "bootstrap@1")
    settings = Settings(registry_dir=registry.root, state_dir=tmp_path / "state", web_port=0,
                        model_signing_key=KEY.decode())
    fraud = FraudApp(settings, "w0")
    assert fraud.runtime.warm_started_from == "bootstrap@1"


def test_a_batch_model_serves_the_pinned_snapshot(registry: Registry) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    X_ = rng.normal(size=(200, 15))
    y = (X_[:, 0] > 0).astype(int)
    pinned = make_model("batch_logreg")
    pinned.fit(X_, y)
    registry.save(pinned, "bank-lr")
    newest = make_model("batch_logreg")
    newest.fit(X_, 1 - y)
    registry.save(newest, "batch_logreg")  # what the worker would serve without a pin
    runtime = ModelRuntime("batch_logreg", registry, snapshot_name="x", warm_start="bank-lr")
    runtime.start()
    assert runtime.warm_started_from == "bank-lr@1"
    assert runtime.version == 1
    row = X_[0].tolist()
    assert runtime.predict_one(row) == pytest.approx(float(pinned.predict_proba_many(X_[:1])[0]))


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FRAUDSTREAM_REGISTRY_DIR=str(tmp_path / "registry"),
               FRAUDSTREAM_STATE_DIR=str(tmp_path / "state"), FRAUDSTREAM_WEB_PORT="0",
               FRAUDSTREAM_MODEL_SIGNING_KEY=KEY.decode())
    env.pop("FRAUDSTREAM_MODEL_SNAPSHOT", None)
    return subprocess.run([sys.executable, "-m", "fraudstream", "worker", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_worker_command_line_errors_are_one_line(tmp_path: Path) -> None:
    missing = _cli(tmp_path, "--snapshot", "nope@2")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "fraudstream: error: warm-start snapshot 'nope@2': no snapshot of model 'nope' in "
        f"{tmp_path / 'registry'}"
    ]
    bad = _cli(tmp_path, "--snapshot", "demo@latest")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "must be a number" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_a_runtime_keeps_only_its_newest_snapshots_and_restarts_from_the_newest(
    registry: Registry,
) -> None:
    runtime = ModelRuntime("logreg", registry, snapshot_name="app-logreg-w0", snapshot_every=1,
                           keep=3)
    runtime.start()
    for i in range(7):
        runtime.learn(FEATURES, i % 2)
        runtime.snapshot()
    assert registry.versions("app-logreg-w0") == [5, 6, 7]
    again = ModelRuntime("logreg", registry, snapshot_name="app-logreg-w0", keep=3)
    again.start()
    assert again.version == 7 and again.learned == 7
