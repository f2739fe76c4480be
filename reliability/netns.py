"""Hosts of our own on one machine: Linux network namespaces joined by a bridge.

A scenario that needs "a worker on another host" gets one here: each ``Host`` is a network
namespace (``ip netns``) with its own loopback, its own address and one veth pair whose other
end is a port of a bridge in the root namespace. The root namespace has an address on the
bridge too, so the scenario's own tools (producer, read-back, /metrics) reach every host the
way a client on the same LAN would. Cutting a host off is ``ip link set <its port> down``:
its processes keep running and see the network vanish, which is what a pulled cable or a
partitioned rack does, and which a kill -9 does not show.

Every name starts with ``fs`` and a random tag, and the subnet is a free ``10.X.Y.0/24`` the
network picks after looking at the machine's routes: only addresses this code creates, never
an outside one. Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); without it
``VirtualNetwork`` raises ``FraudstreamError`` saying so, and the tests fail rather than skip.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from fraudstream.errors import FraudstreamError


def ip(*args: str, netns: str | None = None) -> str:
    """Run one ``ip`` command (inside ``netns`` when given); its stdout, or a clear error."""
    cmd = ["ip", *(("-n", netns) if netns else ()), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as err:
        raise FraudstreamError("the 'ip' command (Debian's iproute2) is not installed") from err
    if done.returncode != 0:
        raise FraudstreamError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Host:
    """One namespace: a name, an address, and the bridge port that is its only link."""

    name: str
    address: str
    port: str
    """The root-namespace end of its veth pair (a bridge port): down cuts the host off."""

    @property
    def launcher(self) -> list[str]:
        """Prefix a command with this to run it on this host (``ip netns exec`` execs it, so
        the pid is the command's own)."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        """Take its link down: nothing leaves or reaches the host until ``restore``."""
        ip("link", "set", self.port, "down")

    def restore(self) -> None:
        ip("link", "set", self.port, "up")

    def pids(self) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.name).split()]


@dataclass
class VirtualNetwork:
    """A bridge and the hosts plugged into it; ``close()`` removes all of it (and kills what
    still runs inside the hosts). A context manager."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    hosts: dict[str, Host] = field(default_factory=dict)
    subnet: ipaddress.IPv4Network | None = None

    def __post_init__(self) -> None:
        if os.geteuid() != 0:
            raise FraudstreamError(
                "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN): run as root, or "
                "in a container with those capabilities")
        self.subnet = self.subnet or free_subnet(random.Random(self.tag))
        self.bridge = f"fs{self.tag}br"
        ip("link", "add", self.bridge, "type", "bridge")
        try:
            ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except FraudstreamError:
            self.close()
            raise

    @property
    def gateway(self) -> str:
        """The root namespace's own address on the bridge (where the scenario's tools sit)."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def add_host(self, role: str) -> Host:
        """A new namespace plugged into the bridge, with the next free address."""
        assert self.subnet is not None
        if len(role) > 6 or not role.isalnum():
            raise ValueError("a host role is 1-6 letters or digits (it goes in interface names)")
        name, port = f"fs{self.tag}-{role}", f"fs{self.tag}{role}"
        address = str(self.subnet.network_address + 10 + len(self.hosts))
        ip("netns", "add", name)
        host = Host(name, address, port)
        self.hosts[role] = host
        ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name)
        ip("link", "set", port, "master", self.bridge)
        ip("link", "set", port, "up")
        ip("link", "set", "lo", "up", netns=name)
        ip("addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0", netns=name)
        ip("link", "set", "eth0", "up", netns=name)
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            _kill_all(host)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, check=False)
        self.hosts.clear()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    def __enter__(self) -> VirtualNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill_all(host: Host) -> None:
    """SIGKILL whatever still runs inside ``host`` (its owner stopped what it could first)."""
    try:
        pids = host.pids()
    except FraudstreamError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if not host.pids():
                return
        except FraudstreamError:
            return
        time.sleep(0.1)


def free_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    """A ``10.X.Y.0/24`` that no route of this machine overlaps (ours to create)."""
    taken = [ipaddress.ip_network(line.split()[0], strict=False)
             for line in ip("-4", "route", "show", "table", "all").splitlines()
             if line and line.split()[0][0].isdigit()]
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{rng.randint(64, 250)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise FraudstreamError("found no free 10.X.Y.0/24 subnet for the test hosts")
