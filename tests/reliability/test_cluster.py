"""A 3-node KRaft cluster (``infra.cluster``): a node killed under load loses nothing.

``reliability.node_kill`` starts its own cluster (combined broker+controller nodes, topics
with 3 replicas and ``min.insync.replicas`` 2), runs a paced producer and a worker, SIGKILLs
the node that leads the most of the pipeline's partitions, keeps it down, starts it again,
and reads back every score. ``fraudstream chaos --only leader-kill --only controller-kill``
runs the same at full size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import Settings
from reliability.node_kill import run_node_kill


@pytest.mark.integration
def test_killing_the_busiest_node_loses_no_transaction(tmp_path: Path) -> None:
    report = run_node_kill(Settings().cache_dir, tmp_path, target="leader", n_tx=4_000,
                           down_s=8.0, rate=300.0)
    print("\n".join(report.lines()))
    figures = report.figures
    assert figures["transactions sent"] == 4_000
    assert figures["it led (partitions of the pipeline's topics)"] > 0
    assert figures["transactions lost"] == 0
    assert figures["re-sent copies identical"] is True
    assert figures["duplicate score messages"] == 0  # the worker's producer is idempotent
    assert figures["worker survived without restart"] is True
    assert not report.problems, report.problems


def test_a_cluster_refuses_fewer_than_three_nodes(tmp_path: Path) -> None:
    from fraudstream.errors import FraudstreamError
    from infra.cluster import LocalCluster

    with pytest.raises(FraudstreamError, match="at least 3 nodes"):
        LocalCluster(tmp_path, tmp_path, [9101, 9102])
