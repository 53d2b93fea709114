"""Kill at every named step of ingest, train, promote and consume, five times each, then check.

Each job runs in a child process that SIGKILLs itself at the step (`TIDEMARK_FAILPOINT`,
`lakehouse.failpoints.STEPS`): no `finally`, no atexit, no flush. The next job's process finishes
what the dead one left in flight (recovery runs when a process first opens the outbox), then
`lineage.recovery.recover` (what `tidemark lineage recover` runs) and a consume, and the test
checks: main never half-published, no row lost or duplicated, every run exactly one terminal
event, version numbers never doubled, the promotion gate passes for recovered landings, the outbox
keeps nothing the store holds. Each step is a row of the fault table (area "kill").
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.failpoints import STEPS
from tests.conftest import shifted_wine
from tests.faults import kill_jobs
from tests.faults.report import FaultReport

TRIALS = 5
TABLE = "raw.wine"
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["tests.faults.kill_jobs", "tests.faults.kill_warm"])


def run_child(job: Callable[..., None], *args: Any, failpoint: str | None = None) -> int | None:
    env = {k: v for k, v in os.environ.items() if k.startswith("TIDEMARK")}
    if failpoint:
        env["TIDEMARK_FAILPOINT"] = failpoint
    proc = _CTX.Process(target=job, args=(env, *args))
    proc.start()
    proc.join(300)
    return proc.exitcode


def killed(job: Callable[..., None], *args: Any, at: str) -> None:
    code = run_child(job, *args, failpoint=at)
    assert code == -signal.SIGKILL, f"{job.__name__} was to die at {at}, exited {code}"


def finish(settings: Any) -> Any:
    """`tidemark lineage recover`, then drain the topic (the consume sends what waits first)."""
    from lineage.consumer import consume
    from lineage.recovery import recover

    report = recover(settings, reconcile_store=True)
    consume(settings, once=True)
    recover(settings, reconcile_store=True)  # acknowledge what a killed consumer stored
    return report


def events(settings: Any) -> dict[str, list[tuple[str, str]]]:
    """Run id -> [(event type, event id)] in the lineage store."""
    from lineage.query import connect

    out: dict[str, list[tuple[str, str]]] = {}
    for run_id, kind, eid in connect(settings).execute("SELECT run_id, event_type, event_id FROM lineage.events").fetchall():
        out.setdefault(run_id, []).append((kind, eid))
    return out


def one_terminal_each(runs: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Problems: a run with no, or more than one, terminal event; an event id stored twice."""
    problems = []
    ids = Counter(eid for evs in runs.values() for _, eid in evs)
    problems += [f"event {e} stored {n} times" for e, n in ids.items() if n > 1]
    for run_id, evs in runs.items():
        terminal = [k for k, _ in evs if k in ("COMPLETE", "FAIL", "ABORT")]
        if len(terminal) != 1:
            problems.append(f"run {run_id}: terminal events {terminal}")
    return problems


def counts(settings: Any) -> dict[str, int]:
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import load_table
    from lineage.outbox import Outbox
    from models.registry import Registry

    catalog = load_catalog(settings)
    rows = 0
    if catalog.table_exists(("raw", "wine")):
        t = load_table(catalog, TABLE)
        rows = t.scan().to_arrow().num_rows if t.current_snapshot() else 0
    box = Outbox(settings)
    return {
        "rows": rows,
        "events": sum(len(v) for v in events(settings).values()),
        "versions": len(Registry(settings).versions()),
        "aliases": len(Registry(settings).alias_history()),
        "outbox": box.pending() + box.unacknowledged(),
        "in_flight": len(box.runs_in_flight()),
    }


def main_table(settings: Any) -> Any:
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import load_table

    return load_table(load_catalog(settings), TABLE)


def gate_problems(settings: Any) -> list[str]:
    """The promotion gate's lineage check for a model trained on main as it is now."""
    from models.promotion import lineage_problems
    from models.registry import InputSnapshot, ModelVersion

    snap = main_table(settings).current_snapshot()
    mv = ModelVersion("probe", 1, "r", "j", "e", "a", "s", {}, [InputSnapshot(TABLE, snap.snapshot_id)], {}, created_at=None)  # type: ignore[arg-type]
    return lineage_problems(settings, mv)


def record(report: FaultReport, command: str, step: str, before: dict[str, int], after: dict[str, int], problems: list[str], held_note: str) -> None:
    """One row of the fault table per step (area "kill"), and the test's verdict."""
    held = not problems
    report.record(
        "kill", f"`{command}` SIGKILLed at step `{step}`", trials=TRIALS, held=held, before=before, after=after,
        note="; ".join(problems[:3]) or held_note,
    )
    assert held, problems


def test_kill_ingest_at_every_step(settings: Any, wine_csv: Path, fault_report: FaultReport) -> None:
    assert run_child(kill_jobs.land, str(shifted_wine(wine_csv, 0.0, first_id=1_000_000, name="base.csv")), TABLE) == 0
    finish(settings)
    n = 0
    for step in STEPS["ingest"]:
        before = counts(settings)
        files = []
        for _ in range(TRIALS):
            n += 1
            files.append(shifted_wine(wine_csv, 0.0, first_id=n * 1000, name=f"kill-{n}.csv"))
            killed(kill_jobs.land, str(files[-1]), TABLE, at=f"ingest.{step}")
        finish(settings)
        after_kills = counts(settings)  # every run finished, the outbox acknowledged
        table = main_table(settings)
        ids = table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist()
        problems = one_terminal_each(events(settings))
        problems += [f"id {i} twice on main" for i, c in Counter(ids).items() if c > 1]
        on_main = set(ids)
        present = {f.name: sum(1 for i in _ids(f) if i in on_main) for f in files}
        published = sum(1 for v in present.values() if v == 178)
        halves = [name for name, v in present.items() if 0 < v < 178]
        problems += [f"{h} half on main" for h in halves]
        stray = [r for r in table.metadata.refs if r.startswith(("audit-", "quarantine-"))]
        problems += [f"stray branch {r}" for r in stray]
        expected = TRIALS if step in ("published", "emitted") else 0
        if published != expected:
            problems.append(f"{published} of {TRIALS} landings on main after kills at {step}, expected {expected}")
        problems += gate_problems(settings)
        if after_kills["in_flight"] or after_kills["outbox"]:
            problems.append(f"left over: {after_kills}")
        problems += [f"uncommitted data file {p}" for p in _uncommitted(settings, TABLE)]
        if not expected:
            # Nothing lost for good: a file whose landing died before its publish lands on a second try.
            for f in files:
                assert run_child(kill_jobs.land, str(f), TABLE) == 0
            finish(settings)
            problems += one_terminal_each(events(settings)) + gate_problems(settings)
        after = counts(settings)
        if after["rows"] != before["rows"] + TRIALS * 178:
            problems.append(f"rows {before['rows']} -> {after['rows']}, expected +{TRIALS * 178}")
        record(fault_report, "tidemark ingest", step, before, after, problems, (f"all {published} published, each recovered as COMPLETE with its snapshot; gate passes" if expected
                else "none on main; each run FAIL interrupted, no stray branch; every file landed on retry"))


def _ids(path: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:] if line]


def test_kill_train_and_promote_at_every_step(settings: Any, wine_csv: Path, fault_report: FaultReport) -> None:
    from lakehouse.catalog import load_catalog
    from models import artifacts, pinning
    from models.registry import Registry

    assert run_child(kill_jobs.land, str(wine_csv), TABLE) == 0
    finish(settings)
    for step in STEPS["train"]:
        before = counts(settings)
        for _ in range(TRIALS):
            killed(kill_jobs.train, "wine_classifier", at=f"train.{step}")
        finish(settings)
        after = counts(settings)
        registry = Registry(settings)
        versions = registry.versions("wine")
        runs = events(settings)
        problems = one_terminal_each(runs)
        numbers = [mv.version for mv in versions]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"version numbers {numbers}")
        expected = 0 if step in ("start", "written") else TRIALS
        if after["versions"] - before["versions"] != expected:
            problems.append(f"{after['versions'] - before['versions']} versions registered, expected {expected}")
        tags = pinning.pins(load_catalog(settings), TABLE)
        for mv in versions:
            if "COMPLETE" not in {k for k, _ in runs.get(mv.run_id, [])}:
                problems.append(f"version {mv.version}: no COMPLETE")
            if tags.get(pinning.tag_name("wine", mv.version)) != mv.inputs[0].snapshot_id:
                problems.append(f"version {mv.version}: not pinned")
            try:
                artifacts.get(settings, str(mv.card_uri))
            except Exception as exc:
                problems.append(f"version {mv.version}: no card ({exc.__class__.__name__})")
        if after["in_flight"] or after["outbox"]:
            problems.append(f"left over: {after}")
        record(fault_report, "tidemark train", step, before, after, problems, ("registered versions finished: card, pins, COMPLETE" if expected else "no version; FAIL interrupted"))

    # Promotions of version 1, each to an alias of its own, killed at each step.
    n = 0
    for step in STEPS["promote"]:
        before = counts(settings)
        aliases = []
        for _ in range(TRIALS):
            n += 1
            aliases.append(f"kill{n}")
            killed(kill_jobs.promote, "wine", 1, aliases[-1], at=f"promote.{step}")
        finish(settings)
        after = counts(settings)
        current = Registry(settings).current_aliases()
        moved = [a for a in aliases if current.get(("wine", a)) == 1]
        problems = one_terminal_each(events(settings))
        expected = 0 if step == "start" else TRIALS
        if len(moved) != expected or after["aliases"] - before["aliases"] != expected:
            problems.append(f"{len(moved)} aliases set, {after['aliases'] - before['aliases']} history rows; expected {expected}")
        if after["in_flight"] or after["outbox"]:
            problems.append(f"left over: {after}")
        record(fault_report, "tidemark models promote", step, before, after, problems, ("committed moves sent as COMPLETE" if expected else "no move; FAIL interrupted, no model dataset"))


def test_kill_consume_at_every_step(settings: Any, fault_report: FaultReport) -> None:
    from lineage import run as lineage_run
    from lineage.outbox import OutboxTransport

    for step in STEPS["consume"]:
        before = counts(settings)
        for trial in range(TRIALS):
            tr = OutboxTransport(settings, background=False)
            for i in range(2):
                with lineage_run(f"kill.consume.{trial}.{i}", settings=settings, transport=tr):
                    pass
            tr.close()
            killed(kill_jobs.consume, at=f"consume.{step}")
        finish(settings)
        after = counts(settings)
        problems = one_terminal_each(events(settings))
        if after["events"] - before["events"] != TRIALS * 4:
            problems.append(f"{after['events'] - before['events']} events stored, expected {TRIALS * 4}")
        if after["in_flight"] or after["outbox"]:
            problems.append(f"left over: {after}")
        record(fault_report, "tidemark lineage consume", step, before, after, problems, "every event stored once; the outbox acknowledged by the next consume or reconcile")


def _uncommitted(settings: Any, table: str) -> list[str]:
    """Data files under the table's folder that no snapshot (any branch or tag) references."""
    from lakehouse.catalog import load_catalog
    from lakehouse.maintenance import referenced_files
    from lakehouse.tables import load_table

    catalog = load_catalog(settings)
    if not catalog.table_exists(table):
        return sorted(str(p) for p in (settings.home / "warehouse").rglob(f"{table.replace('.', '/')}/data/**/*.parquet"))
    t = load_table(catalog, table)
    referenced = referenced_files(t)
    folder = Path(t.location().removeprefix("file://")) / "data"
    return sorted(str(p) for p in folder.rglob("*.parquet") if str(p) not in referenced)


def test_kill_at_written_leaves_no_uncommitted_file(settings: Any, wine_csv: Path) -> None:
    """A landing that dies natively after writing (no `except` runs) leaves data files no commit
    holds; recovery (`tidemark lineage recover`, or the next command's) deletes them, main unchanged,
    and drops a table the dead landing created."""
    from lakehouse.catalog import load_catalog

    table = "raw.written"
    assert run_child(kill_jobs.land, str(shifted_wine(wine_csv, 0.0, first_id=1, name="w-base.csv")), table) == 0
    finish(settings)
    before = main_table_of(settings, table)
    killed(kill_jobs.land, str(shifted_wine(wine_csv, 0.0, first_id=1000, name="w-1.csv")), table, at="ingest.written")
    assert _uncommitted(settings, table), "the kill at written was to leave data files behind"
    report = finish(settings)
    assert [e["event"] for e in report.failed] == ["FAIL"] and "uncommitted data file(s)" in report.failed[0]["note"], report.failed
    assert _uncommitted(settings, table) == []
    after = main_table_of(settings, table)
    assert after.current_snapshot().snapshot_id == before.current_snapshot().snapshot_id
    assert after.scan().to_arrow().num_rows == 178

    # The next landing's own start-up recovery does the same, and its rows are the only ones added.
    killed(kill_jobs.land, str(shifted_wine(wine_csv, 0.0, first_id=2000, name="w-2.csv")), table, at="ingest.written")
    assert _uncommitted(settings, table)
    assert run_child(kill_jobs.land, str(shifted_wine(wine_csv, 0.0, first_id=3000, name="w-3.csv")), table) == 0
    assert _uncommitted(settings, table) == []
    assert main_table_of(settings, table).scan().to_arrow().num_rows == 2 * 178
    finish(settings)

    # A table the dead landing created goes with its files.
    killed(kill_jobs.land, str(shifted_wine(wine_csv, 0.0, first_id=4000, name="w-new.csv")), "raw.fresh", at="ingest.written")
    assert load_catalog(settings).table_exists("raw.fresh") and _uncommitted(settings, "raw.fresh")
    report = finish(settings)
    assert [e["event"] for e in report.failed] == ["FAIL"] and report.failed[0]["note"].endswith("; the empty table it created dropped"), report.failed
    assert not load_catalog(settings).table_exists("raw.fresh")
    assert _uncommitted(settings, "raw.fresh") == []


def main_table_of(settings: Any, table: str) -> Any:
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import load_table

    return load_table(load_catalog(settings), table)
