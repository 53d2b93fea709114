"""The refusals of `--code recorded` and `--environment recorded` that the end-to-end tests do not
reach: each names what is missing and what to do, and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from models import artifacts, environments, sourcecode
from models.exceptions import EnvironmentBuildError, RecordedCodeError


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _version(code: dict[str, Any]) -> Any:
    # checkout() reads these four fields of a registered version.
    return SimpleNamespace(model="tree", version=7, entry_point="userjobs_f.myjob:train", code=code)


def _checkout(settings: Any, code: dict[str, Any], into: Path) -> None:
    with sourcecode.checkout(settings, _version(code), into):
        pass


def test_recorded_code_refusals_name_what_is_missing(tmp_path: Path, local_settings: Any) -> None:
    repo = tmp_path / "repo"
    (repo / "userjobs_f").mkdir(parents=True)
    (repo / "userjobs_f" / "other.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "no job module yet")
    commit = _git(repo, "rev-parse", "HEAD")
    base = {"module": "userjobs_f.myjob", "git_commit": commit, "repository": str(repo), "path": "userjobs_f/myjob.py"}

    with pytest.raises(RecordedCodeError, match=rf"userjobs_f/myjob.py \(module userjobs_f.myjob\) is not in commit {commit}"):
        _checkout(local_settings, base, tmp_path / "a")
    with pytest.raises(RecordedCodeError, match=rf"tree:7 recorded git commit {commit} but not the repository and path"):
        _checkout(local_settings, {**base, "repository": None}, tmp_path / "b")
    with pytest.raises(RecordedCodeError, match=rf"the repository {tmp_path}/gone that held userjobs_f.myjob .* restore it to run commit {commit}"):
        _checkout(local_settings, {**base, "repository": str(tmp_path / "gone")}, tmp_path / "c")
    assert _git(repo, "worktree", "list").count("\n") == 0  # no worktree was left behind

    # Not in git, and its stored source altered since: refused, not run.
    uri, digest = artifacts.put(local_settings, b"def train(inputs, params): ...\n")
    with pytest.raises(RecordedCodeError, match=rf"the stored source of userjobs_f.myjob for tree:7 \({uri}\) cannot be read: .*altered"):
        _checkout(local_settings, {"module": "userjobs_f.myjob", "git_commit": None, "source_uri": uri, "source_file_sha256": "0" * 64},
                  tmp_path / "d")


def test_recorded_environment_refusals(tmp_path: Path, local_settings: Any) -> None:
    python = sys.version.split()[0]
    with pytest.raises(EnvironmentBuildError, match="wine:3 recorded no version for six; its environment cannot be rebuilt"):
        environments.requirements({"python": python, "packages": {}, "imported": ["six"]}, "wine:3")
    with pytest.raises(EnvironmentBuildError, match=r"recorded Python version '3' is not X.Y.Z"):
        environments.find_python("3")

    empty = tmp_path / "no-wheels"
    empty.mkdir()
    # --nearest with nothing at all to choose from.
    nothing = {"python": python, "packages": {"six": "1.16.0"}, "imported": ["six"]}
    with pytest.raises(EnvironmentBuildError, match="six==1.16.0, recorded by wine:3, cannot be installed and no other version of six is available"):
        environments.ensure(local_settings, nothing, what="wine:3", find_links=[str(empty)], no_index=True, nearest=True)
    # A failure pip reports in other words (here a recorded version that is no version at all).
    broken = {"python": python, "packages": {"six": "not a version!"}, "imported": ["six"]}
    with pytest.raises(EnvironmentBuildError, match="pip could not build the recorded environment of wine:3: ERROR"):
        environments.ensure(local_settings, broken, what="wine:3", find_links=[str(empty)], no_index=True)
    assert not list((local_settings.home / "environments").glob("*/bin"))  # nothing half-built left
