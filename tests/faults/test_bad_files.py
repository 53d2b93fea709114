"""Bad files given to `tidemark ingest`: each kind is one line naming the file and the cause, exit 1, and
the table exactly as it was (rows, schema, snapshot, branches); or, where the cause can be undone
(compressed or UTF-16 text), the file lands as the text it holds. Each kind is a row of the fault table."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli
from tests.faults.report import FaultReport
from tidemark.cli import main

TABLE = "raw.files"
GOOD = "id,x\n1,10\n2,20\n"


def _state(table: str = TABLE) -> dict[str, Any]:
    """Rows, columns, main's snapshot and the branches of the table (a missing table: zeros)."""
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings

    catalog = load_catalog(load_settings())
    if not catalog.table_exists(tuple(table.split("."))):
        return {"rows": 0, "columns": "", "snapshot": None, "refs": ""}
    t = catalog.load_table(table)
    snap = t.current_snapshot()
    return {
        "rows": t.scan().to_arrow().num_rows,
        "columns": " ".join(f"{f.name}:{f.field_type}" for f in t.schema().fields),
        "snapshot": snap.snapshot_id if snap else None,
        "refs": " ".join(sorted(t.metadata.refs)),
    }


def _counts(state: dict[str, Any]) -> dict[str, Any]:
    return {"rows": state["rows"], "columns": len(state["columns"].split())}


def _error_line(stderr: str) -> str:
    # Progress lines ("  [ 0.6s] ...") are indented and warnings start with "warning:"; the error is one line.
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("  ", "warning:"))]
    assert len(lines) == 1 and lines[0].startswith("tidemark: error: "), stderr
    return lines[0]


def _bad_files(d: Path) -> dict[str, tuple[Path, str]]:
    """Each bad-file kind: the file, and what its one line must say."""
    d.mkdir(exist_ok=True)

    def w(name: str, data: bytes) -> Path:
        p = d / name
        p.write_bytes(data)
        return p

    loop = d / "loop.csv"
    os.symlink(d / "loop-back.csv", loop)
    os.symlink(loop, d / "loop-back.csv")
    folder = d / "folder.csv"
    folder.mkdir()
    good_parquet = d / "real.parquet"
    pq.write_table(pa.table({"id": [1]}), good_parquet)
    return {
        "duplicate column names in the header": (w("dup.csv", b"id,x,x\n3,30,31\n"), "dup.csv: the header repeats column name 'x' (2 times)"),
        "symlink loop": (loop, "loop.csv: a symbolic link loop"),
        "empty file": (w("empty.csv", b""), "empty.csv: the file is empty"),
        "binary garbage named .csv": (w("garbage.csv", os.urandom(6000)), "garbage.csv: is binary data, not csv text"),
        "a directory given as a file": (folder, "folder.csv: is a directory; name a file in it"),
        "truncated gzip named .csv": (w("cut.csv", gzip.compress(GOOD.encode() * 500)[:60]), "cut.csv: cannot read as csv: its gzip data is cut short or corrupt"),
        "Parquet named .csv": (w("pq.csv", good_parquet.read_bytes()), "pq.csv: is a Parquet file, not csv; name it .parquet or pass --format parquet"),
        "header only": (w("header.csv", b"id,x\n"), "header.csv: no data rows"),
    }


KINDS = [
    "duplicate column names in the header", "symlink loop", "empty file", "binary garbage named .csv",
    "a directory given as a file", "truncated gzip named .csv", "Parquet named .csv", "header only",
]


def _ingest(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(["ingest", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.integration
@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_file_is_one_line_with_its_cause_and_the_table_is_unchanged(
    kind: str, kafka_env: str, tmp_path: Path, capsys: Any, fault_report: FaultReport
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    assert _ingest(capsys, str(good), "--table", TABLE)[0] == 0
    path, says = _bad_files(tmp_path / "bad")[kind]

    before = _state()
    code, out, err = _ingest(capsys, str(path), "--table", TABLE)
    after = _state()
    line = _error_line(err)
    # Into a table that does not exist yet: none is made.
    code_new, _, err_new = _ingest(capsys, str(path), "--table", "raw.fresh")
    held = code == 1 and says in line and "Traceback" not in err and after == before
    held = held and code_new == 1 and says in _error_line(err_new) and _state("raw.fresh")["snapshot"] is None
    fault_report.record(
        "files", kind, trials=2, held=held, before=_counts(before), after=_counts(after),
        note=line.removeprefix("tidemark: error: ").replace(str(path.parent) + "/", "")[:110].replace("|", "/"),
    )
    assert code == 1 and says in line, err
    assert after == before
    assert code_new == 1 and _state("raw.fresh")["snapshot"] is None


def _utf16(text: str) -> bytes:
    return text.encode("utf-16")  # with a byte-order mark, as Windows tools write it


CONVERTIBLE: dict[str, tuple[str, Callable[[str], bytes], str]] = {
    "UTF-16 text (byte-order mark)": ("u16.csv", _utf16, "UTF-16"),
    "UTF-16-LE text without a byte-order mark": ("u16le.csv", lambda t: t.encode("utf-16-le"), "UTF-16-LE"),
    "gzip named .csv": ("gz.csv", lambda t: gzip.compress(t.encode()), "gzip-compressed"),
    "UTF-16 inside gzip, named .jsonl": ("gz16.jsonl", lambda t: gzip.compress(t.encode("utf-16")), "gzip-compressed, UTF-16"),
}


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(CONVERTIBLE))
def test_compressed_or_utf16_text_lands_as_the_text_it_holds(kind: str, kafka_env: str, tmp_path: Path, capsys: Any, fault_report: FaultReport) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    assert _ingest(capsys, str(good), "--table", TABLE)[0] == 0
    name, encode, described = CONVERTIBLE[kind]
    text = "id,x\n3,30\n4,40\n" if name.endswith(".csv") else '{"id": 3, "x": 30}\n{"id": 4, "x": 40}\n'
    path = tmp_path / name
    path.write_bytes(encode(text))
    before = _state()
    code, out, err = _ingest(capsys, str(path), "--table", TABLE, "--output", "json")
    after = _state()
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings

    rows = load_catalog(load_settings()).load_table(TABLE).scan().to_arrow().sort_by("id").to_pylist()
    held = code == 0 and json.loads(out)["rows"] == 2 and rows[2:] == [{"id": 3, "x": 30}, {"id": 4, "x": 40}]
    held = held and after["columns"] == before["columns"] and f"({described}, read as UTF-8 text)" in err
    fault_report.record("files", kind, trials=1, held=held, before=_counts(before), after=_counts(after), note=f"decoded: {described}")
    assert code == 0, err
    assert rows == [{"id": 1, "x": 10}, {"id": 2, "x": 20}, {"id": 3, "x": 30}, {"id": 4, "x": 40}]
    assert after["columns"] == before["columns"] and f"({described}, read as UTF-8 text)" in err


@pytest.mark.integration
def test_several_files_with_bad_ones_report_each_outcome_and_keep_going_lands_the_good_ones(
    kafka_env: str, tmp_path: Path, fault_report: FaultReport
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.csv").write_text("id,x\n1,10\n")
    (d / "b.csv").write_bytes(b"id,x,x\n2,20,21\n")  # duplicate header
    (d / "c.csv").write_text("id,x\n3,30\n")
    (d / "d.csv").write_bytes(os.urandom(3000))  # binary
    (d / "e.csv").write_text("id,x\n5,50\n")
    glob = str(d / "*.csv")

    # Default: the first failure stops the rest, which are named as not tried.
    stop = run_cli("ingest", glob, "--table", "raw.multi", check=False)
    line = _error_line(stop.stderr)
    stopped = _state("raw.multi")
    assert stop.returncode == 1 and "b.csv: the header repeats column name 'x'" in line
    assert "3 later file(s) not tried" in line and "c.csv" in line and "--keep-going tries every file" in line
    assert "landed 1 rows into raw.multi" in stop.stdout and "not tried: " + str(d / "e.csv") in stop.stdout
    assert stopped["rows"] == 1

    # --keep-going: every file tried; each file's outcome in text and JSON; exit 1 naming the failures.
    going = run_cli("ingest", glob, "--table", "raw.multi", "--keep-going", "--output", "json", check=False)
    outcomes = {Path(o["source"]).name: o for o in json.loads(going.stdout)}
    after = _state("raw.multi")
    line = _error_line(going.stderr)
    assert going.returncode == 1
    assert {n: o["outcome"] for n, o in outcomes.items()} == {"a.csv": "skipped", "b.csv": "failed", "c.csv": "landed", "d.csv": "failed", "e.csv": "landed"}
    assert "binary data" in outcomes["d.csv"]["error"] and outcomes["c.csv"]["rows"] == 1 and outcomes["b.csv"].get("snapshot_id") is None
    assert "2 of 5 files failed to land into raw.multi" in line and "b.csv" in line and "d.csv" in line
    assert after["rows"] == 3
    text = run_cli("ingest", glob, "--table", "raw.multi", "--keep-going", check=False)
    assert text.returncode == 1 and text.stdout.count("failed: ") == 2 and text.stdout.count("is already in raw.multi") == 3
    assert _state("raw.multi")["rows"] == 3
    fault_report.record(
        "files", "5 files, 2 bad (default, then --keep-going, then again)", trials=3,
        held=True, before=_counts(stopped), after=_counts(after),
        note="default stops at b.csv naming the 3 not tried; --keep-going lands c, e and reports each file",
    )
