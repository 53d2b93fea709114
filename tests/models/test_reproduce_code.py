"""`retrain --code recorded`: the job's module from the recorded git commit (or its stored source),
with clear refusals when the commit is gone or was rewritten away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from models.exceptions import RecordedCodeError
from models.jobs import resolve_job
from models.registry import Registry
from models.retrain import retrain
from models.train import train
from tests.models.conftest import land, wine_part

_JOB = '''
from models.jobs import Trained, _features


def train(inputs, params):
    from sklearn.tree import DecisionTreeClassifier

    X, y = _features(inputs["raw.wine"], "target")
    model = DecisionTreeClassifier(max_depth=DEPTH, random_state=0).fit(X, y)
    return Trained(estimator=model, metrics={"train_accuracy": float(model.score(X, y))})
'''


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _write(module: Path, depth: str) -> None:
    module.write_text(_JOB.replace("DEPTH", depth))
    sys.modules.pop(f"{module.parent.name}.{module.stem}", None)


def test_recorded_commit_and_recorded_dirty_source_reproduce(
    tmp_path: Path, local_settings: Any, transport: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    pkg = repo / "userjobs_c1"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    module = pkg / "myjob.py"
    _write(module, "int(params['depth'])")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "the job")
    first = _git(repo, "rev-parse", "HEAD")
    monkeypatch.syspath_prepend(str(repo))
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    job = resolve_job("userjobs_c1.myjob:train", model="tree", inputs=["raw.wine"])
    v1 = train(local_settings, job, params={"depth": 3}, transport=transport).version
    assert v1.code and (v1.code["git_commit"], v1.code["git_dirty"], v1.code["path"]) == (first, False, "userjobs_c1/myjob.py")
    assert Path(v1.code["repository"]).resolve() == repo.resolve()

    # The job changed and was committed: today's code gives another model, and the report says why.
    _write(module, "1")
    _git(repo, "commit", "-qam", "a stump")
    today = retrain(local_settings, "tree:1", transport=transport)
    assert today.verdict == "different" and [c["cause"] for c in today.causes] == ["code"]
    # The recorded commit, from a temporary worktree, gives the recorded model back.
    back = retrain(local_settings, "tree:1", transport=transport, code="recorded")
    assert back.verdict == "reproduced" and back.identical and back.code_identical, back.to_json()
    assert back.code_ran == {"kind": "recorded", "from": "git worktree", "commit": first, "repository": v1.code["repository"]}
    assert _git(repo, "worktree", "list").count("\n") == 0  # the temporary worktree is gone

    # Trained from a dirty tree: the commit alone does not hold the module; its stored source does.
    _write(module, "2")
    v2 = train(local_settings, job, params={"depth": 3}, transport=transport).version
    assert v2.code and v2.code["git_dirty"] is True
    _git(repo, "checkout", "--", "userjobs_c1/myjob.py")
    sys.modules.pop("userjobs_c1.myjob", None)
    dirty = retrain(local_settings, "tree:2", transport=transport, code="recorded")
    assert dirty.verdict == "reproduced" and dirty.code_identical, dirty.to_json()
    assert dirty.code_ran["from"] == "git worktree with the module's recorded (uncommitted) source"

    # History rewritten: the commit a version recorded is on no branch any more: refused, named.
    _write(module, "4")
    _git(repo, "commit", "-qam", "depth four")
    four = _git(repo, "rev-parse", "HEAD")
    train(local_settings, job, params={"depth": 3}, transport=transport)
    _git(repo, "reset", "-q", "--hard", "HEAD~1")
    with pytest.raises(RecordedCodeError, match=rf"commit {four} of tree:3 is on no branch or tag of .* \(history was rewritten\); refusing"):
        retrain(local_settings, "tree:3", transport=transport, code="recorded")

    # A commit the repository never had.
    reg = Registry(local_settings)
    ghost = reg.register(
        model="tree", run_id=v1.run_id, job_name=v1.job_name, entry_point=v1.entry_point, artifact_uri=v1.artifact_uri,
        sha256=v1.sha256, metrics=v1.metrics, inputs=v1.inputs, parameters=v1.parameters,
        code={**v1.code, "git_commit": "0" * 40}, environment=v1.environment,
    )
    with pytest.raises(RecordedCodeError, match=rf"commit {'0' * 40} of tree:{ghost.version} is not in .*unreachable"):
        retrain(local_settings, f"tree:{ghost.version}", transport=transport, code="recorded")


def test_module_outside_git_runs_from_its_stored_source(
    tmp_path: Path, local_settings: Any, transport: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "plain" / "userjobs_c2"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    module = pkg / "myjob.py"
    _write(module, "int(params['depth'])")
    monkeypatch.syspath_prepend(str(tmp_path / "plain"))
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    job = resolve_job("userjobs_c2.myjob:train", model="plain", inputs=["raw.wine"])
    v1 = train(local_settings, job, params={"depth": 3}, transport=transport).version
    assert v1.code and v1.code["git_commit"] is None and v1.code["source_uri"]

    module.unlink()  # gone from disk altogether
    sys.modules.pop("userjobs_c2.myjob", None)
    with pytest.raises(Exception, match="does not import"):
        retrain(local_settings, "plain:1", transport=transport)
    back = retrain(local_settings, "plain:1", transport=transport, code="recorded")
    assert back.verdict == "reproduced" and back.code_ran["from"] == "stored source (the module was not in git)"

    reg = Registry(local_settings)
    old = reg.register(
        model="plain", run_id=v1.run_id, job_name=v1.job_name, entry_point=v1.entry_point, artifact_uri=v1.artifact_uri,
        sha256=v1.sha256, metrics=v1.metrics, inputs=v1.inputs, parameters=v1.parameters,
        code={k: v for k, v in v1.code.items() if k not in ("source_uri", "source_file_sha256")}, environment=v1.environment,
    )
    with pytest.raises(RecordedCodeError, match=rf"plain:{old.version} stored no source of userjobs_c2.myjob"):
        retrain(local_settings, f"plain:{old.version}", transport=transport, code="recorded")
