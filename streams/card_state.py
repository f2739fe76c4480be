"""What the worker keeps per card (customer), in one Faust table value.

One value holds both the card's window state (for its features) and its *feature log*: the
features and score of each transaction that still waits for its label. Keeping them together
means one table assignment, hence one changelog message, per transaction instead of two; both
are keyed by the card, which is also the Kafka key of transactions and labels, so a label is
processed on the same partition (and worker) as the transaction it refers to.

The state is also what makes re-delivery harmless: after a crash, Kafka re-delivers events
whose offsets were not committed although their effects may already be in the changelog. A
transaction id found in the feature log or in ``done`` is not counted again, and a label found
in ``done`` is not learned twice.

The value is written once per transaction, so its encoding must be cheap: the feature log is
one flat array of doubles (a row per transaction) that is copied as it is in memory. Not
pickle: anyone who can write to the changelog topic could otherwise run code in the worker.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field

from models.features import DAY, FEATURE_NAMES, CustomerState
from producers.events import DELAYED, FEEDBACK

PENDING_TTL_DAYS = 45.0
"""A transaction whose label has not come after this long is dropped from the feature log."""

DONE_KEEP = 64
"""How many labelled transaction ids a card remembers, to refuse a repeated label."""

LEARNED_KEEP = 4
"""How many learned rows a card keeps (flagged by a negative id) to answer a re-delivery."""

N_FEATURES = len(FEATURE_NAMES)
ROW = 4 + N_FEATURES  # tx_id, ts, terminal_id, score, features...
_CODEC_VERSION = 1
_HEADER = struct.Struct("<BH5I")
_pack = struct.pack

FEEDBACK_BIT = 2


def label_code(fraud: int, source: str) -> int:
    """A held label's fraud flag and source in one number (``fraud + 2`` for feedback), so the
    held labels' encoding did not change when labels got a source."""
    return fraud | FEEDBACK_BIT if source == FEEDBACK else fraud


def code_label(code: int) -> tuple[int, str]:
    """``label_code``'s inverse: ``(fraud, source)``."""
    return code & 1, FEEDBACK if code & FEEDBACK_BIT else DELAYED


class HeldLabels:
    """A card's labels not learned yet, ``tx_id -> [code, known_at]``, in one flat array
    (``code``: fraud and source, ``label_code``).

    Why not a dict: in a replay a card can hold dozens of labels, and the card is written
    (encoded) with every one of its transactions; a dict had to be re-encoded entry by entry
    each time (measured: a quarter of the worker's time). Here lookups, removals and the
    encoding are C-level array operations, and the encoding is the array's own bytes.

    >>> held = HeldLabels()
    >>> held[7] = [1, 500.0]
    >>> 7 in held, held.get(7), held.get(8), len(held)
    (True, [1, 500.0], None, 1)
    >>> del held[7]; len(held)
    0
    """

    __slots__ = ("_floor", "_ids", "_oldest", "flat")

    def __init__(self, flat: array | None = None) -> None:
        self.flat = flat if flat is not None else array("d")  # (tx_id, fraud, known_at)...
        self._ids: array | None = None
        """``flat[0::3]``, made at the first lookup and kept in step with every change after
        it (rebuilt per change, it was 5% of an envelope-mode worker: py-spy, 2026-12-02)."""
        self._oldest: float | None = None  # min(flat[2::3]), None: to compute again
        self._floor: float | None = None
        """At most the oldest ``known_at`` (not raised when a label goes, so it stays valid
        without a rescan): ``any_before`` answers from it for nearly every transaction."""

    def _at(self, tx_id: int) -> int:
        ids = self._ids
        if ids is None:
            ids = self._ids = self.flat[0::3]
        if not ids:  # most cards hold no label: asked for every scored transaction
            return -1
        try:  # one scan (``in`` then ``index`` scanned twice)
            return ids.index(float(tx_id)) * 3
        except ValueError:
            return -1

    def get(self, tx_id: int) -> list[float] | None:
        i = self._at(tx_id)
        if i < 0:
            return None
        return [int(self.flat[i + 1]), self.flat[i + 2]]

    def __contains__(self, tx_id: object) -> bool:
        return isinstance(tx_id, int) and self._at(tx_id) >= 0

    def __setitem__(self, tx_id: int, value: list[float]) -> None:
        i = self._at(tx_id)
        if i >= 0:
            self._remove(i)
        known_at = float(value[1])
        self.flat.extend((float(tx_id), float(value[0]), known_at))
        self._ids.append(float(tx_id))  # type: ignore[union-attr]  # made by ``_at``
        if self._oldest is not None and known_at < self._oldest:
            self._oldest = known_at
        if self._floor is not None and known_at < self._floor:
            self._floor = known_at

    def __delitem__(self, tx_id: int) -> None:
        i = self._at(tx_id)
        if i < 0:
            raise KeyError(tx_id)
        self._remove(i)

    def _remove(self, i: int) -> None:
        if self.flat[i + 2] == self._oldest:
            self._oldest = None
        del self.flat[i:i + 3]
        del self._ids[i // 3]  # type: ignore[union-attr]

    def __len__(self) -> int:
        return len(self.flat) // 3

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeldLabels) and self.flat == other.flat

    def clear(self) -> None:
        del self.flat[:]
        self._ids = self._oldest = self._floor = None

    def items(self) -> list[tuple[int, list[float]]]:
        f = self.flat.tolist()
        return [(int(f[i]), [int(f[i + 1]), f[i + 2]]) for i in range(0, len(f), 3)]

    def oldest_known_at(self) -> float:
        """Asked for every scored transaction of the card (``CardState.expire``)."""
        oldest = self._oldest
        if oldest is None:
            oldest = self._oldest = min(self.flat[2::3], default=float("inf"))
        return oldest

    def any_before(self, horizon: float) -> bool:
        """Whether a label known before ``horizon`` is held (asked for every scored
        transaction of the card; the exact oldest was rescanned after each label learned,
        since the label learned is usually the oldest)."""
        floor = self._floor
        if floor is not None and floor >= horizon:
            return False
        floor = self._floor = self.oldest_known_at()
        return floor < horizon

    def drop_before(self, horizon: float) -> int:
        """Drop the labels known before ``horizon``; returns how many."""
        f = self.flat
        keep = array("d")
        dropped = 0
        for i in range(0, len(f), 3):
            if f[i + 2] < horizon:
                dropped += 1
            else:
                keep.extend(f[i:i + 3])
        self.flat = keep
        self._ids = self._oldest = self._floor = None
        return dropped


@dataclass(slots=True)
class PendingEntry:
    """A scored transaction waiting for its label: when, where, its score and features."""

    ts: float
    terminal_id: int
    score: float
    features: list[float]


@dataclass(slots=True)
class CardState:
    """Window state, feature log and label bookkeeping of one card.

    >>> card = CardState()
    >>> card.add_pending(7, 1000.0, 42, 0.9, [0.0] * N_FEATURES)
    >>> card.seen(7), card.pop_pending(7).terminal_id, card.seen(7)
    (True, 42, False)
    >>> card.scored(7).score  # kept for a transaction re-delivered after a crash
    0.9
    >>> CardState.from_bytes(card.to_bytes()) == card
    True
    """

    customer: CustomerState = field(default_factory=CustomerState)
    pending: array = field(default_factory=lambda: array("d"))
    done: list[int] = field(default_factory=list)
    early: HeldLabels = field(default_factory=HeldLabels)
    """Labels not learned yet, ``tx_id -> [fraud, known_at]``: held until the partition's
    transactions reach ``known_at`` (``streams.label_clock``), or until their transaction
    arrives. Kept here so that the changelog makes them survive a crash."""

    newest: int | None = field(default=None, compare=False, repr=False)
    """No transaction id above this is in the feature log or ``done`` (None: not known yet).
    Ids grow with time, so a new transaction is told from a re-delivered one without
    searching the log (``seen`` was 6% of an envelope-mode worker, py-spy, 2026-12-02); a
    card whose ids do not grow is searched as before."""

    def _row(self, tx_id: int) -> int:
        ids = self.pending[0::ROW]
        try:
            return ids.index(float(tx_id)) * ROW
        except ValueError:
            return -1

    def seen(self, tx_id: int) -> bool:
        newest = self.newest
        if newest is None:
            ids = self.pending[0::ROW]  # a learned row keeps its id as -1 - id
            newest = self.newest = int(max(max(self.done, default=-1), max(ids, default=-1),
                                           -1 - min(ids, default=0)))
        if tx_id > newest:
            return False
        return tx_id in self.done or self._row(tx_id) >= 0

    def n_pending(self) -> int:
        """Rows still waiting for a label (learned rows kept as records do not count)."""
        return sum(1 for tx in self.pending[0::ROW] if tx >= 0)

    def get_pending(self, tx_id: int) -> PendingEntry | None:
        i = self._row(tx_id)
        if i < 0:
            return None
        row = self.pending[i:i + ROW].tolist()
        return PendingEntry(row[1], int(row[2]), row[3], row[4:])

    def add_pending(
        self, tx_id: int, ts: float, terminal_id: int, score: float, features: list[float]
    ) -> None:
        self.pending.extend((float(tx_id), ts, float(terminal_id), score))
        self.pending.extend(features)
        if self.newest is not None and tx_id > self.newest:
            self.newest = tx_id

    def pop_pending(self, tx_id: int) -> PendingEntry | None:
        """The row of a transaction being learned; it stays, flagged, as its score's record.

        A SIGKILL can make the card's changelog write durable while the score message is
        not; the re-delivered transaction must then be answered with the same score, so the
        last ``LEARNED_KEEP`` learned rows are kept under the id ``-1 - tx_id``. They lead
        the log, in the order they were learned, so the one to drop is the first: no sort
        of the card's ids per label (2.72 -> 2.31 µs per call on a 40-row card; the method
        was 8% of a drain with labels flowing in py-spy, 2026-12-02). A log written before
        kept its learned rows in place; those are passed over and expire with the others.
        """
        p = self.pending
        ids = p[0::ROW]
        try:
            r = ids.index(float(tx_id))
        except ValueError:
            return None
        i = r * ROW
        row = p[i:i + ROW]
        del p[i:i + ROW]
        learned = 0
        while learned < r and ids[learned] < 0.0:
            learned += 1
        if learned >= LEARNED_KEEP:
            del p[0:ROW]  # the row learned first goes
            learned -= 1
        entry = PendingEntry(row[1], int(row[2]), row[3], row[4:].tolist())
        row[0] = -1.0 - tx_id
        at = learned * ROW
        p[at:at] = row
        return entry

    def scored(self, tx_id: int) -> PendingEntry | None:
        """What a seen transaction was scored with, pending or recently learned."""
        entry = self.get_pending(tx_id)
        if entry is None:
            entry = self.get_pending(-1 - tx_id)
        return entry

    def mark_done(self, tx_id: int) -> None:
        self.done.append(tx_id)
        if self.newest is not None and tx_id > self.newest:
            self.newest = tx_id
        if len(self.done) > DONE_KEEP:
            del self.done[: len(self.done) - DONE_KEEP]

    def expire(self, now: float) -> int:
        """Drop feature-log rows too old to ever get a label, and held labels whose
        transaction never came (bounds the value's size); returns the labels dropped.
        Cheap when there is nothing to drop (called for every scored transaction)."""
        horizon = now - PENDING_TTL_DAYS * DAY
        p = self.pending
        # rows are appended as transactions come and the few learned ones kept lead the log,
        # so the first row is about the oldest (a pending row older than it, or a re-delivered
        # one out of order, goes with the next sweep): no slice copy per transaction
        stale_rows = bool(p) and p[1] < horizon
        early = self.early
        dropped = early.drop_before(horizon) if (
            len(early) and early.any_before(horizon)) else 0
        if stale_rows:
            keep = array("d")
            for i in range(0, len(p), ROW):
                if p[i + 1] >= horizon:
                    keep.extend(p[i:i + ROW])
            self.pending = keep
        return dropped

    @staticmethod
    def has_early(raw: bytes) -> bool:
        """Whether an encoded card holds labels, read from the header alone (cheap: the
        held-label index is rebuilt by scanning every card of a partition)."""
        return _HEADER.unpack_from(raw)[6] > 0

    def to_bytes(self) -> bytes:
        # the window, the feature log and the held labels are arrays: their memory is copied
        # as it is; the done ids (a list) go through struct.pack, about twice as fast as
        # array(list).tobytes() (every dirty card is encoded: once a fifth of the processor)
        customer, done = self.customer, self.done
        ts, cum = customer.ts.tobytes(), customer.cum.tobytes()
        pending, early = self.pending.tobytes(), self.early.flat.tobytes()
        packed_done = _pack(f"<{len(done)}q", *done)
        return b"".join((
            _HEADER.pack(_CODEC_VERSION, ROW, len(ts), len(cum), len(pending),
                         len(packed_done), len(early)),
            ts, cum, pending, packed_done, early,
        ))

    @classmethod
    def from_bytes(cls, raw: bytes) -> CardState:
        version, row, *sizes = _HEADER.unpack_from(raw)
        if version != _CODEC_VERSION or row != ROW:
            raise ValueError(f"card state codec {version}/{row} is not {_CODEC_VERSION}/{ROW}")
        pos = _HEADER.size
        chunks = []
        for size in sizes:
            chunks.append(raw[pos:pos + size])
            pos += size
        ts, cum, pending, early = (array("d", chunks[i]) for i in (0, 1, 2, 4))
        state = cls(
            customer=CustomerState(ts=ts, cum=cum),
            pending=pending,
            done=array("q", chunks[3]).tolist(),
        )
        state.early = HeldLabels(early)
        return state
