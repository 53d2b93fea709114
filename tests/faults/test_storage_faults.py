"""Catalog and storage faults of issue 16, item 8: each is one line with its real cause.

- random bytes inside `catalog.db`: "catalog file ... is damaged", with the way back (restore, or
  move aside and `tidemark catalog recover`), instead of a hint to check `catalog.uri`;
- a deleted data file of a pinned snapshot: retrain, train, sql and drift name the table, the
  snapshot and the file;
- a full disk during an ingest (a real ENOSPC: a 8 MB tmpfs under TIDEMARK_HOME): the path that is
  full, and nothing published;
- `lineage graph -o /proc/x.svg`: the output path that cannot be written.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.faults.report import FaultReport
from tests.faults.test_catalog_identity import error_line

pytestmark = pytest.mark.integration


def _rows(table: str) -> int:
    return int(json.loads(run_cli("sql", f"SELECT count(*) AS n FROM {table}", "--output", "json").stdout)[0]["n"])


def test_random_bytes_inside_catalog_db(isolated_env: Path, tmp_path: Path, fault_report: FaultReport) -> None:
    part = tmp_path / "part.csv"
    part.write_text("id,v\n" + "".join(f"{i},{i}\n" for i in range(300)))
    run_cli("ingest", str(part), "--table", "raw.t")
    before = {"rows": _rows("raw.t")}
    db = isolated_env / "catalog.db"
    good = db.read_bytes()
    rng = random.Random(16)
    outcomes, answered = [], 0
    # The file header, the first page's b-tree header, and the starts of the next pages.
    offsets = [0, 100] + [page * 4096 for page in range(1, len(good) // 4096)]
    for offset in offsets:
        damaged = bytearray(good)
        damaged[offset : offset + 64] = bytes(rng.getrandbits(8) for _ in range(64))
        db.write_bytes(bytes(damaged))
        proc = run_cli("sql", "SELECT count(*) AS n FROM raw.t", "--output", "json", check=False)
        if proc.returncode == 0:  # damage where no live data sits: the answer must still be right
            outcomes.append(json.loads(proc.stdout)[0]["n"] == 300 and proc.stderr == "")
            answered += 1
        else:
            line = error_line(proc.stderr)
            outcomes.append(f"catalog file {db} is damaged" in line and "tidemark catalog recover" in line)

    # The way back the message names: move the file aside, recover from the warehouse.
    db.rename(db.with_suffix(".damaged"))
    run_cli("catalog", "recover")
    after = {"rows": _rows("raw.t"), "refused as damaged": len(outcomes) - answered, "answered right": answered}
    held = all(outcomes) and after["rows"] == before["rows"]
    fault_report.record(
        "catalog", "64 random bytes inside catalog.db (header, page 1, each page start)", trials=len(offsets), held=held,
        before=before, after=after, note="one line: `catalog file ... is damaged`, restore or move aside + `catalog recover`",
    )
    assert held, (outcomes, after)


def test_a_deleted_data_file_of_a_pinned_snapshot_is_named(kafka_env: str, wine_csv: Path, isolated_env: Path, fault_report: FaultReport) -> None:
    landed = json.loads(run_cli("ingest", str(wine_csv), "--table", "raw.wine", "--output", "json").stdout)
    run_cli("train", "wine_classifier")
    run_cli("lineage", "consume", "--once")
    snapshot = str(landed["snapshot_id"])

    # An output path that cannot be written: the path, not a traceback.
    proc = run_cli("lineage", "graph", "raw.wine", "-o", "/proc/x.svg", check=False)
    line = error_line(proc.stderr)
    graph_held = proc.returncode == 1 and "cannot write the graph to /proc/x.svg" in line
    fault_report.record(
        "storage", "`lineage graph -o /proc/x.svg` (unwritable output path)", trials=1, held=graph_held,
        before={"files": 0}, after={"files": int(Path("/proc/x.svg").exists())}, note=line.removeprefix("tidemark: error: ")[:90],
    )
    assert graph_held, proc.stderr

    data = sorted((isolated_env / "warehouse" / "raw" / "wine" / "data").glob("*.parquet"))
    victim = data[0]
    victim.unlink()  # the fault
    named = {}
    for argv in (
        ["retrain", "wine:1"],
        ["train", "wine_classifier"],
        ["sql", "SELECT count(*) FROM raw.wine"],
        ["models", "drift", "wine", "--check"],
    ):
        proc = run_cli(*argv, check=False)
        line = error_line(proc.stderr)
        named[argv[0] if argv[0] != "models" else "drift"] = (
            proc.returncode == 1 and "table raw.wine" in line and f"snapshot {snapshot}" in line and victim.name in line
        )
    versions = json.loads(run_cli("models", "list", "wine", "--output", "json").stdout)
    # Other tables still answer; no version was registered from the unreadable snapshot.
    proc = run_cli("sql", "SELECT count(*) AS n FROM lineage.events", "--output", "json", check=False)
    others = proc.returncode == 0 and "raw.wine" in proc.stderr and proc.stderr.count("\n") == 1
    held = all(named.values()) and others and len(versions) == 1
    fault_report.record(
        "storage", "data file of a pinned snapshot deleted (retrain, train, sql, drift)", trials=len(named), held=held,
        before={"versions": 1, "data files": len(data)}, after={"versions": len(versions), "data files": len(data) - 1},
        note="each: one line naming table, snapshot and file; other tables readable (one warning)",
    )
    assert held, (named, others, versions, proc.stderr)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MB file system (tmpfs): writes past its size fail with ENOSPC from the kernel."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command: a real full disk needs a small file system to fill")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): needs CAP_SYS_ADMIN; no full disk to test on")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _big_csv(tmp_path: Path) -> Path:
    """~20 MB of incompressible rows: more than the whole 8 MB file system holds."""
    rng = random.Random(28)
    big = tmp_path / "big.csv"
    with big.open("w") as fh:
        fh.write("id,v,s\n")
        for i in range(600_000):
            fh.write(f"{i + 300},{rng.random()},{rng.getrandbits(64):x}\n")
    return big


def _tables() -> list[str]:
    return [t["table"] for t in json.loads(run_cli("tables", "--output", "json").stdout)]


def test_disk_full_while_creating_a_new_table_leaves_no_table_behind(small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_report: FaultReport) -> None:
    """Creating a table and its first landing are one unit: a full disk during the first landing
    leaves no (empty) table, and the next landing creates it afresh."""
    home = small_disk / "home"
    monkeypatch.setenv("TIDEMARK_HOME", str(home))
    small = tmp_path / "small.csv"
    small.write_text("id,v,s\n" + "".join(f"{i},{i * 0.5},x{i}\n" for i in range(300)))
    run_cli("ingest", str(small), "--table", "raw.other")  # a table that must stay
    before = {"tables": _tables()}
    proc = run_cli("ingest", str(_big_csv(tmp_path)), "--table", "raw.fresh", check=False)
    line = error_line("\n".join(l for l in proc.stderr.splitlines() if not l.startswith("WARNING ")))
    named = proc.returncode == 1 and "no space left on the device holding" in line and "Traceback" not in proc.stderr
    left = [p for p in (home / "warehouse" / "raw" / "fresh").rglob("*") if p.is_file()]
    after = {"tables": _tables(), "files left": len(left), "free bytes": shutil.disk_usage(small_disk).free}
    again = run_cli("ingest", str(small), "--table", "raw.fresh", check=False)
    held = named and after["tables"] == before["tables"] and not left and again.returncode == 0 and _rows("raw.fresh") == 300
    fault_report.record(
        "storage", "disk full during the first landing of a new table", trials=1, held=held, before=before, after=after,
        note="one line naming the full device; no empty table left; the next landing creates it",
    )
    assert held, (proc.stderr, after, left, again.stderr)


def test_disk_full_during_an_ingest_names_the_full_path(small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_report: FaultReport) -> None:
    home = small_disk / "home"
    monkeypatch.setenv("TIDEMARK_HOME", str(home))
    small = tmp_path / "small.csv"
    small.write_text("id,v,s\n" + "".join(f"{i},{i * 0.5},x{i}\n" for i in range(300)))
    run_cli("ingest", str(small), "--table", "raw.t")
    before = {"rows": _rows("raw.t")}
    proc = run_cli("ingest", str(_big_csv(tmp_path)), "--table", "raw.t", check=False)
    line = error_line("\n".join(l for l in proc.stderr.splitlines() if not l.startswith("WARNING ")))
    data_dir = (home / "warehouse" / "raw" / "t" / "data").as_uri()
    named = proc.returncode == 1 and "no space left on the device holding" in line and data_dir in line and "Traceback" not in proc.stderr
    after = {"rows": _rows("raw.t"), "free bytes": shutil.disk_usage(small_disk).free}
    held = named and after["rows"] == before["rows"]
    fault_report.record(
        "storage", "disk full during an ingest (real ENOSPC: 8 MB tmpfs)", trials=1, held=held, before=before, after=after,
        note="one line naming the table's data folder on the full device; main unchanged",
    )
    assert held, (proc.stderr, after)


def test_disk_full_while_the_consumer_writes_lineage_files_names_the_path(small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer's own writer (lakehouse.datafiles) says the same as a landing."""
    import pyarrow as pa

    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lakehouse.datafiles import write_data_files
    from lakehouse.exceptions import StorageFullError
    from lakehouse.tables import TableName, ensure_table

    monkeypatch.setenv("TIDEMARK_HOME", str(small_disk / "home"))
    rng = random.Random(5)
    # 19 MB of random hex: at 4 bits per character it stays above 9 MB compressed, more than the disk.
    data = pa.table({"payload": [f"{rng.getrandbits(256):064x}" for _ in range(300_000)]})
    table = ensure_table(load_catalog(load_settings()), TableName.parse("lineage.events_x"), data.schema)
    with pytest.raises(StorageFullError) as full:
        write_data_files(table, data.cast(table.schema().as_arrow()), dictionary=())
    assert full.value.path.startswith(f"{table.location()}/data") and "no space left on the device holding" in str(full.value)
