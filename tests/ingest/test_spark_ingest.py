"""`tidemark ingest --engine spark`: write-audit-publish on a real local[2] Spark, against the pyarrow path.

The same gate, summary keys, lineage, idempotency and quarantine as `ingest.land`; a Spark job
failing mid-write leaves main untouched; Spark landing while Tidemark's pyarrow path lands into the
same table from another process loses nothing, on the SQLite and on the PostgreSQL catalog.
One Spark session serves the test worker (tests/conftest.py `spark_session`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ingest import quarantine
from ingest.exceptions import GateFailedError, SchemaMismatchError, SourceError, SparkLandingError
from ingest.land import land
from ingest.sparkland import ENGINE, WRITE_FAULT, land_spark
from ingest.verdict import GATE_DOCS, GATE_FAILURES, GATE_SUCCESS, GATE_SUITE
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.failpoints import ENV as FAILPOINT
from lakehouse.tables import JOB_NAME, RUN_ID, SOURCE_PATH, SOURCE_SHA256, ancestors
from lineage.transport import InMemoryTransport
from tests.conftest import ROOT, run_cli, shifted_wine
from tests.faults.report import FaultReport

pytestmark = pytest.mark.integration


def _main(settings: Settings, table: str = "raw.wine") -> tuple[int | None, set[str]]:
    t = load_catalog(settings).load_table(table)
    snap = t.current_snapshot()
    return (snap.snapshot_id if snap else None), set(t.metadata.refs)


@pytest.mark.parametrize("shared", ["sqlite"], indirect=True)
def test_spark_landing_is_the_same_write_audit_publish(shared: tuple[Any, Settings], wine_csv: Path) -> None:
    spark, settings = shared
    tr = InMemoryTransport()
    result = land_spark(settings, str(wine_csv), "raw.wine", transport=tr, spark=spark, owner="team:wine")
    assert result.rows == 178 and result.gate is not None and result.gate.success and len(result.gate.outcomes) == 5
    t = load_catalog(settings).load_table("raw.wine")
    snap = t.current_snapshot()
    assert snap.snapshot_id == result.snapshot_id and set(t.metadata.refs) == {"main"}  # audit branch gone
    props = snap.summary.additional_properties
    assert props[RUN_ID] == result.run_id and props[JOB_NAME] == "ingest.raw.wine"
    assert props[SOURCE_SHA256] == result.sha256 and props[SOURCE_PATH] == str(wine_csv)
    assert props[GATE_SUITE] == "raw.wine" and props[GATE_SUCCESS] == "true" and json.loads(props[GATE_FAILURES]) == []
    assert Path(props[GATE_DOCS]).is_file() and props[ENGINE] == "spark"
    assert props["spark.app.id"] and props["added-records"] == "178"  # Spark's own commit, fast-forwarded
    assert [e["eventType"] for e in tr.events] == ["START", "COMPLETE"]
    out = tr.events[-1]["outputs"][0]
    assert out["facets"]["version"]["datasetVersion"] == str(result.snapshot_id)
    assert {a["assertion"] for a in out["facets"]["dataQualityAssertions"]["assertions"]} >= {"expect_column_values_to_be_unique"}
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 178 and out["outputFacets"]["outputStatistics"]["fileCount"] >= 1
    assert tr.events[-1]["inputs"][0]["facets"]["version"]["datasetVersion"] == result.sha256
    # --owner on either engine: the table's property, and the ownership facet on the job and the table.
    assert t.properties["tidemark.owner"] == "team:wine"
    assert tr.events[-1]["job"]["facets"]["ownership"]["owners"] == [{"name": "team:wine"}]
    assert out["facets"]["ownership"]["owners"] == [{"name": "team:wine"}]

    # The pyarrow path makes the same table of the same file: same columns, same types, same rows.
    land(settings, str(wine_csv), "raw.wine_arrow", transport=InMemoryTransport())
    arrow = load_catalog(settings).load_table("raw.wine_arrow")
    assert [(f.name, str(f.field_type), f.required) for f in arrow.schema().fields] == [
        (f.name, str(f.field_type), f.required) for f in t.schema().fields
    ]
    assert t.scan().to_arrow().sort_by("id").equals(arrow.scan().to_arrow().sort_by("id"))

    # Idempotent: the same file again is a no-op, on either engine.
    again = land_spark(settings, str(wine_csv), "raw.wine", transport=(tr2 := InMemoryTransport()), spark=spark)
    assert again.skipped and again.snapshot_id == result.snapshot_id and tr2.events == []
    assert land(settings, str(wine_csv), "raw.wine", transport=InMemoryTransport()).skipped
    assert _main(settings)[0] == result.snapshot_id


@pytest.mark.parametrize("shared", ["sqlite"], indirect=True)
def test_spark_gate_failure_and_failed_job_leave_main_untouched(
    shared: tuple[Any, Settings], wine_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    spark, settings = shared
    land(settings, str(wine_csv), "raw.wine", transport=InMemoryTransport())
    before = _main(settings)

    # A failing gate: whole-landing uniqueness and a range, judged by GX's Spark engine.
    lines = wine_csv.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    rows = [lines[1].replace(lines[1].split(",")[1], "99", 1), lines[1], *lines[2:4]]
    bad.write_text("\n".join([lines[0], *rows]) + "\n")
    tr = InMemoryTransport()
    with pytest.raises(GateFailedError) as err:
        land_spark(settings, str(bad), "raw.wine", transport=tr, spark=spark)
    msg = str(err.value)
    assert "expect_column_values_to_be_between on alcohol (1 of 4 rows)" in msg, msg
    assert "expect_column_values_to_be_unique on id" in msg and "\n" not in msg
    assert _main(settings)[0] == before[0]
    (q,) = quarantine.list_quarantined(settings, "raw.wine")
    assert q.branch in msg and q.rows == 4 and q.source == str(bad) and {f["expectation"] for f in q.failures} >= {"expect_column_values_to_be_unique"}
    assert tr.events[-1]["eventType"] == "FAIL"
    quarantine.drop(settings, "raw.wine", q.branch)

    # A Spark job failing mid-write (its last task fails after the others wrote): main untouched,
    # the landing listed as quarantine with the failure; the file lands once the fault is gone.
    good = shifted_wine(wine_csv, 0.5)
    monkeypatch.setenv(FAILPOINT, WRITE_FAULT)
    with pytest.raises(SparkLandingError) as failed:
        land_spark(settings, str(good), "raw.wine", transport=InMemoryTransport(), spark=spark)
    monkeypatch.delenv(FAILPOINT)
    msg = str(failed.value)
    assert "the Spark job writing to raw.wine failed" in msg and WRITE_FAULT in msg and "main is unchanged" in msg and "\n" not in msg
    assert _main(settings)[0] == before[0]
    (q,) = quarantine.list_quarantined(settings, "raw.wine")
    assert q.branch in msg and not q.rows and q.source == str(good)  # an empty snapshot: no rows
    assert q.failures[0]["expectation"] == "spark_write" and WRITE_FAULT in q.failures[0]["error"]
    landed = land_spark(settings, str(good), "raw.wine", transport=InMemoryTransport(), spark=spark)
    assert not landed.skipped and landed.rows == 178
    t = load_catalog(settings).load_table("raw.wine")
    assert t.scan().to_arrow().num_rows == 356 and t.current_snapshot().parent_snapshot_id == before[0]
    FaultReport(request.node.nodeid).record(
        "ingest", "Spark write job failing mid-write (failpoint ingest.spark-write)", trials=1, held=True,
        before={"rows": 178}, after={"rows on main after the failure": 178, "after landing again": 356},
        note="main untouched, listed as quarantine (spark_write), the file lands once the fault is gone",
    )

    # A file Spark cannot parse: one line, nothing written.
    ragged = tmp_path / "ragged.jsonl"
    ragged.write_text('{"id": 1, "x": 2.0}\n{"id": 2, "x": \n')
    with pytest.raises(SourceError, match=r"ragged.jsonl: Spark could not read it .*nothing was written"):
        land_spark(settings, str(ragged), "raw.other", transport=InMemoryTransport(), spark=spark)
    assert not load_catalog(settings).table_exists("raw.other")


def test_spark_engine_without_java_or_pyspark_is_one_line(wine_csv: Path, tmp_path: Path) -> None:
    proc = run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--engine", "spark", check=False, env={"JAVA_HOME": str(tmp_path / "no-jdk")})
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "Spark needs Java 17" in proc.stderr and "make spark" in proc.stderr, proc.stderr
    # An install without the [spark] extra: `import pyspark` fails.
    code = (
        "import sys, runpy; sys.modules['pyspark'] = None; "
        f"sys.argv = ['tidemark', 'ingest', {str(wine_csv)!r}, '--table', 'raw.wine', '--engine', 'spark']; "
        "runpy.run_module('tidemark', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "pyspark is not installed" in proc.stderr, proc.stderr
    from lakehouse.config import load_settings

    assert not load_catalog(load_settings()).table_exists("raw.wine")


# Tidemark's pyarrow path in another process, landing file after file until told to stop.
APPENDER = """
import json, sys, time
from pathlib import Path
from ingest.land import land
from lakehouse.config import load_settings
from lineage.transport import InMemoryTransport
files, stop = sys.argv[1:-1], Path(sys.argv[-1])
settings = load_settings()
for i, f in enumerate(files):
    if stop.exists():
        break
    r = land(settings, f, "raw.wine", transport=InMemoryTransport())
    print(json.dumps({"snapshot_id": r.snapshot_id, "rows": r.rows, "at": time.time(), "reapplied": r.reapplied}), flush=True)
"""


def test_spark_and_pyarrow_landing_one_table_at_once_lose_nothing(shared: tuple[Any, Settings], wine_csv: Path, tmp_path: Path) -> None:
    spark, settings = shared
    land(settings, str(wine_csv), "raw.wine", transport=InMemoryTransport())
    files = [str(shifted_wine(wine_csv, 0.01 * (i + 1), first_id=10_000 * (i + 1))) for i in range(40)]
    spark_file = shifted_wine(wine_csv, 0.7, first_id=1_000_000, name="spark.csv")
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, *files, str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert appender.stdout is not None
        first = appender.stdout.readline()  # the other process is landing before Spark starts
        assert first, appender.stderr.read() if appender.stderr else ""
        started = time.time()
        result = land_spark(settings, str(spark_file), "raw.wine", transport=InMemoryTransport(), spark=spark)
        ended = time.time()
    finally:
        stop.touch()
        out, err = appender.communicate(timeout=600)
    assert appender.returncode == 0, err
    landings = [json.loads(line) for line in [first, *out.splitlines()] if line.strip()]
    during = [x for x in landings if started <= x["at"] <= ended]
    assert during, "the pyarrow landings did not overlap the Spark landing"

    t = load_catalog(settings).load_table("raw.wine")
    ids = t.scan().to_arrow().column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 178 * (2 + len(landings))
    main = {s.snapshot_id for s in ancestors(t, t.current_snapshot().snapshot_id)}
    assert result.snapshot_id in main and all(x["snapshot_id"] in main for x in landings)
    assert set(t.metadata.refs) == {"main"}
    spark_rows = spark.sql(f"SELECT count(*) AS n FROM {settings.catalog.name}.raw.wine WHERE id >= 1000000").first().n
    assert spark_rows == 178


# One file sequence for both engines: a table, a new column, whole numbers for a float column and
# another new column, then a column whose type cannot be widened (refused).
EVOLVING = {
    "a.csv": "id,alcohol,name\n1,12.5,a\n2,13.0,b\n",
    "b.csv": "id,alcohol,name,batch\n3,11.5,c,7\n4,12.25,d,8\n",
    "c.csv": "id,alcohol,name,batch,grade\n5,14,e,9,x\n",
}
BAD_TYPE = "id,alcohol,name\n6,strong,f\n"


@pytest.mark.parametrize("shared", ["sqlite"], indirect=True)
def test_spark_engine_evolves_the_schema_as_the_default_engine(
    shared: tuple[Any, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spark, settings = shared
    files = {}
    for file_name, text in EVOLVING.items():
        files[file_name] = tmp_path / file_name
        files[file_name].write_text(text)
    catalog = load_catalog(settings)

    # A Spark job failing mid-write with an evolving file: main's readers keep the schema they had.
    land_spark(settings, str(files["a.csv"]), "raw.evolve", transport=InMemoryTransport(), spark=spark)
    monkeypatch.setenv(FAILPOINT, WRITE_FAULT)
    with pytest.raises(SparkLandingError):
        land_spark(settings, str(files["b.csv"]), "raw.evolve", transport=InMemoryTransport(), spark=spark)
    monkeypatch.delenv(FAILPOINT)
    t = catalog.load_table("raw.evolve")
    assert [f.name for f in t.schema().fields] == ["id", "alcohol", "name"] and t.scan().to_arrow().num_rows == 2
    quarantine.drop(settings, "raw.evolve", next(r for r in t.metadata.refs if r.startswith("quarantine-")))

    for file_name in ("b.csv", "c.csv"):
        result = land_spark(settings, str(files[file_name]), "raw.evolve", transport=(tr := InMemoryTransport()), spark=spark)
        audited = catalog.load_table("raw.evolve").snapshot_by_id(result.snapshot_id)
        assert audited is not None and audited.schema_id == catalog.load_table("raw.evolve").metadata.current_schema_id
        # Column lineage names the new columns too (the schema the files were written in).
        filled = tr.events[-1]["outputs"][0]["facets"]["columnLineage"]["fields"]
        assert set(filled) == set(EVOLVING[file_name].splitlines()[0].split(",")), filled
    for file_name in EVOLVING:
        land(settings, str(files[file_name]), "raw.evolve_arrow", transport=InMemoryTransport())

    spark_t, arrow_t = catalog.load_table("raw.evolve"), catalog.load_table("raw.evolve_arrow")
    described = [(f.name, str(f.field_type), f.required) for f in spark_t.schema().fields]
    assert described == [(f.name, str(f.field_type), f.required) for f in arrow_t.schema().fields]
    assert described == [("id", "long", False), ("alcohol", "double", False), ("name", "string", False), ("batch", "long", False), ("grade", "string", False)]
    rows = spark_t.scan().to_arrow().sort_by("id").to_pylist()
    assert rows == arrow_t.scan().to_arrow().sort_by("id").to_pylist()
    assert [(r["id"], r["alcohol"], r["batch"], r["grade"]) for r in rows] == [
        (1, 12.5, None, None), (2, 13.0, None, None), (3, 11.5, 7, None), (4, 12.25, 8, None), (5, 14.0, 9, "x"),
    ]
    # Spark reads the evolved table as Tidemark does.
    from lakehouse import spark as lspark

    seen = spark.table(lspark.table_name(settings, "raw.evolve")).orderBy("id").collect()
    assert [(r["id"], r["batch"], r["grade"]) for r in seen] == [(1, None, None), (2, None, None), (3, 7, None), (4, 8, None), (5, 9, "x")]

    # A type that cannot be widened: the same one-line refusal on both engines, nothing written.
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_TYPE)
    before = (spark_t.current_snapshot().snapshot_id, set(spark_t.metadata.refs), len(spark_t.metadata.schemas), spark_t.metadata.current_schema_id)
    tr = InMemoryTransport()
    with pytest.raises(SchemaMismatchError) as refused:
        land_spark(settings, str(bad), "raw.evolve", transport=tr, spark=spark)
    msg = str(refused.value)
    assert "column types differ and cannot be widened: alcohol (double in the table, string in the file)" in msg and "\n" not in msg
    with pytest.raises(SchemaMismatchError) as also:
        land(settings, str(bad), "raw.evolve_arrow", transport=InMemoryTransport())
    assert str(also.value).replace("raw.evolve_arrow", "raw.evolve") == msg
    t = catalog.load_table("raw.evolve")
    assert (t.current_snapshot().snapshot_id, set(t.metadata.refs), len(t.metadata.schemas), t.metadata.current_schema_id) == before
    assert [e["eventType"] for e in tr.events] == ["START", "FAIL"]


@pytest.mark.parametrize("shared", ["sqlite"], indirect=True)
def test_spark_engine_lands_an_s3_source(shared: tuple[Any, Settings], s3_server: str, s3_bucket: str, wine_csv: Path) -> None:
    """An s3:// file (moto's S3 API on loopback) is copied to local disk for Spark as it is checksummed, landed, and the copy removed."""
    import hashlib

    import boto3

    from ingest.sources import sha256_file
    from lakehouse.config import load_settings

    spark, local = shared
    creds = {"s3.endpoint": s3_server, "s3.access-key-id": "test", "s3.secret-access-key": "test", "s3.region": "us-east-1"}
    settings = load_settings(overrides={"catalog": creds})
    assert settings.catalog.name == local.catalog.name  # the catalog Spark was given
    client = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    client.put_object(Bucket=s3_bucket, Key="drop/wine.csv", Body=wine_csv.read_bytes())
    uri = f"s3://{s3_bucket}/drop/wine.csv"
    steps: list[str] = []
    result = land_spark(settings, uri, "raw.wine", transport=(tr := InMemoryTransport()), spark=spark, progress=steps.append)
    assert result.rows == 178 and not result.skipped and result.sha256 == sha256_file(wine_csv)
    assert any(line.startswith(f"copied {uri} to local disk for Spark") for line in steps), steps
    assert not any((settings.home / "tmp").iterdir())  # the local copy is gone
    t = load_catalog(settings).load_table("raw.wine")
    props = t.current_snapshot().summary.additional_properties
    assert props[SOURCE_PATH] == uri and props[ENGINE] == "spark" and t.scan().to_arrow().num_rows == 178
    assert tr.events[-1]["eventType"] == "COMPLETE" and tr.events[-1]["inputs"][0]["facets"]["version"]["datasetVersion"] == result.sha256
    # The same bytes from a local path are the same file: a no-op on either engine.
    assert land_spark(settings, str(wine_csv), "raw.wine", transport=InMemoryTransport(), spark=spark).skipped
    with pytest.raises(SourceError, match=rf"s3://{s3_bucket}/drop/nope.csv: no such file"):
        land_spark(settings, f"s3://{s3_bucket}/drop/nope.csv", "raw.wine", transport=InMemoryTransport(), spark=spark)

    # The object is replaced once it was checksummed (the landing's first progress line): Spark reads
    # the copy that one pass made, so the rows landed are the bytes the checksum names.
    first = b"id,v\n1,2\n"
    client.put_object(Bucket=s3_bucket, Key="drop/moving.csv", Body=first)

    def replace(_line: str) -> None:
        client.put_object(Bucket=s3_bucket, Key="drop/moving.csv", Body=b"id,v\n1,3\n")

    moved = land_spark(settings, f"s3://{s3_bucket}/drop/moving.csv", "raw.moving", transport=InMemoryTransport(), spark=spark, progress=replace)
    assert moved.sha256 == hashlib.sha256(first).hexdigest() and moved.rows == 1
    assert load_catalog(settings).load_table("raw.moving").scan().to_arrow().column("v").to_pylist() == [2]
    assert not any((settings.home / "tmp").iterdir())
