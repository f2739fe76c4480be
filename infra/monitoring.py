"""Monitoring the workers with real tools: a Prometheus scrape job and the queries an operator
needs, in one place for the test, the docs and the Grafana dashboard.

Every worker serves ``/metrics`` (``streams.telemetry``) on its web port. The queries below are
the ones the README and ``infra/grafana/dashboards/fraudstream.json`` use; the alerting rules
are ``infra/prometheus/alerts.yml`` (checked with ``promtool``).
"""

from __future__ import annotations

from pathlib import Path

RULES = Path(__file__).parent / "prometheus" / "alerts.yml"
DASHBOARD = Path(__file__).parent / "grafana" / "dashboards" / "fraudstream.json"

THROUGHPUT = 'sum(rate(fraudstream_transactions_in_total{job="fraudstream"}[30s]))'
"""Transactions scored per second, every worker together."""
LAG = 'sum(fraudstream_consumer_lag{job="fraudstream"})'
"""Messages behind the log end, summed over workers and source topics."""


def scrape_config(targets: list[str], interval_s: float = 5.0, rules: Path | None = RULES) -> str:
    """A Prometheus configuration (YAML) scraping ``targets`` (``host:port`` of workers).

    >>> print(scrape_config(["127.0.0.1:6066"], 1, rules=None).splitlines()[-1])
          - targets: ["127.0.0.1:6066"]
    """
    quoted = ", ".join(f'"{t}"' for t in targets)
    lines = ["global:", f"  scrape_interval: {interval_s:g}s",
             f"  evaluation_interval: {interval_s:g}s"]
    if rules is not None:
        lines += ["rule_files:", f"  - {rules}"]
    lines += ["scrape_configs:", "  - job_name: fraudstream", "    metrics_path: /metrics",
              "    static_configs:", f"      - targets: [{quoted}]"]
    return "\n".join(lines) + "\n"


def metric_names(exposition: str) -> set[str]:
    """Metric names in a Prometheus text exposition (``/metrics``).

    >>> sorted(metric_names('# HELP x y\\nfraudstream_alerts_total 3.0\\nup{a="b"} 1\\n'))
    ['fraudstream_alerts_total', 'up']
    """
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.name for family in text_string_to_metric_families(exposition)
            for sample in family.samples}
