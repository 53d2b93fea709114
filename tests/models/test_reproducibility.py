"""`tidemark models reproducibility NAME`: per version the last retrain verdict and what blocks a reproduction."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from models.exceptions import ModelNotFoundError
from models.jobs import get_job
from models.registry import InputSnapshot, Registry
from models.reproducibility import status
from models.retrain import retrain
from models.train import train
from tests.models.conftest import land, wine_part


def test_versions_blocked_by_expired_data_lost_commits_and_environments(
    tmp_path: Path, local_settings: Any, transport: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tidemark.cli import main

    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    v1 = train(local_settings, get_job("wine_classifier"), transport=transport).version
    retrain(local_settings, "wine:1", transport=transport)

    repo = tmp_path / "gone-history"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    reg = Registry(local_settings)
    base = dict(model="wine", run_id=v1.run_id, job_name=v1.job_name, entry_point=v1.entry_point, artifact_uri=v1.artifact_uri,
                sha256=v1.sha256, metrics=v1.metrics, parameters=v1.parameters)
    # 2: its snapshot was expired; 3: its code changed since and its commit is not in the repository;
    # 4: trained before Tidemark recorded the job's distributions.
    reg.register(**base, inputs=[InputSnapshot("raw.wine", 123456789, 178, "x")], code=v1.code, environment=v1.environment)
    reg.register(**base, inputs=v1.inputs, environment=v1.environment,
                 code={**(v1.code or {}), "source_file_sha256": "0" * 64, "git_commit": "1" * 40, "repository": str(repo)})
    reg.register(**base, inputs=v1.inputs, code=v1.code, environment={**(v1.environment or {}), "imported": None})

    found = {v.version: v for v in status(local_settings, "wine")}
    assert found[1].reproducible and found[1].last_retrain and found[1].last_retrain["verdict"] == "reproduced"
    assert found[1].code == "current (the module is unchanged)" and found[1].environment.startswith("recorded (not built yet")
    assert found[2].blockers == ["data: snapshot 123456789 of raw.wine expired"] and found[2].last_retrain is None
    assert found[3].blockers == [f"code: commit {'1' * 40} is not in {repo}"]
    assert len(found[4].blockers) == 1 and "recorded no list of the distributions its job imports" in found[4].blockers[0]

    # Asking pip: nothing installable from an empty wheel directory with no index.
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    checked = status(local_settings, "wine", check_install=True, find_links=[str(empty)], no_index=True)
    assert any("cannot be installed: Could not find a version" in b for b in checked[0].blockers), checked[0].blockers

    assert main(["models", "reproducibility", "wine", "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["reproducible"] for v in out] == [True, False, False, False]
    assert main(["models", "reproducibility", "wine"]) == 0
    text = capsys.readouterr().out
    assert "reproduced" in text and "wine:2 blocked: data: snapshot 123456789 of raw.wine expired" in text
    assert main(["models", "requirements", "wine:1"]) == 0
    assert "scikit-learn==" in capsys.readouterr().out
    with pytest.raises(ModelNotFoundError, match="model 'nope' is not registered"):
        status(local_settings, "nope")
