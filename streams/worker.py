"""Run one worker process: build the app from settings and hand it to Faust's Worker."""

from __future__ import annotations

import logging
import os

from infra.settings import Settings
from streams.gc_pauses import freeze_startup_objects
from streams.process_age import age_text

log = logging.getLogger(__name__)


def run_worker(settings: Settings, worker_id: str, loglevel: str = "WARNING") -> None:
    """Blocks until the worker stops (SIGTERM/SIGINT); exits the process like ``faust worker``."""
    # Under CPU contention OpenMP threads collapse; one worker = one core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from faust.worker import Worker

    from streams.app import create_app

    class _Worker(Worker):
        """Faust's worker, remembering whether a signal stopped it (see streams.membership)."""

        stopped_by_signal = False

        def _on_sigint(self) -> None:
            self.stopped_by_signal = True
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            self.stopped_by_signal = True
            super()._on_sigterm()

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            frozen = freeze_startup_objects()  # full GC passes stalled the loop ~90 ms
            log.info("worker ready at process age %s (modules imported at %s; %d start-up "
                     "objects exempt from garbage collection)", age_text(), imported,
                     frozen)  # the log handler exists only now

    imported = age_text()
    fraud = create_app(settings, worker_id)
    logging.getLogger("faust").setLevel(loglevel)
    instance_id = settings.group_instance_id(worker_id)
    worker = _Worker(fraud.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust's start-up spinner, at WARNING and above, sets the root logger to DEBUG and adds a
    # handler for it, forever: every debug call of aiokafka and Faust (one per message sent)
    # then builds a log record (7% of a py-spy profile of a draining worker; a drain A/B did
    # not show a throughput change beyond this machine's +-10% noise). The level asked for is
    # the level the worker logs at.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        if instance_id is not None and worker.stopped_by_signal:
            from streams.membership import leave_group

            leave_group(settings, instance_id)
