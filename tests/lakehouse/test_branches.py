"""Write-audit-publish on real Iceberg tables (the test's SQLite catalog): rows reach main only
through `publish`, exactly as audited; a moved main gets the audited files re-applied; concurrent
publishes never overwrite each other; every failure leaves main unchanged."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from lakehouse import branches
from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lakehouse.exceptions import BranchError
from lakehouse.pyiceberg_compat import write_data_files
from lakehouse.tables import RUN_ID, TableName, ensure_table, load_table, summary_properties

NAME = TableName("raw", "wap")


def _rows(*ids: int) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    catalog = load_catalog(load_settings())
    table = ensure_table(catalog, NAME, _rows().schema)
    table.append(_rows(0))  # write-audit-publish branches from main: it needs a snapshot
    return catalog


def _files(catalog, *ids: int) -> list:  # type: ignore[no-untyped-def]
    """Data files written for these rows, not committed (as a landing writes them)."""
    table = load_table(catalog, NAME)
    return list(write_data_files(table.metadata, _rows(*ids), table.io))


def _ids(catalog) -> list[int]:  # type: ignore[no-untyped-def]
    return sorted(load_table(catalog, NAME).scan().to_arrow().column("id").to_pylist())


def _main(catalog) -> int:  # type: ignore[no-untyped-def]
    return load_table(catalog, NAME).current_snapshot().snapshot_id


def _append_to_main(catalog, *ids: int) -> int:  # type: ignore[no-untyped-def]
    table = load_table(catalog, NAME)
    table.append(_rows(*ids))
    return table.current_snapshot().snapshot_id


def test_write_commits_the_files_on_a_branch_from_main_and_main_does_not_change(catalog) -> None:  # type: ignore[no-untyped-def]
    base = _main(catalog)
    files = _files(catalog, 1, 2)
    audited = branches.write(catalog, NAME, "audit-1", files, {RUN_ID: "r1"})
    table = load_table(catalog, NAME)
    assert audited.parent_snapshot_id == base and _main(catalog) == base and _ids(catalog) == [0]
    assert branches.head(table, "audit-1").snapshot_id == audited.snapshot_id
    assert branches.added_files(table, audited) == {f.file_path for f in files}
    assert summary_properties(audited)[RUN_ID] == "r1"
    assert sorted(table.scan(snapshot_id=audited.snapshot_id).to_arrow().column("id").to_pylist()) == [0, 1, 2]


def test_publish_moves_main_to_the_audited_snapshot_and_removes_the_branch(catalog) -> None:  # type: ignore[no-untyped-def]
    audited = branches.write(catalog, NAME, "audit-1", _files(catalog, 1), {})
    published = branches.publish(catalog, NAME, "audit-1")
    assert published.snapshot.snapshot_id == audited.snapshot_id == _main(catalog) and published.reapplied == 0
    assert set(load_table(catalog, NAME).metadata.refs) == {"main"}
    assert _ids(catalog) == [0, 1]


def test_a_moved_main_gets_exactly_the_audited_files_reapplied_and_keeps_the_other_rows(catalog) -> None:  # type: ignore[no-untyped-def]
    files = _files(catalog, 1, 2)
    audited = branches.write(catalog, NAME, "audit-1", files, {RUN_ID: "r1"})
    other = _append_to_main(catalog, 3)  # another writer publishes first
    told = []
    published = branches.publish(catalog, NAME, "audit-1", on_reapply=lambda: told.append(1))
    table = load_table(catalog, NAME)
    snap = published.snapshot
    assert published.reapplied == 1 == len(told)
    assert snap.snapshot_id == _main(catalog) != audited.snapshot_id and snap.parent_snapshot_id == other
    assert branches.added_files(table, snap) == {f.file_path for f in files}  # the audited files, nothing else
    props = summary_properties(snap)
    assert props[RUN_ID] == "r1" and props["added-records"] == "2" and props["total-records"] == "4"
    assert _ids(catalog) == [0, 1, 2, 3] and set(table.metadata.refs) == {"main"}


def test_main_moving_again_during_a_reapply_is_seen_and_the_files_reapplied_again(catalog) -> None:  # type: ignore[no-untyped-def]
    branches.write(catalog, NAME, "audit-1", _files(catalog, 1), {})
    _append_to_main(catalog, 2)
    moves = iter([3, 4])

    def another_writer() -> None:  # commits to main after the publish read it
        if (n := next(moves, None)) is not None:
            _append_to_main(catalog, n)

    published = branches.publish(catalog, NAME, "audit-1", on_reapply=another_writer)
    assert published.reapplied == 3 and published.snapshot.snapshot_id == _main(catalog)
    assert _ids(catalog) == [0, 1, 2, 3, 4]


def test_a_publish_that_keeps_losing_gives_up_with_main_unchanged_by_it(catalog, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(branches, "PUBLISH_ATTEMPTS", 2)
    branches.write(catalog, NAME, "audit-1", _files(catalog, 1), {})
    _append_to_main(catalog, 2)
    ids = iter(range(10, 20))
    with pytest.raises(BranchError, match="main kept moving \\(2 attempts\\); nothing was published"):
        branches.publish(catalog, NAME, "audit-1", on_reapply=lambda: _append_to_main(catalog, next(ids)))
    assert 1 not in _ids(catalog)


def test_concurrent_publishes_of_branches_from_one_base_never_overwrite_each_other(catalog) -> None:  # type: ignore[no-untyped-def]
    """Real threads, each with its own catalog connection, publishing at the same moment: exactly one
    can move main from the common base; every other one finds main moved and re-applies."""
    n = 4
    for i in range(n):
        branches.write(catalog, NAME, f"audit-{i}", _files(catalog, 100 + i), {})
    start = threading.Barrier(n)
    results: dict[int, object] = {}

    def publish(i: int) -> None:
        own = load_catalog(load_settings())
        start.wait()
        try:
            results[i] = branches.publish(own, NAME, f"audit-{i}")
        except Exception as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(isinstance(r, branches.Published) for r in results.values()), results
    assert sum(r.reapplied == 0 for r in results.values()) <= 1  # type: ignore[attr-defined]
    assert sum(r.reapplied > 0 for r in results.values()) >= n - 1  # type: ignore[attr-defined]
    assert _ids(catalog) == [0, *range(100, 100 + n)]
    assert set(load_table(catalog, NAME).metadata.refs) == {"main"}


def test_publish_of_a_missing_branch_says_so(catalog) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BranchError, match="raw.wap has no branch audit-x: it was published or dropped already") as err:
        branches.publish(catalog, NAME, "audit-x")
    assert err.value.parameter == "branch"


def test_a_failed_write_leaves_no_branch(catalog) -> None:  # type: ignore[no-untyped-def]
    # pyiceberg computes added-records itself: a snapshot property of that name makes the commit fail.
    with pytest.raises(TypeError):
        branches.write(catalog, NAME, "audit-1", _files(catalog, 1), {"added-records": "1"})
    assert set(load_table(catalog, NAME).metadata.refs) == {"main"} and _ids(catalog) == [0]


def test_a_table_without_a_snapshot_cannot_be_branched() -> None:
    catalog = load_catalog(load_settings())
    ensure_table(catalog, TableName("raw", "empty"), _rows().schema)
    with pytest.raises(BranchError, match="raw.empty has no snapshot on main to branch from"):
        branches.create(catalog, TableName("raw", "empty"), "audit-1")


def test_rename_keeps_the_head_under_the_new_name_and_drop_removes_it(catalog) -> None:  # type: ignore[no-untyped-def]
    audited = branches.write(catalog, NAME, "audit-1", _files(catalog, 1), {})
    branches.rename(catalog, NAME, "audit-1", "quarantine-1")
    table = load_table(catalog, NAME)
    assert set(table.metadata.refs) == {"main", "quarantine-1"}
    assert branches.head(table, "quarantine-1").snapshot_id == audited.snapshot_id
    with pytest.raises(BranchError, match="has no branch audit-1"):
        branches.rename(catalog, NAME, "audit-1", "quarantine-2")
    assert branches.drop(catalog, NAME, "quarantine-1") is True
    assert branches.drop(catalog, NAME, "quarantine-1") is False
    assert set(load_table(catalog, NAME).metadata.refs) == {"main"} and _ids(catalog) == [0]


def _add_column(catalog, column: str) -> int:  # type: ignore[no-untyped-def]
    """A schema with `column` added, not current (as a landing bringing it adds it); its id."""
    from pyiceberg.types import LongType

    return branches.add_schema(load_table(catalog, NAME), lambda u: u.add_column(column, LongType(), required=False)).schema_id


def test_schema_current_is_current_for_the_block_only_and_refused_when_the_schema_moved(catalog) -> None:  # type: ignore[no-untyped-def]
    before = load_table(catalog, NAME).metadata.current_schema_id
    evolved = _add_column(catalog, "x")
    switched: list[int] = []
    with branches.schema_current(catalog, NAME, evolved, switching=switched.append):
        assert load_table(catalog, NAME).metadata.current_schema_id == evolved  # what a Spark write needs
        assert switched == [before]  # told before the switch, with the schema it replaced
        with branches.schema_current(catalog, NAME, evolved, switching=switched.append):
            pass  # already current: no switch, nothing told, nothing restored
        assert switched == [before] and load_table(catalog, NAME).metadata.current_schema_id == evolved
    assert load_table(catalog, NAME).metadata.current_schema_id == before
    with pytest.raises(RuntimeError, match="boom"), branches.schema_current(catalog, NAME, evolved):
        raise RuntimeError("boom")
    assert load_table(catalog, NAME).metadata.current_schema_id == before  # restored on a failure too

    # Another landing published column y since `evolved` was planned: making `evolved` current would
    # hide y from main's readers, so it is refused and nothing changes.
    other = _add_column(catalog, "y")
    branches.write(catalog, NAME, "audit-y", [], {RUN_ID: "y"}, schema_id=other)
    branches.publish(catalog, NAME, "audit-y")
    published = load_table(catalog, NAME).metadata.current_schema_id
    assert published == other
    with pytest.raises(BranchError, match="another landing changed the schema of raw.wap meanwhile; nothing was written"):
        with branches.schema_current(catalog, NAME, evolved, switching=switched.append):
            pass
    assert switched == [before]  # refused before any switch: nothing for recovery to restore
    assert load_table(catalog, NAME).metadata.current_schema_id == published


def test_restore_schema_leaves_a_schema_main_was_published_in(catalog) -> None:  # type: ignore[no-untyped-def]
    before = load_table(catalog, NAME).metadata.current_schema_id
    evolved = _add_column(catalog, "x")
    # A process died inside schema_current: `evolved` stays current; recovery restores the old one.
    cm = branches.schema_current(catalog, NAME, evolved)
    cm.__enter__()
    assert branches.restore_schema(catalog, NAME, evolved, before)
    assert load_table(catalog, NAME).metadata.current_schema_id == before
    assert not branches.restore_schema(catalog, NAME, evolved, before)  # nothing left to restore
    cm.__exit__(None, None, None)  # (the generator's own restore then finds nothing to do)

    # Another landing, planned while `evolved` was current, wrote in it and was published: main's
    # readers keep column x, whatever happens to the landing that made `evolved` current.
    cm = branches.schema_current(catalog, NAME, evolved)
    cm.__enter__()
    assert load_table(catalog, NAME).schema().schema_id == evolved  # what the other landing plans against
    branches.write(catalog, NAME, "audit-x", [], {RUN_ID: "x"}, schema_id=evolved)
    branches.publish(catalog, NAME, "audit-x")
    assert not branches.restore_schema(catalog, NAME, evolved, before)
    cm.__exit__(None, None, None)
    assert load_table(catalog, NAME).metadata.current_schema_id == evolved
