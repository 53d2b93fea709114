"""The Airflow DAGs, run for real: `airflow dags test` on the embedded stack (SQLite catalog, local
broker, Airflow's SQLite metadata database), then the lineage store and the Airflow database checked."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli

DAGS = ROOT / "dags"
EXPECTED_DAGS = {
    "ingest_wine",
    "ingest_diabetes",
    "train_wine_classifier",
    "train_diabetes_regressor",
    "retrain_model",
    "lakehouse_maintenance",
    "lineage_consumer_health",
    "monitor_wine",
    "monitor_diabetes",
    "monitor_traffic_wine",
    "monitor_traffic_diabetes",
    "renew_wine",
    "renew_diabetes",
}


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `airflow db migrate` per session; each test starts from a copy (its own runs and assets)."""
    from lakehouse.config import load_settings
    from tidemark import airflow_env

    home = tmp_path_factory.mktemp("airflow-template")
    env = airflow_env.environ(load_settings(environ={"TIDEMARK_HOME": str(home)}))
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return Path(env["AIRFLOW_HOME"]) / "airflow.db"


@pytest.fixture
def airflow_home(settings: Any, migrated_airflow_db: Path) -> Path:
    home = settings.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_airflow_db, home / "airflow.db")
    run_cli("up")
    return home


def dags_test(dag_id: str, conf: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    args = ["airflow", "dags", "test", dag_id]
    if conf is not None:
        args += ["--conf", json.dumps(conf)]
    return run_cli(*args, check=False, timeout=300)


def task_states(airflow_home: Path, dag_id: str) -> dict[str, str]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = (SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (dag_id, dag_id),
        ).fetchall()
    return dict(rows)


def asset_events(airflow_home: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        rows = db.execute("SELECT a.uri, e.extra, e.source_dag_id, e.source_run_id FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id").fetchall()
    return [{"uri": u, "extra": json.loads(x or "{}"), "dag_id": d, "run_id": r} for u, x, d, r in rows]


def _queued(airflow_home: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        return db.execute("SELECT * FROM asset_dag_run_queue ORDER BY 1, 2").fetchall()


def test_every_dag_file_imports_without_errors_or_heavy_work() -> None:
    # A fresh interpreter, as the DAG processor parses (a BundleDagBag: the DAG folder on sys.path, so
    # DAG files import their helper module by its plain name): no import errors, and none of the heavy
    # libraries loaded at parse time (they load inside the tasks). The files parsed are the ones
    # Airflow's discovery finds: the DAG files, not their helper module (dags/.airflowignore).
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import BundleDagBag\n"
        "from airflow.utils.file import list_py_file_paths\n"
        f"bag = BundleDagBag(dag_folder={str(DAGS)!r}, bundle_path={str(DAGS)!r})\n"
        "heavy = [m for m in ('pyiceberg', 'great_expectations', 'sklearn', 'duckdb', 'kafka', 'pyarrow', 'pandas') if m in sys.modules]\n"
        f"files = sorted(p.rsplit('/', 1)[-1] for p in list_py_file_paths({str(DAGS)!r}))\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'dags': sorted(bag.dag_ids), 'heavy': heavy, 'files': files}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert set(result["dags"]) == EXPECTED_DAGS
    assert result["heavy"] == []
    assert result["files"] == sorted(p.name for p in DAGS.glob("tidemark_*.py"))  # not dag_support.py


@pytest.mark.integration
def test_ingest_dag_then_training_dag_trains_on_the_published_snapshot(settings: Any, airflow_home: Path) -> None:
    from tidemark.demo import write_landing_files

    write_landing_files(settings.home)
    ingest = dags_test("ingest_wine")
    assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:]
    assert task_states(airflow_home, "ingest_wine") == {"land": "success", "validate": "success", "publish": "success", "quarantine": "skipped"}
    [event] = asset_events(airflow_home)
    assert event["uri"] == "x-iceberg://tidemark/raw.wine" and event["dag_id"] == "ingest_wine"
    published = event["extra"]["snapshot_id"]

    # Newer data reaches main outside the DAG: training must still use the asset event's snapshot.
    extra = settings.home / "other.csv"
    extra.write_text((settings.home / "landing" / "wine" / "wine.csv").read_text().replace("\n1,", "\n9001,", 1))
    run_cli("ingest", str(extra), "--table", "raw.wine")

    train = dags_test("train_wine_classifier")
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    run_cli("lineage", "consume", "--once")
    trace = json.loads(run_cli("trace", "wine", "--output", "json").stdout)
    [inp] = trace["inputs"]
    assert inp["snapshot_id"] == published
    assert trace["parent"]["airflow"]["dag_id"] == "train_wine_classifier"
    assert trace["parent"]["airflow"]["task_id"] == "train"
    ingest_parent = inp["ingest_run"]["parent"]["airflow"]
    assert (ingest_parent["dag_id"], ingest_parent["task_id"], ingest_parent["dag_run_id"]) == ("ingest_wine", "land", event["run_id"])
    assert inp["validation"] and all(a["success"] for a in inp["validation"])
    # Run by Airflow: the actor is the DAG's owner (Airflow's default owner, "airflow"), with the
    # user who triggered the DAG run, read from the task's context (`airflow dags test` names "dag_test").
    for actor in (trace["actor"], inp["ingest_run"]["actor"]):
        assert actor == {"kind": "airflow", "name": "airflow:airflow", "dag_owner": "airflow", "triggered_by": "dag_test"}, actor
    # The plugin's version page draws this trace: the training and ingest runs' boxes name their DAG run and task.
    from models.trace_graph import trace_graph

    boxes = {n.details["run_id"]: n.details.get("airflow") or {} for n in trace_graph(trace).nodes.values() if n.kind == "run"}
    assert (boxes[trace["run_id"]].get("dag_id"), boxes[trace["run_id"]].get("task_id")) == ("train_wine_classifier", "train")
    landed = boxes[inp["ingest_run"]["run_id"]]
    assert (landed.get("dag_id"), landed.get("task_id"), landed.get("dag_run_id")) == ("ingest_wine", "land", event["run_id"])


@pytest.mark.integration
def test_a_failing_gate_fails_the_run_leaves_main_alone_and_triggers_no_training(settings: Any, airflow_home: Path) -> None:
    from lakehouse.catalog import load_catalog
    from tidemark.demo import write_landing_files

    [wine, _] = write_landing_files(settings.home)
    assert dags_test("ingest_wine").returncode == 0
    queued_before = _queued(airflow_home)
    main_before = load_catalog(settings).load_table(("raw", "wine")).current_snapshot().snapshot_id
    bad = wine.with_name("wine-bad.csv")
    lines = wine.read_text().splitlines()
    header = lines[0].split(",")
    alcohol = header.index("alcohol")
    rows = []
    for i, line in enumerate(lines[1:], start=1000):
        cells = line.split(",")
        cells[0], cells[alcohol] = str(i), "99"  # outside the suite's 8..20
        rows.append(",".join(cells))
    bad.write_text("\n".join([lines[0], *rows]) + "\n")

    proc = dags_test("ingest_wine")
    states = task_states(airflow_home, "ingest_wine")
    assert states == {"land": "success", "validate": "success", "publish": "skipped", "quarantine": "failed"}, proc.stdout[-3000:]
    assert "validation gate failed for raw.wine" in proc.stdout + proc.stderr
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(state,)] = db.execute("SELECT state FROM dag_run WHERE dag_id = 'ingest_wine' ORDER BY id DESC LIMIT 1").fetchall()
    assert state == "failed"
    assert len(asset_events(airflow_home)) == 1  # only the first, good landing's
    assert _queued(airflow_home) == queued_before  # nothing new queued for the training DAG
    table = load_catalog(settings).load_table(("raw", "wine"))
    assert table.current_snapshot().snapshot_id == main_before
    assert any(ref.startswith("quarantine-") for ref in table.metadata.refs)


@pytest.mark.integration
def test_retrain_dag_with_an_unknown_model_fails_with_a_clear_message(settings: Any, airflow_home: Path) -> None:
    proc = dags_test("retrain_model", {"model": "no_such_model"})
    assert task_states(airflow_home, "retrain_model") == {"retrain": "failed"}
    assert "model 'no_such_model' is not registered; see `tidemark models list`" in proc.stdout + proc.stderr


@pytest.mark.integration
def test_maintenance_dag_expires_rewrites_removes_orphans_and_keeps_pinned_snapshots(settings: Any, airflow_home: Path, wine_csv: Path) -> None:
    import os
    import time as _time

    from lakehouse.catalog import load_catalog
    from lineage.consumer import consume
    from models.jobs import get_job
    from models.train import train

    run_cli("ingest", str(wine_csv), "--table", "raw.wine")
    run_cli("train", "wine_classifier")  # pins (tags) the snapshot it read
    pinned = load_catalog(settings).load_table(("raw", "wine")).current_snapshot().snapshot_id
    extra = wine_csv.with_name("more.csv")
    extra.write_text(wine_csv.read_text().replace("\n1,", "\n7001,", 1))
    run_cli("ingest", str(extra), "--table", "raw.wine", "--force")
    for _ in range(3):  # several small commits per lineage table: something to rewrite
        train(settings, get_job("wine_classifier"))
        consume(settings, once=True)
    table = load_catalog(settings).load_table(("raw", "wine"))
    stray = Path(table.location().removeprefix("file://")) / "data" / "stray.parquet"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"not referenced by any snapshot")
    old = _time.time() - 10 * 24 * 3600
    os.utime(stray, (old, old))

    proc = dags_test("lakehouse_maintenance", {"retention_s": 0, "orphan_grace_s": 3600})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert set(task_states(airflow_home, "lakehouse_maintenance").values()) == {"success"}
    with sqlite3.connect(airflow_home / "airflow.db") as db:
        [(value,)] = db.execute("SELECT value FROM xcom WHERE dag_id = 'lakehouse_maintenance' AND task_id = 'report' AND key = 'return_value'").fetchall()
    report = json.loads(value) if isinstance(value, str) else json.loads(bytes(value).decode())
    assert report["snapshots_expired"] > 0 and report["orphan_files_removed"] >= 1 and report["lineage_partitions_rewritten"] >= 1
    assert not stray.exists()
    table = load_catalog(settings).load_table(("raw", "wine"))
    assert table.snapshot_by_id(pinned) is not None  # tagged by the model version: expiry keeps it
    retrain = json.loads(run_cli("retrain", "wine:1", "--output", "json").stdout)
    assert retrain["identical"] is True


@pytest.mark.integration
def test_runs_that_find_nothing_new_skip_with_the_reason_and_bad_params_fail_in_one_line(settings: Any, airflow_home: Path) -> None:
    """No red run without a fault: a renewal before any landing, a landing of files already landed,
    a renewal with nothing new are skipped, saying why; a bad param fails naming the fix, no retry."""
    from tidemark.demo import write_landing_files

    early = dags_test("renew_wine")  # the weekly schedule, before any landing
    assert early.returncode == 0, early.stdout[-3000:]
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "skipped"}
    assert "nothing to renew wine on: no published snapshot of raw.wine yet" in early.stdout + early.stderr

    write_landing_files(settings.home)
    assert dags_test("ingest_wine").returncode == 0
    again = dags_test("ingest_wine")  # the hourly schedule: the same file is already in the table
    assert again.returncode == 0
    assert task_states(airflow_home, "ingest_wine") == {"land": "skipped", "validate": "skipped", "publish": "skipped", "quarantine": "skipped"}
    assert "nothing new in " in again.stdout + again.stderr and "already landed in raw.wine" in again.stdout + again.stderr
    assert len(asset_events(airflow_home)) == 1

    bad = dags_test("renew_wine", {"snapshots": {"raw.wine": "abc"}})
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "failed"}
    out = bad.stdout + bad.stderr
    assert "param `snapshots`: raw.wine='abc' is not a snapshot id (a whole number; `tidemark tables` lists them)" in out
    assert "AirflowFailException" in out  # failed for good: a retry cannot fix a param
    unknown = dags_test("renew_wine", {"snapshots": {"raw.nope": 1}})
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "failed"}
    assert "param `snapshots`: raw.nope is not an input of wine (inputs: raw.wine)" in unknown.stdout + unknown.stderr

    # Nothing holds production yet: skipped, saying so; then with a holder trained on this very data: nothing new.
    run_cli("train", "wine_classifier")
    run_cli("lineage", "consume", "--once")
    assert dags_test("renew_wine").returncode == 0
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "skipped"}
    run_cli("models", "promote", "wine", "1", "--alias", "production")
    same = dags_test("renew_wine")
    assert task_states(airflow_home, "renew_wine") == {"renew_on_new_data": "skipped"}
    assert "nothing new: wine@production (version 1) was trained on exactly" in same.stdout + same.stderr
    assert [v["version"] for v in json.loads(run_cli("models", "list", "wine", "--output", "json").stdout)] == [1]
