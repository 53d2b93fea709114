"""`tidemark sql` is read-only by default, with DuckDB's own switches, against real DuckDB.

Each hostile statement of issue 16 is run through the real command: it must fail with one line
(no traceback), write no file, print nothing it read, and `--unsafe` must give the owner it back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lakehouse.exceptions import QueryError
from lineage.query import run_sql
from lineage.transport import InMemoryTransport
from tests.conftest import run_cli
from tests.faults.report import FaultReport


def _land(settings: Any, tmp_path: Path) -> None:
    from ingest.land import land

    src = tmp_path / "t.csv"
    src.write_text("id,v\n1,2\n3,4\n")
    land(settings, str(src), "raw.t", transport=InMemoryTransport())


def test_hostile_statements_fail_with_one_line_and_unsafe_lifts_it(tmp_path: Path, fault_report: FaultReport) -> None:
    from lakehouse.config import load_settings

    settings = load_settings()
    _land(settings, tmp_path)
    outside = tmp_path / "outside.csv"
    inside = settings.home / "warehouse" / "planted.csv"
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("do-not-print-me\n")
    hostile = {
        "COPY ... TO a file outside the warehouse": f"COPY (SELECT 1) TO '{outside}'",
        "COPY ... TO a file inside the warehouse": f"COPY (SELECT * FROM raw.t) TO '{inside}'",
        "read_text of a file outside the warehouse": f"SELECT * FROM read_text('{secret_file}')",
        "read_text('/etc/hostname')": "SELECT * FROM read_text('/etc/hostname')",
        "read_csv of /etc/passwd": "SELECT * FROM read_csv('/etc/passwd', sep=':')",
        "glob of /etc": "SELECT * FROM glob('/etc/*')",
        "INSTALL httpfs": "INSTALL httpfs",
        "LOAD an extension": "LOAD httpfs",
        "SET enable_external_access back on": "SET enable_external_access = true",
        "ATTACH a database file": f"ATTACH '{tmp_path / 'x.duckdb'}'",
        "EXPLAIN ANALYZE of a COPY": f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{outside}'",
        "a query then a COPY": f"SELECT 1; COPY (SELECT 1) TO '{outside}'",
        "duckdb_secrets()": "SELECT * FROM duckdb_secrets()",
        "PRAGMA that writes a profile": "PRAGMA enable_profiling",
        "empty query": "",
        "only a comment": "-- nothing",
    }
    for fault, statement in hostile.items():
        proc = run_cli("sql", statement, check=False)
        lines = proc.stderr.strip().splitlines()
        held = (
            proc.returncode == 1
            and len(lines) == 1
            and lines[0].startswith("tidemark: error:")
            and not outside.exists()
            and not inside.exists()
            and "do-not-print-me" not in proc.stdout + proc.stderr
        )
        fault_report.record("sql", f"tidemark sql: {fault}", trials=1, held=held, note=lines[-1][len("tidemark: error: "):110] if lines else "")
        assert held, (fault, proc.returncode, proc.stdout, proc.stderr)

    # Queries still work: views over the warehouse's Parquet files, EXPLAIN, SHOW, several SELECTs.
    assert "(2 rows)" in run_cli("sql", "SELECT * FROM raw.t").stdout
    assert run_cli("sql", "EXPLAIN SELECT * FROM raw.t").returncode == 0
    assert run_cli("sql", "SELECT 1; SELECT count(*) AS n FROM raw.t").returncode == 0
    # ... and the owner gets everything back.
    run_cli("sql", "--unsafe", f"COPY (SELECT * FROM raw.t) TO '{outside}'")
    assert outside.read_text().splitlines() == ["id,v", "1,2", "3,4"]
    assert "do-not-print-me" in run_cli("sql", "--unsafe", f"SELECT content FROM read_text('{secret_file}')").stdout


def test_the_s3_keys_are_not_readable_and_s3_tables_still_are(
    s3_server: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_report: FaultReport
) -> None:
    from lakehouse.config import load_settings

    secret = "s3cr3t-" + "k" * 24
    # httpfs fills its legacy s3_* settings from these variables, and current_setting() reads them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tidemark-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    creds = {"s3.endpoint": s3_server, "s3.access-key-id": "tidemark-test-key", "s3.secret-access-key": secret, "s3.region": "us-east-1"}
    settings = load_settings(overrides={"catalog": {**creds, "warehouse": f"s3://{s3_bucket}/wh"}})
    _land(settings, tmp_path)

    assert run_sql(settings, "SELECT count(*) AS n FROM raw.t", read_only=True).to_pylist() == [{"n": 2}]
    for fault, statement in {
        "current_setting('s3_secret_access_key')": "SELECT current_setting('s3_secret_access_key') AS s",
        "duckdb_secrets(redact => false)": "SELECT * FROM duckdb_secrets(redact => false)",
        "SET allow_unredacted_secrets": "SET allow_unredacted_secrets = true",
        "read outside the warehouse's prefix in the same bucket": f"SELECT * FROM read_text('s3://{s3_bucket}/elsewhere.txt')",
    }.items():
        try:
            answer = str(run_sql(settings, statement, read_only=True).to_pylist())
            error = ""
        except QueryError as exc:
            answer, error = "", str(exc)
        held = secret not in answer + error and "\n" not in error
        fault_report.record("sql", f"tidemark sql on an S3 warehouse: {fault}", trials=1, held=held, note=(error or f"answered {answer}")[:100])
        assert held, (fault, answer, error)
    # Unsafe keeps the old behaviour for the owner, secrets and all (the point of the flag).
    unsafe = run_sql(settings, "SELECT current_setting('s3_secret_access_key') AS s", read_only=False).to_pylist()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == secret and unsafe == [{"s": secret}]
