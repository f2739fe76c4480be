"""The two ceilings the pipeline's drain rate is reported against, measured in the same run.

* a plain aiokafka consumer (``getmany`` + ``json.loads``): what Python can read off the broker;
* a bare Faust agent (``benchmarks.bare_faust``) that only decodes and counts: what Faust's
  per-message path leaves for the pipeline.

Both read the very topic the worker drains, from the start, and time the span from the first
to the last counted message, the same way the pipeline's rate is timed from its scores. Each
also counts its process's CPU over that span: the bare agent's CPU per message is Faust's own
per-message cost, the part of a worker's "framework" time no change to the processor moves.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from fraudstream.errors import FraudstreamError
from infra.settings import Settings, child_env


async def _aiokafka_drain(settings: Settings, topic: str, expect: int, timeout_s: float) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20,
                                **settings.kafka.aiokafka_kwargs())
    await consumer.start()
    try:
        # the backlog topics were created from the topic map, with its partition count
        tps = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loads = json.loads
        n = messages = 0
        first = cpu_first = 0.0
        deadline = time.monotonic() + timeout_s
        while n < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if batches and not first:
                first, cpu_first = time.time(), time.process_time()
            for records in batches.values():
                for record in records:
                    body = loads(record.value)
                    n += len(body["events"]) if body.get("type") == "envelope" else 1
                    messages += 1
        last = time.time()
        cpu_s = time.process_time() - cpu_first if first else 0.0  # nothing read: no span
    finally:
        await consumer.stop()
    return {"n": n, "messages": messages, "first": first, "last": last, "cpu_s": cpu_s}


def aiokafka_ceiling(settings: Settings, topic: str, expect: int, timeout_s: float = 300.0) -> dict[str, Any]:
    """Drain ``topic`` with a plain aiokafka ``getmany`` loop in this process; tx/s and msg/s."""
    r = asyncio.run(_aiokafka_drain(settings, topic, expect, timeout_s))
    return _rates("aiokafka getmany", r)


def bare_faust_ceiling(settings: Settings, topic: str, expect: int, work_dir: Path,
                       timeout_s: float = 600.0) -> dict[str, Any]:
    """Run the bare Faust agent as a subprocess over ``topic`` until it counted ``expect``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    out = work_dir / f"bare-faust-{tag}.json"
    log_path = work_dir / f"bare-faust-{tag}.log"
    env = child_env(settings, BENCH_TOPIC=topic, BENCH_APP_ID=f"bench-bare-{tag}",
                    BENCH_EXPECT=str(expect), BENCH_OUT=str(out),
                    BENCH_PARTITIONS=str(settings.topics.partitions))
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_faust"], cwd=work_dir,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while not out.exists():
            if proc.poll() is not None:
                raise FraudstreamError(f"bare Faust agent exited ({proc.returncode}): "
                                       f"{log_path.read_text(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise FraudstreamError(f"bare Faust agent did not count {expect} in {timeout_s:.0f}s")
            time.sleep(0.2)
        r = json.loads(out.read_text())
    finally:
        stop_process(proc)
    return _rates("bare Faust agent", r)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s: no benchmark process outlives its measurement."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _rates(name: str, r: dict[str, float]) -> dict[str, Any]:
    """Rates over the span from the first to the last message, and the reader's CPU over the
    same span (its process, all threads: the Kafka client's fetcher thread included) per
    million transactions, to set beside the worker's in the drain table."""
    span = max(float(r["last"]) - float(r["first"]), 1e-6)
    return {"reader": name, "tx": int(r["n"]), "messages": int(r["messages"]), "seconds": span,
            "tx_per_s": r["n"] / span, "msg_per_s": r["messages"] / span,
            "cpu_s_per_mtx": float(r["cpu_s"]) / max(int(r["n"]), 1) * 1e6}
