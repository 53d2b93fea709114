"""Code identity against a real git repository: what a per-process cache must still notice."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from lineage.code import code_identity, environment


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
    assert (first["gitCommit"], first["gitDirty"]) == (_git(repo, "rev-parse", "HEAD"), False)
    assert code_identity(module.fit) == first  # asked again: the same answer

    other.write_text("b\n")
    _git(repo, "add", "other.txt")  # a staged edit rewrites the index
    assert code_identity(module.fit)["gitDirty"] is True

    _git(repo, "commit", "-qm", "two")  # a commit moves HEAD
    second = code_identity(module.fit)
    assert (second["gitCommit"], second["gitDirty"]) == (_git(repo, "rev-parse", "HEAD"), False)
    assert second["gitCommit"] != first["gitCommit"]

    job.write_text("def fit():\n    return 2\n")  # the job's own source: a new hash, and dirty
    third = code_identity(module.fit)
    assert third["sourceSha256"] != first["sourceSha256"] and third["gitDirty"] is True


def test_code_identity_outside_a_repository_and_before_the_first_commit(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "job.py").write_text("def fit():\n    return 1\n")
    ident = code_identity(_load(plain / "job.py").fit)
    assert (ident["gitCommit"], ident["gitDirty"]) == (None, None) and len(ident["sourceSha256"]) == 64

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _git(fresh, "init", "-q")
    (fresh / "job.py").write_text("def fit():\n    return 1\n")
    assert code_identity(_load(fresh / "job.py").fit)["gitCommit"] is None


def test_environment_is_a_copy_callers_may_change() -> None:
    env = environment()
    env["packages"]["pyiceberg"] = "changed"
    assert environment()["packages"]["pyiceberg"] == "0.12.0"
