"""Checks for the Java and Maven that the managed broker needs, with one-line failures.

A Kafka 4.x broker refuses to run on Java < 17; finding that out from a JVM stack trace is
slow, so we check the versions up front and say what to install.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from fraudstream.errors import FraudstreamError

MIN_JAVA = 17
MIN_MAVEN = (3, 6)


def _run_version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FraudstreamError(f"could not run {' '.join(cmd)}: {exc}") from exc
    return done.stdout + done.stderr


def parse_java_major(version_output: str) -> int:
    """The major version from ``java -version`` output ("1.8.0_292" -> 8, "17.0.15" -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        raise FraudstreamError(f"cannot read the Java version from: {version_output.strip()[:80]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def parse_maven_version(version_output: str) -> tuple[int, int]:
    """(major, minor) from ``mvn -v`` output."""
    match = re.search(r"Apache Maven (\d+)\.(\d+)", version_output)
    if not match:
        raise FraudstreamError(f"cannot read the Maven version from: {version_output.strip()[:80]}")
    return int(match.group(1)), int(match.group(2))


def require_java() -> str:
    """Path of a java >= 17, or a FraudstreamError that says what is missing."""
    java = shutil.which("java")
    if java is None:
        raise FraudstreamError(
            f"java not found on PATH: install a JDK/JRE >= {MIN_JAVA} (e.g. openjdk-17-jre-headless)"
        )
    major = parse_java_major(_run_version([java, "-version"]))
    if major < MIN_JAVA:
        raise FraudstreamError(f"java {major} is too old: Kafka 4.x needs Java >= {MIN_JAVA}")
    return java


def require_maven() -> str:
    """Path of a mvn >= 3.6, or a FraudstreamError that says what is missing."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FraudstreamError(
            "mvn not found on PATH: install Maven >= 3.6 to fetch the Kafka jars (apt install maven)"
        )
    version = parse_maven_version(_run_version([mvn, "-v"]))
    if version < MIN_MAVEN:
        raise FraudstreamError(
            f"Maven {version[0]}.{version[1]} is too old: need >= {MIN_MAVEN[0]}.{MIN_MAVEN[1]}"
        )
    return mvn
