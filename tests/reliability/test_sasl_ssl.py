"""Authenticated Kafka: SASL_SSL + SCRAM-SHA-512 on a locally generated CA.

``reliability.sasl_check.run_sasl_check`` starts its own broker (not the session one) with
``LocalBroker(..., security=BrokerSecurity.create(...))``, then: a plaintext client, a TLS
client without credentials, a wrong password and an unknown user are refused (the broker's
log shows the failed SCRAM logins), the right credentials connect, and a producer and a worker
configured only through ``KAFKA_SECURITY_PROTOCOL=SASL_SSL`` and friends score every
transaction.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.secure_broker import BrokerSecurity, generate_pki
from infra.settings import Settings, child_env
from reliability.sasl_check import run_sasl_check

pytestmark = pytest.mark.integration


def test_sasl_ssl_refuses_strangers_and_carries_the_pipeline(tmp_path: Path) -> None:
    report = run_sasl_check(Settings().cache_dir, tmp_path, n_tx=2_000)
    print("\n".join(report.lines()))
    for name in ("plaintext, no credentials", "TLS, no credentials", "wrong password",
                 "unknown user"):
        assert report.figures[name].startswith("refused"), (name, report.figures[name])
    assert "failed SCRAM logins" in report.figures["wrong password"]
    assert report.figures["right credentials"] == "connected"
    assert report.figures["lost"] == 0 and report.figures["scored"] == 2_000
    assert not report.problems, report.problems


def test_credentials_reach_child_processes_through_the_environment(tmp_path: Path) -> None:
    security = BrokerSecurity.create(tmp_path)
    env = security.environment("127.0.0.1:9093")
    settings = Settings(kafka=security.client_settings("127.0.0.1:9093"))
    child = child_env(settings)
    for name, value in env.items():
        assert child[name] == value
    again = BrokerSecurity.create(tmp_path)  # a restart reuses certificates and passwords
    assert again.users == security.users and again.admin_password == security.admin_password
    assert generate_pki(tmp_path).ca_cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    assert oct((tmp_path / "credentials.json").stat().st_mode & 0o777) == "0o600"
