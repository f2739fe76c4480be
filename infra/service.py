"""The long-lived broker behind ``fraudstream kafka up/status/down``.

Its data and logs live under the cache directory so that a ``down`` then ``up`` keeps the
topics; a JSON state file records pid and address so that a second ``up`` reuses the running
broker instead of starting another, and ``down`` knows what to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fraudstream.errors import FraudstreamError
from infra.broker import BrokerState, LocalBroker, metadata_ok, pid_alive, stop_pid
from infra.kafka_dist import KAFKA_VERSION, fetch_kafka


@dataclass
class UpResult:
    state: BrokerState
    reused: bool


def broker_home(cache_dir: Path) -> Path:
    return cache_dir / "broker"


def state_file(cache_dir: Path) -> Path:
    return broker_home(cache_dir) / "state.json"


def _owned_by_us(state: BrokerState) -> bool:
    """The recorded pid is still our java process (pids get reused after a reboot)."""
    if not pid_alive(state.pid):
        return False
    try:
        cmdline = Path(f"/proc/{state.pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True
    home = str(Path(state.data_dir).parent)
    return "kafka.Kafka" in cmdline and home in cmdline


def status(cache_dir: Path) -> BrokerState | None:
    """The running managed broker, or None (a stale state file is removed)."""
    path = state_file(cache_dir)
    state = BrokerState.load(path)
    if state is None:
        return None
    if not _owned_by_us(state):
        path.unlink(missing_ok=True)
        return None
    return state


def up(cache_dir: Path, port: int = 9092, heap_mb: int = 1024, timeout_s: float = 90) -> UpResult:
    running = status(cache_dir)
    if running is not None:
        if running.port != port:
            raise FraudstreamError(
                f"a managed broker already runs at {running.bootstrap}; "
                "run `fraudstream kafka down` first to move it"
            )
        return UpResult(running, reused=True)
    libs = fetch_kafka(cache_dir)
    home = broker_home(cache_dir)
    ports_file = home / "controller.port"
    controller_port = int(ports_file.read_text()) if ports_file.exists() else None
    broker = LocalBroker(home, libs, port=port, controller_port=controller_port, heap_mb=heap_mb)
    broker.start(timeout_s)
    ports_file.write_text(str(broker.controller_port))
    assert broker.pid is not None
    state = BrokerState(
        pid=broker.pid,
        bootstrap=broker.bootstrap,
        port=broker.port,
        controller_port=broker.controller_port,
        data_dir=str(broker.data_dir),
        log_file=str(broker.log_file),
        version=KAFKA_VERSION,
    )
    state.save(state_file(cache_dir))
    return UpResult(state, reused=False)


def down(cache_dir: Path, timeout_s: float = 30) -> BrokerState | None:
    state = status(cache_dir)
    if state is None:
        return None
    stop_pid(state.pid, timeout_s)
    if pid_alive(state.pid):
        raise FraudstreamError(f"broker pid {state.pid} is still alive after SIGKILL")
    state_file(cache_dir).unlink(missing_ok=True)
    return state


def healthy(state: BrokerState) -> bool:
    return metadata_ok(state.bootstrap)
