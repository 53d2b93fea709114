"""Who ran, with what: code identity (git commit, dirty flag, source hash), environment, Airflow parent."""

from __future__ import annotations

import functools
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


# (directory, source hash) -> (what git's HEAD, reflog and index looked like, (commit, dirty)).
_GIT_STATE: dict[tuple[str, str | None], tuple[tuple[int, ...], tuple[str | None, bool | None]]] = {}
# directory -> its repository's git dir (None outside a repository); a directory does not move repository.
_GIT_DIR: dict[str, Path | None] = {}


def _git_marks(git_dir: Path) -> tuple[int, ...]:
    """What the files a commit, checkout, reset or `git add` rewrites look like. Inode and size
    too, not the mtime alone: file times tick coarsely, but git replaces HEAD and the index by
    renaming a new file over them (a new inode) and appends to the reflog (a new size)."""
    marks: list[int] = []
    for name in ("HEAD", "index", "logs/HEAD"):
        try:
            st = (git_dir / name).stat()
            marks += [st.st_ino, st.st_size, st.st_mtime_ns]
        except OSError:
            marks += [0, 0, 0]
    return tuple(marks)


def _git_state(where: Path, source_hash: str | None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository holding `where`, from one `git status` per change.

    Each training run used to spawn git twice (~7 ms). The answer is kept per process and asked
    again when HEAD, its reflog or the index changed, or the job's source changed; an edit to
    another tracked file, not yet staged, after the first run in this process is not seen (the
    source hash, not the dirty flag, decides "same code").
    """
    key = str(where)
    if key not in _GIT_DIR:
        found = _git(where, "rev-parse", "--absolute-git-dir")
        _GIT_DIR[key] = Path(found) if found else None
    git_dir = _GIT_DIR[key]
    if git_dir is None:
        return None, None
    marks = _git_marks(git_dir)
    cached = _GIT_STATE.get((key, source_hash))
    if cached is not None and cached[0] == marks:
        return cached[1]
    status = _git(where, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None, None
    lines = status.splitlines()
    commit = next((ln.split()[2] for ln in lines if ln.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":  # no commit yet: as `git rev-parse HEAD` failing
        state: tuple[str | None, bool | None] = (None, None)
    else:
        state = (commit, any(not ln.startswith("#") for ln in lines))
    # Marks read before asking git: a change during the call makes the next run ask again.
    _GIT_STATE[(key, source_hash)] = (marks, state)
    return state


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
    commit, dirty = _git_state(where, source_hash)
    return {"entryPoint": entry, "gitCommit": commit, "gitDirty": dirty, "sourceSha256": source_hash}


def environment() -> dict[str, Any]:
    """Python and the key packages' versions (a copy: callers may change it)."""
    env = _environment()
    return {**env, "packages": dict(env["packages"])}


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    # Reading eight packages' metadata costs ~6 ms a run; what is installed does not change under a
    # running interpreter's imports, so once per process is enough (as models.identity does).
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
