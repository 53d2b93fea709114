"""The walking-skeleton scenario end to end, through the real CLI, broker, catalog and DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_trace_names_the_snapshot_the_training_run_read(kafka_env: str, wine_csv: Path) -> None:
    landed = json.loads(run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json").stdout)
    assert landed["rows"] == 178 and landed["gate"]["success"] is True
    trained = json.loads(run_cli("train", "wine_classifier", "--output", "json").stdout)
    (inp,) = trained["inputs"]
    assert {k: inp[k] for k in ("table", "snapshot_id", "rows")} == {"table": "raw.wine", "snapshot_id": landed["snapshot_id"], "rows": 178}
    assert len(inp["fingerprint"]) == 64  # sha256 of the rows read, checked again by `tidemark retrain`
    consumed = json.loads(run_cli("lineage", "consume", "--once", "--output", "json").stdout)
    assert consumed["stored_events"] == 4  # START + COMPLETE of the ingest run and of the training run
    run_cli("models", "promote", "wine", str(trained["version"]), "--alias", "production")
    run_cli("lineage", "consume", "--once")

    trace = json.loads(run_cli("trace", "wine@production", "--output", "json").stdout)
    assert trace["model"] == "wine" and trace["version"] == trained["version"]
    assert trace["run_id"] == trained["run_id"]
    (inp,) = trace["inputs"]
    assert inp["table"] == "raw.wine"
    assert inp["snapshot_id"] == landed["snapshot_id"]
    assert inp["in_lineage_events"] is True
    assert inp["ingest_run"] == {**inp["ingest_run"], "run_id": landed["run_id"], "source": "lineage"}
    assert inp["source_files"] == [{"path": str(wine_csv.resolve()), "sha256": landed["sha256"]}]
    assert all(a["success"] for a in inp["validation"]) and len(inp["validation"]) == 5

    # The snapshot the training run read, as the lineage events recorded it, is the one in the trace.
    read = json.loads(
        run_cli(
            "sql",
            "SELECT version FROM lineage.run_datasets WHERE run_id = '%s' AND direction = 'input' AND event_type = 'COMPLETE'"
            % trained["run_id"],
            "--output",
            "json",
        ).stdout
    )
    assert read == [{"version": str(landed["snapshot_id"])}]

    # ...and reading that snapshot gives the same rows through pyiceberg and through DuckDB time travel.
    from lakehouse import sql
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings

    table = load_catalog(load_settings()).load_table(("raw", "wine"))
    sid = inp["snapshot_id"]
    rows_iceberg = table.scan(snapshot_id=sid).to_arrow().num_rows
    con = sql.connect()
    rows_duckdb = con.execute(
        "SELECT count(*) FROM iceberg_scan(?, snapshot_from_id = ?)", [table.metadata_location, sid]
    ).fetchone()[0]
    assert rows_iceberg == rows_duckdb == inp["rows"] == 178


def test_second_run_adds_no_duplicate_rows(kafka_env: str, wine_csv: Path) -> None:
    for _ in range(2):
        run_cli("ingest", str(wine_csv), "--table", "raw.wine")
        run_cli("train", "wine_classifier")
        run_cli("lineage", "consume", "--once")
    again = json.loads(run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json").stdout)
    assert again["skipped"] is True
    counts = json.loads(
        run_cli(
            "sql",
            "SELECT (SELECT count(*) FROM raw.wine) AS wine_rows, (SELECT count(*) FROM lineage.events) AS events, "
            "(SELECT count(DISTINCT event_id) FROM lineage.events) AS distinct_events",
            "--output",
            "json",
        ).stdout
    )
    # one landing (the second was a no-op), two trainings: 2 + 2*2 events, each stored once
    assert counts == [{"wine_rows": 178, "events": 6, "distinct_events": 6}]
    versions = json.loads(run_cli("models", "list", "wine", "--output", "json").stdout)
    assert [v["version"] for v in versions] == [1, 2]
    # Same code, same data, same seeds: the same bytes.
    assert versions[0]["sha256"] == versions[1]["sha256"]
