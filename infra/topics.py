"""Creates the pipeline's topics from the one topic map in the settings, idempotently."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from infra.settings import Settings, TopicSpec


@dataclass
class TopicReport:
    created: list[str]
    existing: list[str]


def _configs(spec: TopicSpec, min_insync: int | None = None) -> dict[str, str]:
    configs: dict[str, str] = {}
    if min_insync is not None:
        configs["min.insync.replicas"] = str(min_insync)
    if spec.compacted:
        configs["cleanup.policy"] = "compact"
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> TopicReport:
    """Create what is missing; leave existing topics alone and say which were which."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    specs = specs if specs is not None else settings.topics.specs()
    admin = KafkaAdminClient(client_id="fraudstream-topics", **settings.kafka.kafka_python_kwargs())
    try:
        existing = set(admin.list_topics())
        created: list[str] = []
        already: list[str] = []
        for spec in specs:
            if spec.name in existing:
                already.append(spec.name)
                continue
            topic = NewTopic(spec.name, spec.partitions, settings.topics.replication,
                             topic_configs=_configs(spec, settings.topics.min_insync()))
            try:
                admin.create_topics([topic], validate_only=False)
                created.append(spec.name)
            except TopicAlreadyExistsError:  # a concurrent creator won the race
                already.append(spec.name)
        return TopicReport(created=created, existing=already)
    finally:
        with contextlib.suppress(Exception):
            admin.close()


def ensure_worker_topics(settings: Settings) -> TopicReport:
    """The pipeline's topics and the workers' card changelog (``{app_id}-cards-changelog``).

    Faust declares the changelog itself when a worker starts, but on a loaded machine that
    creation can come after the worker's consumer has read the cluster's metadata; the worker
    then sees the changelog with 0 partitions and every card write fails (Faust's
    ``PartitionsMismatch``) until the metadata is refreshed, minutes later (seen in the quick
    benchmark, eight runs at once on 2 cores). Created beforehand, it is there from the start.
    """
    changelog = TopicSpec(f"{settings.app_id}-cards-changelog", settings.topics.partitions,
                          compacted=True)
    return ensure_topics(settings, [*settings.topics.specs(), changelog])


def partition_counts(settings: Settings, names: list[str]) -> dict[str, int]:
    """Partition count of each named topic (absent topics are left out)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**settings.kafka.kafka_python_kwargs())
    try:
        counts = {}
        for name in names:
            parts = consumer.partitions_for_topic(name)
            if parts:
                counts[name] = len(parts)
        return counts
    finally:
        consumer.close()
