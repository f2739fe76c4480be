from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.settings import KafkaSettings, Settings, TopicSettings


def test_defaults_are_plaintext_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL"):
        monkeypatch.delenv(var, raising=False)
    kafka = KafkaSettings()
    assert kafka.kafka_python_kwargs() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert kafka.faust_kwargs() == {"broker": "kafka://127.0.0.1:9092",
                                    "broker_session_timeout": 10.0,
                                    "broker_heartbeat_interval": 3.0}


def test_static_membership_gives_each_worker_a_stable_instance_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_GROUP_INSTANCE_ID", raising=False)
    monkeypatch.delenv("FRAUDSTREAM_STATIC_MEMBERSHIP", raising=False)
    settings = Settings(app_id="fs")
    assert settings.group_instance_id("w1") == "fs-w1"
    assert settings.model_copy(update={"static_membership": False}).group_instance_id("w1") is None
    monkeypatch.setenv("KAFKA_GROUP_INSTANCE_ID", "rack2-slot1")
    assert Settings(app_id="fs").group_instance_id("w1") == "rack2-slot1"


def test_session_timeout_from_kafka_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "30000")
    monkeypatch.setenv("KAFKA_HEARTBEAT_INTERVAL_MS", "5000")
    kwargs = KafkaSettings().faust_kwargs()
    assert (kwargs["broker_session_timeout"], kwargs["broker_heartbeat_interval"]) == (30.0, 5.0)
    monkeypatch.setenv("KAFKA_HEARTBEAT_INTERVAL_MS", "15000")
    with pytest.raises(ValidationError, match="a third of KAFKA_SESSION_TIMEOUT_MS"):
        KafkaSettings()


def test_child_env_carries_every_kafka_setting() -> None:
    from infra.settings import child_env

    kafka = KafkaSettings(session_timeout_ms=12_000, group_instance_id="x-1")
    env = child_env(Settings(kafka=kafka))
    assert env["KAFKA_SESSION_TIMEOUT_MS"] == "12000"
    assert env["KAFKA_GROUP_INSTANCE_ID"] == "x-1"


def test_env_parsing_of_several_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", " a:1, b:2 ,")
    kafka = KafkaSettings()
    assert kafka.servers == ["a:1", "b:2"]
    assert kafka.aiokafka_kwargs()["bootstrap_servers"] == "a:1,b:2"
    assert kafka.faust_kwargs()["broker"] == "kafka://a:1;kafka://b:2"
    assert "bootstrap_servers" in kafka.model_fields_set


@pytest.mark.parametrize("bad", ["", "nohostport", "host:notaport", ":9092"])
def test_bad_bootstrap_is_rejected(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bad)
    with pytest.raises(ValidationError):
        KafkaSettings()


def test_unknown_security_protocol_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "kerberos")
    with pytest.raises(ValidationError):
        KafkaSettings()


def test_sasl_ssl_kwargs_for_both_clients(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import ssl

    import faust

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    kafka = KafkaSettings()
    kp = kafka.kafka_python_kwargs()
    assert kp["security_protocol"] == "SASL_SSL"
    assert kp["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kp["sasl_plain_username"] == "alice"
    assert kp["sasl_plain_password"] == "s3cret"
    ak = kafka.aiokafka_kwargs()
    assert ak["sasl_plain_password"] == "s3cret"
    assert isinstance(ak["ssl_context"], ssl.SSLContext)
    creds = kafka.faust_kwargs()["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "alice"
    assert "s3cret" not in repr(kafka)  # the secret never shows in logs


def test_sasl_without_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.delenv("KAFKA_SASL_USERNAME", raising=False)
    with pytest.raises(ValueError, match="KAFKA_SASL_MECHANISM"):
        KafkaSettings().kafka_python_kwargs()


def test_topic_map_and_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_TOPIC_TRANSACTIONS", "tx-eu")
    monkeypatch.setenv("FRAUDSTREAM_TOPIC_PARTITIONS", "8")
    topics = TopicSettings()
    specs = {s.name: s for s in topics.specs()}
    assert specs["tx-eu"].partitions == 8
    assert {"labels", "scores", "alerts", "transactions-dlq"} <= set(specs)
    # Faust joins tables to the source topic partition by partition: keep counts equal.
    assert specs["labels"].partitions == specs["tx-eu"].partitions


def test_with_bootstrap_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    base = Settings()
    other = base.with_bootstrap("10.0.0.1:19092")
    assert other.kafka.bootstrap_servers == "10.0.0.1:19092"
    assert base.kafka.bootstrap_servers == "127.0.0.1:9092"
