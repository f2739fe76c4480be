"""Shared fixtures. ``kafka_bootstrap`` is the one real broker of a test session."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from infra.kafka_provider import ProvidedKafka, provide_kafka
from infra.settings import Settings

log = logging.getLogger("fraudstream.tests")


@pytest.fixture(scope="session")
def kafka_provided() -> Iterator[ProvidedKafka]:
    with provide_kafka() as provided:
        log.warning("kafka_bootstrap: %s broker at %s", provided.source, provided.bootstrap)
        yield provided


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_provided: ProvidedKafka) -> str:
    """Bootstrap address of a real Kafka broker (env, testcontainers or managed; logged)."""
    return kafka_provided.bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> Settings:
    """Settings pointing at the session broker, with topic names unique to this test."""

    suffix = uuid.uuid4().hex[:8]
    base = Settings().with_bootstrap(kafka_bootstrap)
    topics = base.topics.renamed(lambda _field, name: f"{name}-{suffix}")
    return base.model_copy(update={"topics": topics, "app_id": f"fraudstream-test-{suffix}"})
