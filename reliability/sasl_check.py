"""The ``sasl`` scenario: the whole pipeline on an authenticated (SASL_SSL + SCRAM) broker.

The broker's security itself is product code (``infra.secure_broker``: certificates, SCRAM
users, the ``kafka up --sasl-ssl`` broker); checking it is not, so the check lives here and
``infra`` imports nothing from ``reliability`` or ``streams``. It starts a broker of its own,
shows that strangers (plaintext, TLS without credentials, a wrong password, an unknown user)
are refused while the right credentials connect, then runs a producer and a worker configured
through ``KAFKA_*`` settings alone and checks that every transaction is scored.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from pydantic import SecretStr

from infra.secure_broker import BrokerSecurity
from infra.settings import KafkaSettings, Settings
from reliability.harness import collect_scores, produce
from reliability.scenario import Report, scenario_settings, valid_tx_ids
from streams.demo_processes import WorkerProcess


def try_connect(kafka: KafkaSettings, timeout_s: float = 8.0) -> str | None:
    """None when a client with these settings can list topics, else why it could not."""
    from kafka import KafkaAdminClient

    admin = None
    try:
        admin = KafkaAdminClient(client_id="fraudstream-auth-probe",
                                 request_timeout_ms=int(timeout_s * 1000),
                                 bootstrap_timeout_ms=int(timeout_s * 1000),
                                 **kafka.kafka_python_kwargs())
        admin.list_topics()
        return None
    except Exception as exc:  # every failure is an answer here: refused is what we test
        return f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()


def _auth_failures(log_file: Path) -> int:
    """Failed SCRAM logins the broker has logged so far."""
    try:
        return log_file.read_text(errors="replace").count("due to invalid credentials")
    except OSError:
        return 0


def run_sasl_check(cache_dir: Path, work_dir: Path, n_tx: int = 5_000) -> Report:
    """A SASL_SSL broker: refused clients, then producer + worker configured by settings alone."""
    from infra.broker import LocalBroker, free_port
    from infra.kafka_dist import fetch_kafka
    from infra.topics import ensure_topics

    report = Report("authenticated Kafka (SASL_SSL, SCRAM-SHA-512)")
    started = time.monotonic()
    security = BrokerSecurity.create(work_dir / "pki")
    broker = LocalBroker(work_dir / "broker", fetch_kafka(cache_dir), port=free_port(),
                         heap_mb=512, security=security)
    broker.start()
    worker = None
    try:
        good = security.client_settings(broker.bootstrap)
        attempts = {
            "plaintext, no credentials": KafkaSettings(bootstrap_servers=broker.bootstrap),
            "TLS, no credentials": KafkaSettings(bootstrap_servers=broker.bootstrap,
                                                 security_protocol="SSL",
                                                 ssl_cafile=security.pki.ca_cert),
            "wrong password": good.model_copy(update={"sasl_password":
                                                      SecretStr("not-the-password")}),
            "unknown user": good.model_copy(update={"sasl_username": "mallory"}),
            "right credentials": good,
        }
        for name, kafka in attempts.items():
            # The client only sees a failed bootstrap; the broker's log says why it refused.
            before = _auth_failures(broker.log_file)
            error = try_connect(kafka, timeout_s=5.0)
            logged = _auth_failures(broker.log_file) - before
            report.figures[name] = "connected" if error is None else (
                f"refused; broker logged {logged} failed SCRAM logins" if logged
                else f"refused ({error[:70]})")
            if name in ("wrong password", "unknown user"):
                report.check(error is None or logged > 0,
                             f"{name}: refused, but not for invalid credentials")
            if name == "right credentials":
                report.check(error is None, f"the right credentials were refused: {error}")
            else:
                report.check(error is not None, f"{name}: connected but should be refused")

        settings = scenario_settings(Settings(kafka=good), work_dir, "sasl")
        ensure_topics(settings)
        worker = WorkerProcess(settings, "w0", work_dir).start()
        worker.wait_ready(180)
        produce(settings, "--customers", "300", "--terminals", "600", "--days", "30",
                "--max-tx", str(n_tx), "--seed", "3")
        expected = valid_tx_ids(settings)
        scores = collect_scores(settings, expected, timeout_s=180)
        missing = expected - set(scores.counts)
        report.figures.update({"transactions sent over SASL_SSL": len(expected),
                               "scored": len(set(scores.counts) & expected),
                               "lost": len(missing)})
        report.check(len(expected) == n_tx, f"{len(expected)} of {n_tx} transactions produced")
        report.check(not missing, f"{len(missing)} transactions never scored")
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
    report.seconds = time.monotonic() - started
    return report
