"""The ``cards`` table, with its changelog written by the agent in order, not in the background.

Why: a Faust table assignment writes the store at once but queues its changelog message in
Faust's ``send_soon`` buffer, which a background task empties into the Kafka producer. The
agent ``await``s its score messages straight into the producer, so they overtake the state
they depend on, and Faust's flush before an offset commit gives up on that buffer after
0.1 s without progress. Measured consequence in ``fraudstream chaos`` (200,000 transactions,
5 SIGKILLs): a card's write could be lost although its transaction's offset was committed
(17 labels then waited forever for a transaction their card no longer knew), and a
re-delivered transaction was scored a second time, differently, because its first score
was out while the card's record of it was not.

Here a write goes to the store at once, as before, and its changelog message waits in
``unsent`` until the agent calls ``publish()``, which hands it to the producer *before* the
scores of the same batch. An event is acknowledged only after that, and Faust flushes the
producer before it commits, so a committed offset always has its card state in the changelog.

The messages go to the Kafka producer directly, not through ``Topic.send``: that path wraps
every message in Faust's future, channel and callback objects (measured: 19% of an
envelope-mode worker's time for the changelog alone). They go as one record batch per
partition and publish (a per-message ``send`` was still 17% of an envelope-mode worker in a
py-spy profile of 2026-12-01); the store's persisted offset, which Faust's callback set per
message, is set once per partition and batch.

The store writes wait for ``publish()`` too, and a RocksDB store gets them as one write batch
per partition rather than one ``put`` each through Faust's store (measured: a put through
Faust was 11% of an envelope-mode worker). Reads see the waiting writes first, so the table
reads as if they were made at once. A crash before ``publish()`` loses them together with
their changelog messages and the scores behind them, which is what happened before: none
of it was acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, MutableMapping
from functools import partial
from typing import Any

BATCH_FROM = 8
"""A partition's changelog messages of one publish go as a record batch from this many; fewer
go one ``send`` each (a batch per message, in event mode, cost 1.2 ms of CPU per transaction
against 0.2 ms: building and closing a batch is the fixed cost)."""


class CardTable(MutableMapping[bytes, bytes]):
    """A ``faust.Table`` of raw bytes whose changelog messages the caller publishes.

    Reads go to the table as before. Only what the processor uses is supported: ``get``,
    item assignment and ``publish``; iteration and deletion are refused, not faked.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.unsent: deque[tuple[int, bytes, bytes]] = deque()
        self.unwritten: dict[bytes, tuple[int, bytes]] = {}  # key -> (partition, value)
        store = table.data
        self._batched = bool(getattr(store, "use_rocksdict", False)) and hasattr(
            store, "_db_for_partition")
        """A rocksdict store takes write batches; any other store is written at once."""
        self._topic: str | None = None
        self._publishing = asyncio.Lock()

    def __getitem__(self, key: bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: bytes, default: Any = None) -> Any:
        """Read through Faust's table: its RocksDB store looks in the partition of Faust's
        *current event*, which must then be the key's own (see ``read``)."""
        waiting = self.unwritten.get(key)
        value = waiting[1] if waiting is not None else self.table.get(key)
        return default if value is None else value

    def read(self, key: bytes, partition: int) -> bytes | None:
        """The card stored under ``key`` in ``partition``, the partition of the record it
        belongs to.

        Why not ``get``: Faust's RocksDB store reads a key in the partition of the current
        event, and a batch of events (``take_events``) leaves the current event at whatever
        was bound last, often another partition's. The read then found no card, and the
        next write replaced the stored card with a fresh one: in a full ``fraudstream chaos
        --only crash`` run, 81 labels whose transaction was scored before a kill found no
        transaction on their card and were never learned (measured 2026-12-01).
        """
        waiting = self.unwritten.get(key)
        if waiting is not None:
            return waiting[1]
        store = self.table.data
        open_db = getattr(store, "_db_for_partition", None)
        if open_db is None:  # not partitioned by database (Faust's memory store)
            return self.table.get(key)
        value = open_db(partition).get(key)
        if value is not None:
            store._key_index[key] = partition
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        # The partition of the event being processed (Faust's rule for table keys): the
        # processor binds each card's own event before it stores the card.
        partition = self.table.partition_for_key(key)
        if self._batched:
            self.unwritten[key] = (partition, value)
        else:
            self.table.data[key] = value
        self.unsent.append((partition, key, value))

    def __delitem__(self, key: bytes) -> None:
        raise NotImplementedError("cards are never deleted by the processor")

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError("iterate the Faust table itself")

    def __len__(self) -> int:
        raise NotImplementedError("count the Faust table itself")

    def scan(self) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of the partitions this worker is active for (Faust's store
        iterates its active partitions only; the caller filters standby data by key)."""
        self.write()
        yield from self.table.data.items()

    def write(self) -> None:
        """Put the waiting writes into the RocksDB store, one write batch per partition."""
        if not self.unwritten:
            return
        waiting, self.unwritten = self.unwritten, {}
        store = self.table.data
        open_db = store._db_for_partition
        index = store._key_index  # what Faust's own put records, for its reads by key
        if len(waiting) == 1:  # one message, one card (event mode): a batch costs more
            [(key, (partition, value))] = waiting.items()
            open_db(partition).put(key, value)
            index[key] = partition
            return
        from rocksdict import WriteBatch

        batches: dict[int, Any] = {}
        for key, (partition, value) in waiting.items():
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = WriteBatch(raw_mode=True)
            batch.put(key, value)
            index[key] = partition
        for partition, batch in batches.items():
            open_db(partition).write(batch)

    async def publish(self) -> None:
        """Hand every queued changelog message to the producer, oldest first: a partition's
        messages as record batches when there are ``BATCH_FROM`` or more (aiokafka's batch
        API: a message costs one append to the batch instead of a future and an accumulator
        call each), else one ``send`` each.

        Both agents write cards; the lock keeps one drain at a time, so two writes of one
        card can never reach the producer in the wrong order (within a partition, a batch is
        sent only after the previous one has left: aiokafka's ``send_batch``).
        """
        self.write()
        if not self.unsent:
            return
        table, unsent = self.table, self.unsent
        # Faust's producer wraps an AIOKafkaProducer; the batch API is only on the latter.
        kafka = table.app.producer._ensure_producer()
        topic = self._topic or table.changelog_topic.get_topic_name()
        self._topic = topic
        last: dict[int, tuple[Any, int]] = {}
        async with self._publishing:
            per_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            while unsent:  # in write order within each partition
                partition, key, value = unsent.popleft()
                per_partition.setdefault(partition, []).append((key, value))
            for partition, records in per_partition.items():
                if len(records) < BATCH_FROM:
                    for key, value in records:
                        sent = await kafka.send(topic, value, key=key, partition=partition)
                    last[partition] = (sent, 1)
                else:
                    last[partition] = await self._send_batches(kafka, records, topic, partition)
        for sent, count in last.values():  # the newest per partition: they complete in order
            sent.add_done_callback(partial(self._persisted, count))

    @staticmethod
    async def _send_batches(
        kafka: Any, records: list[tuple[bytes, bytes]], topic: str, partition: int
    ) -> tuple[Any, int]:
        """Send ``records`` as record batches, each closed so that it is ready at once: an
        open one lingers (``producer_linger_ms``) and the partition's next batch waits for
        it to leave (measured: the drain rate fell 10% although the CPU per transaction fell
        11%). Returns the last batch's future and record count."""
        builder = kafka.create_batch()
        last: tuple[Any, int] | None = None
        for key, value in records:
            if builder.append(timestamp=None, key=key, value=value) is not None:
                continue
            if builder.record_count():  # full: send it and start the next one
                builder.close()
                last = await kafka.send_batch(builder, topic, partition=partition), 0
                builder = kafka.create_batch()
                if builder.append(timestamp=None, key=key, value=value) is not None:
                    continue
            # larger than a whole batch: alone, through the ordinary send
            last = await kafka.send(topic, value, key=key, partition=partition), 1
        if builder.record_count():
            builder.close()
            last = await kafka.send_batch(builder, topic, partition=partition), 0
            return last[0], builder.record_count()
        assert last is not None  # records is never empty
        return last[0], 1

    def _persisted(self, count: int, sent: Any) -> None:
        """Record how far this partition's changelog is in the local store (what Faust's
        own callback does per message; once per partition and batch is enough). A batch's
        metadata gives its first offset; ``count`` records make its last."""
        if sent.cancelled() or sent.exception() is not None:
            return
        meta = sent.result()
        self.table.data.set_persisted_offset(meta.topic_partition, meta.offset + count - 1)
