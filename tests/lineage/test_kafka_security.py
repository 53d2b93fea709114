"""TLS and SASL settings reach every kafka-python client Tidemark builds (producer, consumer — also
the one `lineage watch` uses — and admin), checked on real clients against the session's broker."""

from __future__ import annotations

import pytest

from lakehouse.config import load_settings
from lakehouse.exceptions import ConfigError
from lineage import kafka

pytestmark = pytest.mark.integration


def test_security_settings_reach_producer_consumer_and_admin(kafka_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # PLAINTEXT, because the local broker speaks nothing else; kafka-python keeps the SASL settings
    # it was given all the same, which is what this checks.
    wanted = {"security_protocol": "PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "tm", "sasl_plain_password": "pw-1234"}
    for key, value in wanted.items():
        monkeypatch.setenv(f"TIDEMARK__KAFKA__{key.upper()}", value)
    settings = load_settings()
    clients = [kafka.producer(settings), kafka.consumer(settings, None), kafka.admin(settings)]
    try:
        for client in clients:
            assert {k: client.config[k] for k in wanted} == wanted, type(client).__name__
    finally:
        for client in clients:
            client.close()


def test_each_client_gets_the_kafka_client_keys_it_knows(kafka_env: str) -> None:
    # max_request_size is a producer setting: the admin client, which rejects keys it does not know,
    # must not get it (before, a producer-only key stopped every topic check with "did not answer").
    settings = load_settings(overrides={"kafka": {"client": {"max_request_size": 2097152, "client_id": "tm-test"}}})
    clients = [kafka.producer(settings), kafka.consumer(settings, None), kafka.admin(settings)]
    try:
        assert clients[0].config["max_request_size"] == 2097152
        assert all(c.config["client_id"] == "tm-test" for c in clients)
        kafka.ensure_topic(settings)
    finally:
        for client in clients:
            client.close()


def test_a_key_no_kafka_python_client_knows_is_named() -> None:
    settings = load_settings(overrides={"kafka": {"client": {"lingr_ms": 50}}})
    for build in (kafka.producer, kafka.admin, lambda s: kafka.consumer(s, None)):
        with pytest.raises(ConfigError, match=r"kafka.client sets lingr_ms, which is not a kafka-python setting; fix or remove it"):
            build(settings)


def test_kafka_client_values_from_the_environment_get_kafka_pythons_types(kafka_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Environment values are text; a text max_request_size failed at the first send.
    monkeypatch.setenv("TIDEMARK__KAFKA__CLIENT__MAX_REQUEST_SIZE", "2097152")
    p = kafka.producer(load_settings())
    try:
        assert p.config["max_request_size"] == 2097152
        p.send(kafka_env, value=b"{}").get(timeout=10)
    finally:
        p.close()
    monkeypatch.setenv("TIDEMARK__KAFKA__CLIENT__MAX_REQUEST_SIZE", "big")
    with pytest.raises(ConfigError, match=r"kafka.client.max_request_size must be a number, got 'big'"):
        kafka.producer(load_settings())
