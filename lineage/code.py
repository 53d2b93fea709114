"""Who ran, with what: code identity (git commit, dirty flag, source hash), environment, Airflow parent."""

from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from lineage import events as ev

KEY_PACKAGES = ("pyiceberg", "pyarrow", "pandas", "numpy", "scikit-learn", "duckdb", "kafka-python", "great-expectations")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_identity(obj: Any = None) -> dict[str, Any]:
    """Git commit and dirty flag of the repository holding `obj`'s source (else the working
    directory), and the sha256 of `obj`'s module source when there is one."""
    source_hash = None
    where = Path.cwd()
    entry = None
    if obj is not None:
        module = inspect.getmodule(obj) or (obj if inspect.ismodule(obj) else None)
        if module is not None:
            entry = module.__name__ + (f":{obj.__qualname__}" if hasattr(obj, "__qualname__") and not inspect.ismodule(obj) else "")
            try:
                source_hash = hashlib.sha256(inspect.getsource(module).encode()).hexdigest()
                where = Path(inspect.getfile(module)).resolve().parent
            except (OSError, TypeError):
                pass
    commit = _git(where, "rev-parse", "HEAD")
    dirty = None
    if commit is not None:
        status = _git(where, "status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {"entryPoint": entry, "gitCommit": commit, "gitDirty": dirty, "sourceSha256": source_hash}


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    packages: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"python": sys.version.split()[0], "platform": sys.platform, "packages": packages}


def airflow_parent(producer: str, environ: Any = None) -> dict[str, Any] | None:
    """The `parent` facet for a run inside an Airflow task (from the AIRFLOW_CTX_* variables).

    The task's run id is derived from DAG, task, DAG run and try number, so every event of one
    task try points at the same parent, and the DAG run is the root.
    """
    env = os.environ if environ is None else environ
    dag_id, task_id, dag_run = env.get("AIRFLOW_CTX_DAG_ID"), env.get("AIRFLOW_CTX_TASK_ID"), env.get("AIRFLOW_CTX_DAG_RUN_ID")
    if not (dag_id and task_id and dag_run):
        return None
    namespace = env.get("OPENLINEAGE_NAMESPACE", "airflow")
    try_number = env.get("AIRFLOW_CTX_TRY_NUMBER", "1")
    task_run = str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow/{dag_id}/{task_id}/{dag_run}/{try_number}"))
    root_run = str(uuid.uuid5(uuid.NAMESPACE_URL, f"airflow/{dag_id}/{dag_run}"))
    return ev.facet(
        producer,
        f"{ev.FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
        run={"runId": task_run},
        job={"namespace": namespace, "name": f"{dag_id}.{task_id}"},
        root={"run": {"runId": root_run}, "job": {"namespace": namespace, "name": dag_id}},
    )


def airflow_run(producer: str, environ: Any = None) -> dict[str, Any] | None:
    """Our `tidemark_airflow` run facet: the Airflow names a person looks for (DAG, DAG run, task, try).

    The parent facet holds only derived UUIDs; this one lets a trace say "made by DAG run
    scheduled__2026-11-26T00:00:00+00:00 of ingest_wine" and link to it in the Airflow UI.
    """
    env = os.environ if environ is None else environ
    dag_id, task_id, dag_run = env.get("AIRFLOW_CTX_DAG_ID"), env.get("AIRFLOW_CTX_TASK_ID"), env.get("AIRFLOW_CTX_DAG_RUN_ID")
    if not (dag_id and task_id and dag_run):
        return None
    return ev.facet(
        producer,
        f"{ev.TIDEMARK_FACETS}/AirflowRunFacet.json",
        dagId=dag_id,
        dagRunId=dag_run,
        taskId=task_id,
        tryNumber=int(env.get("AIRFLOW_CTX_TRY_NUMBER", "1") or 1),
        logicalDate=env.get("AIRFLOW_CTX_LOGICAL_DATE"),
    )
