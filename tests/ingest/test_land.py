"""Write-audit-publish: only validated rows reach main; bad input never damages a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.exceptions import GateFailedError, PublishError, SchemaMismatchError, SourceError, SuiteError
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
    with pytest.raises(SuiteError, match="pass suite_file \\(refused because strict is set\\)") as err:
        land(local, str(f), "raw.nosuite", strict=True, transport=InMemoryTransport())
    assert err.value.parameter == "suite_file"
    result = land(local, str(f), "raw.nosuite", transport=InMemoryTransport())
    assert result.gate is None and "no validation suite for raw.nosuite" in result.warnings[0]


# -- streaming, schema, lineage, Data Docs ---------------------------------------------------------


def _refs(settings: Any, table: str) -> set[str]:
    return _state(settings, table)[1]


def _warehouse_files(settings: Any) -> set[str]:
    from urllib.parse import urlparse

    root = Path(urlparse(settings.warehouse).path)
    return {str(p) for p in root.rglob("*.parquet")}


def test_a_landing_in_many_batches_validates_every_row_and_uniqueness_across_batches(local: Any, tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "- expect_column_values_to_be_unique: {column: id}\n"
        "- expect_column_values_to_be_between: {column: x, min_value: 0, max_value: 100}\n"
        "- expect_table_row_count_to_be_between: {min_value: 2500, max_value: 2500}\n"
    )
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"id": list(range(2500)), "x": [i % 100 for i in range(2500)]}), good, row_group_size=300)
    tr = InMemoryTransport()
    result = land(local, str(good), "raw.many", suite_file=str(suite), batch_rows=1000, transport=tr)
    assert result.rows == 2500 and result.gate is not None and result.gate.success
    assert result.data_files == 3  # one per batch of ~1000 rows
    assert load_catalog(local).load_table("raw.many").scan().to_arrow().num_rows == 2500

    # One duplicate id in each of two batches far apart, one bad x: each batch alone looks fine for ids.
    dup = tmp_path / "dup.parquet"
    ids = list(range(10_000, 12_500))
    ids[2400] = 10_005
    xs = [1] * 2500
    xs[1700] = 101
    pq.write_table(pa.table({"id": ids, "x": xs}), dup)
    with pytest.raises(GateFailedError) as err:
        land(local, str(dup), "raw.many", suite_file=str(suite), batch_rows=1000, transport=InMemoryTransport())
    failed = {o.expectation: o for o in err.value.result.failures()}
    assert failed["expect_column_values_to_be_unique"].unexpected_count == 2
    assert failed["expect_column_values_to_be_unique"].sample == [10_005]
    between = failed["expect_column_values_to_be_between"]
    assert between.unexpected_count == 1 and between.element_count == 2500
    assert between.rows == [{"id": 11_700, "x": 101}]
    assert "expect_table_row_count_to_be_between" not in failed
    assert any(r.startswith("quarantine-") for r in _refs(local, "raw.many"))
    # The report shows every expectation with the counts over the whole landing.
    page = Path(str(err.value).split("report: ", 1)[1].strip()).read_text()
    assert "values must be unique" in page and "values must be greater than or equal to" in page

    # A suite of uniqueness alone: GX runs on the first batch, the rest are checked by the merge.
    only_unique = tmp_path / "u.yaml"
    only_unique.write_text("- expect_column_values_to_be_unique: {column: id}\n")
    with pytest.raises(GateFailedError, match=r"expect_column_values_to_be_unique on id \(2 of 2500 rows\)"):
        land(local, str(dup), "raw.many", suite_file=str(only_unique), batch_rows=1000, transport=InMemoryTransport(), force=True)
    shuffled = tmp_path / "shuffled.parquet"
    pq.write_table(pa.table({"id": [(i * 7919) % 2500 + 20_000 for i in range(2500)], "x": [1] * 2500}), shuffled)
    assert land(local, str(shuffled), "raw.many", suite_file=str(only_unique), batch_rows=1000, transport=InMemoryTransport()).gate.success


def test_type_change_that_cannot_widen_or_missing_required_column_is_refused_and_nothing_written(local: Any, tmp_path: Path) -> None:
    first = tmp_path / "first.parquet"
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string()), pa.field("n", pa.int32())])
    pq.write_table(pa.table({"id": [1, 2], "name": ["a", "b"], "n": [1, 2]}, schema=schema), first)
    land(local, str(first), "raw.typed", transport=InMemoryTransport())
    before = _state(local, "raw.typed")
    files_before = _warehouse_files(local)

    changed = tmp_path / "changed.csv"
    changed.write_text("id,name,n\nx,a,1\n")
    with pytest.raises(SchemaMismatchError) as err:
        land(local, str(changed), "raw.typed", transport=InMemoryTransport())
    assert "id (long in the table, string in the file)" in str(err.value) and "changed.csv" in str(err.value)

    missing = tmp_path / "missing.csv"
    missing.write_text("name,n\nc,3\n")
    with pytest.raises(SchemaMismatchError, match=r"required column\(s\) missing from the file: id"):
        land(local, str(missing), "raw.typed", transport=InMemoryTransport())
    assert _state(local, "raw.typed") == before
    assert _warehouse_files(local) == files_before
    t = load_catalog(local).load_table("raw.typed")
    assert [f.name for f in t.schema().fields] == ["id", "name", "n"]

    # int -> long widens the table; an optional column may be absent; whole numbers fit a double.
    wider = tmp_path / "wider.parquet"
    pq.write_table(pa.table({"id": pa.array([3], pa.int64()), "n": pa.array([2**40], pa.int64())}), wider)
    land(local, str(wider), "raw.typed", transport=InMemoryTransport())
    t = load_catalog(local).load_table("raw.typed")
    assert str(t.schema().find_field("n").field_type) == "long"
    assert sorted(t.scan().to_arrow().column("n").to_pylist()) == [1, 2, 2**40]


def test_an_error_deep_in_the_file_leaves_no_table_branch_commit_or_file(local: Any, tmp_path: Path) -> None:
    from ingest import sources

    bad = tmp_path / "late.jsonl"
    # The broken line sits after the first parse block, so batches were already written when it shows.
    body = "".join(f'{{"id": {i}, "x": {i * 2}}}\n' for i in range(200_000))
    bad.write_text(body + '{"id": 1, "x": \n')
    assert bad.stat().st_size > sources.TEXT_BLOCK_BYTES // 4
    old = sources.TEXT_BLOCK_BYTES
    sources.TEXT_BLOCK_BYTES = 1 << 20
    try:
        tr = InMemoryTransport()
        with pytest.raises(SourceError, match=r"late.jsonl: cannot read as jsonl"):
            land(local, str(bad), "raw.late", batch_rows=50_000, transport=tr)
    finally:
        sources.TEXT_BLOCK_BYTES = old
    assert [e["eventType"] for e in tr.events] == ["START", "FAIL"]
    assert not load_catalog(local).table_exists(("raw", "late"))  # the table this landing created is gone
    assert _warehouse_files(local) == set()

    # Same into an existing table: main, refs and files unchanged.
    ok = tmp_path / "ok.jsonl"
    ok.write_text('{"id": 1, "x": 2}\n')
    land(local, str(ok), "raw.late", transport=InMemoryTransport())
    before, files = _state(local, "raw.late"), _warehouse_files(local)
    sources.TEXT_BLOCK_BYTES = 1 << 20
    try:
        with pytest.raises(SourceError):
            land(local, str(bad), "raw.late", batch_rows=50_000, transport=InMemoryTransport())
    finally:
        sources.TEXT_BLOCK_BYTES = old
    assert _state(local, "raw.late") == before and _warehouse_files(local) == files


def test_a_ragged_csv_row_deep_in_the_file_is_refused_before_anything_is_written(local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest import sources

    bad = tmp_path / "late.csv"
    bad.write_text("id,x\n" + "".join(f"{i},{i * 2}\n" for i in range(200_000)) + "1,2,3\n")
    monkeypatch.setattr(sources, "TEXT_BLOCK_BYTES", 1 << 20)
    tr = InMemoryTransport()
    with pytest.raises(SourceError, match=r"late.csv: cannot read as csv: CSV parse error"):
        land(local, str(bad), "raw.late", batch_rows=50_000, transport=tr)
    # The whole-file type pass reads every row before the landing starts: no run, no table, no file.
    assert tr.events == [] and not load_catalog(local).table_exists(("raw", "late")) and _warehouse_files(local) == set()


def test_parquet_and_jsonl_land_and_a_glob_lands_each_file_once(local: Any, tmp_path: Path) -> None:
    from ingest.several import land_all

    d = tmp_path / "drop"
    d.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "v": ["a", "b"]}), d / "a.parquet")
    pq.write_table(pa.table({"id": [3], "v": ["c"]}), d / "b.parquet")
    (d / "c.jsonl").write_text('{"id": 4, "v": "d"}\n{"id": 5, "v": "e", "w": 1.5}\n')
    results = land_all(local, str(d / "*.parquet"), "raw.multi", transport=InMemoryTransport())
    assert [Path(r.source).name for r in results] == ["a.parquet", "b.parquet"] and not any(r.skipped for r in results)
    land(local, str(d / "c.jsonl"), "raw.multi", transport=InMemoryTransport())
    again = land_all(local, str(d / "*.parquet"), "raw.multi", transport=InMemoryTransport())
    assert all(r.skipped for r in again)
    rows = load_catalog(local).load_table("raw.multi").scan().to_arrow().sort_by("id").to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5] and rows[-1]["w"] == 1.5
    with pytest.raises(SourceError, match="matches no file"):
        land_all(local, str(d / "*.csv"), "raw.multi", transport=InMemoryTransport())


def test_lineage_carries_the_gate_statistics_and_checksum_and_data_docs_are_written(local: Any, wine_csv: Path) -> None:
    tr = InMemoryTransport()
    result = land(local, str(wine_csv), "raw.wine", transport=tr)
    complete = tr.events[-1]
    out = complete["outputs"][0]
    assert out["outputFacets"]["outputStatistics"]["rowCount"] == 178
    assert out["outputFacets"]["outputStatistics"]["fileCount"] == result.data_files >= 1
    assertions = out["facets"]["dataQualityAssertions"]["assertions"]
    assert {"assertion": "expect_column_values_to_be_between", "success": True, "column": "alcohol"} in assertions
    assert out["facets"]["version"]["datasetVersion"] == str(result.snapshot_id)
    inp = complete["inputs"][0]
    assert inp["facets"]["tidemark_sourceFile"]["sha256"] == result.sha256
    assert result.data_docs is not None and Path(result.data_docs).is_file()
    assert Path(result.data_docs).is_relative_to(local.home / "data_docs")
    page = Path(result.data_docs).read_text()
    assert "alcohol" in page and "values must be unique" in page
    snap = load_catalog(local).load_table("raw.wine").current_snapshot()
    assert snap.summary.additional_properties["tidemark.gate.success"] == "true"


def test_sha256_is_over_the_exact_bytes(local: Any, tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "a.csv"
    f.write_bytes(b"id\r\n1\r\n2\r\n")
    result = land(local, str(f), "raw.bytes", transport=InMemoryTransport())
    assert result.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()


def _three_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A first file, one landing under test (2 rows), and another landing's (moving main meanwhile)."""
    a, b, c = (tmp_path / f"{n}.csv" for n in "abc")
    a.write_text("id\n1\n")
    b.write_text("id\n2\n3\n")
    c.write_text("id\n4\n")
    return a, b, c


def test_when_main_moves_before_publish_the_validated_files_are_reapplied_and_no_rows_lost(local: Any, tmp_path: Path) -> None:
    a, b, c = _three_files(tmp_path)
    land(local, str(a), "raw.race", transport=InMemoryTransport())
    moved = []

    def sneak_in(branch: str, snapshot_id: int) -> None:
        # Another landing publishes after ours committed its audit snapshot, before ours publishes: main moves.
        assert branch.startswith("audit-") and not moved
        moved.append(land(local, str(c), "raw.race", transport=InMemoryTransport()))

    told: list[str] = []
    result = land(local, str(b), "raw.race", transport=InMemoryTransport(), on_audited=sneak_in, progress=told.append)
    assert moved and result.reapplied == 1
    assert any("main moved during the landing" in m for m in told)
    t = load_catalog(local).load_table("raw.race")
    assert sorted(t.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3, 4]
    assert set(t.metadata.refs) == {"main"}
    snap = t.current_snapshot()
    assert snap.snapshot_id == result.snapshot_id and snap.parent_snapshot_id == moved[0].snapshot_id


def test_an_audited_landing_published_after_main_moved_gets_its_validated_files_reapplied(local: Any, tmp_path: Path) -> None:
    from ingest.staged import audit_verdict, publish_audited
    from lakehouse.tables import RUN_ID, SOURCE_SHA256

    a, b, c = _three_files(tmp_path)
    land(local, str(a), "raw.later", transport=InMemoryTransport())
    staged = land(local, str(b), "raw.later", transport=InMemoryTransport(), publish=False)
    verdict = audit_verdict(local, "raw.later", staged.audit_branch)
    assert verdict.success is None and verdict.rows == 2 and verdict.snapshot_id == staged.snapshot_id  # ungated
    other = land(local, str(c), "raw.later", transport=InMemoryTransport())  # main moves meanwhile
    tr = InMemoryTransport()
    published = publish_audited(local, "raw.later", staged.audit_branch, transport=tr)
    assert published.reapplied == 1 and published.run_id == staged.run_id and published.rows == 2
    t = load_catalog(local).load_table("raw.later")
    snap = t.current_snapshot()
    assert snap.snapshot_id == published.snapshot_id != staged.snapshot_id and snap.parent_snapshot_id == other.snapshot_id
    props = snap.summary.additional_properties
    assert props[SOURCE_SHA256] == staged.sha256 and props[RUN_ID] == staged.run_id and props["added-records"] == "2"
    assert sorted(t.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3, 4] and set(t.metadata.refs) == {"main"}
    complete = tr.events[-1]
    assert complete["job"]["name"] == "publish.raw.later"
    assert complete["inputs"][0]["facets"]["version"]["datasetVersion"] == str(staged.snapshot_id)
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == str(published.snapshot_id)
    with pytest.raises(PublishError, match=f"raw.later has no branch {staged.audit_branch}: it was published") as err:
        publish_audited(local, "raw.later", staged.audit_branch)
    assert err.value.parameter == "branch"


def test_a_failed_audited_landing_is_refused_by_publish_and_kept_by_quarantine(local: Any, tmp_path: Path) -> None:
    from ingest.staged import audit_verdict, publish_audited, quarantine_audited

    suite = tmp_path / "s.yaml"
    suite.write_text("- expect_column_values_to_be_between: {column: x, min_value: 0, max_value: 9}\n")
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("x\n1\n")
    bad.write_text("x\n50\n")
    land(local, str(good), "raw.held", suite_file=str(suite), transport=InMemoryTransport())
    before, _ = _state(local, "raw.held")
    staged = land(local, str(bad), "raw.held", suite_file=str(suite), transport=InMemoryTransport(), publish=False)
    verdict = audit_verdict(local, "raw.held", staged.audit_branch)
    assert verdict.success is False and "expect_column_values_to_be_between" in (verdict.failures or "")
    with pytest.raises(PublishError, match="the gate failed"):
        publish_audited(local, "raw.held", staged.audit_branch)
    kept = quarantine_audited(local, "raw.held", staged.audit_branch)
    assert kept == "quarantine-" + staged.run_id
    assert _state(local, "raw.held") == (before, {"main", kept})


def test_a_python_suite_gates_like_a_yaml_one(local: Any, tmp_path: Path) -> None:
    suite = tmp_path / "raw.py_suite.py"
    suite.write_text(
        "LIMIT = 10\n"
        "EXPECTATIONS = [\n"
        "    ('expect_column_values_to_be_between', {'column': 'x', 'min_value': 0, 'max_value': LIMIT}),\n"
        "    {'expect_column_values_to_not_be_null': {'column': 'x'}},\n"
        "]\n"
    )
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("x\n1\n2\n")
    bad.write_text("x\n11\n")
    assert land(local, str(good), "raw.py_suite", suite_file=str(suite), transport=InMemoryTransport()).gate.success
    with pytest.raises(GateFailedError, match="expect_column_values_to_be_between on x"):
        land(local, str(bad), "raw.py_suite", suite_file=str(suite), transport=InMemoryTransport())
    broken = tmp_path / "broken.py"
    broken.write_text("EXPECTATIONS = [1/0]\n")
    with pytest.raises(SuiteError, match="broken.py does not run as Python: ZeroDivisionError"):
        land(local, str(good), "raw.py_suite", suite_file=str(broken), transport=InMemoryTransport())


def test_a_file_that_changes_while_it_is_landed_is_refused(local: Any, tmp_path: Path) -> None:
    f = tmp_path / "growing.csv"
    f.write_text("id\n1\n2\n")

    def append_more(rows: int, done: float | None) -> None:
        # The file grows after its checksum was taken, while its rows are being written.
        with f.open("a") as fh:
            fh.write("3\n")

    suite = tmp_path / "s.yaml"
    suite.write_text("- expect_column_values_to_not_be_null: {column: id}\n")
    with pytest.raises(SourceError, match="growing.csv: the file changed while it was being landed"):
        land(local, str(f), "raw.growing", suite_file=str(suite), transport=InMemoryTransport(), advance=append_more)
    assert not load_catalog(local).table_exists(("raw", "growing"))


def _column(settings: Any, table: str, column: str) -> tuple[str, list[Any]]:
    t = load_catalog(settings).load_table(table)
    return str(t.schema().find_field(column).field_type), t.scan().to_arrow().sort_by("id").column(column).to_pylist()


def test_a_csv_column_that_turns_to_text_further_down_lands_as_text_with_a_warning(local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest import sources

    f = tmp_path / "drift.csv"
    f.write_text("id,n\n" + "".join(f"{i},{i}\n" for i in range(200_000)) + "200000,not-a-number\n")
    monkeypatch.setattr(sources, "TEXT_BLOCK_BYTES", 1 << 20)  # the text is 1.3 MB in: past the first block
    result = land(local, str(f), "raw.drift", batch_rows=50_000, transport=InMemoryTransport())
    assert result.rows == 200_001
    typ, values = _column(local, "raw.drift", "n")
    assert typ == "string" and values[:2] == ["0", "1"] and values[-1] == "not-a-number"  # every value, exactly
    assert any("column n of" in w and "'not-a-number'" in w and "lands as string" in w for w in result.warnings)
    # The same rows with the text in the first block give the same type: where it is does not matter.
    g = tmp_path / "early.csv"
    g.write_text("id,n\n0,not-a-number\n" + "".join(f"{i},{i}\n" for i in range(1, 1000)))
    land(local, str(g), "raw.early", transport=InMemoryTransport())
    assert _column(local, "raw.early", "n")[0] == "string"


def test_whole_numbers_beyond_int64_land_exactly_as_decimal_never_as_a_float(local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    from ingest import sources

    first = tmp_path / "big.csv"
    first.write_text("id,n\n1,99999999999999999999999999\n2,5\n")
    land(local, str(first), "raw.big", transport=InMemoryTransport())
    assert _column(local, "raw.big", "n") == ("decimal(38, 0)", [Decimal("99999999999999999999999999"), Decimal(5)])

    # Beyond int64 only further down, past the first block: the pass over the whole file widens the column.
    monkeypatch.setattr(sources, "TEXT_BLOCK_BYTES", 1 << 20)
    later = tmp_path / "later.csv"
    later.write_text("id,n,f\n" + "".join(f"{i},{i},{i}\n" for i in range(200_000)) + "200000,12345678901234567890123,2.5\n")
    result = land(local, str(later), "raw.later", batch_rows=50_000, transport=InMemoryTransport())
    typ, values = _column(local, "raw.later", "n")
    assert typ == "decimal(38, 0)" and values[-1] == Decimal("12345678901234567890123") and values[7] == Decimal(7)
    assert _column(local, "raw.later", "f")[0] == "double"  # whole numbers, then a fraction: a float, as pyarrow would
    assert sum("lands as" in w for w in result.warnings) == 2

    # A float column that also holds a whole number beyond int64 (first block, or further down): text, exactly.
    first_mixed = tmp_path / "mixed.csv"
    first_mixed.write_text("id,n\n1,1.5\n2,\n3,99999999999999999999999999\n")
    result = land(local, str(first_mixed), "raw.mixed", transport=InMemoryTransport())
    assert _column(local, "raw.mixed", "n") == ("string", ["1.5", "", "99999999999999999999999999"])
    assert any("fractions and whole numbers beyond 64 bits" in w for w in result.warnings)
    later_mixed = tmp_path / "later-mixed.csv"
    later_mixed.write_text("id,n\n" + "".join(f"{i},{i}.5\n" for i in range(200_000)) + "200000,12345678901234567890123\n")
    land(local, str(later_mixed), "raw.latermixed", batch_rows=50_000, transport=InMemoryTransport())
    typ, values = _column(local, "raw.latermixed", "n")
    assert typ == "string" and values[-1] == "12345678901234567890123" and values[1] == "1.5"
    # Empty cells in a column of big whole numbers are nulls, not a reason for a float.
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("id,n\n1,99999999999999999999999999\n2,\n3,NA\n")
    land(local, str(gaps), "raw.gaps", transport=InMemoryTransport())
    assert _column(local, "raw.gaps", "n") == ("decimal(38, 0)", [Decimal("99999999999999999999999999"), None, None])


@pytest.mark.parametrize("where", ["first block", "further down"])
def test_a_whole_number_beyond_38_digits_is_refused_naming_the_column(local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    from ingest import sources

    huge = "9" * 40
    f = tmp_path / "huge.csv"
    rows = [f"{i},{i}" for i in range(200_000 if where == "further down" else 3)]
    f.write_text("id,n\n" + (f"0,{huge}\n" if where == "first block" else "") + "\n".join(rows) + (f"\n9,{huge}\n" if where != "first block" else "\n"))
    monkeypatch.setattr(sources, "TEXT_BLOCK_BYTES", 1 << 20)
    tr = InMemoryTransport()
    with pytest.raises(SourceError, match=r"huge.csv: column n holds a whole number of more than 38 digits"):
        land(local, str(f), "raw.huge", transport=tr)
    assert tr.events == [] and not load_catalog(local).table_exists(("raw", "huge"))


def _schema_of(settings: Any, table: str) -> list[tuple[str, str]]:
    t = load_catalog(settings).load_table(table)
    return [(f.name, str(f.field_type)) for f in t.schema().fields]


def _duckdb_columns(settings: Any, table: str) -> list[str]:
    """The columns DuckDB reads at main's snapshot (it reads a snapshot in that snapshot's schema)."""
    from lakehouse.sql import connect, snapshot_sql

    t = load_catalog(settings).load_table(table)
    con = connect()
    try:
        sql = snapshot_sql(con, t, t.current_snapshot().snapshot_id)
        return [d[0] for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
    finally:
        con.close()


def test_a_refused_file_never_changes_the_schema_and_an_accepted_one_brings_its_column(local: Any, wine_csv: Path, tmp_path: Path) -> None:
    land(local, str(wine_csv), "raw.wine", transport=InMemoryTransport())
    schema_before, columns_before = _schema_of(local, "raw.wine"), _duckdb_columns(local, "raw.wine")
    header, first, *rest = wine_csv.read_text().splitlines()
    cells = first.split(",")
    cells[1] = "99"  # alcohol out of range: the gate refuses the file
    evil = tmp_path / "evil.csv"
    evil.write_text(f"{header},evil_col\n{','.join(cells)},666\n")
    with pytest.raises(GateFailedError):
        land(local, str(evil), "raw.wine", transport=InMemoryTransport())
    assert _schema_of(local, "raw.wine") == schema_before and _duckdb_columns(local, "raw.wine") == columns_before
    # The refused rows keep their column on the quarantine branch.
    t = load_catalog(local).load_table("raw.wine")
    quarantine = next(r for r in t.metadata.refs if r.startswith("quarantine-"))
    kept = t.scan(snapshot_id=t.snapshot_by_name(quarantine).snapshot_id).to_arrow()
    assert "evil_col" in kept.column_names and 666 in kept.column("evil_col").to_pylist()
    from ingest.quarantine import show

    assert show(local, "raw.wine", quarantine).sample_rows[0]["evil_col"] == 666

    good = tmp_path / "good.csv"
    good.write_text("\n".join([header, *[r.replace(r.split(",")[0], str(5000 + i), 1) for i, r in enumerate(rest[:3])]]) + "\n")
    land(local, str(good), "raw.wine", transport=InMemoryTransport())
    assert _schema_of(local, "raw.wine") == schema_before and "evil_col" not in _duckdb_columns(local, "raw.wine")

    accepted = tmp_path / "accepted.csv"
    accepted.write_text(f"{header},note\n{rest[5].replace(rest[5].split(',')[0], '9000', 1)},fine\n")
    tr = InMemoryTransport()
    land(local, str(accepted), "raw.wine", transport=tr)
    assert _schema_of(local, "raw.wine") == [*schema_before, ("note", "string")]
    assert "note" in tr.events[-1]["outputs"][0]["facets"]["columnLineage"]["fields"]  # lineage names the new column too
    assert _duckdb_columns(local, "raw.wine") == [*columns_before, "note"]
    notes = load_catalog(local).load_table("raw.wine").scan().to_arrow().column("note").to_pylist()
    assert notes.count("fine") == 1 and len(notes) == 178 + 3 + 1


def _land_b_while_a_is_audited(settings: Any, tmp_path: Path, table: str, base: str, a: str, b: str) -> Any:
    """Land `base`, then `a`; while `a` is audited (unpublished), land `b` all the way. `a`'s result."""
    files = {}
    for name, text in (("base", base), ("a", a), ("b", b)):
        files[name] = tmp_path / f"{table}-{name}.csv"
        files[name].write_text(text)
    land(settings, str(files["base"]), table, transport=InMemoryTransport())

    def other_landing_first(_branch: str, _snapshot: int) -> None:
        land(settings, str(files["b"]), table, transport=InMemoryTransport())

    return land(settings, str(files["a"]), table, transport=InMemoryTransport(), on_audited=other_landing_first)


def test_columns_added_by_two_landings_both_arrive_when_main_moved_before_a_publish(local: Any, tmp_path: Path) -> None:
    result = _land_b_while_a_is_audited(local, tmp_path, "raw.merge", "id,x\n1,10\n", "id,x,a\n2,20,aa\n", "id,x,b\n3,30,bb\n")
    assert result.reapplied >= 1
    assert _schema_of(local, "raw.merge") == [("id", "long"), ("x", "long"), ("b", "string"), ("a", "string")]
    rows = load_catalog(local).load_table("raw.merge").scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [
        {"id": 1, "x": 10, "b": None, "a": None},
        {"id": 2, "x": 20, "b": None, "a": "aa"},
        {"id": 3, "x": 30, "b": "bb", "a": None},
    ]
    assert "a" in _duckdb_columns(local, "raw.merge") and "b" in _duckdb_columns(local, "raw.merge")


def test_nested_parquet_columns_land_in_a_new_table_and_again_in_it(local: Any, tmp_path: Path) -> None:
    def nested(path: Path, first_id: int) -> Path:
        pq.write_table(
            pa.table({
                "id": [first_id, first_id + 1],
                "p": [{"x": 1, "y": "a"}, {"x": 2, "y": None}],
                "l": [[1, 2], []],
                "m": pa.array([[("k", 1.5)], None], pa.map_(pa.string(), pa.float64())),
            }),
            path,
        )
        return path

    land(local, str(nested(tmp_path / "n1.parquet", 1)), "raw.nested", transport=InMemoryTransport())
    land(local, str(nested(tmp_path / "n2.parquet", 3)), "raw.nested", transport=InMemoryTransport())
    rows = load_catalog(local).load_table("raw.nested").scan().to_arrow().sort_by("id").to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 3, 4]
    assert rows[0] == {"id": 1, "p": {"x": 1, "y": "a"}, "l": [1, 2], "m": [("k", 1.5)]}
    assert rows[3] == {"id": 4, "p": {"x": 2, "y": None}, "l": [], "m": None}
    assert _duckdb_columns(local, "raw.nested") == ["id", "p", "l", "m"]


def test_a_first_landing_refused_after_its_table_was_made_leaves_no_empty_table(local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest import schema as schemas

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise SchemaMismatchError("refused after the table was made")

    monkeypatch.setattr(schemas, "plan", refuse)  # the schema check fails right after the table was created
    f = tmp_path / "a.csv"
    f.write_text("id\n1\n")
    with pytest.raises(SchemaMismatchError):
        land(local, str(f), "raw.refused", transport=InMemoryTransport())
    assert not load_catalog(local).table_exists(("raw", "refused")) and _warehouse_files(local) == set()


def test_jsonl_whole_numbers_beyond_int64_land_as_decimal_and_beyond_38_digits_are_refused(local: Any, tmp_path: Path) -> None:
    from decimal import Decimal

    f = tmp_path / "big.jsonl"
    f.write_text('{"id": 1, "n": 99999999999999999999999999, "f": 1.5}\n{"id": 2, "n": 3, "f": 2}\n')
    land(local, str(f), "raw.bigjson", transport=InMemoryTransport())
    assert _column(local, "raw.bigjson", "n") == ("decimal(38, 0)", [Decimal("99999999999999999999999999"), Decimal(3)])
    assert _column(local, "raw.bigjson", "f") == ("double", [1.5, 2.0])  # fractions: a float field stays one
    huge = tmp_path / "huge.jsonl"
    huge.write_text('{"id": 1, "n": 5}\n{"id": 2, "n": ' + "9" * 41 + "}\n")
    with pytest.raises(SourceError, match="huge.jsonl: column n holds a whole number of more than 38 digits"):
        land(local, str(huge), "raw.hugejson", transport=InMemoryTransport())
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"id": 1, "n": 1.5}\n{"id": 2, "n": 99999999999999999999999999}\n')
    with pytest.raises(SourceError, match="mixed.jsonl: field n holds fractions and whole numbers beyond 64 bits"):
        land(local, str(mixed), "raw.mixedjson", transport=InMemoryTransport())
    assert not load_catalog(local).table_exists(("raw", "hugejson")) and not load_catalog(local).table_exists(("raw", "mixedjson"))


def test_land_all_stops_at_the_first_bad_file_naming_the_rest_or_keeps_going(local: Any, tmp_path: Path) -> None:
    from ingest.exceptions import LandingsFailedError
    from ingest.several import land_all

    d = tmp_path / "drop"
    d.mkdir()
    (d / "a.csv").write_text("id\n1\n")
    (d / "b.csv").write_bytes(b"")
    (d / "c.csv").write_text("id\n3\n")
    (d / "d.csv").write_bytes(b"id,id\n4,4\n")
    with pytest.raises(LandingsFailedError, match=r"b.csv: the file is empty; nothing to land; 2 later file\(s\) not tried: .*c.csv, .*d.csv") as stopped:
        land_all(local, str(d / "*.csv"), "raw.each", transport=InMemoryTransport())
    assert [o.outcome for o in stopped.value.outcomes] == ["landed", "failed", "not tried", "not tried"]
    with pytest.raises(LandingsFailedError, match=r"2 of 4 files failed to land into raw.each: .*b.csv, .*d.csv") as going:
        land_all(local, str(d / "*.csv"), "raw.each", keep_going=True, transport=InMemoryTransport())
    assert [o.outcome for o in going.value.outcomes] == ["skipped", "failed", "landed", "failed"]
    assert sorted(load_catalog(local).load_table("raw.each").scan().to_arrow().column("id").to_pylist()) == [1, 3]


def test_two_landings_bringing_the_same_new_column_both_publish_it_under_one_id(local: Any, tmp_path: Path) -> None:
    _land_b_while_a_is_audited(local, tmp_path, "raw.same", "id\n1\n", "id,extra\n2,aa\n", "id,extra\n3,bb\n")
    t = load_catalog(local).load_table("raw.same")
    assert [(f.name, str(f.field_type)) for f in t.schema().fields] == [("id", "long"), ("extra", "string")]
    rows = t.scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [{"id": 1, "extra": None}, {"id": 2, "extra": "aa"}, {"id": 3, "extra": "bb"}]
