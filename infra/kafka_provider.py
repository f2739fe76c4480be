"""Where a test run (or benchmark) gets its real Kafka broker from, in order of preference.

1. ``KAFKA_BOOTSTRAP_SERVERS`` when the user set it: a broker they already run (CI services,
   a cluster with SASL, ...).
2. testcontainers' Kafka container when a Docker engine answers.
3. The project's own managed broker (real Apache Kafka from Maven Central) otherwise. This is
   the path on machines without Docker, including this project's CI.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from infra.settings import Settings, get_settings

log = logging.getLogger(__name__)

TESTCONTAINERS_IMAGE = "confluentinc/cp-kafka:7.9.0"


@dataclass(frozen=True)
class ProvidedKafka:
    bootstrap: str
    source: str  # "env", "testcontainers" or "managed"


def docker_engine_answers(timeout_s: float = 2.0) -> bool:
    """True when a Docker engine responds to a ping (the client alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no socket, no permission, no engine: all mean "not usable"
        return False


@contextlib.contextmanager
def provide_kafka(settings: Settings | None = None) -> Iterator[ProvidedKafka]:
    settings = settings or get_settings()
    if "bootstrap_servers" in settings.kafka.model_fields_set:
        provided = ProvidedKafka(settings.kafka.bootstrap_servers, "env")
        log.info("Kafka: using KAFKA_BOOTSTRAP_SERVERS=%s", provided.bootstrap)
        yield provided
        return
    if docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        log.info("Kafka: Docker engine found, starting testcontainers %s", TESTCONTAINERS_IMAGE)
        with KafkaContainer(TESTCONTAINERS_IMAGE).with_kraft() as container:
            yield ProvidedKafka(container.get_bootstrap_server(), "testcontainers")
        return
    from infra.broker import managed_broker

    log.info("Kafka: no Docker engine; starting the managed Apache Kafka broker")
    with managed_broker(cache_dir=settings.cache_dir) as broker:
        log.info("Kafka: managed broker ready at %s", broker.bootstrap)
        yield ProvidedKafka(broker.bootstrap, "managed")
