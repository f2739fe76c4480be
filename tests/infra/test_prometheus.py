"""The operations view with real tools: Debian's Prometheus scrapes real workers.

Two workers score a paced stream on the session broker; a real ``prometheus`` server (installed
by ``make test``: ``infra/install-debian-package.sh``) scrapes both with the project's rules loaded,
and the PromQL queries of ``infra.monitoring`` return the live throughput and the summed
consumer lag. ``promtool`` checks the alerting rules, and every metric the Grafana dashboard
queries is one the workers export. No skip: a machine without Prometheus fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from infra.broker import free_port
from infra.monitoring import DASHBOARD, LAG, RULES, THROUGHPUT, metric_names, scrape_config
from infra.settings import Settings
from infra.topics import ensure_worker_topics
from reliability.scenario import start_producer, stop_process, world_args
from streams.demo_processes import WorkerProcess

pytestmark = pytest.mark.integration


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run make prometheus (make test does)"
    return path


def _query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_promtool_accepts_the_alerting_rules() -> None:
    done = subprocess.run([_tool("promtool"), "check", "rules", str(RULES)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_prometheus_scrapes_the_workers_and_promql_answers(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(update={"state_dir": tmp_path / "state",
                                                 "registry_dir": tmp_path / "registry"})
    ensure_worker_topics(settings)
    workers = [WorkerProcess(settings, f"w{i}", tmp_path) for i in range(2)]
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config([f"127.0.0.1:{w.web_port}" for w in workers], 1.0))
    prometheus = producer = None
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(180)
        producer = start_producer(settings, tmp_path / "producer.log",
                                  *world_args(6_000, 3), "--rate", "150")
        log = (tmp_path / "prometheus.log").open("wb")
        prometheus = subprocess.Popen(
            [_tool("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=log, stderr=subprocess.STDOUT)
        throughput = lag = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                up = _query(prom_port, 'sum(up{job="fraudstream"})')
                rate = _query(prom_port, THROUGHPUT)
                summed = _query(prom_port, LAG)
            except OSError:
                continue  # not listening yet
            if up and float(up[0]["value"][1]) == 2 and rate and summed:
                throughput, lag = float(rate[0]["value"][1]), float(summed[0]["value"][1])
                if throughput > 0:
                    break
        assert throughput is not None and throughput > 0, (
            f"no live throughput from Prometheus: {(tmp_path / 'prometheus.log').read_text()[-500:]}")
        assert lag is not None and lag >= 0
        rules = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=5).read())
        loaded = [r["name"] for g in rules["data"]["groups"] for r in g["rules"]]
        assert "FraudstreamWorkerDown" in loaded and len(loaded) == 5
        exported = metric_names(workers[0].get("/metrics").decode())
    finally:
        stop_process(producer)
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        for w in workers:
            w.stop()
    # the dashboard queries only what a worker exports (plus Prometheus's own ``up``)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queried = {name for p in panels for t in p["targets"]
               for name in re.findall(r"\b(fraudstream_[a-z0-9_]+|up)\b(?=\{|\[|\)|\s|$)",
                                      t["expr"])}
    assert queried - {"up"}, "the dashboard queries no worker metric"
    assert queried - {"up"} <= exported, sorted(queried - {"up"} - exported)
