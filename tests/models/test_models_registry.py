"""Signed snapshots: round trip, versions, and refusal of tampered, unsigned or foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraudstream.errors import FraudstreamError
from models.catalog import make_model
from models.registry import MAGIC, Registry, RegistryError

KEY = b"test-key"
X = {"amount": 300.0, "is_night": 1.0}


def _trained():
    model = make_model("logreg", seed=0)
    model.learn_one(X, 1)
    model.learn_one({"amount": 10.0, "is_night": 0.0}, 0)
    return model


def test_round_trip_keeps_the_model_and_metadata(tmp_path: Path) -> None:
    reg = Registry(tmp_path, KEY)
    model = _trained()
    path = reg.save(model, "logreg", data_range=(1.0, 2.0), metrics={"auc": 0.9})
    assert path.name == "v1.fsm"
    snap = reg.load("logreg")
    assert snap.model.predict_proba_one(X) == model.predict_proba_one(X)
    assert snap.meta["version"] == 1
    assert snap.meta["data_range"] == [1.0, 2.0]
    assert snap.meta["metrics"] == {"auc": 0.9}
    assert set(snap.meta["libraries"]) >= {"river", "scikit-learn", "python"}
    reg.save(model, "logreg")
    assert reg.versions("logreg") == [1, 2]
    assert reg.load("logreg").meta["version"] == 2
    assert reg.load("logreg", 1).meta["version"] == 1


def test_tampered_payload_is_refused_before_unpickling(tmp_path: Path) -> None:
    reg = Registry(tmp_path, KEY)
    path = reg.save(_trained(), "logreg")
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(RegistryError, match="signature"):
        reg.load("logreg")


def test_tampered_metadata_is_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path, KEY)
    path = reg.save(_trained(), "logreg", metrics={"auc": 0.5})
    blob = path.read_bytes()
    header_end = blob.index(b"\n", len(MAGIC))
    meta = json.loads(blob[len(MAGIC) : header_end])
    meta["metrics"]["auc"] = 0.99
    forged = MAGIC + json.dumps(meta).encode() + blob[header_end:]
    path.write_bytes(forged)
    with pytest.raises(RegistryError, match="signature"):
        reg.load("logreg")


def test_unsigned_wrong_key_and_foreign_files_are_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path, KEY)
    path = reg.save(_trained(), "logreg")
    with pytest.raises(RegistryError, match="signature"):
        Registry(tmp_path, b"another-key").load("logreg")
    blob = path.read_bytes()
    header_end = blob.index(b"\n", len(MAGIC))
    meta = json.loads(blob[len(MAGIC) : header_end])
    del meta["signature"]
    path.write_bytes(MAGIC + json.dumps(meta).encode() + blob[header_end:])
    with pytest.raises(RegistryError, match="unsigned"):
        reg.load("logreg")
    path.write_bytes(b"\x80\x05 a raw pickle")
    with pytest.raises(RegistryError, match="not a fraudstream model snapshot"):
        reg.load("logreg")


def test_registry_errors_are_user_errors(tmp_path: Path) -> None:
    reg = Registry(tmp_path, KEY)
    with pytest.raises(FraudstreamError, match="no snapshot"):
        reg.load("arf")
    with pytest.raises(FraudstreamError, match="invalid model name"):
        reg.save(object(), "../evil")


def test_default_key_and_directory_come_from_settings(tmp_path: Path, monkeypatch) -> None:
    from infra.settings import get_settings

    monkeypatch.chdir(tmp_path)
    reg = Registry()
    assert reg.root == Path(get_settings().registry_dir)
    reg.save(_trained(), "logreg")
    assert reg.load("logreg").meta["name"] == "logreg"


def test_prune_keeps_the_newest_versions_of_one_lineage_only(tmp_path: Path) -> None:
    reg = Registry(tmp_path, KEY)
    for _ in range(6):
        reg.save(_trained(), "worker-a")
    reg.save(_trained(), "worker-b")
    assert reg.prune("worker-a", keep=2) == [1, 2, 3, 4]
    assert reg.versions("worker-a") == [5, 6]
    assert reg.versions("worker-b") == [1]
    assert reg.prune("worker-a", keep=2) == []  # nothing more to delete
    assert reg.save(_trained(), "worker-a").name == "v7.fsm"  # numbering goes on
    with pytest.raises(ValueError, match="at least one"):
        reg.prune("worker-a", keep=0)
