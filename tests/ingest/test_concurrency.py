"""Several processes landing into one table at once: all succeed, every row present exactly once.

Real processes against a real catalog: the embedded SQLite one, and PostgreSQL at 127.0.0.1:5432
(skipped with the reason when it does not answer). Two barriers make the overlap certain rather
than likely: the processes start landing together once all have imported, and each, once its gate
passed and its audit snapshot is committed (the `on_audited` callback), waits until every other
one got that far. All audit branches then share one base, so exactly one publish can move main
from it and every other landing must find main moved and re-apply its validated files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.tables import SOURCE_SHA256, ancestors, summary_properties

PG_URI = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

CHILD = """
import json, os, sys, time
from pathlib import Path
from lakehouse.config import load_settings
from lineage.transport import InMemoryTransport
from ingest.land import land
import great_expectations, pyiceberg.catalog.sql

gates = Path(sys.argv[3])

def barrier(name, *_):
    (gates / f"{name}.{os.getpid()}").touch()
    deadline = time.time() + 180
    while not (gates / name).exists():
        if time.time() > deadline:
            sys.exit(f"no one opened barrier {name}")
        time.sleep(0.01)

settings = load_settings()
barrier("start")
r = land(settings, sys.argv[1], sys.argv[2], suite_file=sys.argv[4], transport=InMemoryTransport(),
         progress=lambda m: print(m, file=sys.stderr), on_audited=lambda *a: barrier("publish"))
print(json.dumps(r.to_json()))
"""

SUITE = "- expect_column_values_to_be_unique: {column: id}\n- expect_column_values_to_not_be_null: {column: id}\n"


def _open_when_all_arrive(gates: Path, name: str, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.time() + 180
    while len(list(gates.glob(f"{name}.*"))) < len(procs):
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            _, err = dead[0].communicate()
            pytest.fail(f"a landing ended before barrier {name}:\n{err[-3000:]}")
        assert time.time() < deadline, f"not every landing reached barrier {name}"
        time.sleep(0.01)
    (gates / name).touch()


def _land_concurrently(tmp_path: Path, env: dict[str, str], n: int = 3, rows: int = 2000) -> list[dict[str, Any]]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    gates = tmp_path / "gates"
    gates.mkdir()
    files = []
    for i in range(n):
        f = tmp_path / f"part-{i}.parquet"
        pq.write_table(pa.table({"id": list(range(i * rows, (i + 1) * rows)), "part": [i] * rows}), f)
        files.append(f)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(f), "raw.events", str(gates), str(suite)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
        )
        for f in files
    ]
    try:
        _open_when_all_arrive(gates, "start", procs)
        _open_when_all_arrive(gates, "publish", procs)
        results = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, f"a landing failed:\n{err[-3000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    # Every branch was made from the same main: one landing moved main from it, the others re-applied.
    reapplied = [r["reapplied"] for r in results]
    print(f"re-applied on a moved main: {reapplied}; seconds: {[r['seconds'] for r in results]}")
    assert sum(x > 0 for x in reapplied) >= n - 1 and sum(x == 0 for x in reapplied) <= 1, reapplied
    return results


def _check(settings: Any, results: list[dict[str, Any]], n: int = 3, rows: int = 2000) -> None:
    t = load_catalog(settings).load_table("raw.events")
    ids = t.scan().to_arrow().column("id").to_pylist()
    assert sorted(ids) == list(range(n * rows))  # every row, exactly once
    assert set(t.metadata.refs) == {"main"}  # no stray audit or quarantine branch
    landed = {summary_properties(s).get(SOURCE_SHA256) for s in ancestors(t, t.current_snapshot().snapshot_id)}
    assert {r["sha256"] for r in results} <= landed
    assert all(r["gate"]["success"] for r in results)


def test_three_processes_land_into_one_sqlite_table(tmp_path: Path) -> None:
    results = _land_concurrently(tmp_path, {})
    _check(load_settings(), results)


def _postgres_or_skip() -> None:
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_URI, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 does not answer ({exc.__class__.__name__}); start it to run this test")


def test_three_processes_land_into_one_postgres_table(tmp_path: Path) -> None:
    _postgres_or_skip()
    # pyiceberg's SQL catalog keys its rows by catalog name: a name of this run's own never collides.
    env = {"TIDEMARK__CATALOG__URI": PG_URI, "TIDEMARK__CATALOG__NAME": f"test_{uuid.uuid4().hex[:12]}"}
    results = _land_concurrently(tmp_path, env)
    settings = load_settings(environ={**os.environ, **env})
    try:
        _check(settings, results)
    finally:
        catalog = load_catalog(settings)
        catalog.drop_table(("raw", "events"))
        catalog.drop_namespace("raw")
