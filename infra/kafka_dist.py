"""Fetches a pinned Apache Kafka broker from Maven Central into a cache outside the repo.

Maven resolves ``org.apache.kafka:kafka_2.13`` and its runtime closure; we add the SLF4J
binding that Kafka's POM leaves out (without it the broker runs but logs nothing). The result
is a flat ``libs/`` folder for ``java -cp 'libs/*'``; a marker file makes a second fetch a no-op.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

from fraudstream.errors import FraudstreamError
from infra.toolchain import require_maven

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
_MARKER = ".complete"


def libs_dir(cache_dir: Path, version: str = KAFKA_VERSION) -> Path:
    return cache_dir / f"kafka-{version}" / "libs"


def is_fetched(cache_dir: Path, version: str = KAFKA_VERSION) -> bool:
    return (libs_dir(cache_dir, version) / _MARKER).exists()


def fetch_kafka(cache_dir: Path, version: str = KAFKA_VERSION, quiet: bool = True) -> Path:
    """Resolve the broker jars into ``cache_dir`` (once) and return the libs folder."""
    target = libs_dir(cache_dir, version)
    if is_fetched(cache_dir, version):
        return target
    mvn = require_maven()
    work = target.parent / "pom"
    work.mkdir(parents=True, exist_ok=True)
    template = resources.files("infra.kafka").joinpath("pom.xml").read_text()
    pom = template.replace("@KAFKA_VERSION@", version).replace("@LOG4J_VERSION@", LOG4J_VERSION)
    (work / "pom.xml").write_text(pom)
    staging = target.parent / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [mvn, "-B", "dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
    if quiet:
        cmd.insert(1, "-q")
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise FraudstreamError(f"mvn could not resolve Kafka {version}: {tail}")
    jars = sorted(p.name for p in staging.glob("*.jar"))
    if not any(j.startswith(f"kafka_2.13-{version}") for j in jars):
        raise FraudstreamError(f"mvn finished but kafka_2.13-{version}.jar is missing")
    if not any(j.startswith("log4j-slf4j") for j in jars):
        raise FraudstreamError("mvn finished but no SLF4J binding (log4j-slf4j-impl) arrived")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    (target / _MARKER).write_text("\n".join(jars) + "\n")
    return target
