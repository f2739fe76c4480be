"""The worker hands its partitions' transactions on in event time, whatever the fetches bring.

The merge alone (``streams.event_time_merge``) over random streams fed in random fetches, then
the worker's consumer with it (``streams.prompt_fetch``): records delivered to Faust in the
merge's order, a lagging partition waited for, what is held dropped at a seek. No broker: the
consumer's thread is a stub, as in ``test_prompt_fetch.py``.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

import pytest
from faust.types import TP

from infra.settings import Settings
from producers.events import Transaction, encode_transaction, envelope, transaction_prefix
from producers.wire import first_event_time
from streams.app import FraudApp
from streams.event_time_merge import EventTimeMerge
from streams.prompt_fetch import EventTimeScheduler, MergedRecords, PromptConsumer


class Msg(NamedTuple):
    """A fetched record: only ``value`` is read."""

    value: bytes


class Rec(NamedTuple):
    value: bytes
    offset: int = 0


def _streams(rng: random.Random, partitions: int, n: int) -> dict[int, list[float]]:
    """Per partition, event times in order (ties included, as a real log has)."""
    out = {}
    for p in range(partitions):
        t, times = 0.0, []
        for _ in range(n):
            t += rng.choice([0.0, rng.expovariate(1.0)])
            times.append(round(t, 3))
        out[p] = times
    return out


@pytest.mark.parametrize("seed", range(20))
def test_random_fetches_come_out_in_event_time_each_partition_in_its_order(seed: int) -> None:
    rng = random.Random(seed)
    streams = _streams(rng, partitions=rng.randint(2, 5), n=rng.randint(20, 200))
    fed = dict.fromkeys(streams, 0)
    merge = EventTimeMerge(lambda raw: float(raw.split(b"/")[1]))
    out: list[tuple[int, float, int]] = []

    def lagging(p: Any) -> bool:  # the broker still has some of it
        return fed[p] < len(streams[p])

    while any(lagging(p) for p in streams) or merge.held():
        p = rng.choice(list(streams))  # one fetch returns some of one partition
        k = rng.randint(0, 12)
        batch = streams[p][fed[p]:fed[p] + k]
        merge.add(p, [Msg(f"{fed[p] + i}/{t}".encode()) for i, t in enumerate(batch)])
        fed[p] += len(batch)
        for tp, msg in merge.release(list(streams), lagging, now=0.0):
            index, t = msg.value.split(b"/")
            out.append((tp, float(t), int(index)))

    assert merge.forced == 0  # no clock moved: order was never given up
    assert len(out) == sum(len(s) for s in streams.values())  # each exactly once
    times = [t for _, t, _ in out]
    assert times == sorted(times)  # one log in event time
    for p in streams:  # and each partition in its own order
        assert [i for tp, _, i in out if tp == p] == list(range(len(streams[p])))


def test_a_caught_up_partition_does_not_hold_the_others_back() -> None:
    merge = EventTimeMerge(lambda raw: float(raw))
    merge.add("a", [Msg(b"5"), Msg(b"6")])
    # "b" holds nothing and the broker has nothing more of it: live traffic goes on as it comes
    assert [m.value for _, m in merge.release(["a", "b"], lambda tp: False, now=0.0)] == [
        b"5", b"6"]


def test_a_lagging_partition_is_waited_for_at_most_max_wait() -> None:
    merge = EventTimeMerge(lambda raw: float(raw), max_wait_s=0.25)
    merge.add("b", [Msg(b"1")])
    merge.add("a", [Msg(b"5"), Msg(b"6")])
    lagging = {"a": False, "b": True}.__getitem__
    # b gave 1 and has more: a's 5 may be after b's next one
    assert [m.value for _, m in merge.release(["a", "b"], lagging, now=0.0)] == [b"1"]
    # the wait counts from the first call that could hand nothing on
    assert merge.release(["a", "b"], lagging, now=0.1) == []
    assert merge.wait_s(now=0.2) == pytest.approx(0.15)
    assert merge.release(["a", "b"], lagging, now=0.3) == []  # still waiting
    assert [m.value for _, m in merge.release(["a", "b"], lagging, now=0.36)] == [b"5", b"6"]
    assert merge.forced == 1 and merge.held() == 0 and merge.wait_s(now=1.0) is None


def test_a_message_without_a_time_keeps_its_place_in_its_partition() -> None:
    merge = EventTimeMerge(first_event_time)
    merge.add("a", [Msg(b'{"ts":3.0}'), Msg(b"not json"), Msg(b'{"ts":2.0}'), Msg(b'{"ts":9}')])
    merge.add("b", [Msg(b'{"ts":4.0}')])
    got = [(tp, m.value[:9]) for tp, m in merge.release(["a", "b"], lambda tp: False, 0.0)]
    # the untimed message and the one going back in time stay behind a's 3.0, before b's 4.0
    assert got == [("a", b'{"ts":3.0'), ("a", b"not json"), ("a", b'{"ts":2.0'),
                   ("b", b'{"ts":4.0'), ("a", b'{"ts":9}')]


def test_drop_forgets_a_partition() -> None:
    merge = EventTimeMerge(lambda raw: float(raw))
    merge.add("a", [Msg(b"1"), Msg(b"2")])
    merge.add("b", [Msg(b"3")])
    assert merge.drop(["a"]) == 2 and merge.held() == 1 and merge.held("a") == 0
    assert merge.drop() == 1 and merge.held() == 0


def test_the_time_is_read_from_the_producers_own_messages() -> None:
    tx = [Transaction(i, 1525132800.0 + i, 7, 3, 12.5, 99.0) for i in range(3)]
    prefixes = [transaction_prefix(t.tx_id, t.ts, t.customer_id, t.terminal_id, t.amount)
                for t in tx]
    assert first_event_time(envelope("transaction", prefixes, 99.0).encode()) == tx[0].ts
    assert first_event_time(encode_transaction(tx[2])) == tx[2].ts
    assert first_event_time(None) is None and first_event_time(b'{"ts":"x"}') is None


# -- the worker's consumer -------------------------------------------------------------------
class _State:
    def __init__(self, position: int, highwater: int | None) -> None:
        self.position, self.highwater, self.has_valid_position = position, highwater, True


class _Thread:
    """Faust's consumer thread, stubbed: returns the fetches queued, knows the positions."""

    def __init__(self, tps: list[TP]) -> None:
        self.fetches: list[dict[TP, list[Rec]]] = []
        self.states = {tp: _State(0, 100) for tp in tps}
        self.tps = tps
        self.asked: list[set[TP]] = []

    async def getmany(self, active: Any, timeout: float) -> dict:
        self.asked.append(set(active))
        return self.fetches.pop(0) if self.fetches else {}

    def assignment(self) -> set[TP]:
        return set(self.tps)

    def _ensure_consumer(self) -> Any:
        states = self.states

        class Assignment:
            @staticmethod
            def state_value(tp: TP) -> _State | None:
                return states.get(tp)

        class Sub:
            assignment = Assignment

        class Subscription:
            subscription = Sub

        class Consumer:
            _subscription = Subscription

        return Consumer

    def seek(self, tp: TP, offset: int) -> None:
        pass


def _tx(ts: float) -> Rec:
    return Rec(encode_transaction(Transaction(1, ts, 7, 3, 1.0, 0.0)))


def test_the_worker_s_consumer_delivers_its_transactions_in_event_time() -> None:
    app = FraudApp(Settings(processing_mode="envelope")).app
    consumer = app.consumer
    assert isinstance(consumer, PromptConsumer) and isinstance(consumer.scheduler,
                                                                   EventTimeScheduler)
    topic = Settings().topics.transactions
    p0, p1, labels = TP(topic, 0), TP(topic, 1), TP("labels", 0)
    thread = _Thread([p0, p1, labels])
    consumer._thread = thread  # type: ignore[assignment]
    thread.fetches = [{p0: [_tx(1.0), _tx(5.0)], labels: [Rec(b"label")]},
                      {p1: [_tx(2.0), _tx(6.0)]}]
    thread.states[p0].position = 2  # p0 has one more message on the broker, p1 all of its
    thread.states[p0].highwater = 3

    async def scenario() -> list[list[tuple[TP, Any]]]:
        got = []
        for _ in range(2):
            records = await consumer._getmany({p0, p1, labels}, 5.0)
            assert isinstance(records, MergedRecords)
            got.append(list(consumer.scheduler.iterate(records)))
        return got

    first, second = consumer.loop.run_until_complete(scenario())
    # p1 has not been fetched: nothing of p0 goes before p1's first message is known; the
    # labels are not merged and go at once
    assert first == [(labels, Rec(b"label"))]
    thread.states[p1].position = 2
    assert [(tp.partition, first_event_time(r.value)) for tp, r in second] == [
        (0, 1.0), (1, 2.0), (0, 5.0)]
    assert consumer.merge.held(p1) == 1  # 6.0 waits: p0's next message may be earlier

    # a seek forgets what is held of the partition: it is fetched again from where it points
    consumer.loop.run_until_complete(consumer.seek(p1, 0))
    assert consumer.merge.held() == 0


@pytest.mark.parametrize("merged", [True, False])
def test_the_worker_pauses_its_own_partitions_against_each_other_only_without_the_merge(
        merged: bool) -> None:
    """With the merge, a partition paused for being ahead of the others would hold back the
    messages the merge waits to order against it; the labels still bound every partition."""
    app = FraudApp(Settings(event_time_merge=merged, processing_mode="envelope"))
    topic = app.settings.topics.transactions
    tps = [TP(topic, 0), TP(topic, 1)]
    paused: list[int] = []
    consumer = app.app.consumer
    consumer.on_buffer_full = lambda tp: paused.append(tp.partition)  # type: ignore[method-assign]
    consumer.on_buffer_drop = lambda tp: None  # type: ignore[method-assign]
    app.assigned_source = lambda: set(tps)  # type: ignore[method-assign]
    app._caught_up = lambda tp: False  # type: ignore[method-assign]
    hour = 3600.0
    app.processor.clock.advance(0, 10 * hour)  # partition 0 ten hours ahead of partition 1
    app.processor.clock.advance(1, 0.0)
    app._event_time_floors = lambda: (0.0, 100 * hour)  # type: ignore[method-assign]
    app._align_event_time()
    assert paused == ([] if merged else [0])
    app._event_time_floors = lambda: (0.0, 5 * hour)  # the labels read reach 5 h only
    paused.clear()
    app._align_event_time()
    assert paused == [0]  # ahead of the labels: paused either way


def test_one_message_per_event_is_not_merged_and_fetched_small() -> None:
    """Event mode keeps the fetches' order and 64 KiB fetches (``Settings.merges_event_time``)."""
    event = Settings()
    assert not event.merges_event_time() and event.fetch_bytes() == 64 * 1024
    assert FraudApp(event).app.consumer.merged_topics == frozenset()
    envelope = Settings(processing_mode="envelope")
    assert envelope.merges_event_time() and envelope.fetch_bytes() == 1024 * 1024
    assert not Settings(processing_mode="envelope", event_time_merge=False).merges_event_time()


def test_a_time_the_decoder_would_refuse_is_no_time() -> None:
    assert first_event_time(b'{"ts":1e13}') is None and first_event_time(b'{"ts":-5}') is None
    assert first_event_time(b'{"ts":1e400}') is None  # inf
