"""The worker's producer is idempotent against the real broker, in the project's own mode.

Faust turns idempotence on only in its exactly-once mode; without it a batch whose
acknowledgement was lost when a partition leader died is written twice (the chaos leader kill
showed 5 identical duplicate scores). The broker grants a producer id only to an idempotent
(or transactional) producer, so a granted id is the broker's own word that retries dedupe.
"""

from __future__ import annotations

import asyncio

from infra.settings import Settings
from streams.app import FraudApp
from streams.idempotent_producer import IdempotentProducer


def test_the_workers_producer_gets_a_producer_id_from_the_broker(
        kafka_settings: Settings) -> None:
    fraud = FraudApp(kafka_settings, worker_id="idem")
    producer = fraud.app.producer
    assert isinstance(producer, IdempotentProducer)
    assert fraud.app.conf.processing_guarantee.value == "at_least_once"  # not Faust's EOS

    async def scenario() -> int:
        await producer.start()
        try:
            await producer.send_and_wait(kafka_settings.topics.scores, b"k", b"v",
                                         partition=0, timestamp=None, headers=None)
            return producer._producer._txn_manager.producer_id
        finally:
            await producer.stop()

    producer_id = fraud.app.loop.run_until_complete(asyncio.wait_for(scenario(), 60))
    assert producer_id >= 0
