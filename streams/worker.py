"""Run one worker process: build the app from settings and hand it to Faust's Worker."""

from __future__ import annotations

import logging
import os

from infra.settings import Settings


def run_worker(settings: Settings, worker_id: str, loglevel: str = "WARNING") -> None:
    """Blocks until the worker stops (SIGTERM/SIGINT); exits the process like ``faust worker``."""
    # Under CPU contention OpenMP threads collapse; one worker = one core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from faust.worker import Worker

    from streams.app import create_app

    fraud = create_app(settings, worker_id)
    logging.getLogger("faust").setLevel(loglevel)
    worker = Worker(fraud.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
