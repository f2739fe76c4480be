"""A local Apache Kafka cluster: three (or more) KRaft nodes, each broker and controller.

Why combined nodes (``process.roles=broker,controller``) rather than three brokers and a
separate controller quorum: on one machine every JVM costs memory and a core's share, and
three combined nodes already give what the pipeline must survive, the loss of the node that
leads the most partitions *and* of the active controller (a combined node can be both). The
quorum is static (``controller.quorum.voters``): three voters, so one can die.

Every topic the cluster creates by default has 3 replicas and ``min.insync.replicas`` 2
(Kafka's internal topics too); the project's own topics follow
``FRAUDSTREAM_TOPIC_REPLICATION``. Used by ``fraudstream kafka up --brokers 3`` (a long-lived
cluster under the cache directory) and ``managed_cluster()`` (a throwaway one for tests and
the chaos scenarios).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from fraudstream.errors import FraudstreamError
from infra.broker import (
    LocalBroker,
    free_port,
    metadata_ok,
    new_cluster_id,
    pid_alive,
    stop_pid,
    tail,
)
from infra.kafka_dist import KAFKA_VERSION, fetch_kafka


def cluster_properties(node_id: int, voters: str, size: int) -> dict[str, str]:
    """What a node of a ``size``-node cluster sets beyond a single node's defaults.

    >>> p = cluster_properties(2, "1@h:1,2@h:2,3@h:3", 3)
    >>> p["node.id"], p["default.replication.factor"], p["min.insync.replicas"]
    ('2', '3', '2')
    """
    replicas = str(min(3, size))
    min_isr = str(max(1, min(2, size - 1)))
    return {
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
    }


class LocalCluster:
    """``size`` combined KRaft nodes under ``home`` (``node1``, ``node2``, ...), one cluster id."""

    def __init__(self, home: Path, libs: Path, ports: list[int],
                 controller_ports: list[int] | None = None, heap_mb: int = 512) -> None:
        if len(ports) < 3:
            raise FraudstreamError("a cluster has at least 3 nodes (a quorum that survives one)")
        self.home = home.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        ids = self.home / "cluster.json"
        saved = json.loads(ids.read_text()) if ids.exists() else {}
        if saved and len(saved["ports"]) != len(ports):
            raise FraudstreamError(f"{self.home} holds a {len(saved['ports'])}-node cluster")
        self.cluster_id: str = saved.get("cluster_id") or new_cluster_id()
        self.controller_ports: list[int] = (saved.get("controller_ports") or controller_ports
                                            or [free_port() for _ in ports])
        ids.write_text(json.dumps({"cluster_id": self.cluster_id, "ports": ports,
                                   "controller_ports": self.controller_ports}))
        voters = ",".join(f"{i}@127.0.0.1:{c}"
                          for i, c in enumerate(self.controller_ports, start=1))
        self.nodes = [
            LocalBroker(self.home / f"node{i}", libs, port=port, controller_port=controller,
                        heap_mb=heap_mb, cluster_id=self.cluster_id,
                        extra_properties=cluster_properties(i, voters, len(ports)))
            for i, (port, controller) in enumerate(zip(ports, self.controller_ports,
                                                       strict=True), start=1)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> LocalBroker:
        return self.nodes[node_id - 1]

    def start(self, timeout_s: float = 120.0) -> str:
        """Start every node, then wait until each answers (a node alone has no quorum)."""
        for node in self.nodes:
            if node.pid is None or not pid_alive(node.pid):
                node.start(wait=False)
        self.wait_ready(timeout_s)
        return self.bootstrap

    def wait_ready(self, timeout_s: float = 120.0, nodes: list[int] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        for node_id in nodes or range(1, len(self.nodes) + 1):
            node = self.node(node_id)
            while not metadata_ok(node.bootstrap):
                if node.process is not None and node.process.poll() is not None:
                    raise FraudstreamError(f"Kafka node {node_id} exited during start:\n"
                                           f"{tail(node.log_file, 6)}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise FraudstreamError(f"Kafka node {node_id} did not answer within "
                                           f"{timeout_s:.0f}s:\n{tail(node.log_file, 6)}")
                time.sleep(0.5)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: no clean shutdown, no leadership handed over."""
        node = self.node(node_id)
        if node.pid is not None and pid_alive(node.pid):
            os.kill(node.pid, signal.SIGKILL)
            if node.process is not None:
                node.process.wait(timeout=30)
        node.pid, node.process = None, None

    def restart(self, node_id: int, timeout_s: float = 120.0) -> None:
        self.node(node_id).start(wait=False)
        self.wait_ready(timeout_s, [node_id])

    def stop(self) -> None:
        """Every node at once (``stop_all``)."""
        stop_all([node.pid for node in self.nodes if node.pid is not None])
        for node in self.nodes:
            node.stop()  # already gone: clears its pid and process

    def leaders(self, topics: list[str]) -> Counter[int]:
        """Partitions of ``topics`` each node leads now."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.live_bootstrap(),
                                 client_id="fraudstream-cluster")
        try:
            described = admin.describe_topics(topics)
        finally:
            admin.close()
        return Counter(p["leader_id"] for t in described for p in t["partitions"]
                       if p["leader_id"] >= 0)

    def active_controller(self) -> int:
        """The leader of the metadata quorum (KRaft's active controller). Not the metadata
        response's ``controller_id``: KRaft answers clients with a random live broker there."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.live_bootstrap(),
                                 client_id="fraudstream-cluster")
        try:
            quorum = admin.describe_metadata_quorum()
        finally:
            admin.close()
        return int(quorum["topics"][0]["partitions"][0]["leader_id"])

    def live_bootstrap(self) -> str:
        live = [n.bootstrap for n in self.nodes if n.pid is not None and pid_alive(n.pid)]
        return ",".join(live) or self.bootstrap


def stop_all(pids: list[int]) -> None:
    """SIGTERM every node at once, then wait for each (SIGKILL after 30 s): stopped one by
    one, the last ones wait for a controller quorum that is already gone."""
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    for pid in pids:
        stop_pid(pid)


@contextlib.contextmanager
def managed_cluster(size: int = 3, cache_dir: Path | None = None,
                    heap_mb: int = 384) -> Iterator[LocalCluster]:
    """A throwaway cluster on free ports in a temporary directory, stopped on exit."""
    from infra.settings import get_settings

    libs = fetch_kafka(cache_dir or get_settings().cache_dir)
    with tempfile.TemporaryDirectory(prefix="fraudstream-cluster-") as tmp:
        cluster = LocalCluster(Path(tmp), libs, [free_port() for _ in range(size)],
                               heap_mb=heap_mb)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


# -- the long-lived cluster of ``fraudstream kafka up --brokers N`` ----------------------

@dataclass
class ClusterState:
    """What ``kafka up --brokers N`` records: each node's pid, and the cluster's address."""

    pids: list[int]
    bootstrap: str
    home: str
    version: str

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> ClusterState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def cluster_home(cache_dir: Path) -> Path:
    return cache_dir / "cluster"


def cluster_status(cache_dir: Path) -> ClusterState | None:
    """The running managed cluster (some node still alive), or None."""
    path = cluster_home(cache_dir) / "state.json"
    state = ClusterState.load(path)
    if state is None or not any(pid_alive(pid) for pid in state.pids):
        path.unlink(missing_ok=True)
        return None
    return state


def cluster_up(cache_dir: Path, port: int = 9092, size: int = 3, heap_mb: int = 512,
               timeout_s: float = 120.0) -> tuple[ClusterState, bool]:
    """Start the managed cluster on ``port``, ``port + 1``, ... (or reuse it)."""
    running = cluster_status(cache_dir)
    if running is not None:
        return running, True
    cluster = LocalCluster(cluster_home(cache_dir), fetch_kafka(cache_dir),
                           [port + i for i in range(size)], heap_mb=heap_mb)
    cluster.start(timeout_s)
    state = ClusterState([n.pid for n in cluster.nodes if n.pid is not None],
                         cluster.bootstrap, str(cluster.home), KAFKA_VERSION)
    state.save(cluster_home(cache_dir) / "state.json")
    return state, False


def cluster_down(cache_dir: Path) -> ClusterState | None:
    state = cluster_status(cache_dir)
    if state is None:
        return None
    stop_all(state.pids)
    (cluster_home(cache_dir) / "state.json").unlink(missing_ok=True)
    return state
