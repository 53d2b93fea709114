"""Who ran, with what: code identity (git commit, dirty flag, source hash), environment, Airflow parent.

The one place both identities are made, spelled and compared: the lineage SDK puts them in every
run's facets, and the model registry records and compares the same objects (models.train, models.retrain).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import inspect
import os
import platform
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lineage import events as ev


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# (directory, source hash) -> (what git's HEAD, reflog and index looked like, (commit, dirty)).
_GIT_STATE: dict[tuple[str, str | None], tuple[tuple[int, ...], tuple[str | None, bool | None]]] = {}
# directory -> its repository's (git dir, work tree root), None outside a repository: a directory
# does not move repository, so git is asked once per folder and process (not on every training).
_GIT_REPO: dict[str, tuple[Path, str] | None] = {}


def _repository(where: Path) -> tuple[Path, str] | None:
    """(git dir, work tree root) of the repository holding `where`, None outside one."""
    key = str(where)
    if key not in _GIT_REPO:
        found = (_git(where, "rev-parse", "--absolute-git-dir", "--show-toplevel") or "").splitlines()
        _GIT_REPO[key] = (Path(found[0]), found[1]) if len(found) == 2 else None
    return _GIT_REPO[key]


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
    repo = _repository(where)
    if repo is None:
        return None, None
    git_dir = repo[0]
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


@dataclass(frozen=True)
class CodeIdentity:
    """What code ran: the entry point (`module:qualname`), the sha256 of its module's source, and
    the git commit and dirty flag of the repository holding that module (None outside git).

    One identity with two spellings: the `tidemark_code` run facet's (camelCase, `facet_fields`)
    and the model registry's and model cards' (snake_case with `module`, `record`). `read` takes
    either, so every row and card ever stored compares with a new identity.
    """

    entry_point: str | None
    source_sha256: str | None
    git_commit: str | None
    git_dirty: bool | None

    @property
    def module(self) -> str | None:
        return self.entry_point.partition(":")[0] if self.entry_point else None

    def facet_fields(self) -> dict[str, Any]:
        """The `tidemark_code` run facet's fields."""
        return {"entryPoint": self.entry_point, "gitCommit": self.git_commit, "gitDirty": self.git_dirty, "sourceSha256": self.source_sha256}

    def record(self) -> dict[str, Any]:
        """As the registry row's `code` column and the model card store it."""
        return {
            "entry_point": self.entry_point,
            "module": self.module,
            "source_sha256": self.source_sha256,
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
        }

    @classmethod
    def read(cls, stored: Mapping[str, Any]) -> CodeIdentity:
        """From a run facet, a registry row or a model card (other keys are ignored)."""
        snake = "entry_point" in stored or "source_sha256" in stored or "git_commit" in stored
        names = ("entry_point", "source_sha256", "git_commit", "git_dirty") if snake else _FACET_NAMES
        return cls(*(stored.get(n) for n in names))


_FACET_NAMES = ("entryPoint", "sourceSha256", "gitCommit", "gitDirty")


def code_identity(obj: Any = None) -> CodeIdentity:
    """The identity of the code of `obj` (a function or a module): its entry point and module
    source hash, and git's answer for the repository holding that source (else the working
    directory's). Asked once per run by `lineage.run`; the registry records the same."""
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
    return CodeIdentity(entry_point=entry, source_sha256=source_hash, git_commit=commit, git_dirty=dirty)


def module_source(entry_point: str) -> tuple[Path, bytes, str | None, str | None] | None:
    """Where an imported job module lives: (its file, its source bytes, the root of the git
    repository holding it or None, its path inside that repository or None); None when the
    module has no source file (a built-in, a zip import)."""
    import importlib

    module = importlib.import_module(entry_point.partition(":")[0])
    try:
        path = Path(inspect.getfile(module)).resolve()
        data = path.read_bytes()
    except (OSError, TypeError):
        return None
    repo = _repository(path.parent)
    root = repo[1] if repo else None
    rel = path.relative_to(Path(root).resolve()).as_posix() if root else None
    return path, data, root, rel


def compare_code(recorded: Mapping[str, Any] | None, current: CodeIdentity) -> tuple[bool, list[str]]:
    """(same code?, the differences in words) between a stored identity (either spelling) and `current`.

    The source hash decides: a commit can move elsewhere in a repository without touching the
    job, and a dirty tree can still hold the recorded source. Commit and dirty flag are reported.
    """
    if not recorded:
        return False, ["no code identity was recorded for this version"]
    old = CodeIdentity.read(recorded)
    diffs = []
    if old.entry_point != current.entry_point:
        diffs.append(f"entry point {old.entry_point} -> {current.entry_point}")
    if old.source_sha256 != current.source_sha256:
        diffs.append(
            f"source of {current.module} changed (sha256 {str(old.source_sha256)[:12]}… -> {str(current.source_sha256)[:12]}…)"
        )
    same = not diffs
    if old.git_commit != current.git_commit:
        diffs.append(f"git commit {old.git_commit} -> {current.git_commit}")
    if old.git_dirty != current.git_dirty:
        diffs.append(f"git dirty {old.git_dirty} -> {current.git_dirty}")
    return same, diffs


# -- the environment --------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Python and every installed distribution with its version: what bit-identical retraining
    needs. The `tidemark_environment` run facet, the registry row and the model card hold this
    same object (its keys are one word each, so both spellings agree). A copy: callers may change it.

    `packages` maps each distribution's normalised name (PEP 503: `scikit-learn`, `ruamel-yaml`)
    to its version, the first found on `sys.path` winning, as imports do.
    """
    env = _environment(tuple(sys.path))
    return {**env, "packages": dict(env["packages"])}


# What is installed does not change under a running interpreter's imports, but what is on sys.path
# may (the runner puts a recorded checkout first, a test a folder of its own): once per sys.path.
@functools.lru_cache(maxsize=4)
def _environment(path: tuple[str, ...]) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": dict(sorted(installed_distributions(path).items())),
    }


def _info_folders(path: tuple[str, ...] | None) -> Iterator[os.DirEntry[str]]:
    """The `*.dist-info` and `*.egg-info` entries of the folders on `path` (default `sys.path`), in order."""
    for entry in sys.path if path is None else path:
        try:
            listing = os.scandir(entry or ".")
        except OSError:  # a zip file, a missing folder
            continue
        with listing:
            for item in listing:
                if item.name.endswith((".dist-info", ".egg-info")):
                    yield item


def installed_distributions(path: tuple[str, ...] | None = None) -> dict[str, str]:
    """Normalised name -> version of every distribution on `path` (default `sys.path`).

    Read from the `NAME-VERSION.dist-info` folder names, which the packaging spec ("Recording
    installed projects") makes the metadata's name and version: ~1 ms, where asking
    `importlib.metadata` for each version parses every METADATA file (~250 ms for 200
    distributions, paid by every process that runs a job). A folder whose name does not carry
    a version (an `.egg-info` of a source checkout) is asked through `importlib.metadata`.
    """
    from importlib.metadata import Distribution

    found: dict[str, str] = {}
    for item in _info_folders(path):
        name, _, version = item.name.rpartition(".")[0].partition("-")
        version = version.partition("-")[0]  # an egg-info's name-version-pyX.Y
        if not version:
            meta = Distribution.at(item.path).metadata
            name, version = meta["Name"] or name, meta["Version"] or ""
        found.setdefault(canonicalize_name(name), version)
    return found


def canonicalize_name(name: str) -> str:
    """A distribution's name as PEP 503 normalises it (`Ruamel.YAML` -> `ruamel-yaml`): the rule
    `packaging.utils.canonicalize_name` applies, without importing packaging (~40 ms) per run."""
    return _SEPARATORS.sub("-", name).lower()


_SEPARATORS = re.compile(r"[-_.]+")


def compare_environment(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """(same environment?, the differences in words): Python and each distribution's version.

    Distribution names are compared normalised (PEP 503), so environments recorded before the
    names were normalised (`ruamel.yaml`) compare with today's (`ruamel-yaml`).
    """
    if not recorded:
        return False, ["no environment was recorded for this version"]
    diffs = []
    if recorded.get("python") != current.get("python"):
        diffs.append(f"python {recorded.get('python')} -> {current.get('python')}")
    old = {canonicalize_name(k): v for k, v in (recorded.get("packages") or {}).items()}
    new = {canonicalize_name(k): v for k, v in (current.get("packages") or {}).items()}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            diffs.append(f"{name} {old.get(name) or '(absent)'} -> {new.get(name) or '(absent)'}")
    return not diffs, diffs


def airflow_parent(producer: str, environ: Any = None) -> dict[str, Any] | None:
    """The `parent` facet for a run inside an Airflow task (from the AIRFLOW_CTX_* variables).

    The task's run id is derived from DAG, task, DAG run and try number, so every event of one
    task try points at the same parent, and the DAG run is the root.
    """
    env = os.environ if environ is None else environ
    dag_id, task_id, dag_run = env.get("AIRFLOW_CTX_DAG_ID"), env.get("AIRFLOW_CTX_TASK_ID"), env.get("AIRFLOW_CTX_DAG_RUN_ID")
    if not (dag_id and task_id and dag_run):
        return None
    given = _parent_id(env.get("OPENLINEAGE_PARENT_ID"))
    if given:
        # Airflow's OpenLineage provider names this task's run (dags/dag_support.py hands it over):
        # the parent is then a run the provider's own events put in the store.
        root = _parent_id(env.get("OPENLINEAGE_ROOT_PARENT_ID")) or given
        return ev.facet(
            producer,
            f"{ev.FACETS}/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            run={"runId": given[2]},
            job={"namespace": given[0], "name": given[1]},
            root={"run": {"runId": root[2]}, "job": {"namespace": root[0], "name": root[1]}},
        )
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


def _parent_id(text: str | None) -> tuple[str, str, str] | None:
    """`namespace/job/runId` (OpenLineage's parent id convention) as its parts; None if malformed.
    The namespace may hold slashes (a URI), the job name and run id do not."""
    parts = (text or "").rsplit("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    try:
        uuid.UUID(parts[2])
    except ValueError:
        return None
    return parts[0], parts[1], parts[2]


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


# -- the platform and the job's own distributions -----------------------------------------------------


def platform_identity() -> dict[str, Any]:
    """The machine a job ran on, as far as it can change a trained artifact's bytes: CPU
    architecture, model and instruction-set flags (a BLAS picks its kernels by them), the OS, and
    each BLAS/LAPACK/OpenMP library loaded in this process with its vendor, version and thread
    count as threadpoolctl reports them. Call it right after the job, inside the thread limits it
    ran under: threadpoolctl sees only the libraries already loaded, with their current limits."""
    cpu_model, flags = _cpu()
    return {
        "machine": platform.machine(),
        "cpu": cpu_model,
        "cpu_flags": flags,
        "os": platform.platform(),
        "python_build": " ".join(platform.python_build()),
        "libraries": _thread_libraries(),
        # Variables that choose a BLAS's kernels or its numerics (OPENBLAS_CORETYPE picks the kernel set).
        "blas_environment": {k: os.environ[k] for k in sorted(_BLAS_VARIABLES) if k in os.environ},
    }


_BLAS_VARIABLES = frozenset(
    {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "NPY_DISABLE_CPU_FEATURES"}
)


@functools.lru_cache(maxsize=1)
def _cpu() -> tuple[str | None, list[str]]:
    # /proc/cpuinfo on Linux; elsewhere the processor string alone (no flags to compare).
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or None, []
    model = flags = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "cpu model") and model is None:
            model = value.strip()
        elif key in ("flags", "Features") and flags is None:
            flags = value.split()
        if model is not None and flags is not None:
            break
    return model or platform.processor() or None, sorted(flags or [])


class _PhdrInfo(ctypes.Structure):
    # The head of glibc's and musl's `struct dl_phdr_info`, up to the load and unload counters.
    _fields_ = [
        ("dlpi_addr", ctypes.c_void_p),
        ("dlpi_name", ctypes.c_char_p),
        ("dlpi_phdr", ctypes.c_void_p),
        ("dlpi_phnum", ctypes.c_uint16),
        ("dlpi_adds", ctypes.c_ulonglong),
        ("dlpi_subs", ctypes.c_ulonglong),
    ]


_PHDR_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_PhdrInfo), ctypes.c_size_t, ctypes.c_void_p)


def _loaded_objects() -> tuple[int, int] | None:
    """How many shared objects this process has loaded and unloaded so far (the dynamic linker's
    `dlpi_adds`/`dlpi_subs`, read from the first object `dl_iterate_phdr` reports: microseconds),
    or None where there is no such counter (macOS, Windows, an old libc)."""
    try:
        iterate = ctypes.CDLL(None).dl_iterate_phdr
    except (AttributeError, OSError):
        return None
    seen: list[tuple[int, int]] = []

    def first(info: Any, size: int, _data: Any) -> int:
        if size >= ctypes.sizeof(_PhdrInfo):
            seen.append((int(info.contents.dlpi_adds), int(info.contents.dlpi_subs)))
        return 1  # the counters are the same in every entry: stop at the first

    iterate(_PHDR_CALLBACK(first), None)
    return seen[0] if seen else None


# threadpoolctl's controller and the loaded-objects count it was made at. Making one reads
# /proc/self/maps and opens each BLAS/OpenMP library in it: ~4 ms in a process holding pyarrow and
# scikit-learn, paid twice per training (the limits, then the platform record). Its libraries are
# the same until a shared object is loaded or unloaded, which the count tells at once.
_THREAD_CONTROLLER: tuple[tuple[int, int], Any] | None = None
_THREAD_CONTROLLER_LOCK = threading.Lock()


def thread_controller() -> Any:
    """threadpoolctl's `ThreadpoolController` of the BLAS/OpenMP libraries loaded in this process
    now (None without threadpoolctl): the one made before if no shared object was loaded or
    unloaded since, else a new one."""
    global _THREAD_CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # not installed where the job runs: nothing to limit, report or compare
        return None
    with _THREAD_CONTROLLER_LOCK:
        loaded = _loaded_objects()
        if loaded is not None and _THREAD_CONTROLLER is not None and _THREAD_CONTROLLER[0] == loaded:
            return _THREAD_CONTROLLER[1]
        controller = ThreadpoolController()
        # Counted before the scan: a library loaded during it makes the next call scan again.
        _THREAD_CONTROLLER = None if loaded is None else (loaded, controller)
        return controller


def _thread_libraries() -> list[dict[str, Any]]:
    controller = thread_controller()
    if controller is None:
        return []
    found = []
    for lib in controller.info():
        found.append(
            {
                "user_api": lib.get("user_api"),
                "internal_api": lib.get("internal_api"),
                "version": lib.get("version"),
                "num_threads": lib.get("num_threads"),
                "architecture": lib.get("architecture"),
                "threading_layer": lib.get("threading_layer"),
                # The file name, not the path: the same library in another venv is the same library.
                "library": Path(str(lib.get("filepath") or "")).name or None,
            }
        )
    return sorted(found, key=lambda d: (str(d["user_api"]), str(d["internal_api"]), str(d["library"])))


def compare_platform(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """The platform differences in words (empty: the same platform, or none was recorded)."""
    if not recorded:
        return []
    diffs = []
    for name in ("machine", "cpu", "os", "python_build"):
        if recorded.get(name) != current.get(name):
            diffs.append(f"{name} {recorded.get(name)} -> {current.get(name)}")
    old_flags, new_flags = set(recorded.get("cpu_flags") or []), set(current.get("cpu_flags") or [])
    if old_flags != new_flags:
        lost, gained = sorted(old_flags - new_flags), sorted(new_flags - old_flags)
        diffs.append(f"cpu flags: lost {', '.join(lost) or 'none'}; gained {', '.join(gained) or 'none'}")

    if (recorded.get("blas_environment") or {}) != (current.get("blas_environment") or {}):
        diffs.append(f"BLAS variables {recorded.get('blas_environment') or {}} -> {current.get('blas_environment') or {}}")

    def libs(p: Mapping[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
        # Keyed by the library's name without the build hash a wheel appends (libscipy_openblas-6cdc3b4a.so):
        # numpy and scipy may each load their own OpenBLAS.
        return {
            (str(lib.get("user_api")), str(lib.get("internal_api")), str(lib.get("library") or "").split("-")[0].split(".")[0]): lib
            for lib in p.get("libraries") or []
        }

    old_libs, new_libs = libs(recorded), libs(current)
    for key in sorted(set(old_libs) | set(new_libs)):
        o, n = old_libs.get(key), new_libs.get(key)
        label = f"{key[0]} {key[1]} ({key[2]})"
        if o is None or n is None:
            diffs.append(f"{label} {'absent' if o is None else 'present'} -> {'absent' if n is None else 'present'}")
            continue
        for field_name in ("version", "num_threads", "architecture", "threading_layer"):
            if o.get(field_name) != n.get(field_name):
                diffs.append(f"{label} {field_name} {o.get(field_name)} -> {n.get(field_name)}")
    return diffs


def distributions_of_modules(modules: Any, *, exclude_modules: Any = ()) -> list[str]:
    """The installed distributions (normalised names) that provide `modules` (dotted names), plus
    every distribution those require (not their extras), as installed: what a job that imported
    `modules` depends on. A module no distribution provides (the standard library, code on
    PYTHONPATH) adds nothing; the distributions providing `exclude_modules` (the project holding
    the job's own code, whose identity is the code's business) are left out with their requirements."""
    top = _module_providers(tuple(sys.path))

    def providers(names: Any) -> set[str]:
        return {canonicalize_name(d) for n in names for d in top.get(str(n).partition(".")[0], ())}

    found = providers(modules)
    skip = providers(exclude_modules)
    todo = sorted(found - skip)
    seen: set[str] = set()
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        for req in _requirements(dist):
            dep = _required_name(req)
            if dep and dep not in seen and dep not in skip:
                todo.append(dep)
    installed = _environment(tuple(sys.path))["packages"]  # the per-process listing: a fresh scan cost ~9 ms a training
    return sorted(d for d in seen if d in installed)


# Once per sys.path, as `_environment`. Every training needs it (the distributions it imported),
# and the runner's child process trains once: so it is read as `installed_distributions` reads
# versions, not by `importlib.metadata.packages_distributions`, which parses every
# distribution's METADATA (email parser) and makes a path object of every RECORD line: ~600 ms
# for 280 distributions, paid by the first training of every process.
@functools.lru_cache(maxsize=4)
def _module_providers(path: tuple[str, ...]) -> Mapping[str, list[str]]:
    """Top-level module name -> the distributions (normalised names) providing it: what
    `packages_distributions` answers. A dist-info folder's name is its distribution's name
    (`installed_distributions`); its modules are `top_level.txt`, else the first part of each
    `.py` file in RECORD. An egg-info is asked through `importlib.metadata`, as there."""
    import csv
    from importlib.metadata import Distribution

    providers: dict[str, list[str]] = {}
    for item in _info_folders(path):
        if item.name.endswith(".dist-info") and "-" in item.name and item.is_dir():
            name = canonicalize_name(item.name.partition("-")[0].removesuffix(".dist-info"))
            tops = _read(item.path, "top_level.txt").split()
            if not tops:
                tops = sorted({top for row in csv.reader(_read(item.path, "RECORD").splitlines()) if row and (top := _top_module(row[0]))})
        else:
            dist = Distribution.at(item.path)
            name = canonicalize_name(dist.metadata["Name"] or item.name.partition("-")[0])
            tops = (dist.read_text("top_level.txt") or "").split()
            if not tops:
                tops = sorted({top for f in dist.files or () if (top := _top_module(str(f)))})
        for top in tops:
            providers.setdefault(top, []).append(name)
    return providers


def _read(folder: str, name: str) -> str:
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def _top_module(record_path: str) -> str | None:
    """The top-level name a RECORD path of a `.py` file adds (`pkg/mod.py` -> `pkg`, `mod.py` ->
    `mod`), None for any other file: `packages_distributions`' rule for a distribution without
    `top_level.txt`, on the path as a POSIX path (`./` and doubled slashes do not count)."""
    parts = [p for p in record_path.split("/") if p not in ("", ".")]
    if record_path.startswith("/"):
        parts.insert(0, "/")
    if not parts or not parts[-1].endswith(".py") or parts[-1] == ".py":
        return None
    return parts[0] if len(parts) > 1 else parts[0][:-3]


@functools.lru_cache(maxsize=None)
def _requirements(dist: str) -> tuple[str, ...]:
    """The requirement lines `dist` declares as installed (none if it is not installed), once per process."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        return tuple(requires(dist) or ())
    except PackageNotFoundError:
        return ()


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _required_name(req: str) -> str | None:
    """The distribution a requirement line names, or None when its marker does not hold here
    (`extra == ...`, `sys_platform == "win32"`)."""
    text, _, marker = req.partition(";")
    if marker.strip():
        if "extra" in marker:
            return None
        try:
            from packaging.markers import Marker

            if not Marker(marker).evaluate():
                return None
        except Exception:  # no packaging, or a marker it cannot read: count the requirement
            pass
    m = _REQ_NAME.match(text)
    return canonicalize_name(m.group(1)) if m else None
