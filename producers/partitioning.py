"""Which partition Kafka gives a key: the one rule producers and workers must agree on.

Its own module so that a worker can ask without importing the producer's machinery (pandas,
the sender): a restarted worker's imports are on the path to its first score.
"""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def murmur2_partition(key: bytes, n_partitions: int) -> int:
    """The partition Kafka's default partitioner (Java and kafka-python) gives ``key``.

    >>> murmur2_partition(b"7", 4) == murmur2_partition(b"7", 4) < 4
    True
    """
    return (murmur2(key) & 0x7FFFFFFF) % n_partitions
