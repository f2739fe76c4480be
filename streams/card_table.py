"""The ``cards`` table: card states staged in memory and written behind, once per card per flush.

Why the changelog is written by hand: a Faust table assignment writes the store at once but
queues its changelog message in Faust's ``send_soon`` buffer, which a background task empties
into the Kafka producer, and Faust's flush before an offset commit gives up on that buffer
after 0.1 s without progress. Measured consequence in ``fraudstream chaos`` (200,000
transactions, 5 SIGKILLs): a card's write could be lost although its transaction's offset was
committed (17 labels then waited forever for a transaction their card no longer knew).

Why written behind: a card changes with nearly every transaction and label, and each change
used to cost an encoding of the whole card (~4 KB), a RocksDB put and a changelog message:
0.75-0.90 card writes per transaction in an envelope drain, the largest cost of the worker
after its own bookkeeping (``python -m benchmarks.drain_one``, 2026-12-02: state 41-53 of
130-194 CPU-us per transaction; with this, 0.41-0.49 writes and 14-20 us). Here the
processor *stages* a changed card (the object itself, not its bytes); ``publish()`` encodes
each staged card once, writes the store (one RocksDB write batch per partition) and hands
the changelog messages to the producer. The worker publishes before every producer flush,
which Faust does before it commits offsets (``IdempotentProducer.flush_first``), on a timer,
and when too many cards are staged; so a card changed ten times between two commits is
written once.

What a crash loses is what it lost before, and the same mechanisms answer it: offsets are
committed only after the cards they depend on are in the changelog, so a restart re-reads
every transaction and label whose card change was not published. Their scores may already
be out (scores commit every 100 ms, in ``streams.output_transactions``): the worker reads
them back before the re-read and answers with them (``streams.published``), as it did when a
SIGKILL caught a card's changelog message in flight.

The messages go to the Kafka producer directly, not through ``Topic.send``: that path wraps
every message in Faust's future, channel and callback objects (measured: 19% of an
envelope-mode worker's time for the changelog alone). They go as record batches per partition
(a per-message ``send`` was still 17% of an envelope-mode worker in a py-spy profile of
2026-12-01); the store's persisted offset, which Faust's callback set per message, is set once
per partition and publish.

Reads see the staged cards first, so the table reads as if every change were written at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from functools import partial
from typing import Any, Protocol

BATCH_FROM = 8
"""A partition's changelog messages of one publish go as a record batch from this many; fewer
go one ``send`` each (a batch per message, in event mode, cost 1.2 ms of CPU per transaction
against 0.2 ms: building and closing a batch is the fixed cost)."""

PUBLISH_SLICE = 256
"""Cards a publish encodes, writes and hands to the producer at a time. A publish in a
replay of the simulator's default world takes nearly every card (4,800 of 5,000) and sends
them batch after batch; encoded all at once, their bytes (21 MB) and the RocksDB write
batches made of them were alive together for the whole publish (``tracemalloc`` and
``gc.get_referrers`` on a worker, 2026-12-03), and they set the worker's peak RSS."""


class Encodable(Protocol):
    """A staged card: encoded when it is written (``streams.card_state.CardState``)."""

    def to_bytes(self) -> bytes: ...


def _encoded(value: bytes | Encodable) -> bytes:
    return value if isinstance(value, bytes) else value.to_bytes()


class CardTable(MutableMapping[bytes, bytes]):
    """A ``faust.Table`` of raw bytes whose writes the caller stages and publishes.

    Only what the processor uses is supported: ``get``, ``read``, ``stage``, item assignment
    and ``publish``; iteration and deletion are refused, not faked.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.staged: dict[bytes, tuple[int, bytes | Encodable]] = {}
        """Cards changed since the last write: key -> (partition, state)."""
        self.unsent: list[tuple[int, bytes, bytes]] = []
        """Written to the store by ``write``, their changelog messages not handed to the
        producer yet."""
        self.publishing: dict[bytes, tuple[int, bytes | Encodable]] = {}
        """Cards taken by the publish in progress, not all in the store yet: reads see them."""
        store = table.data
        self._batched = bool(getattr(store, "use_rocksdict", False)) and hasattr(
            store, "_db_for_partition")
        """A rocksdict store takes write batches; any other store is written key by key."""
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
        staged = self.staged.get(key) or self.publishing.get(key)
        value = _encoded(staged[1]) if staged is not None else self.table.get(key)
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
        staged = self.staged.get(key) or self.publishing.get(key)
        if staged is not None:
            return _encoded(staged[1])
        store = self.table.data
        open_db = getattr(store, "_db_for_partition", None)
        if open_db is None:  # not partitioned by database (Faust's memory store)
            return self.table.get(key)
        value = open_db(partition).get(key)
        if value is not None:
            store._key_index[key] = partition
        return value

    def stage(self, key: bytes, partition: int, state: bytes | Encodable) -> None:
        """Record that the card ``key`` of ``partition`` changed; ``state`` (its bytes, or an
        object encoded when it is written) is written with the next ``publish``."""
        self.staged[key] = (partition, state)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        # The partition of the event being processed (Faust's rule for table keys).
        self.stage(key, self.table.partition_for_key(key), value)

    def __delitem__(self, key: bytes) -> None:
        raise NotImplementedError("cards are never deleted by the processor")

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError("iterate the Faust table itself")

    def __len__(self) -> int:
        raise NotImplementedError("count the Faust table itself")

    def scan(self) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of the partitions this worker is active for (Faust's store
        iterates its active partitions only; the caller filters standby data by key), the
        cards of a publish in progress as they are now."""
        self.write()
        taken = self.publishing
        for key, value in self.table.data.items():
            if key not in taken:
                yield key, value
        for key, (_, state) in list(taken.items()):
            yield key, _encoded(state)

    def write(self) -> None:
        """Encode the staged cards and put them into the store now; their changelog messages
        wait in ``unsent`` for the next ``publish`` (a ``scan`` needs the store complete)."""
        if not self.staged:
            return
        staged, self.staged = self.staged, {}
        records = [(partition, key, _encoded(state))
                   for key, (partition, state) in staged.items()]
        self.unsent.extend(records)
        per_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for partition, key, value in records:
            per_partition.setdefault(partition, []).append((key, value))
        for partition, pairs in per_partition.items():
            self._store(partition, pairs)

    def _store(self, partition: int, records: list[tuple[bytes, bytes]]) -> None:
        """Put one partition's cards into the store: a rocksdict store as one write batch."""
        store = self.table.data
        if not self._batched:
            for key, value in records:
                store[key] = value
            return
        db = store._db_for_partition(partition)
        index = store._key_index  # what Faust's own put records, for its reads by key
        if len(records) == 1:  # one card: a batch costs more
            [(key, value)] = records
            db.put(key, value)
            index[key] = partition
            return
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in records:
            batch.put(key, value)
            index[key] = partition
        db.write(batch)

    async def publish(self) -> int:
        """Write the staged cards and hand their changelog messages to the producer, oldest
        first, ``PUBLISH_SLICE`` cards at a time per partition: each slice is encoded, put
        into the store and sent, as record batches when it has ``BATCH_FROM`` or more
        (aiokafka's batch API: a message costs one append to the batch instead of a future
        and an accumulator call each), else one ``send`` each; then its bytes are let go.
        Returns how many card states went to the changelog (those ``write`` put into the
        store included).

        Both agents and the worker's flushes publish; the lock keeps one at a time, so two
        writes of one card can never reach the producer in the wrong order (within a
        partition, a batch is sent only after the previous one has left: aiokafka's
        ``send_batch``). A card staged again meanwhile goes with the next publish.
        """
        async with self._publishing:
            staged, self.staged = self.staged, {}
            unsent, self.unsent = self.unsent, []
            if not staged and not unsent:
                return 0
            # Faust's producer wraps an AIOKafkaProducer; the batch API is only on the latter.
            kafka = self.table.app.producer._ensure_producer()
            topic = self._topic or self.table.changelog_topic.get_topic_name()
            self._topic = topic
            last: dict[int, tuple[Any, int]] = {}
            count = len(unsent) + len(staged)
            written: dict[int, list[tuple[bytes, bytes]]] = {}
            for partition, key, value in unsent:  # already in the store, in write order
                written.setdefault(partition, []).append((key, value))
            del unsent
            for partition, records in written.items():
                last[partition] = await self._send(kafka, records, topic, partition)
            del written
            taken: dict[int, list[tuple[bytes, bytes | Encodable]]] = {}
            for key, (partition, state) in staged.items():
                taken.setdefault(partition, []).append((key, state))
            self.publishing = staged
            try:
                for partition, cards in taken.items():
                    for start in range(0, len(cards), PUBLISH_SLICE):
                        records = [(key, _encoded(state))
                                   for key, state in cards[start:start + PUBLISH_SLICE]]
                        self._store(partition, records)
                        last[partition] = await self._send(kafka, records, topic, partition)
            finally:
                self.publishing = {}
        for sent, n in last.values():  # the newest per partition: they complete in order
            sent.add_done_callback(partial(self._persisted, n))
        return count

    async def _send(self, kafka: Any, records: list[tuple[bytes, bytes]], topic: str,
                    partition: int) -> tuple[Any, int]:
        """One partition's records to the changelog: the last send's future and its count."""
        if len(records) >= BATCH_FROM:
            return await self._send_batches(kafka, records, topic, partition)
        for key, value in records:
            sent = await kafka.send(topic, value, key=key, partition=partition)
        return sent, 1

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
