"""The walking-skeleton scenario (`tidemark demo`) with the Iceberg SQL catalog in PostgreSQL,
configured only through TIDEMARK__CATALOG__URI, in a database of this run's own."""

from __future__ import annotations

import json

import pytest
import sqlalchemy

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_demo_runs_on_a_postgres_catalog(kafka_env: str, postgres_catalog_uri: str, isolated_env) -> None:  # type: ignore[no-untyped-def]
    env = {"TIDEMARK__CATALOG__URI": postgres_catalog_uri}
    demo = run_cli("demo", env=env, timeout=300)
    assert "retrained wine:1: reproduced" in demo.stderr + demo.stdout

    # Everything the scenario made is registered in PostgreSQL, nothing in an embedded SQLite file.
    assert not (isolated_env / "catalog.db").exists()
    engine = sqlalchemy.create_engine(postgres_catalog_uri)
    with engine.connect() as conn:
        tables = {f"{ns}.{t}" for ns, t in conn.execute(sqlalchemy.text("SELECT table_namespace, table_name FROM iceberg_tables"))}
    engine.dispose()
    assert {"raw.wine", "lineage.events", "lineage.run_datasets", "lineage.model_versions"} <= tables

    trace = json.loads(run_cli("trace", "wine@production", "--output", "json", env=env).stdout)
    (inp,) = trace["inputs"]
    assert inp["table"] == "raw.wine" and inp["rows"] == 178 and inp["in_lineage_events"] is True
    assert inp["ingest_run"]["source"] == "lineage" and all(a["success"] for a in inp["validation"])

    retrained = json.loads(run_cli("retrain", "wine@production", "--output", "json", env=env).stdout)
    assert retrained["identical"] is True
