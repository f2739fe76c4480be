"""A worker's scores and alerts in Kafka transactions, one transactional producer per partition.

Why: a worker cut off from the cluster keeps whatever it handed its producer before its lease
ran out (in the producer's queue, in its TCP send buffer), and the broker appends it when the
link comes back, after the partition's new owner has scored the same transactions again:
10, 21 and 39 duplicate score messages in three runs of ``fraudstream chaos --only link-cut
--seed 7`` (2026-12-01/02). Idempotence does not stop them: same producer, same epoch.

Here the outputs of source partition N (its cards' scores, alerts and shadow scores) go
through a producer whose transactional id is ``<app>-<source topic>-outputs-p<N>``, in transactions
committed every ``commit_every_s`` and before every offset commit (``commit``, called from
the worker's producer flush). A worker given partition N starts that producer again
(``assign``): the broker then bumps the id's epoch, aborts whatever transaction the previous
owner had open and refuses anything it sends later. Readers read ``read_committed``
(``infra.settings.READ_COMMITTED``): aborted scores are never seen, and the new owner's
read-back of published scores (``streams.published``) sees everything the previous owner
committed, so it scores again exactly what was aborted.

Why per partition and not per worker: fencing works by transactional id, and the next owner
of partition N knows N, not which worker had it. (Kafka's newer scheme, one producer per
consumer fenced by the group's generation, KIP-447, is not in aiokafka 0.14.) Why not
Faust's ``processing_guarantee="exactly_once"``: it also moves offset commits and the
table's changelog into transactions and has open faust-streaming issues (#177, #323, #517);
here the changelog and offsets stay as they are, and the outputs someone may act on are the
part fenced.

A producer fenced while this worker still holds events of its partition means the partition
has a new owner: its outputs are dropped (counted, ``fenced``), the new owner scores those
transactions; the partition gets a producer again only with a new assignment. Any other
error is raised: the worker stops rather than commit offsets past outputs it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.producer.sender import Sender

log = logging.getLogger(__name__)

WAITING_MAX = 20_000
"""Outputs that may wait in memory while the producers are held (``send``): 10 s of scores
at 2,000 one-transaction messages a second (about 8 MB); past that the agent waits."""

CLOSE_TIMEOUT_S = 10.0
"""A producer given up (fenced, or its partition moved) is closed within this; what it still
held is aborted by the broker anyway."""

Output = tuple[int, str, bytes, bytes]
"""(source partition, topic, key, value) of one message to send in a transaction. The source
partition is also the partition it goes to: the output topics have the sources' partition
count (``infra.topics``) and every output is keyed by its card, so that is where Kafka's
partitioner would put it; given, it spares aiokafka's pure-Python murmur2 per message."""


def transactional_id(prefix: str, partition: int) -> str:
    """The transactional id of source partition ``partition``'s outputs: the same in every
    worker of the pipeline (``prefix``: its app id and source topic), so the next owner
    fences the previous one.

    >>> transactional_id("fraudstream-transactions", 3)
    'fraudstream-transactions-outputs-p3'
    """
    return f"{prefix}-outputs-p{partition}"


class PartitionTransactions:
    """Transactional producers for the source partitions this worker owns.

    ``producer_kwargs`` are aiokafka producer arguments (bootstrap servers, security,
    linger); ``assign`` starts (and so fences) a producer per owned partition, ``send``
    opens a transaction where none is, ``commit`` ends every open one.
    """

    def __init__(self, prefix: str, producer_kwargs: Mapping[str, Any],
                 commit_every_s: float = 0.1, timeout_s: float = 900.0) -> None:
        self.prefix = prefix
        self.producer_kwargs = dict(producer_kwargs)
        self.commit_every_s = commit_every_s
        self.timeout_s = timeout_s
        """The longest a start or a commit is waited for. Long: a worker cut off from the
        brokers waits for its link (its lease holds its events meanwhile) and then learns
        whether it was fenced; giving up sooner would stop a worker that only had to wait."""
        self._producers: dict[int, Any] = {}
        self._open: dict[int, float] = {}  # partition -> when its transaction began
        self._sent: dict[int, list[Any]] = {}  # partition -> its open transaction's sends
        self._lock = asyncio.Lock()
        self._waiting: list[Output] = []
        """Outputs handed over while a commit, an assignment or a stop held the producers:
        whoever holds them sends these, in order, before letting go (``send``)."""
        self.commits = 0
        self.fenced = 0
        """Outputs dropped because another worker took their partition over."""

    @property
    def partitions(self) -> set[int]:
        return set(self._producers)

    async def assign(self, partitions: Iterable[int]) -> None:
        """Own exactly ``partitions``: every producer is started again, so a partition that
        moved here, or that someone else held while this worker was cut off, is fenced."""
        wanted = set(partitions)
        async with self._lock:
            await self._send_waiting()
            await self._commit_open()
            old, self._producers = self._producers, {}
            await asyncio.gather(*(self._close(p) for p in old.values()))
            started = await asyncio.gather(*(self._start(p) for p in sorted(wanted)))
            self._producers = dict(zip(sorted(wanted), started, strict=True))
            await self._send_waiting()  # handed over meanwhile: sent, or dropped if not owned

    async def _start(self, partition: int) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            transactional_id=transactional_id(self.prefix, partition),
            enable_idempotence=True, acks="all", **self.producer_kwargs)
        producer._sender.__class__ = PatientSender
        await producer.start()
        # the epoch bump (the fence) happens with the producer id, asked for here
        await asyncio.wait_for(producer.begin_transaction(), self.timeout_s)
        self._open[partition] = time.monotonic()
        return producer

    async def _close(self, producer: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), CLOSE_TIMEOUT_S)

    async def send(self, outputs: Iterable[Output]) -> None:
        """Hand ``outputs`` to their partitions' producers, each inside a transaction; a
        partition with no producer (not owned, or fenced) drops its outputs.

        While a commit (or an assignment, or a stop) holds the producers, ``outputs`` wait in
        memory and the holder sends them, in order, before it lets go: the caller goes on at
        once. Why: aiokafka opens no transaction before the previous one's EndTxn returns,
        and an agent that waited for that scored nothing meanwhile. Measured with
        ``python -m benchmarks.drain_one --envelope 1 --mode event --no-labels`` (30,000
        transactions, 2026-12-03): 146 commits averaging 7.9 ms, up to 34 ms, held the agent
        for 1.09 s of a 15.6 s drain. Nothing is lost by it: the worker's flush before an
        offset commit sends the waiting outputs and commits them (``commit``), and a partition
        fenced meanwhile drops them, as it drops what it has not committed. At most
        ``WAITING_MAX`` wait; past that the caller waits for the producers again.
        """
        if self._lock.locked() and len(self._waiting) < WAITING_MAX:
            self._waiting.extend(outputs)
            return
        async with self._lock:
            await self._send_now(outputs)
            await self._send_waiting()  # handed over while this call awaited a producer

    async def _send_now(self, outputs: Iterable[Output]) -> None:
        for partition, topic, key, value in outputs:
            producer = self._producers.get(partition)
            if producer is None:
                self.fenced += 1
                continue
            try:
                if partition not in self._open:
                    await producer.begin_transaction()
                    self._open[partition] = time.monotonic()
                self._sent.setdefault(partition, []).append(
                    await producer.send(topic, value, key=key, partition=partition))
            except Exception as exc:
                self.fenced += 1
                await self._failed(partition, exc)

    async def _send_waiting(self) -> None:
        """Send the outputs handed over while the producers were held (the lock is held)."""
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            await self._send_now(waiting)

    async def commit(self) -> None:
        """Commit every open transaction: whatever was handed over so far becomes visible.
        Outputs handed over during the commit go into the next transactions."""
        async with self._lock:
            await self._send_waiting()
            await self._commit_open()
            await self._send_waiting()

    async def commit_due(self) -> None:
        """Commit the open transactions older than ``commit_every_s``."""
        if not self._open:
            return
        now = time.monotonic()
        if now - min(self._open.values()) < self.commit_every_s:
            return
        await self.commit()

    async def _commit_open(self) -> None:
        open_now = [p for p in self._open if p in self._producers]
        sent = {p: self._sent.pop(p, []) for p in open_now}
        self._open.clear()
        self._sent.clear()
        results = await asyncio.gather(
            *(asyncio.wait_for(self._producers[p].commit_transaction(), self.timeout_s)
              for p in open_now), return_exceptions=True)
        for partition, result in zip(open_now, results, strict=True):
            if isinstance(result, BaseException):
                self._sent[partition] = sent[partition]
                await self._failed(partition, result)
            else:
                self.commits += 1

    async def _failed(self, partition: int, exc: BaseException) -> None:
        """A fenced producer gives its partition up; any other failure stops the worker."""
        producer = self._producers.get(partition)
        if producer is not None:
            exc = _sender_error(producer) or exc
        self._open.pop(partition, None)
        for sent in self._sent.pop(partition, ()):  # their errors are this one: seen here
            self.fenced += 1
            if sent.done() and not sent.cancelled():
                sent.exception()
            else:
                sent.add_done_callback(_retrieve)
        producer = self._producers.pop(partition, None)
        if producer is not None:
            await self._close(producer)
        if _is_fenced(exc):
            log.warning("outputs of partition %d fenced: another worker owns it now (%s)",
                        partition, exc)
            return
        raise exc

    async def stop(self) -> None:
        """Commit what is open and close every producer."""
        async with self._lock:
            await self._send_waiting()
            await self._commit_open()
            old, self._producers = self._producers, {}
            await asyncio.gather(*(self._close(p) for p in old.values()))
            self.fenced += len(self._waiting)  # handed over while stopping: never sent
            self._waiting.clear()


def _retrieve(sent: Any) -> None:
    if not sent.cancelled():
        sent.exception()


class PatientSender(Sender):  # type: ignore[misc]
    """aiokafka's producer sender, retrying a transaction coordinator lookup whose
    connection closed under it.

    aiokafka retries the lookup when the coordinator is unavailable or a node not ready, but
    a connection closed mid-request ends it with ``KafkaError``, which kills the sender, puts
    the producer in its fatal state and stopped the worker: a broker restarted while a
    transaction committed (``tests/reliability/test_broker_restart.py``, full ``make test``
    of 2026-12-02 06:08, "Unexpected error in sender routine" from ``_find_coordinator``).
    Here that case is retried like the others, until the broker is back. The class is
    swapped on the producer's sender (it adds no state): aiokafka builds its sender inside
    the producer and takes no sender class.
    """

    async def _find_coordinator(self, coordinator_type: Any, key: Any) -> Any:
        while True:
            try:
                return await super()._find_coordinator(coordinator_type, key)
            except KafkaError as exc:
                if not isinstance(exc.__cause__, KafkaConnectionError):
                    raise
                log.warning("transaction coordinator unreachable (%s); retrying", exc.__cause__)
                await asyncio.sleep(self._retry_backoff)


def _sender_error(producer: Any) -> BaseException | None:
    """What killed ``producer``'s sender, if it died.

    A fenced aiokafka producer learns it in its sender task, which dies with
    ``ProducerFenced`` and leaves the transaction manager in its fatal state; a later call
    fails with an unrelated error (a commit: ``AssertionError`` "Invalid state transition
    FATAL_ERROR -> COMMITTING_TRANSACTION", which stopped a worker whose link came back in
    ``fraudstream chaos --seed 7``, 2026-12-02 05:12). The sender's own error says why.
    aiokafka has no public accessor for it, hence the private attribute, read defensively.
    """
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


def _is_fenced(exc: BaseException) -> bool:
    """Whether ``exc`` says a newer producer with the same transactional id exists."""
    from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ProducerFenced | InvalidProducerEpoch):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
