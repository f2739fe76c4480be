"""An in-memory stand-in for kafka-python's producer, for unit tests of what gets sent.

Only the three calls the sender makes exist; the integration test uses the real broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class _Future:
    def add_errback(self, fn: object) -> None:
        pass


@dataclass
class RecordingProducer:
    partitions: int = 4
    sent: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    flushed: int = 0

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def send(self, topic: str, value: bytes, key: bytes, partition: int) -> _Future:
        self.sent.append((topic, partition, key, value))
        return _Future()

    def flush(self, timeout: float | None = None) -> None:
        self.flushed += 1
