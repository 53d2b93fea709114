"""Credentials in config: where they come from, and that they are masked wherever they could show."""

from __future__ import annotations

import logging

import pytest

from lakehouse import redact
from lakehouse.config import load_settings
from lakehouse.sql import s3_secret_sql


def test_a_uri_password_and_every_loaded_secret_are_masked() -> None:
    load_settings(
        environ={
            "TIDEMARK__CATALOG__URI": "postgresql+psycopg2://app:pg-Pa55word@db:5432/iceberg",
            "TIDEMARK__CATALOG__S3__SECRET_ACCESS_KEY": "s3-very-secret",
            "TIDEMARK__KAFKA__SASL_PLAIN_PASSWORD": "sasl-very-secret",
        }
    )
    text = "cannot open postgresql+psycopg2://app:pg-Pa55word@db:5432/iceberg; key s3-very-secret; sasl sasl-very-secret"
    assert redact.redact(text) == "cannot open postgresql+psycopg2://app:***@db:5432/iceberg; key ***; sasl ***"
    # A password only a library repeats, without its URI around it, is masked too.
    assert redact.redact("auth failed for pg-Pa55word") == "auth failed for ***"
    assert redact.redact_config({"uri": "postgresql://u:pw12@h/db", "s3.secret-access-key": "x", "region": "eu"}) == {
        "uri": "postgresql://u:***@h/db", "s3.secret-access-key": "***", "region": "eu",
    }


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    redact.remember(["log-secret-1234"])
    logger = logging.getLogger("tidemark.test")
    caplog.handler.addFilter(redact.RedactingFilter())
    logger.warning("connecting with %s to %s", "log-secret-1234", "s3://u:pw99@bucket/x")
    assert caplog.messages == ["connecting with *** to s3://u:***@bucket/x"]


def test_nested_catalog_variables_become_pyiceberg_property_names(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tidemark.yaml").write_text("catalog:\n  's3.endpoint': http://from-file:9000\n  s3.region: eu-west-1\n")
    monkeypatch.setenv("TIDEMARK__CATALOG__S3__ENDPOINT", "http://from-env:9000")
    monkeypatch.setenv("TIDEMARK__CATALOG__S3__ACCESS_KEY_ID", "AKID")
    props = load_settings().catalog.properties
    # env beats file; S3__ACCESS_KEY_ID -> s3.access-key-id, as pyiceberg's PYICEBERG_CATALOG__ variables do
    assert props["s3.endpoint"] == "http://from-env:9000"
    assert props["s3.access-key-id"] == "AKID" and props["s3.region"] == "eu-west-1"


def test_kafka_security_settings_from_the_kafka_section() -> None:
    s = load_settings(
        environ={
            "TIDEMARK__KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "TIDEMARK__KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "TIDEMARK__KAFKA__SASL_PLAIN_USERNAME": "tidemark",
            "TIDEMARK__KAFKA__SASL_PLAIN_PASSWORD": "pw-from-env",
            "TIDEMARK__KAFKA__SSL_CAFILE": "/etc/kafka/ca.pem",
            "TIDEMARK__KAFKA__SSL_CHECK_HOSTNAME": "false",
            "TIDEMARK__KAFKA__CLIENT__CLIENT_ID": "tm",
        }
    )
    assert dict(s.kafka.client) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "tidemark",
        "sasl_plain_password": "pw-from-env", "ssl_cafile": "/etc/kafka/ca.pem", "ssl_check_hostname": False, "client_id": "tm",
    }


def test_duckdb_secret_mirrors_the_pyiceberg_s3_properties() -> None:
    sql = s3_secret_sql(
        {"s3.endpoint": "http://127.0.0.1:9000", "s3.access-key-id": "AK", "s3.secret-access-key": "it's", "s3.region": "us-east-1"}
    )
    assert sql == (
        "CREATE OR REPLACE SECRET tidemark_s3 (TYPE s3, KEY_ID 'AK', SECRET 'it''s', REGION 'us-east-1', "
        "ENDPOINT '127.0.0.1:9000', USE_SSL false, URL_STYLE 'path')"
    )
    assert "PROVIDER credential_chain" in s3_secret_sql({"s3.region": "eu-west-1"})
    assert "USE_SSL true" in s3_secret_sql({"s3.endpoint": "https://s3.example.com", "s3.force-virtual-addressing": "true"})
