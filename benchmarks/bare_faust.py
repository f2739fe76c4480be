"""A bare Faust agent that only decodes and counts transactions: the pipeline's ceiling.

Why a separate app: the issue asks how much of Faust's own per-message cost the scoring
pipeline keeps, so the reference must run the same framework, the same consumer settings and
the same one-agent, concurrency-1 layout, doing nothing but ``json.loads`` and a count.

Run as a subprocess (``python -m benchmarks.bare_faust``) configured through the environment:
``KAFKA_BOOTSTRAP_SERVERS``, ``BENCH_TOPIC``, ``BENCH_APP_ID``, ``BENCH_EXPECT`` (transactions
to count) and ``BENCH_OUT`` (a JSON file written once the count is reached, with the wall-clock
time of the first and of the last counted message, and the process's CPU seconds, all threads,
between them). The parent stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def main() -> None:
    """Build the app from the environment and run it until the parent stops it."""
    import faust
    from faust.worker import Worker

    from infra.settings import Settings

    settings = Settings()
    topic_name = os.environ["BENCH_TOPIC"]
    expect = int(os.environ["BENCH_EXPECT"])
    out = Path(os.environ["BENCH_OUT"])
    partitions = int(os.environ.get("BENCH_PARTITIONS", "4"))
    app = faust.App(
        os.environ["BENCH_APP_ID"],
        **settings.kafka.faust_kwargs(),
        store="memory://",
        autodiscover=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        broker_commit_every=10_000,  # the worker's commit settings (streams.app)
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        logging_config=None,
    )
    topic = app.topic(topic_name, partitions=partitions, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    state: dict[str, float] = {"n": 0, "messages": 0, "first": 0.0}
    cpu_first = 0.0

    @app.agent(topic, concurrency=1)
    async def count(stream: faust.StreamT) -> None:
        nonlocal cpu_first
        loads = json.loads
        async for event in stream.events():
            body = loads(event.message.value)
            now = time.time()
            if not state["first"]:
                state["first"], cpu_first = now, time.process_time()
            state["messages"] += 1
            state["n"] += len(body["events"]) if body.get("type") == "envelope" else 1
            if state["n"] >= expect and not out.exists():
                tmp = out.with_suffix(".tmp")
                cpu_s = time.process_time() - cpu_first
                tmp.write_text(json.dumps({**state, "last": now, "cpu_s": cpu_s}))
                tmp.replace(out)

    Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
