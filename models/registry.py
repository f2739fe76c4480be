"""Versioned, signed model snapshots on disk.

A snapshot is one file, ``<registry_dir>/<name>/v<version>.fsm``::

    FSMODEL1\\n
    <header: one line of canonical JSON, including "signature">\\n
    <payload: pickle of the model>

The signature is HMAC-SHA256, keyed with ``settings.model_signing_key``, over the header
without its signature and the payload. Pickle runs arbitrary code when loaded, and River models
carry no version stamp, so nothing is unpickled before the signature checks out: a tampered,
truncated or unsigned file raises ``RegistryError`` (a ``FraudstreamError``: one clear line).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import pickle
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudstream.errors import FraudstreamError

MAGIC = b"FSMODEL1\n"
_VERSION_RE = re.compile(r"^v(\d+)\.fsm$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class RegistryError(FraudstreamError):
    """A snapshot that cannot be trusted or found."""


@dataclass
class Snapshot:
    """A verified snapshot: the model and what the header says about it."""

    model: Any
    meta: dict[str, Any]
    path: Path


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickle can be loaded and what the model means.

    Read from the installed distributions, not by importing them: importing scikit-learn
    only to read its version put scipy and pandas (164 MB) into a worker whose model needs
    neither, at its first snapshot."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "river": version("river"),
        "scikit-learn": version("scikit-learn"),
        "numpy": version("numpy"),
    }


def pickled(model: Any) -> bytes:
    """A snapshot's payload: the model as it is now."""
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def _canonical(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def _sign(key: bytes, header: bytes, payload: bytes) -> str:
    mac = hmac.new(key, header, hashlib.sha256)
    mac.update(b"\n")
    mac.update(payload)
    return mac.hexdigest()


def _default_key() -> bytes:
    from infra.settings import get_settings

    return get_settings().model_signing_key.get_secret_value().encode()


def _default_dir() -> Path:
    from infra.settings import get_settings

    return Path(get_settings().registry_dir)


class Registry:
    """Save and load signed snapshots under one directory."""

    def __init__(self, root: Path | str | None = None, key: bytes | str | None = None) -> None:
        self.root = Path(root) if root is not None else _default_dir()
        if key is None:
            key = _default_key()
        self._key = key.encode() if isinstance(key, str) else key
        if not self._key:
            raise RegistryError("model signing key is empty")

    def versions(self, name: str) -> list[int]:
        folder = self.root / _check_name(name)
        if not folder.is_dir():
            return []
        found = (_VERSION_RE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(
        self,
        model: Any,
        name: str,
        *,
        data_range: tuple[float, float] | None = None,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write the next version of ``name``; returns its path. Atomic (write, then rename)."""
        return self.save_payload(pickled(model), name, data_range=data_range, metrics=metrics,
                                 extra=extra)

    def save_payload(
        self,
        payload: bytes,
        name: str,
        *,
        data_range: tuple[float, float] | None = None,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """``save`` for a model pickled earlier (``pickled``): the state it had then."""
        folder = self.root / _check_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        version = (self.versions(name) or [0])[-1] + 1
        meta: dict[str, Any] = {
            "name": name,
            "version": version,
            "created_at": time.time(),
            "data_range": list(data_range) if data_range else None,
            "metrics": metrics or {},
            "libraries": library_versions(),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_bytes": len(payload),
            **(extra or {}),
        }
        header = _canonical(meta)
        meta["signature"] = _sign(self._key, header, payload)
        path = folder / f"v{version}.fsm"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(MAGIC)
            fh.write(_canonical(meta))
            fh.write(b"\n")
            fh.write(payload)
        os.replace(tmp, path)
        return path

    def prune(self, name: str, keep: int) -> list[int]:
        """Delete every version of ``name`` but the newest ``keep``; returns those deleted.

        Why: a worker snapshots every few thousand labels, so a lineage grows by thousands of
        files a day, and ``save`` lists the folder for the next version number. Only the
        newest valid snapshot is ever loaded by name; an older one is kept for a bad newest
        (``ModelRuntime`` falls back to the next that verifies) and for audit.

        >>> import tempfile
        >>> reg = Registry(tempfile.mkdtemp(), "k")
        >>> for _ in range(5):
        ...     _ = reg.save({"w": 1}, "m")
        >>> reg.prune("m", keep=2), reg.versions("m")
        ([1, 2, 3], [4, 5])
        """
        if keep < 1:
            raise ValueError(f"keep at least one version, not {keep}")
        old = self.versions(name)[:-keep]
        folder = self.root / _check_name(name)
        for version in old:
            (folder / f"v{version}.fsm").unlink(missing_ok=True)
        return old

    def load(self, name: str, version: int | None = None) -> Snapshot:
        """Load ``name`` (latest version by default), verifying the signature first."""
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"no snapshot of model {name!r} in {self.root}")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise RegistryError(f"model {name!r} has no version {version} (have {versions})")
        return self.load_path(self.root / name / f"v{version}.fsm")

    def load_path(self, path: Path | str) -> Snapshot:
        """Verify and load one snapshot file."""
        path = Path(path)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise RegistryError(f"cannot read snapshot {path}: {exc.strerror}") from None
        meta, payload = verify(blob, self._key, str(path))
        model = pickle.load(io.BytesIO(payload))
        return Snapshot(model=model, meta=meta, path=path)


def verify(blob: bytes, key: bytes, where: str = "snapshot") -> tuple[dict[str, Any], bytes]:
    """Check a snapshot's bytes against ``key``; return ``(meta, payload)`` or raise."""
    if not blob.startswith(MAGIC):
        raise RegistryError(f"{where} is not a fraudstream model snapshot")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise RegistryError(f"{where} is truncated")
    try:
        meta = json.loads(blob[len(MAGIC) : end])
    except ValueError:
        raise RegistryError(f"{where} has a corrupt header") from None
    if not isinstance(meta, dict):
        raise RegistryError(f"{where} has a corrupt header")
    payload = blob[end + 1 :]
    signature = meta.pop("signature", None)
    if not isinstance(signature, str):
        raise RegistryError(f"{where} is unsigned; refusing to load it")
    expected = _sign(key, _canonical(meta), payload)
    if not hmac.compare_digest(signature, expected):
        raise RegistryError(
            f"{where} failed signature verification (tampered, or signed with another key); "
            "refusing to load it"
        )
    return meta, payload


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` (how a snapshot is named on a command line or in
    ``FRAUDSTREAM_MODEL_SNAPSHOT``) as ``(name, version or None for the newest)``.

    Checked here, before any file is touched, so that a typo is one clear line at start-up
    rather than a "not found" that hides the real mistake.
    """
    name, sep, version = ref.strip().partition("@")
    _check_name(name)
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise RegistryError(f"snapshot {ref!r}: the version after '@' must be a number >= 1")
    return name, int(version)


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise RegistryError(f"invalid model name {name!r}")
    return name
