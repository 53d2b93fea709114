"""The CLI's promises: fast help, no heavy imports, clear one-line errors with non-zero exits."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import sys, time; t=time.perf_counter(); from tidemark.cli import build_parser; "
        "build_parser().format_help(); "
        "heavy=[m for m in ('pyiceberg','great_expectations','sklearn','airflow','duckdb','kafka','pandas') if m in sys.modules]; "
        "print(heavy, time.perf_counter()-t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[] "), out
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tidemark", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ingest" in proc.stdout
    assert time.perf_counter() - start < 2.0  # a whole interpreter start included; the parser alone is ~0.05 s


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    # Progress lines ("  [  1.2s] ...") may come first; the error itself is exactly one line.
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("  [")]
    assert len(lines) == 1 and lines[0].startswith("tidemark: error: "), proc.stderr
    return lines[0]


def test_ingest_of_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    line = _one_line_error(run_cli("ingest", str(tmp_path / "nope.csv"), "--table", "raw.x", check=False))
    assert "nope.csv: no such file" in line


def test_ingest_with_bad_table_name(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("id\n1\n")
    line = _one_line_error(run_cli("ingest", str(f), "--table", "justatable", check=False))
    assert "'justatable' is not of the form namespace.table" in line


@pytest.mark.integration
def test_trace_of_unknown_model_and_alias(kafka_env: str, wine_csv: Path) -> None:
    line = _one_line_error(run_cli("trace", "nosuchmodel@production", check=False))
    assert "model 'nosuchmodel' is not registered" in line
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    run_cli("train", "wine_classifier")
    line = _one_line_error(run_cli("trace", "wine@staging", check=False))
    assert "model wine has no alias 'staging'" in line and "tidemark models promote wine VERSION --alias staging" in line
    line = _one_line_error(run_cli("trace", "wine:9", check=False))
    assert "model wine has no version 9; versions: 1" in line


def test_broker_that_does_not_answer_is_named_within_seconds(tmp_path: Path, wine_csv: Path) -> None:
    from lineage.broker import free_port

    port = free_port()  # nothing listens there
    env = {"TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "TIDEMARK__KAFKA__CONNECT_TIMEOUT_S": "2"}
    start = time.monotonic()
    line = _one_line_error(run_cli("lineage", "consume", "--once", check=False, env=env))
    assert f"Kafka at 127.0.0.1:{port} did not answer within 2 s" in line
    assert time.monotonic() - start < 15
    # A job goes on when Kafka is away: it warns, naming the address, and keeps its events in the outbox.
    start = time.monotonic()
    proc = run_cli("ingest", str(wine_csv), "--table", "raw.wine", env=env)
    assert time.monotonic() - start < 30
    assert f"127.0.0.1:{port}" in proc.stderr and "kept in the outbox" in proc.stderr
    line = _one_line_error(run_cli("lineage", "flush", check=False, env=env))
    assert "2 events still in the outbox" in line and f"127.0.0.1:{port}" in line


def test_up_status_down_with_the_local_broker(isolated_env: Path) -> None:
    try:
        run_cli("up")
        status = json.loads(run_cli("status", "--output", "json").stdout)
        assert status["catalog_uri"] == f"sqlite:///{isolated_env / 'catalog.db'}"
        assert status["warehouse"] == (isolated_env / "warehouse").as_uri()
        host, port = status["kafka"]["bootstrap_servers"].split(":")
        assert host == "127.0.0.1"
        socket.create_connection((host, int(port)), 2).close()
        assert status["lineage_topic"] == "tidemark.lineage"
        assert json.loads(run_cli("up", "--output", "json").stdout)["kafka"] == status["kafka"]  # idempotent
    finally:
        assert json.loads(run_cli("down", "--output", "json").stdout) == {"stopped": True, "kept_events": 0}
    status = json.loads(run_cli("status", "--output", "json").stdout)
    assert status["kafka"]["local_broker"] == "stopped"
    line = _one_line_error(run_cli("lineage", "consume", "--once", check=False))
    assert "local broker is not running" in line and "tidemark up" in line


def test_configured_kafka_means_up_starts_nothing(broker: str, isolated_env: Path) -> None:
    status = json.loads(run_cli("up", "--output", "json", env={"TIDEMARK__KAFKA__BOOTSTRAP_SERVERS": broker}).stdout)
    assert status["kafka"]["bootstrap_servers"] == broker
    assert status["kafka"]["local_broker"] is None
    assert not (isolated_env / "broker.json").exists()


def test_consume_batch_size_must_be_a_positive_number() -> None:
    for bad, reason in (("0", "must be at least 1, got 0"), ("many", "'many' is not a whole number")):
        r = run_cli("lineage", "consume", "--once", "--batch-size", bad, check=False)
        assert r.returncode == 2 and f"argument --batch-size: {reason}" in r.stderr, r.stderr


def test_library_deprecation_warnings_never_reach_the_user(kafka_env: str) -> None:
    # Every warning turned on, as a library may do for a while: kafka-python's deprecation notices
    # (raised as its protocol schemas load) stay out of the output; the error is still one line.
    r = run_cli("lineage", "consume", "--partitions", "99", check=False, env={"PYTHONWARNINGS": "always"})
    assert r.returncode == 1, r.stderr
    assert "DeprecationWarning" not in r.stderr, r.stderr
    assert [line for line in r.stderr.splitlines() if line.strip()] == [r.stderr.strip()], r.stderr


@pytest.mark.integration
def test_tables_lists_snapshots_and_sql_time_travels_by_snapshot_id(kafka_env: str, wine_csv: Path, tmp_path: Path) -> None:
    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    first = json.loads(run_cli("tables", "raw", "--output", "json").stdout)
    assert [r["table"] for r in first] == ["raw.wine"] and first[0]["metadata_location"].endswith(".metadata.json")
    more = tmp_path / "more.csv"
    lines = wine_csv.read_text().splitlines()
    more.write_text("\n".join([lines[0]] + [f"{1000 + i}," + line.split(",", 1)[1] for i, line in enumerate(lines[1:11])]) + "\n")
    run_cli("ingest", str(more), "--table", "raw.wine")
    assert json.loads(run_cli("sql", "SELECT count(*) AS n FROM raw.wine", "--output", "json").stdout) == [{"n": 188}]
    old = run_cli("sql", "--snapshot", f"raw.wine={first[0]['snapshot_id']}", "SELECT count(*) AS n FROM raw.wine", "--output", "json")
    assert json.loads(old.stdout) == [{"n": 178}]
    hint = run_cli("tables").stdout
    assert "time travel: tidemark sql --snapshot " in hint
    line = _one_line_error(run_cli("sql", "--snapshot", "raw.wine=5", "SELECT 1", check=False))
    assert "--snapshot raw.wine=5: raw.wine has no snapshot 5" in line
