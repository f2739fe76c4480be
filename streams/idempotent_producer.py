"""The worker's producer, idempotent: a send retried after a lost connection is written once.

Faust's aiokafka producer turns idempotence on only in its exactly-once mode, which this
project does not use (it manages its own guarantee: scores deduplicated by the card state, the
changelog published by hand). Without it, a batch whose acknowledgement was lost when a
partition leader died is sent again and written twice: measured with ``fraudstream chaos
--only leader-kill --seed 7`` on 2026-12-02, 5 identical duplicate score messages after the
kill, with "Got error produce response: KafkaConnectionError" in the worker's log.

With ``enable_idempotence`` the broker recognises the retried batch by its producer id and
sequence number and keeps one copy; it needs ``acks=all``, which the pipeline's topics
(``min.insync.replicas=2`` on the cluster) want anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

IDEMPOTENT_SETTINGS: Mapping[str, Any] = {"acks": "all", "enable_idempotence": True}


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with ``acks=all`` and idempotence, in every processing mode.

    Faust flushes before it commits offsets. ``flush_first`` are awaited before each flush
    (the worker publishes its staged card states there: ``streams.card_table``, so the flush
    waits for them too); ``flush_hooks`` after it (the worker's output transactions commit
    there: ``streams.output_transactions``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flush_first: list[Callable[[], Awaitable[object]]] = []
        self.flush_hooks: list[Callable[[], Awaitable[None]]] = []
        self.flushes_started = 0
        """Flushes begun so far; a flush numbered above a count taken at some moment ran
        its ``flush_first`` hooks after that moment."""
        self.flushed_through = 0
        """The highest number of a flush that completed (set before the ``flush_hooks``)."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), **IDEMPOTENT_SETTINGS}

    async def flush(self) -> None:
        self.flushes_started += 1
        number = self.flushes_started
        for hook in self.flush_first:
            await hook()
        await super().flush()
        self.flushed_through = max(self.flushed_through, number)
        for hook in self.flush_hooks:
            await hook()
