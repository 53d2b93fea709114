"""Code identity against a real git repository: what a per-process cache must still notice."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from lineage.code import CodeIdentity, canonicalize_name, code_identity, compare_code, compare_environment, environment, module_source


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _load(path: Path) -> ModuleType:
    """Import `path` as a module of its own (code identity finds a function's module in sys.modules)."""
    name = f"job_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_code_identity_follows_commits_staged_edits_and_source_changes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    job = repo / "job.py"
    other = repo / "other.txt"
    job.write_text("def fit():\n    return 1\n")
    other.write_text("a\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    module = _load(job)

    first = code_identity(module.fit)
    assert (first.git_commit, first.git_dirty) == (_git(repo, "rev-parse", "HEAD"), False)
    assert code_identity(module.fit) == first  # asked again: the same answer

    other.write_text("b\n")
    _git(repo, "add", "other.txt")  # a staged edit rewrites the index
    assert code_identity(module.fit).git_dirty is True

    _git(repo, "commit", "-qm", "two")  # a commit moves HEAD
    second = code_identity(module.fit)
    assert (second.git_commit, second.git_dirty) == (_git(repo, "rev-parse", "HEAD"), False)
    assert second.git_commit != first.git_commit

    job.write_text("def fit():\n    return 2\n")  # the job's own source: a new hash, and dirty
    third = code_identity(module.fit)
    assert third.source_sha256 != first.source_sha256 and third.git_dirty is True


def test_code_identity_outside_a_repository_and_before_the_first_commit(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "job.py").write_text("def fit():\n    return 1\n")
    ident = code_identity(_load(plain / "job.py").fit)
    assert (ident.git_commit, ident.git_dirty) == (None, None) and len(ident.source_sha256) == 64

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _git(fresh, "init", "-q")
    (fresh / "job.py").write_text("def fit():\n    return 1\n")
    assert code_identity(_load(fresh / "job.py").fit).git_commit is None


def test_module_source_finds_the_repository_the_code_identity_found(tmp_path: Path) -> None:
    """One git lookup per folder serves both: the identity's commit and the module's path in its repository."""
    repo = tmp_path / "repo"
    (repo / "jobs").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "jobs" / "job.py").write_text("def fit():\n    return 1\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    module = _load(repo / "jobs" / "job.py")
    assert code_identity(module.fit).git_commit == _git(repo, "rev-parse", "HEAD")
    found = module_source(module.__name__)
    assert found is not None and Path(str(found[2])).resolve() == repo.resolve() and found[3] == "jobs/job.py"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "job.py").write_text("def fit():\n    return 1\n")
    outside = module_source(_load(plain / "job.py").__name__)
    assert outside is not None and outside[2:] == (None, None)


def test_environment_is_a_copy_callers_may_change() -> None:
    env = environment()
    env["packages"]["pyiceberg"] = "changed"
    assert environment()["packages"]["pyiceberg"] == "0.12.0"


def test_environment_lists_what_importlib_metadata_finds() -> None:
    """The folder-name scan gives every distribution importlib.metadata knows, with the same version."""
    from importlib.metadata import distributions

    expected: dict[str, str] = {}
    for dist in distributions():
        expected.setdefault(canonicalize_name(dist.metadata["Name"]), dist.version)
    env = environment()
    assert env["packages"] == dict(sorted(expected.items()))
    assert {"python", "implementation", "platform", "packages"} == set(env)
    assert env["packages"]["scikit-learn"] and env["packages"]["great-expectations"] == "1.24.1"


# A registry row / model card written before identities had one home (models/identity.py spelled
# them snake_case and keyed packages by `name.lower().replace("_", "-")`).
_OLD_CODE = {"entry_point": "models.jobs:train_wine_classifier", "module": "models.jobs", "source_sha256": "ab" * 32,
             "git_commit": "c" * 40, "git_dirty": False}


def test_one_code_identity_in_two_spellings() -> None:
    ident = CodeIdentity("models.jobs:train_wine_classifier", "ab" * 32, "c" * 40, False)
    assert ident.record() == _OLD_CODE  # the stored format is unchanged
    assert ident.facet_fields() == {"entryPoint": "models.jobs:train_wine_classifier", "gitCommit": "c" * 40,
                                    "gitDirty": False, "sourceSha256": "ab" * 32}
    facet = {"_producer": "p", "_schemaURL": "s", **ident.facet_fields()}
    assert CodeIdentity.read(facet) == CodeIdentity.read(ident.record()) == CodeIdentity.read(_OLD_CODE) == ident


def test_code_compared_with_an_old_record() -> None:
    same = CodeIdentity("models.jobs:train_wine_classifier", "ab" * 32, "d" * 40, True)
    ok, diffs = compare_code(_OLD_CODE, same)
    assert ok and diffs == [f"git commit {'c' * 40} -> {'d' * 40}", "git dirty False -> True"]  # told, not decisive
    changed = CodeIdentity("models.jobs:train_wine_classifier", "ef" * 32, "c" * 40, False)
    ok, diffs = compare_code(_OLD_CODE, changed)
    assert not ok and diffs == ["source of models.jobs changed (sha256 abababababab… -> efefefefefef…)"]
    moved = CodeIdentity("jobs2:train", "ab" * 32, "c" * 40, False)
    assert compare_code(_OLD_CODE, moved) == (False, ["entry point models.jobs:train_wine_classifier -> jobs2:train"])
    assert compare_code(None, same) == (False, ["no code identity was recorded for this version"])


def test_environment_compared_with_an_old_record() -> None:
    now = environment()
    old = {**now, "packages": {("ruamel.yaml" if k == "ruamel-yaml" else k): v for k, v in now["packages"].items()}}
    old["packages"]["Scikit_Learn"] = old["packages"].pop("scikit-learn")
    assert compare_environment(old, now) == (True, [])  # spelled differently, the same distributions
    old["packages"]["scikit_learn"] = "0.1"
    old["packages"].pop("Scikit_Learn")
    old["packages"]["gone-package"] = "1.0"
    ok, diffs = compare_environment({**old, "python": "3.10.1"}, now)
    assert not ok and diffs == [
        f"python 3.10.1 -> {now['python']}",
        "gone-package 1.0 -> (absent)",
        f"scikit-learn 0.1 -> {now['packages']['scikit-learn']}",
    ]
    assert compare_environment({}, now) == (False, ["no environment was recorded for this version"])


def test_the_providers_parent_id_wins_over_the_derived_one() -> None:
    from lineage.code import airflow_parent

    env = {"AIRFLOW_CTX_DAG_ID": "d", "AIRFLOW_CTX_TASK_ID": "t", "AIRFLOW_CTX_DAG_RUN_ID": "manual__1"}
    derived = airflow_parent("p", env)
    assert derived is not None and derived["job"] == {"namespace": "airflow", "name": "d.t"}
    task, root = "01a22a8c-12d6-7f4f-8554-81673c86ad63", "01a22a8c-12d6-7afb-8654-e211c57453b1"
    given = airflow_parent("p", {**env, "OPENLINEAGE_PARENT_ID": f"airflow/d.t/{task}", "OPENLINEAGE_ROOT_PARENT_ID": f"airflow/d/{root}"})
    assert given is not None and given["run"] == {"runId": task} and given["root"]["run"] == {"runId": root}
    assert given["root"]["job"] == {"namespace": "airflow", "name": "d"}
    # A malformed id (not namespace/job/uuid) is ignored: the derived parent stays.
    assert airflow_parent("p", {**env, "OPENLINEAGE_PARENT_ID": "airflow/d.t/not-a-uuid"}) == derived


def test_module_providers_answer_as_importlib_does_and_follow_sys_path(tmp_path: Path, monkeypatch: Any) -> None:
    """Read from the dist-info folders (not `packages_distributions`, ~0.6 s a process), with
    the same answer for this environment; a folder put on sys.path is seen without clearing a cache."""
    from importlib.metadata import packages_distributions

    from lineage import code as code_info

    mine = code_info._module_providers(tuple(sys.path))
    theirs = {top: sorted(canonicalize_name(d) for d in dists) for top, dists in packages_distributions().items()}
    assert {top: sorted(dists) for top, dists in mine.items()} == theirs

    info = tmp_path / "zz_provider-1.0.dist-info"  # no top_level.txt: its modules come from RECORD
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zz_provider\nVersion: 1.0\n")
    (info / "RECORD").write_text("zz_pkg/__init__.py,,\nzz_pkg/data.json,,\nzz_single.py,,\n\"zz,odd/x.py\",,\nzz_provider-1.0.dist-info/RECORD,,\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert code_info.distributions_of_modules(["zz_pkg.sub", "zz_single", "zz,odd"]) == ["zz-provider"]
    assert "zz-provider" in code_info.environment()["packages"]
    # importlib's answer for the new sys.path from a fresh interpreter: in a long-lived test process
    # (a worker that ran other files first) importlib.metadata's own path caches missed the new
    # folder once in CI, which is importlib's state, not ours.
    script = (
        "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
        "from importlib.metadata import packages_distributions; "
        "print(json.dumps({k: list(v) for k, v in packages_distributions().items()}))"
    )
    out = subprocess.run([sys.executable, "-c", script, json.dumps(sys.path)], capture_output=True, text=True, check=True).stdout
    theirs = {top: sorted(canonicalize_name(d) for d in dists) for top, dists in json.loads(out).items()}
    assert "zz_pkg" in theirs
    assert {top: sorted(dists) for top, dists in code_info._module_providers(tuple(sys.path)).items()} == theirs


def test_thread_controller_is_kept_until_a_library_loads() -> None:
    """The BLAS/OpenMP scan is kept across trainings, but a library loaded since (numpy's OpenBLAS
    here, in a fresh interpreter that has not loaded it yet) is scanned for and recorded."""
    script = """
import json
from lineage.code import _thread_libraries, thread_controller
first = thread_controller()
same = thread_controller() is first
import numpy, threadpoolctl
after = thread_controller()
print(json.dumps({
    "same": same,
    "rescanned": after is not first,
    "kept": thread_controller() is after,
    "before": [lib.get("internal_api") for lib in first.info()],
    "after": sorted(lib["filepath"] for lib in after.info()),
    "fresh": sorted(lib["filepath"] for lib in threadpoolctl.threadpool_info()),
    "recorded": len(_thread_libraries()),
}))
"""
    import json

    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["same"] and got["rescanned"] and got["kept"]
    assert "openblas" not in got["before"]
    assert got["after"] == got["fresh"] and got["recorded"] == len(got["fresh"]) >= 1
