"""The broker's error paths: each failure is one clear FraudstreamError, not a stack trace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fraudstream.errors import FraudstreamError
from infra import toolchain
from infra.broker import LocalBroker, free_port, new_cluster_id, port_is_free


def test_java_version_parsing() -> None:
    assert toolchain.parse_java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert toolchain.parse_java_major('java version "1.8.0_292"') == 8
    assert toolchain.parse_java_major('openjdk version "21" 2023-09-19') == 21
    with pytest.raises(FraudstreamError):
        toolchain.parse_java_major("bash: java: command not found")


def test_maven_version_parsing() -> None:
    assert toolchain.parse_maven_version("Apache Maven 3.8.7\nMaven home: /usr") == (3, 8)


def test_missing_java_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain.shutil, "which", lambda name: None)
    with pytest.raises(FraudstreamError, match="java not found") as info:
        toolchain.require_java()
    assert "\n" not in str(info.value)
    with pytest.raises(FraudstreamError, match="mvn not found"):
        toolchain.require_maven()


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(toolchain, "_run_version", lambda cmd: 'java version "11.0.2"')
    with pytest.raises(FraudstreamError, match="too old"):
        toolchain.require_java()


def test_cluster_id_format() -> None:
    cid = new_cluster_id()
    assert len(cid) == 22 and "=" not in cid


def test_cluster_id_never_looks_like_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first draw starting with ``-`` (0xfb... base64) is drawn again."""
    import uuid

    draws = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_port_taken_is_reported(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not port_is_free(port)
        broker = LocalBroker(tmp_path, tmp_path, port=port)
        with pytest.raises(FraudstreamError, match=f"port {port} is already in use"):
            broker.start(timeout_s=5)


def test_broker_that_exits_during_start_shows_its_log(tmp_path: Path) -> None:
    """A heap too small for the real broker makes it exit; the error carries its last log lines."""
    from infra.kafka_dist import fetch_kafka
    from infra.settings import get_settings

    libs = fetch_kafka(get_settings().cache_dir)
    broker = LocalBroker(tmp_path, libs, port=free_port(), heap_mb=24)
    with pytest.raises(FraudstreamError, match="exited during start") as info:
        broker.start(timeout_s=60)
    assert "OutOfMemoryError" in str(info.value)
    assert broker.pid is None


def test_cli_bad_argument_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fraudstream", "kafka", "up", "--port", "not-a-number"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--port" in done.stderr
    assert done.stderr.count("\n") == 1


def test_unreachable_broker_is_one_line() -> None:
    from infra.broker import free_port

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    done = subprocess.run([sys.executable, "-m", "fraudstream", "topics", "create"],
                          capture_output=True, text=True, check=False, env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("fraudstream: error: Kafka: ")
    assert done.stderr.count("\n") == 1


def test_kafka_up_refuses_a_two_node_cluster() -> None:
    done = subprocess.run([sys.executable, "-m", "fraudstream", "kafka", "up", "--brokers", "2"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "3 nodes or more" in done.stderr and "Traceback" not in done.stderr
