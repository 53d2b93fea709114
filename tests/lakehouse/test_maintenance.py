"""Orphan-file removal, small-file rewrite and snapshot expiry on real Iceberg tables.

The single-process tests use the embedded SQLite catalog; the concurrent one, real processes on a
PostgreSQL catalog in a database of its own (skipped, saying why, when PostgreSQL does not answer).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.maintenance import FREQUENT_COMMITS, MaintainedWriter, MaintenancePolicy, _list_files, referenced_files
from lakehouse.tables import TableName, ensure_table, load_table
from tests.conftest import run_cli

SCHEMA = pa.schema([("id", pa.int64()), ("writer", pa.int32())])


def _rows(ids: range, writer: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "writer": pa.array([writer] * len(ids), pa.int32())})


def _files(table) -> set[str]:  # type: ignore[no-untyped-def]
    return {key for key, _, _ in _list_files(table)}


def test_rewrite_and_expiry_keep_every_row_and_bound_the_history() -> None:
    catalog = load_catalog(load_settings())
    name = TableName("raw", "ticks")
    ensure_table(catalog, name, SCHEMA, properties=FREQUENT_COMMITS)
    writer = MaintainedWriter(catalog, name, MaintenancePolicy(every_commits=6, keep_snapshots_s=0, keep_last=2, min_files=4))
    for i in range(12):
        writer.append(_rows(range(i * 10, i * 10 + 10)))
    table = load_table(catalog, name)
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(120))
    assert writer.maintenance.rewritten_groups == 2 and writer.maintenance.expired_snapshots > 0
    assert len(table.snapshots()) <= 3  # the two kept plus the expiry's own
    assert len(list(table.scan().plan_files())) == 1


def test_remove_orphans_deletes_only_old_unreferenced_files() -> None:
    catalog = load_catalog(load_settings())
    name = TableName("raw", "ticks")
    table = ensure_table(catalog, name, SCHEMA)
    for i in range(3):
        table.append(_rows(range(i * 10, i * 10 + 10)))
    MaintainedWriter(catalog, name, MaintenancePolicy(keep_snapshots_s=0, keep_last=1, min_files=2)).run_maintenance()
    table = load_table(catalog, name)
    data_dir = Path(table.location().removeprefix("file://")) / "data"
    (data_dir / "crashed-writer.parquet").write_bytes(b"a commit that never happened")
    hour_ago = time.time() - 3600
    for path in Path(table.location().removeprefix("file://")).rglob("*"):
        os.utime(path, (hour_ago, hour_ago))
    (data_dir / "in-flight.parquet").write_bytes(b"a commit about to happen")

    dry = json.loads(run_cli("maintenance", "remove-orphans", "raw.ticks", "--older-than", "30m", "--dry-run", "--output", "json").stdout)
    assert any(p.endswith("/crashed-writer.parquet") for p in dry["orphans"])
    assert not any(p.endswith("/in-flight.parquet") for p in dry["orphans"]) and dry["too_young"] == 1
    assert len(dry["orphans"]) > 3  # the expired snapshots' manifests, lists and data files too
    assert dry["deleted"] is False and (data_dir / "crashed-writer.parquet").exists()

    done = json.loads(run_cli("maintenance", "remove-orphans", "raw.ticks", "--older-than", "30m", "--output", "json").stdout)
    assert sorted(done["orphans"]) == sorted(dry["orphans"]) and done["deleted"] is True
    table = load_table(catalog, name)
    assert _files(table) == referenced_files(table) | {str(data_dir / "in-flight.parquet")}
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(30))


def test_the_catalog_wide_sweeps_expire_and_remove_in_every_table_and_keep_tagged_snapshots() -> None:
    from datetime import timedelta

    from lakehouse.maintenance import expire_all_snapshots, remove_all_orphan_files
    from lakehouse.tables import manage_snapshots

    catalog = load_catalog(load_settings())
    for name in (TableName("raw", "a"), TableName("other", "b")):
        table = ensure_table(catalog, name, SCHEMA)
        for i in range(3):
            table.append(_rows(range(i * 10, i * 10 + 10)))
    a = load_table(catalog, TableName("raw", "a"))
    pinned = a.snapshots()[0].snapshot_id
    with manage_snapshots(a) as ms:
        ms.create_tag(pinned, "model/m/1")
    stray = Path(load_table(catalog, TableName("other", "b")).location().removeprefix("file://")) / "data" / "stray.parquet"
    stray.write_bytes(b"referenced by no snapshot")
    hour_ago = time.time() - 3600
    for name in ("raw.a", "other.b"):  # what expiry unreferences is then past the grace period
        for path in Path(load_table(catalog, TableName.parse(name)).location().removeprefix("file://")).rglob("*"):
            os.utime(path, (hour_ago, hour_ago))

    expired = expire_all_snapshots(catalog, timedelta(0))
    # Each table keeps main's head; raw.a keeps its tagged first snapshot as well.
    assert expired == {"raw.a": 1, "other.b": 2}
    assert load_table(catalog, TableName("raw", "a")).snapshot_by_id(pinned) is not None
    removed = remove_all_orphan_files(catalog, timedelta(minutes=30))
    assert removed["by_table"].keys() == {"raw.a", "other.b"} and not stray.exists()
    assert removed["removed"] == sum(removed["by_table"].values()) and removed["bytes"] > 0
    for name in (TableName("raw", "a"), TableName("other", "b")):
        assert sorted(load_table(catalog, name).scan().to_arrow().column("id").to_pylist()) == list(range(30))


def test_remove_orphans_bad_age_is_one_line() -> None:
    proc = run_cli("maintenance", "remove-orphans", "raw.ticks", "--older-than", "soon", check=False)
    assert proc.returncode == 1
    # The library names its parameter `older_than`; the CLI says it with the flag (reword).
    assert proc.stderr.strip().splitlines() == ["tidemark: error: --older-than 'soon' is not a duration; use a number and a unit, e.g. 90s, 30m, 6h or 3d"]


def test_a_bad_age_names_the_parameter() -> None:
    from lakehouse.exceptions import TidemarkError, reword
    from lakehouse.maintenance import parse_age

    assert parse_age("90s").total_seconds() == 90 and parse_age(" 1.5H ").total_seconds() == 5400
    with pytest.raises(TidemarkError) as err:
        parse_age("soon")
    assert str(err.value) == "older_than 'soon' is not a duration; use a number and a unit, e.g. 90s, 30m, 6h or 3d"
    assert err.value.parameter == "older_than"
    assert reword(err.value, {"older_than": "--older-than"}).startswith("--older-than 'soon' is not a duration")


WRITER = """
import json, logging, sys, time
import pyarrow as pa
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.maintenance import MaintainedWriter, MaintenancePolicy
from lakehouse.tables import TableName

rebased = []
logging.getLogger("pyiceberg.table").addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: rebased.append(1)})())
w, appends, start = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
# Writer 0 owns maintenance, as a maintenance job would: expiry keeps the metadata small, and the
# files of the snapshots it expires are orphans for the removal to find.
policy = MaintenancePolicy(keep_snapshots_s=0) if w == 0 else None
writer = MaintainedWriter(load_catalog(load_settings()), TableName("raw", "ticks"), policy)
time.sleep(max(0.0, start - time.time()))
for i in range(appends):
    ids = pa.array(range((w * appends + i) * 5, (w * appends + i) * 5 + 5), pa.int64())
    writer.append(pa.table({"id": ids, "writer": pa.array([w] * 5, pa.int32())}))
print(json.dumps({"writer": w, "rebased": len(rebased)}))
"""


@pytest.mark.integration
def test_three_processes_append_200_times_each_on_postgres(postgres_catalog_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK__CATALOG__URI", postgres_catalog_uri)
    writers, appends = 3, 200
    catalog = load_catalog(load_settings())
    ensure_table(catalog, TableName("raw", "ticks"), SCHEMA, properties=FREQUENT_COMMITS)
    start = time.time() + 4  # after every child has imported pyiceberg, so the appends overlap
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(w), str(appends), str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(writers)
    ]
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, f"a writer failed:\n{err[-3000:]}"
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    print(f"appends rebased by pyiceberg after a conflict, per writer: {[o['rebased'] for o in outcomes]}")

    table = load_table(catalog, TableName("raw", "ticks"))
    ids = table.scan().to_arrow().column("id").to_pylist()
    assert sorted(ids) == list(range(writers * appends * 5))  # every append landed, none twice

    # The writers are done, so no commit is in flight: no grace period is needed.
    removed = json.loads(run_cli("maintenance", "remove-orphans", "raw.ticks", "--older-than", "0s", "--output", "json").stdout)
    assert removed["orphans"] and removed["too_young"] == 0
    table = load_table(catalog, TableName("raw", "ticks"))
    assert _files(table) == referenced_files(table)
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(writers * appends * 5))
