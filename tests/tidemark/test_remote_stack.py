"""The scenario on infrastructure shaped like production: tables in S3 (a real S3 API on loopback),
the Iceberg catalog in PostgreSQL, credentials in env and config — and none of them ever leaks.

Every secret below is a dummy the services ignore: PostgreSQL here trusts local connections (the
password is never checked), moto accepts any key, and the SASL password sits in the config of a
PLAINTEXT broker, so kafka-python carries it without using it. What is checked is that the value
never shows up in anything Tidemark prints, logs, sends or commits.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lineage.broker import port_open
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

PG_HOST, PG_PORT = "127.0.0.1", 5432


def test_land_train_consume_trace_on_s3_and_postgres_and_no_secret_leaks(
    kafka_env: str, s3_server: str, s3_bucket: str, wine_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not port_open(PG_HOST, PG_PORT):
        pytest.skip(f"needs PostgreSQL at {PG_HOST}:{PG_PORT} (trust auth, database `test`) for the catalog")
    tag = uuid.uuid4().hex[:10]
    pg_password, s3_key, s3_secret, sasl_password = f"pg-pw-{tag}", f"AKIDUMMY{tag}", f"s3-secret-{tag}", f"sasl-pw-{tag}"
    secrets = [pg_password, s3_key, s3_secret, sasl_password]
    catalog_name = f"remote_{tag}"
    warehouse = f"s3://{s3_bucket}/warehouse"
    # S3 settings the way docker-compose passes them: nested env keys become pyiceberg's s3.* names.
    env = {
        "TIDEMARK__CATALOG__NAME": catalog_name,
        "TIDEMARK__CATALOG__URI": f"postgresql+psycopg2://postgres:{pg_password}@{PG_HOST}:{PG_PORT}/test",
        "TIDEMARK__CATALOG__WAREHOUSE": warehouse,
        "TIDEMARK__CATALOG__S3__ENDPOINT": s3_server,
        "TIDEMARK__CATALOG__S3__ACCESS_KEY_ID": s3_key,
        "TIDEMARK__CATALOG__S3__SECRET_ACCESS_KEY": s3_secret,
        "TIDEMARK__CATALOG__S3__REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Kafka credentials from the config file, as an operator would keep them.
    config = tmp_path / "tidemark.yaml"
    config.write_text(
        f"kafka:\n  security_protocol: PLAINTEXT\n  sasl_plain_username: tidemark\n  sasl_plain_password: {sasl_password}\n"
    )
    monkeypatch.setenv("TIDEMARK_CONFIG", str(config))
    outputs: list[str] = []

    def cli(*args: str, check: bool = True) -> str:
        proc = run_cli("--verbose", *args, check=check)
        outputs.extend([proc.stdout, proc.stderr])
        return proc.stdout

    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings

    settings = load_settings()
    assert settings.kafka.client["sasl_plain_password"] == sasl_password  # reaches every kafka-python client
    try:
        landed = json.loads(cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json"))
        trained = json.loads(cli("train", "wine_classifier", "--output", "json"))
        assert json.loads(cli("lineage", "consume", "--once", "--output", "json"))["stored_events"] == 4
        cli("models", "promote", "wine", str(trained["version"]), "--alias", "production")
        cli("lineage", "consume", "--once")
        trace = json.loads(cli("trace", "wine@production", "--output", "json"))
        (inp,) = trace["inputs"]
        assert inp["snapshot_id"] == landed["snapshot_id"] and inp["in_lineage_events"] is True
        assert inp["ingest_run"]["run_id"] == landed["run_id"]
        # The model artifact is stored content-addressed in the S3 warehouse, and retrain reads it back.
        assert trace["artifact_uri"].startswith(f"{warehouse}/artifacts/sha256/")
        retrained = json.loads(cli("retrain", "wine@production", "--output", "json"))
        assert retrained["data"]["identical"] is True
        # DuckDB reads the S3 tables through httpfs with the same credentials.
        counted = json.loads(cli("sql", "SELECT (SELECT count(*) FROM raw.wine) AS n, (SELECT count(*) FROM lineage.events) AS e", "--output", "json"))
        assert counted == [{"n": 178, "e": 5}]  # ingest and training START+COMPLETE, the alias move
        # ...and through the iceberg extension too (the path for tables with delete files, and time travel).
        from lakehouse import sql

        wine = load_catalog(settings).load_table(("raw", "wine"))
        con = sql.connect(settings.catalog.properties)
        scanned = con.execute("SELECT count(*) FROM iceberg_scan(?, snapshot_from_id = ?)", [wine.metadata_location, landed["snapshot_id"]])
        assert wine.metadata_location.startswith(warehouse) and scanned.fetchone()[0] == 178
        status = cli("status", "--output", "json")
        assert json.loads(status)["catalog"]["s3.secret-access-key"] == "***"
        # An error that names the catalog URI names it without the password.
        bad = run_cli("status", check=False)
        broken = run_cli(
            "sql", "SELECT 1", check=False, env={"TIDEMARK__CATALOG__URI": f"postgresql+psycopg2://postgres:{pg_password}@{PG_HOST}:1/test"}
        )
        outputs.extend([bad.stdout, bad.stderr, broken.stdout, broken.stderr])
        assert broken.returncode == 1 and "postgres:***@" in broken.stderr and broken.stderr.count("\n") == 1  # one line

        # The tables live in S3, nothing in a local warehouse.
        import boto3

        s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id=s3_key, aws_secret_access_key=s3_secret, region_name="us-east-1")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="warehouse/")["Contents"]]
        assert any(k.endswith(".parquet") for k in keys) and any("/artifacts/sha256/" in k for k in keys)
        assert not (settings.home / "warehouse").exists()

        # Nothing printed or logged, no lineage row and no snapshot summary holds a secret.
        catalog = load_catalog(settings)
        stored = []
        for (ns,) in catalog.list_namespaces():
            for ident in catalog.list_tables(ns):
                table = catalog.load_table(ident)
                stored.append(json.dumps(table.scan().to_arrow().to_pylist(), default=str))
                stored += [json.dumps(s.summary.model_dump(), default=str) for s in table.metadata.snapshots]
                stored.append(json.dumps(dict(table.properties)))
        assert any(settings.lineage.namespace in s or "wine" in s for s in stored)
        for secret in secrets:
            assert not [o for o in outputs if secret in o], f"{secret} was printed or logged"
            assert not [s for s in stored if secret in s], f"{secret} was stored in a table or snapshot summary"
    finally:
        catalog = load_catalog(settings)
        for (ns,) in catalog.list_namespaces():
            for ident in catalog.list_tables(ns):
                catalog.drop_table(ident)
            catalog.drop_namespace(ns)


def test_quarantine_and_data_docs_with_an_s3_warehouse(s3_server: str, s3_bucket: str, tmp_path: Path) -> None:
    """A failed gate on an S3 warehouse: the audit branch is listed, its rows read back from S3, dropped."""
    from ingest import quarantine
    from ingest.exceptions import GateFailedError
    from ingest.land import land
    from lakehouse.config import load_settings
    from lineage.transport import InMemoryTransport

    settings = load_settings(
        overrides={
            "catalog": {
                "warehouse": f"s3://{s3_bucket}/warehouse", "s3.endpoint": s3_server, "s3.region": "us-east-1",
                "s3.access-key-id": "test", "s3.secret-access-key": "test",
            }
        }
    )
    suite, bad = tmp_path / "s.yaml", tmp_path / "bad.csv"
    suite.write_text("- expect_column_values_to_be_between: {column: x, min_value: 0, max_value: 9}\n")
    bad.write_text("x\n1\n50\n")
    with pytest.raises(GateFailedError) as failed:
        land(settings, str(bad), "raw.q", suite_file=str(suite), transport=InMemoryTransport())
    assert "raw.q" in str(failed.value)
    (q,) = quarantine.list_quarantined(settings)
    assert sorted(r["x"] for r in quarantine.show(settings, "raw.q", q.branch).sample_rows) == [1, 50]
    if q.data_docs:  # the validation report is a local page, whatever the warehouse
        assert Path(q.data_docs).is_file()
    quarantine.drop(settings, "raw.q", q.branch)
    assert quarantine.list_quarantined(settings) == []
