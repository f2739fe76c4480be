"""A real Apache Kafka 4.x broker (KRaft, single node) run from the jars that ``kafka_dist`` fetched.

Used three ways: ``fraudstream kafka up/down/status`` (a long-lived broker recorded in a state
file), ``managed_broker()`` (a throwaway broker on free ports for tests, benchmarks and the
demo), and indirectly by the ``kafka_bootstrap`` test fixture. There is no mock: what the tests
talk to is the same broker a user would run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudstream.errors import FraudstreamError
from infra.kafka_dist import KAFKA_VERSION, fetch_kafka
from infra.toolchain import require_java

if TYPE_CHECKING:
    from infra.secure_broker import BrokerSecurity

log = logging.getLogger(__name__)

SINGLE_NODE_PROPERTIES: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "8",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.partitions": "4",
    "auto.create.topics.enable": "true",
    "log.retention.hours": "168",
    "log.segment.bytes": "268435456",
}


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding: the format KRaft expects.

    Never with a leading ``-`` (1 draw in 64): ``kafka-storage format -t -x...`` reads it as
    an option and fails ("--cluster-id/-t: expected one argument"), as a chaos run did here.
    Kafka's own ``Uuid.randomUuid`` avoids such ids for the same reason.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        if status == "Z":
            return False
    return True


def tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class BrokerState:
    """What ``kafka up`` records so that later commands can find and stop the broker."""

    pid: int
    bootstrap: str
    port: int
    controller_port: int
    data_dir: str
    log_file: str
    version: str
    started_at: float = field(default_factory=time.time)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> BrokerState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


class LocalBroker:
    """One single-node KRaft broker whose files all live under ``home``."""

    def __init__(
        self,
        home: Path,
        libs: Path,
        port: int,
        controller_port: int | None = None,
        heap_mb: int = 768,
        extra_properties: dict[str, str] | None = None,
        advertised_host: str = "127.0.0.1",
        security: BrokerSecurity | None = None,
        cluster_id: str | None = None,
        launcher: Sequence[str] = (),
    ) -> None:
        self.home = home.resolve()
        self.launcher = list(launcher)
        """Prefix of the broker's command, e.g. ``ip netns exec HOST`` to run it on a host of
        its own (``reliability.netns``): it then listens on ``advertised_host``, on that
        host's own ports, and the ports of this machine are not checked."""
        self.cluster_id = cluster_id
        """The KRaft cluster id its storage is formatted with (None: a new one); the nodes of
        one cluster share it (``infra.cluster``)."""
        self.libs = libs
        self.port = port
        self.controller_port = controller_port or free_port()
        self.heap_mb = heap_mb
        self.extra_properties = dict(extra_properties or {})
        self.advertised_host = advertised_host
        self.security = security
        """SASL_SSL + SCRAM listener instead of PLAINTEXT (``infra.secure_broker``); optional."""
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def bootstrap(self) -> str:
        return f"{self.advertised_host}:{self.port}"

    def properties(self) -> dict[str, str]:
        props = dict(SINGLE_NODE_PROPERTIES)
        listen = self.advertised_host if self.launcher else "127.0.0.1"
        props.update(
            {
                "listeners": f"PLAINTEXT://{listen}:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
                "log.dirs": str(self.data_dir),
            }
        )
        if self.security is not None:
            props.update(self.security.broker_properties(self.port, self.controller_port,
                                                         self.advertised_host))
        props.update(self.extra_properties)
        return props

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        body = "".join(f"{k}={v}\n" for k, v in sorted(self.properties().items()))
        self.config_file.write_text(body)
        log4j = resources.files("infra.kafka").joinpath("log4j2.xml").read_text()
        (self.home / "log4j2.xml").write_text(log4j)

    def _java(self, main: str, *args: str, heap_mb: int = 128) -> list[str]:
        return [
            require_java(),
            f"-Xmx{heap_mb}m",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.xml'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def format_storage(self) -> None:
        """Format the KRaft log directory once; an already formatted one is left alone."""
        meta = self.data_dir / "meta.properties"
        if meta.exists():
            return
        cmd = self._java(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id or new_cluster_id(),
            "-c",
            str(self.config_file),
            "--ignore-formatted",
            *(self.security.format_args() if self.security is not None else ()),
        )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = [ln for ln in (done.stdout + done.stderr).splitlines()
                     if ln.strip() and not ln.lstrip().startswith("at ")]
            raise FraudstreamError(f"formatting Kafka storage failed: {' | '.join(lines[-3:])}")

    def start(self, timeout_s: float = 90.0, wait: bool = True) -> str:
        """Start the broker in the background and return its bootstrap address once it answers
        (``wait=False``: at once; a cluster's first node cannot answer before a quorum of its
        controllers runs, so ``infra.cluster`` starts every node, then waits)."""
        if not self.launcher and not port_is_free(self.port):
            raise FraudstreamError(
                f"port {self.port} is already in use on 127.0.0.1: stop what holds it or choose "
                "another with --port"
            )
        if not self.launcher and not port_is_free(self.controller_port):
            self.controller_port = free_port()
        self._write_config()
        self.format_storage()
        heap = f"-Xmx{self.heap_mb}m"
        cmd = self._java("kafka.Kafka", str(self.config_file), heap_mb=self.heap_mb)
        cmd[1:2] = [
            f"-Xms{min(256, self.heap_mb)}m",
            heap,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
        ]
        stdout = (self.log_dir / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [*self.launcher, *cmd],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal must not kill it half-way
            cwd=self.home,
        )
        stdout.close()
        self.pid = self.process.pid
        if not wait:
            return self.bootstrap
        try:
            wait_until_ready(self.bootstrap, timeout_s, process=self.process, log_file=self.log_file,
                             client_kwargs=self.client_kwargs())
        except BaseException:
            self.stop()
            raise
        log.info("Kafka %s broker ready at %s (pid %s)", KAFKA_VERSION, self.bootstrap, self.pid)
        return self.bootstrap

    def client_kwargs(self) -> dict[str, Any]:
        """kafka-python settings (beyond the address) that this broker's listener requires."""
        return self.security.admin_client_kwargs() if self.security is not None else {}

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the broker to shut down cleanly; kill it if it does not within ``timeout_s``."""
        if self.pid is None:
            return
        stop_pid(self.pid, timeout_s)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self.pid = None
        self.process = None


def stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL: no java process is left behind."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        _reap(pid)
        time.sleep(0.2)
    log.warning("broker pid %s did not stop in %.0fs; killing it", pid, timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def metadata_ok(bootstrap: str, timeout_s: float = 5.0, **client_kwargs: Any) -> bool:
    """True when the broker answers a metadata request (not merely accepts TCP).

    ``client_kwargs``: security settings for kafka-python when the listener is not PLAINTEXT.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            pass
    except OSError:
        return False
    admin = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            client_id="fraudstream-probe",
            **client_kwargs,
        )
        admin.describe_cluster()
        return True
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()


def wait_until_ready(
    bootstrap: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    log_file: Path | None = None,
    client_kwargs: dict[str, Any] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            last = tail(log_file, 6) if log_file else ""
            stdout = tail(log_file.parent / "stdout.log", 6) if log_file else ""
            raise FraudstreamError(
                f"the Kafka broker exited during start (code {process.returncode}); last log lines:"
                f"\n{last}\n{stdout}"
            )
        if metadata_ok(bootstrap, **(client_kwargs or {})):
            return
        time.sleep(0.5)
    raise FraudstreamError(f"the Kafka broker at {bootstrap} did not answer within {timeout_s:.0f}s")


@contextlib.contextmanager
def managed_broker(
    cache_dir: Path | None = None,
    port: int | None = None,
    heap_mb: int = 768,
    extra_properties: dict[str, str] | None = None,
) -> Iterator[LocalBroker]:
    """A throwaway broker on free ports in a temporary directory, stopped and removed on exit."""
    from infra.settings import get_settings

    libs = fetch_kafka(cache_dir or get_settings().cache_dir)
    with tempfile.TemporaryDirectory(prefix="fraudstream-kafka-") as tmp:
        broker = LocalBroker(
            Path(tmp), libs, port=port or free_port(), heap_mb=heap_mb,
            extra_properties=extra_properties,
        )
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
