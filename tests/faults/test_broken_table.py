"""Fault: one table's current metadata file is deleted (issue 16, item 6).

Before, one missing `metadata.json` broke `tidemark sql` for every table, `models promote` of a model
that never read that table, and `ingest quarantine list` (a 31-line traceback). Now the broken table
is reported (which table, which file, the fix), every other table stays readable and writable, and
`tidemark catalog recover` points the broken one back at its newest readable metadata file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.faults.report import FaultReport
from tests.faults.test_catalog_identity import error_line
from tests.models.conftest import wine_part

pytestmark = pytest.mark.integration


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith("  [")]


def test_one_broken_table_is_reported_and_every_other_table_works(tmp_path: Path, settings: Any, fault_report: FaultReport) -> None:
    from lakehouse.catalog import load_catalog
    from lineage.consumer import consume
    from lineage.transport import KafkaTransport
    from models.jobs import get_job
    from models.train import train
    from tests.models.conftest import land

    tr = KafkaTransport(settings)
    try:
        land(settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", tr)
        version = train(settings, get_job("wine_classifier"), transport=tr).version.version
        side = tmp_path / "side.csv"
        side.write_text("id,v\n1,a\n2,b\n")
        land(settings, side, "raw.side", tr)
    finally:
        tr.close()
    consume(settings, once=True)
    bad = load_catalog(settings).load_table(("raw", "side")).metadata_location
    Path(bad.removeprefix("file://")).unlink()  # the fault
    before = {"tables": 2, "wine rows": 178}

    checks: dict[str, bool] = {}
    # sql: views for the healthy tables, one warning line for the broken one.
    proc = run_cli("sql", "SELECT count(*) AS n FROM raw.wine", "--output", "json", check=False)
    lines = _warnings(proc.stderr)
    checks["sql reads the healthy table"] = proc.returncode == 0 and json.loads(proc.stdout)[0]["n"] == 178
    checks["sql warns once, naming table and file"] = (
        len(lines) == 1 and "raw.side is broken" in lines[0] and bad in lines[0] and "tidemark catalog recover" in lines[0]
    )
    # Reading the broken table itself: the same cause, not "no such table".
    proc = run_cli("sql", "SELECT count(*) FROM raw.side", check=False)
    checks["sql on the broken table names it"] = proc.returncode == 1 and "raw.side is broken" in error_line("\n".join(_warnings(proc.stderr)[-1:]))
    # An unrelated model is promoted.
    proc = run_cli("models", "promote", "wine", str(version), "--alias", "production", check=False)
    checks["promote of an unrelated model"] = proc.returncode == 0 and "Traceback" not in proc.stderr
    # quarantine list covers the others, warns about the broken one.
    proc = run_cli("ingest", "quarantine", "list", check=False)
    checks["quarantine list"] = proc.returncode == 0 and len(_warnings(proc.stderr)) == 1 and "raw.side is broken" in proc.stderr
    # Writes: the healthy table takes a landing; the broken one refuses in one line.
    proc = run_cli("ingest", str(wine_part(tmp_path / "b.csv", 0, 10, id_offset=500)), "--table", "raw.wine", check=False)
    checks["ingest into a healthy table"] = proc.returncode == 0
    proc = run_cli("ingest", str(side), "--table", "raw.side", "--force", check=False)
    checks["ingest into the broken table is one line"] = proc.returncode == 1 and "raw.side is broken" in error_line(proc.stderr)

    # The fix the message names.
    repaired = json.loads(run_cli("catalog", "recover", "--output", "json").stdout)
    side_row = next(t for t in repaired["tables"] if t["table"] == "raw.side")
    checks["recover repairs it"] = side_row["action"] == "repaired"
    proc = run_cli("sql", "SELECT (SELECT count(*) FROM raw.wine) AS wine, (SELECT count(*) FROM raw.side) AS side", "--output", "json", check=False)
    after_rows = json.loads(proc.stdout)[0] if proc.returncode == 0 else {}
    checks["everything readable after"] = after_rows.get("wine") == 188 and proc.stderr.strip() == ""
    after = {"tables": 2, "wine rows": after_rows.get("wine"), "side rows": after_rows.get("side")}
    held = all(checks.values())
    fault_report.record(
        "storage", "current metadata.json of one table deleted", trials=1, held=held, before=before, after=after,
        note="other tables read, written, promoted; one warning per broken table; `catalog recover` repaired it",
    )
    assert held, checks
