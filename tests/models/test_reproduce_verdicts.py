"""Retrain verdicts separate "the result was reproduced" from "something in the environment moved":
reproduced / within_tolerance / different, with ranked causes, and the platform recorded at training."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from lakehouse.config import load_settings
from lakehouse.exceptions import ConfigError
from lineage import code as code_info
from models import artifacts
from models.jobs import get_job
from models.retrain import compare_metrics, retrain
from models.train import train
from tests.models.conftest import land, wine_part


def _install_fake_distribution(site: Path, name: str, version: str) -> None:
    """A real installed distribution on sys.path (metadata and an importable package), which the
    wine job never imports."""
    dist = site / f"{name}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "top_level.txt").write_text(f"{name}\n")
    (site / name).mkdir()
    (site / name / "__init__.py").write_text("")


def test_a_package_the_job_never_imports_does_not_make_the_result_different(
    tmp_path: Path, local_settings: Any, transport: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    mv = train(local_settings, get_job("wine_classifier"), transport=transport).version
    env = mv.environment or {}
    # The platform and determinism settings are recorded, in the registry row, the card and the run facet.
    assert {"scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "joblib", "threadpoolctl"} <= set(env["imported"])
    assert "apache-airflow" not in env["imported"] and "tidemark" not in env["imported"]
    host = env["host"]
    assert host["machine"] and host["cpu"] and host["cpu_flags"] and host["os"]
    blas = [lib for lib in host["libraries"] if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 and lib["version"] for lib in blas)  # pinned to one thread
    determinism = env["determinism"]
    assert (determinism["seeds"], determinism["blas_threads"]) == ({"seed": 7}, 1)
    assert determinism["thread_variables"]["OMP_NUM_THREADS"] is not None
    card = json.loads(artifacts.get(local_settings, mv.card_uri or ""))
    assert card["platform"] == host and card["determinism"]["blas_threads"] == 1
    facet = [e for e in transport.events if e["eventType"] == "COMPLETE"][-1]["run"]["facets"]["tidemark_platform"]
    assert facet["cpu"] == host["cpu"] and facet["determinism"]["seeds"] == {"seed": 7}
    assert facet["importedDistributions"] == env["imported"]
    # The code record says where the module lives and keeps its source beside the artifacts.
    assert mv.code and mv.code["path"] == "models/jobs.py" and mv.code["repository"]
    assert artifacts.get(local_settings, mv.code["source_uri"], mv.code["source_file_sha256"]) == Path(
        mv.code["repository"], "models/jobs.py"
    ).read_bytes()

    site = tmp_path / "site"
    _install_fake_distribution(site, "zz_unrelated", "1.0")
    monkeypatch.syspath_prepend(str(site))  # seen without clearing a cache: it is keyed by sys.path
    report = retrain(local_settings, "wine:1", transport=transport)
    assert not report.environment_identical  # the whole environment did change...
    assert report.verdict == "reproduced" and report.identical and report.causes == []  # ...but not what the job uses
    (change,) = report.package_changes
    assert (change.name, change.recorded, change.current, change.imported) == ("zz-unrelated", None, "1.0", False)
    out = report.to_json()
    assert out["identical"] is True and out["verdict"] == "reproduced"
    assert out["environment"]["packages"] == [{"name": "zz-unrelated", "recorded": None, "current": "1.0", "imported": False}]
    assert out["platform"]["identical"] is True


def test_imported_package_and_platform_changes_are_ranked_causes(
    tmp_path: Path, local_settings: Any, transport: Any
) -> None:
    """A recorded version from another machine with another scikit-learn: the causes name the
    package (imported) before the platform, and the verdict follows the artifact and metrics alone."""
    from models.registry import Registry

    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    mv = train(local_settings, get_job("wine_classifier"), transport=transport).version
    env = json.loads(json.dumps(mv.environment))
    env["packages"]["scikit-learn"] = "1.0.2"
    env["host"]["cpu"] = "Some Other CPU"
    env["host"]["cpu_flags"] = [f for f in env["host"]["cpu_flags"] if f != "avx2"] + ["sve"]
    for lib in env["host"]["libraries"]:
        lib["version"] = "0.3.9"
    # Registered as another version as if trained elsewhere: the same artifact and metrics, other environment.
    reg = Registry(local_settings)
    other = reg.register(
        model="wine", run_id=mv.run_id, job_name=mv.job_name, entry_point=mv.entry_point, artifact_uri=mv.artifact_uri,
        sha256=mv.sha256, metrics=mv.metrics, inputs=mv.inputs, parameters=mv.parameters, code=mv.code, environment=env,
    )
    report = retrain(local_settings, f"wine:{other.version}", transport=transport)
    assert report.verdict == "reproduced"  # bit-identical artifact: reproduced, whatever else moved
    assert not report.identical  # but not "identical": a package the job imports is not the recorded one
    assert [c["cause"] for c in report.causes] == ["packages", "platform"]
    packages = report.causes[0]
    assert packages["details"] == [f"scikit-learn 1.0.2 -> {code_info.environment()['packages']['scikit-learn']}"]
    platform_details = " | ".join(report.causes[1]["details"])
    assert "cpu Some Other CPU ->" in platform_details and "lost sve; gained avx2" in platform_details
    assert "version 0.3.9 ->" in platform_details


def test_metric_tolerances_default_per_model_and_per_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.models.tolerance("wine", "accuracy") == 0.01
    m = compare_metrics(s, "wine", {"accuracy": 0.90, "loss": 0.0}, {"accuracy": 0.905, "loss": 0.0})
    assert m["accuracy"]["within_tolerance"] and m["loss"]["within_tolerance"]
    assert not compare_metrics(s, "wine", {"accuracy": 0.90}, {"accuracy": 0.92})["accuracy"]["within_tolerance"]
    assert not compare_metrics(s, "wine", {"accuracy": 0.90}, {})["accuracy"]["within_tolerance"]  # a metric gone

    (tmp_path / "tidemark.yaml").write_text(
        "models:\n  retrain_tolerance: 0.001\n  tolerances:\n    wine: {accuracy: 0.05, '*': 0.02}\n"
    )
    s = load_settings()
    assert (s.models.tolerance("wine", "accuracy"), s.models.tolerance("wine", "f1"), s.models.tolerance("other", "x")) == (0.05, 0.02, 0.001)
    assert compare_metrics(s, "wine", {"accuracy": 0.90}, {"accuracy": 0.92})["accuracy"]["within_tolerance"]

    (tmp_path / "tidemark.yaml").write_text("models:\n  tolerances:\n    wine: {accuracy: -1}\n")
    with pytest.raises(ConfigError, match=r"models.tolerances.wine.accuracy must be a relative tolerance of 0 or more"):
        load_settings()
    (tmp_path / "tidemark.yaml").write_text("models:\n  tolerances: [1]\n")
    with pytest.raises(ConfigError, match="models.tolerances must map model names"):
        load_settings()


def test_distributions_of_modules_follows_requirements_and_skips_the_project() -> None:
    found = code_info.distributions_of_modules(["sklearn.linear_model"])
    assert {"scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"} <= set(found)
    assert code_info.distributions_of_modules(["json", "os.path"]) == []  # the standard library
    # Tidemark's own distribution (holding models.jobs) requires Great Expectations; a job that only uses
    # scikit-learn does not depend on it.
    assert "great-expectations" in code_info.distributions_of_modules(["models.jobs"])
    mine = code_info.distributions_of_modules(["models.jobs", "sklearn"], exclude_modules=["models.jobs"])
    assert "scikit-learn" in mine and "tidemark" not in mine and "great-expectations" not in mine
    assert sys.modules  # the tracker left the import machinery as it found it
    import builtins
    import importlib

    assert builtins.__import__.__module__ in ("builtins", None) and importlib.import_module.__module__ == "importlib"
