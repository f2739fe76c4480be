"""A partition's next owner fences the previous one: against the real broker.

The link-cut duplicates (scores a cut-off worker handed its producer before its lease ran
out, appended when its link came back) are what ``streams.output_transactions`` stops. This
plays both owners of one partition in one process: the old owner's open transaction is
aborted when the new one starts, what it sends afterwards is refused, and a read_committed
reader (as every reader of the outputs is) sees only what was committed.
"""

from __future__ import annotations

import asyncio

from infra.settings import READ_COMMITTED, Settings
from infra.topics import ensure_worker_topics
from streams.app import FraudApp
from streams.output_transactions import PartitionTransactions


def _read_committed(settings: Settings, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **READ_COMMITTED,
                             **settings.kafka.kafka_python_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topics.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        values: list[bytes] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                values += [r.value for r in records]
        return values
    finally:
        consumer.close()


def test_the_next_owner_fences_the_previous_one(kafka_settings: Settings) -> None:
    ensure_worker_topics(kafka_settings)
    topic, alerts = kafka_settings.topics.scores, kafka_settings.topics.alerts
    kwargs = kafka_settings.kafka.aiokafka_kwargs()
    prefix = f"{kafka_settings.app_id}-test"

    async def scenario() -> tuple[int, int, int]:
        old = PartitionTransactions(prefix, kwargs)
        new = PartitionTransactions(prefix, kwargs)
        await old.assign({0, 1})
        await old.send([(0, topic, b"1", b"old committed")])
        await old.commit()
        await old.send([(0, topic, b"1", b"old open at the fence")])
        await new.assign({0})  # partition 0 moved: the old owner's open transaction aborts
        await new.send([(0, topic, b"1", b"new committed")])
        await new.commit()
        await old.send([(0, alerts, b"1", b"old after the fence"),
                        (1, topic, b"2", b"old, partition still its own")])
        # a partition new to its transaction: its sender learns of the fence there and
        # dies, and the commit meets a producer in aiokafka's fatal state (which stopped a
        # worker whose link came back in the chaos run: "Invalid state transition")
        await asyncio.sleep(1.0)
        await old.commit()  # partition 0 refused and given up, partition 1 committed
        owned = len(old.partitions)
        await old.stop()
        await new.stop()
        return old.fenced, owned, new.fenced

    fenced, owned, new_fenced = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert sorted(_read_committed(kafka_settings, topic)) == [
        b"new committed", b"old committed", b"old, partition still its own"]
    assert _read_committed(kafka_settings, alerts) == []
    assert fenced == 2 and owned == 1 and new_fenced == 0


def test_outputs_handed_over_during_a_commit_go_into_the_next_transaction(
        kafka_settings: Settings) -> None:
    """The agent is not held while a commit runs: what it hands over meanwhile waits in
    memory, goes into the next transaction, and the next commit makes it visible."""
    ensure_worker_topics(kafka_settings)
    topic = kafka_settings.topics.scores
    prefix = f"{kafka_settings.app_id}-during"

    async def scenario() -> tuple[bool, list[bytes], list[bytes]]:
        outputs = PartitionTransactions(prefix, kafka_settings.kafka.aiokafka_kwargs())
        await outputs.assign({0})
        await outputs.send([(0, topic, b"1", b"before the commit")])
        committing = asyncio.ensure_future(outputs.commit())
        await asyncio.sleep(0)  # the commit holds the producers, awaiting the broker
        await outputs.send([(0, topic, b"1", b"during the commit")])
        handed_over_at_once = not committing.done()
        await committing
        after_first = await asyncio.to_thread(_read_committed, kafka_settings, topic)
        await outputs.commit()
        after_second = await asyncio.to_thread(_read_committed, kafka_settings, topic)
        await outputs.stop()
        return handed_over_at_once, after_first, after_second

    at_once, first, second = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert at_once
    assert first == [b"before the commit"]
    assert second == [b"before the commit", b"during the commit"]


def test_the_worker_sends_its_outputs_in_transactions_by_default(
        kafka_settings: Settings) -> None:
    fraud = FraudApp(kafka_settings, worker_id="txn")
    assert fraud.outputs is not None
    assert fraud.outputs.commit in fraud.app.producer.flush_hooks  # before offsets commit
    off = kafka_settings.model_copy(update={"output_transactions": False})
    assert FraudApp(off, worker_id="plain").outputs is None


def test_a_coordinator_lookup_cut_by_a_broker_restart_is_retried() -> None:
    """aiokafka's own sender gives up (and the producer with it) when the connection closes
    during the lookup; the worker's producers look again until the broker answers."""
    from aiokafka.client import CoordinationType
    from aiokafka.errors import KafkaConnectionError, KafkaError
    from aiokafka.producer.sender import Sender

    from streams.output_transactions import PatientSender

    class Client:
        def __init__(self) -> None:
            self.lookups = 0

        async def coordinator_lookup(self, kind: object, key: str) -> int:
            self.lookups += 1
            if self.lookups < 3:
                raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
            return 1

        async def ready(self, node_id: int, group: object = None) -> bool:
            return True

    def sender(cls: type) -> Sender:
        made = object.__new__(cls)
        made._txn_manager, made._coordinators = object(), {}
        made.client, made._retry_backoff = Client(), 0.001
        return made

    patient = sender(PatientSender)
    found = asyncio.run(patient._find_coordinator(CoordinationType.TRANSACTION, "t-p0"))
    assert found == 1 and patient.client.lookups == 3
    try:  # aiokafka's own: the first closed connection ends it
        asyncio.run(sender(Sender)._find_coordinator(CoordinationType.TRANSACTION, "t-p0"))
    except KafkaError:
        pass
    else:
        raise AssertionError("aiokafka now retries a closed connection itself")
