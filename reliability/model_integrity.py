"""The ``integrity`` scenario: a tampered model snapshot is refused, at start and on reload.

No broker is needed: the registry and the model runtime the worker uses are run in process
on a snapshot with one byte flipped, and must fall back to the older valid version.
"""

from __future__ import annotations

import time
from pathlib import Path

from infra.settings import Settings
from reliability.scenario import Report


def run_integrity(base: Settings, work_dir: Path) -> Report:
    """A tampered newest snapshot is refused at load; the older valid one is used."""
    from models.catalog import make_model
    from models.registry import Registry
    from streams.model_runtime import ModelRuntime

    report = Report("model integrity")
    started = time.monotonic()
    registry = Registry(work_dir / "registry", "chaos-integrity-key")
    registry.save(make_model("logreg"), "snap", extra={"learned": 1})
    newest = registry.save(make_model("logreg"), "snap", extra={"learned": 2})
    blob = bytearray(newest.read_bytes())
    blob[-3] ^= 0x01
    newest.write_bytes(bytes(blob))
    runtime = ModelRuntime("logreg", registry, "snap")
    runtime.start()
    kept = runtime.model
    refused_reload = not runtime.reload_from(str(newest))
    report.figures.update({
        "loaded version": runtime.version,
        "refusal": runtime.load_errors[0] if runtime.load_errors else None,
        "hot reload of the tampered file refused": refused_reload,
    })
    report.check(runtime.version == 1, "did not fall back to v1")
    report.check(refused_reload and runtime.model is kept, "reload replaced the model")
    report.seconds = time.monotonic() - started
    return report
