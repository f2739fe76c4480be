"""Workers as separate hosts (network namespaces): a worker cut off from the network under
load hands its partitions over, nothing is lost, and it rejoins when its link comes back.

``reliability.link_cut`` makes three hosts of its own (``reliability.netns``: namespaces on a
bridge, addresses in a free 10.X.Y.0/24), the broker on one and a worker on each of the other
two, and cuts one worker's link with ``ip link set ... down``. Namespaces need root: without
it these tests fail with the reason, they never skip (CI runs as root).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.settings import Settings
from reliability.link_cut import run_link_cut
from reliability.netns import VirtualNetwork


def _get(host_launcher: list[str], url: str) -> subprocess.CompletedProcess[str]:
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=2).status)"
    return subprocess.run([*host_launcher, sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=30, check=False)


def test_hosts_reach_each_other_until_one_is_cut_off() -> None:
    with VirtualNetwork() as net:
        server, client = net.add_host("srv"), net.add_host("cli")
        assert server.address != client.address
        assert server.address.startswith(str(net.subnet.network_address)[:-1])
        http = subprocess.Popen(
            [*server.launcher, sys.executable, "-m", "http.server", "8000", "--bind",
             server.address], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://{server.address}:8000/"
            deadline = time.monotonic() + 20
            while _get(client.launcher, url).stdout.strip() != "200":
                assert time.monotonic() < deadline, "the client host never reached the server"
            client.cut()
            assert _get(client.launcher, url).returncode != 0  # timed out: no route through
            client.restore()
            deadline = time.monotonic() + 20
            while _get(client.launcher, url).stdout.strip() != "200":
                assert time.monotonic() < deadline, "the restored host never reached it again"
            assert http.pid in server.pids()
        finally:
            http.kill()
            http.wait(timeout=10)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert server.name not in names and client.name not in names  # removed on exit


@pytest.mark.integration
def test_a_worker_cut_off_hands_over_loses_nothing_and_rejoins(tmp_path: Path) -> None:
    report = run_link_cut(Settings().cache_dir, tmp_path, n_tx=8_000, cut_s=20.0, rate=160.0)
    print("\n".join(report.lines()))
    figures = report.figures
    assert figures["transactions sent"] == 8_000
    assert figures["transactions lost"] == 0
    moved = figures["w1's partitions assigned to w0 after (s)"]
    assert moved is not None and moved < 20.0  # within the cut: session 10 s + a rebalance
    assert figures["w0's first score on w1's partitions after the cut (s)"] is not None
    assert figures["w1 rejoined (new assignment) after the link came back (s)"] is not None
    assert figures["w1's first new score after the link came back (s)"] is not None
    assert figures["w1's copies of duplicated transactions, by when w1 scored them"][
        "zombie: after its lease ran out, before it rejoined"] <= figures[
        "events w1 held, then processed when the rebalance came"]
    assert figures["w1's partitions after rejoining"]
    assert figures["both workers survived"] is True
    assert not report.problems, report.problems
