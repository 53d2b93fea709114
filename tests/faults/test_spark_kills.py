"""Kill `tidemark ingest --engine spark` at each named step from Spark's write to the lineage event.

The steps (`lakehouse.failpoints.STEPS["ingest-spark"]`) between the write and the publish:
`spark-written` (Spark committed the audit branch; the schema evolved for the file is still
current) and `audited` (the old schema current again), and between the publish and the event:
`published`. Each landing brings a column of its own, so every kill happens with a schema
evolution in flight. The child runs the landing with a local Spark of its own and SIGKILLs itself
at the step (its JVM ends with it); then recovery (`tidemark lineage recover`) and a consume, and
the checks of tests/faults/test_kills.py: main never half-published (right after the kill, before
any recovery), the run's lineage complete (one terminal event), no stray branch, the schema main's
readers see is main's, the file lands exactly once on a rerun, no row lost or duplicated.
One trial per step: each child starts a JVM of its own (tens of seconds on this loaded machine); the parent's landings use the worker's
shared Spark session (`spark_session` in tests/conftest.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ingest.sparkland import land_spark
from lakehouse.failpoints import STEPS
from tests.conftest import shifted_wine
from tests.faults import kill_jobs
from tests.faults.report import FaultReport
from tests.faults.test_kills import TABLE, counts, events, finish, gate_problems, killed, main_table, one_terminal_each

pytestmark = pytest.mark.integration

# From Spark's write to the lineage event (the steps before it are the default engine's, killed in test_kills).
KILLED_AT = STEPS["ingest-spark"][STEPS["ingest-spark"].index("spark-written") : STEPS["ingest-spark"].index("emitted")]
ROWS = 178  # the wine file's


def _with_column(path: Path, column: str, value: int) -> Path:
    """The file with one more column (a new one for the table: its landing evolves the schema)."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join([f"{lines[0]},{column}", *(f"{line},{value}" for line in lines[1:] if line)]) + "\n")
    return path


def _ids(path: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:] if line]


def test_kill_spark_ingest_between_write_and_event(spark: Any, settings: Any, wine_csv: Path, fault_report: FaultReport) -> None:
    from lakehouse import spark as lspark

    assert KILLED_AT == ("spark-written", "audited", "published")
    lspark.use_catalog(spark, settings)
    land_spark(settings, str(shifted_wine(wine_csv, 0.0, first_id=1_000_000, name="base.csv")), TABLE, spark=spark, data_docs=False)
    finish(settings)
    for n, step in enumerate(KILLED_AT, start=1):
        before = counts(settings)
        columns_before = [f.name for f in main_table(settings).schema().fields]
        column = f"batch_{n}"
        f = _with_column(shifted_wine(wine_csv, 0.0, first_id=n * 1000, name=f"kill-{n}.csv"), column, n)
        killed(kill_jobs.land_spark, str(f), TABLE, at=f"ingest.{step}")

        # Right after the kill, before any recovery: the file is all on main or not at all.
        problems: list[str] = []
        table = main_table(settings)
        on_main = Counter(table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())
        present = sum(1 for i in _ids(f) if on_main[i])
        published = step == "published"
        if present != (ROWS if published else 0):
            problems.append(f"{present} of {ROWS} rows of {f.name} on main after a kill at {step}")

        report = finish(settings)
        if (len(report.completed), len(report.failed)) != ((1, 0) if published else (0, 1)) or report.errors:
            problems.append(f"recovery after a kill at {step}: {len(report.completed)} COMPLETE, {len(report.failed)} FAIL, errors {report.errors}")
        table = main_table(settings)
        problems += one_terminal_each(events(settings))
        problems += [f"stray branch {r}" for r in table.metadata.refs if r.startswith(("audit-", "quarantine-"))]
        # The schema main's readers see: with the file's column once published, else as it was.
        columns = [c.name for c in table.schema().fields]
        expected_columns = [*columns_before, column] if published else columns_before
        if columns != expected_columns:
            problems.append(f"columns after recovery {columns}, expected {expected_columns}")
        problems += gate_problems(settings)
        after_recovery = counts(settings)
        if after_recovery["in_flight"] or after_recovery["outbox"]:
            problems.append(f"left over: {after_recovery}")

        # The rerun lands the file exactly once: a no-op where the killed landing was published.
        again = land_spark(settings, str(f), TABLE, spark=spark, data_docs=False)
        if again.skipped != published:
            problems.append(f"rerun after a kill at {step}: skipped={again.skipped}")
        finish(settings)
        problems += one_terminal_each(events(settings)) + gate_problems(settings)
        table = main_table(settings)
        ids = Counter(table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())
        problems += [f"id {i} {c} times on main" for i, c in ids.items() if c > 1]
        missing = [i for i in _ids(f) if not ids[i]]
        if missing:
            problems.append(f"{len(missing)} rows of {f.name} missing after the rerun")
        rows = table.scan(selected_fields=("id", column)).to_arrow().to_pylist()
        if {r[column] for r in rows if r["id"] in set(_ids(f))} != {n} or any(r[column] is not None for r in rows if r["id"] not in set(_ids(f))):
            problems.append(f"column {column} is not {n} on {f.name}'s rows and empty on the others")
        after = counts(settings)
        if after["rows"] != before["rows"] + ROWS:
            problems.append(f"rows {before['rows']} -> {after['rows']}, expected +{ROWS}")
        held = not problems
        fault_report.record(
            "kill", f"`tidemark ingest --engine spark` SIGKILLed at step `{step}` (a new column in flight)", trials=1, held=held,
            before=before, after=after,
            note="; ".join(problems[:3]) or (
                "published before the kill: recovered as COMPLETE with its snapshot, the new column on main; the rerun a no-op" if published
                else "main untouched, the old schema current again, FAIL interrupted, no stray branch; the rerun landed it once"
            ),
        )
        assert held, problems
