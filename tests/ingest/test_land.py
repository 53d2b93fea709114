"""Write-audit-publish: only validated rows reach main; bad input never damages a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.exceptions import GateFailedError, SourceError, SuiteError
from ingest.land import land
from lakehouse.catalog import load_catalog
from lakehouse.exceptions import InvalidTableNameError
from lakehouse.tables import SOURCE_SHA256
from lineage.transport import InMemoryTransport


@pytest.fixture
def local(tmp_path: Path):  # type: ignore[no-untyped-def]
    from lakehouse.config import load_settings

    return load_settings()


def _state(settings: Any, table: str = "raw.wine") -> tuple[int | None, set[str]]:
    catalog = load_catalog(settings)
    if not catalog.table_exists(tuple(table.split("."))):
        return None, set()
    t = catalog.load_table(table)
    snap = t.current_snapshot()
    return (snap.snapshot_id if snap else None), set(t.metadata.refs)


def test_landing_publishes_to_main_with_checksum_and_run_id(local: Any, wine_csv: Path) -> None:
    tr = InMemoryTransport()
    result = land(local, str(wine_csv), "raw.wine", transport=tr)
    t = load_catalog(local).load_table("raw.wine")
    snap = t.current_snapshot()
    assert snap.snapshot_id == result.snapshot_id
    props = snap.summary.additional_properties
    assert props[SOURCE_SHA256] == result.sha256 and props["tidemark.run-id"] == result.run_id
    assert set(t.metadata.refs) == {"main"}  # the audit branch is gone once published
    assert t.scan().to_arrow().num_rows == 178
    assert [e["eventType"] for e in tr.events] == ["START", "COMPLETE"]
    out = tr.events[-1]["outputs"][0]
    assert out["facets"]["version"]["datasetVersion"] == str(result.snapshot_id)
    assert len(out["facets"]["dataQualityAssertions"]["assertions"]) == 5
    assert tr.events[-1]["inputs"][0]["facets"]["version"]["datasetVersion"] == result.sha256


def test_relanding_the_same_file_is_a_noop_unless_forced(local: Any, wine_csv: Path) -> None:
    first = land(local, str(wine_csv), "raw.wine", transport=InMemoryTransport())
    tr = InMemoryTransport()
    again = land(local, str(wine_csv), "raw.wine", transport=tr)
    assert again.skipped and again.snapshot_id == first.snapshot_id and tr.events == []
    forced = land(local, str(wine_csv), "raw.wine", transport=InMemoryTransport(), force=True)
    assert forced.snapshot_id != first.snapshot_id
    assert load_catalog(local).load_table("raw.wine").scan().to_arrow().num_rows == 356


def test_failed_gate_leaves_main_untouched_and_quarantines(local: Any, wine_csv: Path, tmp_path: Path) -> None:
    land(local, str(wine_csv), "raw.wine", transport=InMemoryTransport())
    before, _ = _state(local)
    lines = wine_csv.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    # two rows with impossible alcohol values, one with an unknown class
    rows = [lines[1].replace(lines[1].split(",")[1], "99", 1), lines[2].replace(lines[2].split(",")[1], "0.5", 1)]
    rows.append(",".join(lines[3].split(",")[:-1] + ["7"]))
    bad.write_text("\n".join([lines[0], *rows]) + "\n")
    tr = InMemoryTransport()
    with pytest.raises(GateFailedError) as err:
        land(local, str(bad), "raw.wine", transport=tr)
    msg = str(err.value)
    assert "expect_column_values_to_be_between on alcohol (2 of 3 rows)" in msg
    assert "expect_column_values_to_be_in_set on target (1 of 3 rows)" in msg
    after, refs = _state(local)
    assert after == before
    quarantine = [r for r in refs if r.startswith("quarantine-")]
    assert len(quarantine) == 1 and not any(r.startswith("audit-") for r in refs)
    t = load_catalog(local).load_table("raw.wine")
    assert t.scan(snapshot_id=t.snapshot_by_name(quarantine[0]).snapshot_id).to_arrow().num_rows == 178 + 3
    assert tr.events[-1]["eventType"] == "FAIL"
    assert any(not a["success"] for a in tr.events[-1]["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"])


def test_new_nullable_column_evolves_the_schema(local: Any, tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("id,x\n1,10\n2,20\n")
    b = tmp_path / "b.csv"
    b.write_text("id,x,y\n3,30,hello\n")
    land(local, str(a), "raw.things", transport=InMemoryTransport())
    land(local, str(b), "raw.things", transport=InMemoryTransport())
    rows = load_catalog(local).load_table("raw.things").scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [{"id": 1, "x": 10, "y": None}, {"id": 2, "x": 20, "y": None}, {"id": 3, "x": 30, "y": "hello"}]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    def w(name: str, data: bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(data)
        return p

    good_pq = tmp_path / "good.parquet"
    pq.write_table(pa.table({"id": list(range(1000))}), good_pq)
    return {
        "missing": (tmp_path / "missing.csv", "no such file"),
        "empty": (w("empty.csv", b""), "the file is empty"),
        "header only": (w("header.csv", b"id,x\n"), "no data rows"),
        "ragged": (w("ragged.csv", b"id,x\n1,2\n3\n4,5\n"), "cannot read as csv"),
        "not utf-8": (w("latin1.csv", "id,name\n1,caf\xe9\n".encode("latin-1")), "not valid UTF-8"),
        "truncated parquet": (w("trunc.parquet", good_pq.read_bytes()[:200]), "cannot read as parquet"),
        "broken jsonl": (w("broken.jsonl", b'{"id": 1}\n{"id": \n{"id": 3}\n'), "cannot read as jsonl"),
        "unknown extension": (w("data.xyz", b"id\n1\n"), "cannot tell the format"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "empty", "header only", "ragged", "not utf-8", "truncated parquet", "broken jsonl", "unknown extension"],
)
def test_bad_input_is_refused_with_the_file_named_and_nothing_written(local: Any, wine_csv: Path, tmp_path: Path, case: str) -> None:
    land(local, str(wine_csv), "raw.wine", transport=InMemoryTransport())
    before = _state(local)
    path, message = _bad_inputs(tmp_path)[case]
    tr = InMemoryTransport()
    with pytest.raises(SourceError) as err:
        land(local, str(path), "raw.wine", transport=tr)
    assert path.name in str(err.value) and message in str(err.value)
    assert _state(local) == before
    assert tr.events == []


def test_bad_table_name_and_bad_suites(local: Any, wine_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidTableNameError):
        land(local, str(wine_csv), "wine", transport=InMemoryTransport())
    unparsable = tmp_path / "s1.yaml"
    unparsable.write_text("- expect_column_values_to_not_be_null: {column: [\n")
    with pytest.raises(SuiteError, match="does not parse as YAML"):
        land(local, str(wine_csv), "raw.wine", suite_file=str(unparsable), transport=InMemoryTransport())
    unknown = tmp_path / "s2.yaml"
    unknown.write_text("- expect_column_to_be_wonderful: {column: id}\n")
    with pytest.raises(SuiteError, match="expect_column_to_be_wonderful is not valid"):
        land(local, str(wine_csv), "raw.wine", suite_file=str(unknown), transport=InMemoryTransport())
    assert _state(local) == (None, set())


def test_table_without_suite_lands_with_warning_or_is_refused_when_strict(local: Any, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("id\n1\n")
    with pytest.raises(SuiteError, match="--strict"):
        land(local, str(f), "raw.nosuite", strict=True, transport=InMemoryTransport())
    result = land(local, str(f), "raw.nosuite", transport=InMemoryTransport())
    assert result.gate is None and "no validation suite for raw.nosuite" in result.warnings[0]
