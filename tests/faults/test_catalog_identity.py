"""Fault: the catalog is lost, emptied or swapped while the warehouse keeps its tables (issue 16, item 2).

Before catalog identities, an emptied `catalog.db` (or a fresh PostgreSQL database in `catalog.uri`)
was taken for a new catalog: a landing created a new table over the old one's location, and
`maintenance remove-orphans` listed the old table's files for deletion. Now every command refuses
the pair in one line naming `tidemark catalog recover`, nothing in the warehouse changes, and the
recovery brings back every table with every row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.faults.report import FaultReport

ROWS = 300


def error_line(stderr: str) -> str:
    """The one error line of a refused command; progress lines ("  [  0.6s] ...") may precede it,
    nothing else may: no traceback, no second line."""
    lines = [line for line in stderr.splitlines() if not line.startswith("  [")]
    assert len(lines) == 1 and lines[0].startswith("tidemark: error: "), stderr
    return lines[0]


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _rows(table: str) -> int:
    out = run_cli("sql", f"SELECT count(*) AS n FROM {table}", "--output", "json").stdout
    return int(json.loads(out)[0]["n"])


@pytest.fixture(params=["sqlite-emptied", "postgres-fresh-database", "foreign-catalog"])
def lost(request: pytest.FixtureRequest, isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """(kind, lose): `lose()` takes the catalog away the way this kind of fault does."""
    from benchmarks.common import postgres_database

    with ExitStack() as stack:
        if request.param == "postgres-fresh-database":
            try:
                first = stack.enter_context(postgres_database("tidemark_test"))
                second = stack.enter_context(postgres_database("tidemark_test"))
            except ConnectionError as exc:
                pytest.skip(f"{exc} to run this test")
            monkeypatch.setenv("TIDEMARK__CATALOG__URI", first)

            def lose() -> None:
                monkeypatch.setenv("TIDEMARK__CATALOG__URI", second)  # a new, empty database: "lost"
        elif request.param == "sqlite-emptied":

            def lose() -> None:
                (isolated_env / "catalog.db").write_bytes(b"")  # `: > $TIDEMARK_HOME/catalog.db`
        else:

            def lose() -> None:
                # Another deployment's catalog (its own identity and a table of its own), pointed at this warehouse.
                other = tmp_path / "other"
                run_cli("ingest", str(tmp_path / "part.csv"), "--table", "other.t", env={"TIDEMARK_HOME": str(other)})
                monkeypatch.setenv("TIDEMARK__CATALOG__URI", f"sqlite:///{other / 'catalog.db'}")
                monkeypatch.setenv("TIDEMARK__CATALOG__WAREHOUSE", (isolated_env / "warehouse").as_uri())

        yield request.param, lose


def test_a_lost_catalog_is_refused_then_recovered_with_every_row(lost: tuple[str, object], isolated_env: Path, tmp_path: Path, fault_report: FaultReport) -> None:
    kind, lose = lost
    part = tmp_path / "part.csv"
    part.write_text("id,v\n" + "".join(f"{i},{i * 0.5}\n" for i in range(ROWS)))
    run_cli("ingest", str(part), "--table", "probe.meta2")
    warehouse = isolated_env / "warehouse"
    before = {"rows": _rows("probe.meta2"), "files": len(_files(warehouse))}
    files = _files(warehouse)

    lose()  # type: ignore[operator]
    refused = []
    for argv in (
        ["ingest", str(part), "--table", "probe.meta2", "--force"],
        ["maintenance", "remove-orphans", "probe.meta2", "--older-than", "0s"],
        ["sql", "SELECT count(*) FROM probe.meta2"],
    ):
        proc = run_cli(*argv, check=False)
        line = error_line(proc.stderr)
        refused.append(proc.returncode == 1 and "tidemark catalog recover" in line)
    # Nothing was landed over the old table, nothing deleted as an "orphan".
    untouched = _files(warehouse) == files
    assert all(refused) and untouched, (refused, untouched)

    dry = json.loads(run_cli("catalog", "recover", "--dry-run", "--output", "json").stdout)
    # The lineage tables (made by the first `sql`) come back too.
    assert {t["action"] for t in dry["tables"]} == {"would register"} and "probe.meta2" in {t["table"] for t in dry["tables"]}
    recovered = run_cli("catalog", "recover")
    assert "registered         probe.meta2" in recovered.stdout
    orphans = json.loads(run_cli("maintenance", "remove-orphans", "probe.meta2", "--older-than", "0s", "--dry-run", "--output", "json").stdout)
    after = {"rows": _rows("probe.meta2"), "files": len(_files(warehouse)), "orphans listed": len(orphans["orphans"])}
    held = after["rows"] == before["rows"] and orphans["orphans"] == []
    # The recovered catalog takes new landings again.
    run_cli("ingest", str(part), "--table", "probe.meta2", "--force")
    assert _rows("probe.meta2") == 2 * ROWS
    fault_report.record(
        "catalog",
        {
            "sqlite-emptied": "`: > catalog.db` (SQLite catalog emptied)",
            "postgres-fresh-database": "catalog.uri pointed at a fresh PostgreSQL database",
            "foreign-catalog": "catalog.uri pointed at another deployment's catalog",
        }[kind],
        trials=1, held=held, before=before, after=after,
        note="ingest, remove-orphans and sql refused in one line naming `tidemark catalog recover`; warehouse untouched; recovered",
    )
    assert held, (before, after)
