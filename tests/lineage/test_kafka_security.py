"""TLS and SASL settings reach every kafka-python client Tidemark builds (producer, consumer — also
the one `lineage watch` uses — and admin), checked on real clients against the session's broker."""

from __future__ import annotations

import pytest

from lakehouse.config import load_settings
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
