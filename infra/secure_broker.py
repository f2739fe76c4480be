"""An authenticated broker: SASL_SSL with SCRAM-SHA-512, on a CA the project makes locally.

``LocalBroker(..., security=BrokerSecurity.create(home))`` serves clients on a TLS listener
that requires a SCRAM-SHA-512 login; ``fraudstream kafka up --sasl-ssl`` does the same for
the long-lived broker and prints the environment a producer or worker needs. Choices:

* PEM, not JKS: Kafka 4 reads PEM key and trust stores (``ssl.keystore.type=PEM``), so the
  ``openssl`` CLI is enough and nothing depends on ``keytool`` or a Python crypto wheel. The
  broker key is unencrypted PKCS#8 in a 0600 file, like a typical ``/etc/ssl/private`` key.
* Users are created at format time (``StorageTool format --add-scram``): a SCRAM credential
  lives in the cluster metadata, and this way the broker's own inter-broker login (``admin``)
  exists before the broker first starts, with no plaintext window to create it.
* Inter-broker traffic uses the same SASL_SSL listener. The KRaft controller listener stays
  PLAINTEXT on 127.0.0.1: it serves only controller RPCs (no produce or fetch) and is bound to
  loopback. A multi-host deployment would put it on SSL too.
* The certificate carries ``IP:127.0.0.1`` and ``DNS:localhost`` as subject alternative
  names, so clients keep hostname verification on.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudstream.errors import FraudstreamError
from infra.settings import KafkaSettings

MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class Pki:
    """A local CA and one broker certificate signed by it."""

    ca_cert: Path
    keystore: Path  # PEM: broker private key, then its certificate chain


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise FraudstreamError("openssl is not installed; it is needed to make the local CA")
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FraudstreamError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")


def generate_pki(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                 days: int = 825) -> Pki:
    """Make (once) a CA and a broker key + certificate valid for ``hosts``, under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(ca_cert=directory / "ca.pem", keystore=directory / "broker-keystore.pem")
    if pki.ca_cert.exists() and pki.keystore.exists():
        return pki
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.pem", "-days", str(days), "-subj", "/CN=fraudstream local CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
             "-out", "broker.csr", "-subj", "/CN=localhost", cwd=directory)
    sans = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
    (directory / "broker.ext").write_text(
        f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "broker.crt", "-days", str(days),
             "-extfile", "broker.ext", cwd=directory)
    body = b"".join((directory / f).read_bytes() for f in ("broker.key", "broker.crt", "ca.pem"))
    pki.keystore.write_bytes(body)
    for secret in ("ca.key", "broker.key", pki.keystore.name):
        os.chmod(directory / secret, 0o600)
    return pki


@dataclass
class BrokerSecurity:
    """What a SASL_SSL broker needs: certificates, the broker's own login, the client users."""

    pki: Pki
    admin_password: str
    users: dict[str, str] = field(default_factory=dict)  # client user -> password
    admin_user: str = "admin"

    @classmethod
    def create(cls, directory: Path, users: tuple[str, ...] = ("fraudstream",)) -> BrokerSecurity:
        """Certificates and random passwords under ``directory`` (reused when already there).

        The passwords are kept in ``credentials.json`` (0600) next to the certificates, so a
        restarted broker and its clients agree; SCRAM users cannot be re-created after format.
        """
        pki = generate_pki(directory)
        creds_file = directory / "credentials.json"
        if creds_file.exists():
            creds = json.loads(creds_file.read_text())
        else:
            creds = {"admin": secrets.token_hex(16), **{u: secrets.token_hex(16) for u in users}}
            creds_file.write_text(json.dumps(creds, indent=2) + "\n")
            os.chmod(creds_file, 0o600)
        admin = creds.pop("admin")
        return cls(pki=pki, admin_password=admin, users=creds)

    def broker_properties(self, port: int, controller_port: int, host: str) -> dict[str, str]:
        """``server.properties`` entries that replace the PLAINTEXT client listener."""
        jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{self.admin_user}" password="{self.admin_password}";')
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://{host}:{port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.pki.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca_cert),
            "ssl.client.auth": "none",
        }

    def format_args(self) -> list[str]:
        """``--add-scram`` arguments for ``StorageTool format``: admin and every client user."""
        args = []
        for name, password in {self.admin_user: self.admin_password, **self.users}.items():
            args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return args

    def client_settings(self, bootstrap: str, user: str | None = None,
                        password: str | None = None) -> KafkaSettings:
        """Client settings for ``user`` (the first client user by default)."""
        user = user or next(iter(self.users), self.admin_user)
        if password is None:
            password = self.users.get(user, self.admin_password)
        return KafkaSettings(
            bootstrap_servers=bootstrap, security_protocol="SASL_SSL", sasl_mechanism=MECHANISM,
            sasl_username=user, sasl_password=password, ssl_cafile=self.pki.ca_cert,
        )

    def admin_client_kwargs(self) -> dict[str, Any]:
        kwargs = self.client_settings("127.0.0.1:1", self.admin_user,
                                      self.admin_password).kafka_python_kwargs()
        kwargs.pop("bootstrap_servers")
        return kwargs

    def environment(self, bootstrap: str, user: str | None = None) -> dict[str, str]:
        """The ``KAFKA_*`` variables a producer or worker needs: settings alone, no code."""
        k = self.client_settings(bootstrap, user)
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": str(k.sasl_username),
            "KAFKA_SASL_PASSWORD": k.sasl_password.get_secret_value() if k.sasl_password else "",
            "KAFKA_SSL_CAFILE": str(self.pki.ca_cert),
        }


def sasl_home(cache_dir: Path) -> Path:
    """Where ``kafka up --sasl-ssl`` keeps its broker: apart from the plaintext one, because
    SCRAM users are written at format time and a formatted log cannot gain them later."""
    return cache_dir / "broker-sasl"


def up_sasl(cache_dir: Path, port: int = 9093, heap_mb: int = 1024) -> tuple[Any, dict[str, str]]:
    """Start (or reuse) the long-lived SASL_SSL broker; return its state and client environment.

    It is recorded in the same state file as the plaintext broker, so ``kafka status`` and
    ``kafka down`` find it; only one managed broker runs at a time.
    """
    from infra import service
    from infra.broker import BrokerState, LocalBroker
    from infra.kafka_dist import KAFKA_VERSION, fetch_kafka

    home = sasl_home(cache_dir)
    security = BrokerSecurity.create(home / "pki")
    running = service.status(cache_dir)
    if running is not None:
        if Path(running.data_dir).parent != home.resolve():
            raise FraudstreamError(
                f"a plaintext managed broker runs at {running.bootstrap}; "
                "run `fraudstream kafka down` first")
        return running, security.environment(running.bootstrap)
    ports_file = home / "controller.port"
    controller_port = int(ports_file.read_text()) if ports_file.exists() else None
    broker = LocalBroker(home, fetch_kafka(cache_dir), port=port, controller_port=controller_port,
                         heap_mb=heap_mb, security=security)
    broker.start()
    ports_file.write_text(str(broker.controller_port))
    assert broker.pid is not None
    state = BrokerState(pid=broker.pid, bootstrap=broker.bootstrap, port=broker.port,
                        controller_port=broker.controller_port, data_dir=str(broker.data_dir),
                        log_file=str(broker.log_file), version=KAFKA_VERSION)
    state.save(service.state_file(cache_dir))
    return state, security.environment(broker.bootstrap)


def probe_kwargs(cache_dir: Path, data_dir: str) -> dict[str, Any]:
    """Credentials for health probes when the running managed broker is the SASL_SSL one."""
    home = sasl_home(cache_dir).resolve()
    if Path(data_dir).parent != home or not (home / "pki" / "credentials.json").exists():
        return {}
    return BrokerSecurity.create(home / "pki").admin_client_kwargs()
