"""`retrain --environment recorded`: a changed package the job imports makes the result different,
naming it; the rebuilt recorded environment reproduces the artifact bit for bit.

Never touches the shared virtualenv: "the project's environment" here is a copy (a fresh venv
that sees the shared site-packages through a .pth file, with its own scikit-learn installed in
front), and every wheel comes from a local directory filled once per session with `pip download`
(pip's HTTP cache makes that a local copy after the first time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from models import environments
from models.exceptions import EnvironmentBuildError
from models.jobs import get_job
from models.retrain import retrain
from models.train import train
from tests.models.conftest import land, wine_part

ROOT = Path(__file__).resolve().parents[2]
OTHER_SKLEARN = "scikit-learn==1.8.0"


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], capture_output=True, text=True)


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --find-links directory with the wine job's wheels at the installed versions, and one
    other scikit-learn; filled through pip (the registry client), or the tests skip saying why."""
    from lineage.code import installed_distributions

    installed = installed_distributions()
    wanted = [f"{n}=={installed[n]}" for n in
              ("cloudpickle", "joblib", "narwhals", "numpy", "pandas", "pyarrow", "python-dateutil", "scikit-learn", "scipy", "six", "threadpoolctl")]
    target = tmp_path_factory.mktemp("wheels")
    for batch in (wanted, [OTHER_SKLEARN]):  # one version of a name per pip call
        done = _pip("download", "-q", "--no-deps", "-d", str(target), *batch)
        if done.returncode != 0:
            pytest.skip(f"cannot fill a local wheel directory with pip download: {done.stderr.strip().splitlines()[-1:]}")
    return target


def _copy_of_the_environment(where: Path, wheels: Path) -> Path:
    """A venv that sees every shared package, with another scikit-learn installed in front of it."""
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(where)], check=True)
    site = next(where.glob("lib/python*/site-packages"))
    (site / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: pip never uninstalls the shared scikit-learn it can see through the .pth.
    done = _pip("--python", str(where / "bin" / "python"), "install", "-q", "--no-deps", "--ignore-installed", "--no-compile",
                "--no-index", "--find-links", str(wheels), OTHER_SKLEARN)
    assert done.returncode == 0, done.stderr
    return where / "bin" / "python"


def _cli(python: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([str(python), "-m", "tidemark", *args, "--output", "json"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_changed_package_is_the_cause_and_the_recorded_environment_reproduces(
    tmp_path: Path, local_settings: Any, transport: Any, wheel_dir: Path
) -> None:
    land(local_settings, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    mv = train(local_settings, get_job("wine_classifier"), transport=transport).version
    sklearn_then = (mv.environment or {})["packages"]["scikit-learn"]
    python = _copy_of_the_environment(tmp_path / "project-env", wheel_dir)

    # Retrained in the project's environment after scikit-learn changed: not reproduced, and the cause is named.
    now = _cli(python, "retrain", "wine:1")
    assert now["verdict"] in ("within_tolerance", "different") and now["identical"] is False
    assert now["artifact"]["identical"] is False
    cause = now["causes"][0]
    assert cause["cause"] == "packages"
    assert cause["packages"] == [{"name": "scikit-learn", "recorded": sklearn_then, "current": "1.8.0", "imported": True}]
    assert now["environment"]["ran"] == {"kind": "current"}

    # The same, in the recorded environment rebuilt offline from the wheel directory: bit-identical.
    again = _cli(python, "retrain", "wine:1", "--environment", "recorded", "--find-links", str(wheel_dir), "--no-index")
    assert again["verdict"] == "reproduced" and again["identical"] is True, again["causes"]
    assert again["artifact"]["new_sha256"] == mv.sha256
    ran = again["environment"]["ran"]
    assert ran["kind"] == "recorded" and ran["reused"] is False and f"scikit-learn=={sklearn_then}" in ran["pins"]
    assert Path(ran["path"]).parent == local_settings.home / "environments"
    # Its BLAS ran pinned to one thread, as at training: the platforms compare equal.
    assert again["platform"]["identical"] is True, again["platform"]["differences"]

    # A cached environment is reused; a corrupted one is rebuilt, not trusted.
    reused = retrain(local_settings, "wine:1", transport=transport, environment="recorded", find_links=[str(wheel_dir)], no_index=True)
    assert reused.environment_ran["reused"] is True and reused.verdict == "reproduced"
    venv = Path(ran["path"])
    victim = next(venv.glob("lib/python*/site-packages/sklearn/linear_model/_logistic.py"))
    victim.unlink()
    rebuilt = retrain(local_settings, "wine:1", transport=transport, environment="recorded", find_links=[str(wheel_dir)], no_index=True)
    assert rebuilt.environment_ran["reused"] is False
    assert "sklearn/linear_model/_logistic.py" in rebuilt.environment_ran["rebuilt_because"]
    assert rebuilt.verdict == "reproduced" and victim.exists()


def test_a_version_that_cannot_be_installed_stops_or_takes_the_nearest(
    tmp_path: Path, local_settings: Any, wheel_dir: Path
) -> None:
    recorded = {"python": sys.version.split()[0], "packages": {"six": "1.16.99"}, "imported": ["six"]}
    with pytest.raises(EnvironmentBuildError, match=r"six==1.16.99, recorded by wine:9, cannot be installed from .*--nearest"):
        environments.ensure(local_settings, recorded, what="wine:9", find_links=[str(wheel_dir)], no_index=True)
    assert not list((local_settings.home / "environments").glob("*/bin"))  # no half-built environment left
    built = environments.ensure(local_settings, recorded, what="wine:9", find_links=[str(wheel_dir)], no_index=True, nearest=True)
    assert built.substitutions == {"six": ("1.16.99", "1.17.0")}
    assert (next(built.path.glob("lib/python*/site-packages")) / "six-1.17.0.dist-info").is_dir()
    again = environments.ensure(local_settings, recorded, what="wine:9", find_links=[str(wheel_dir)], no_index=True, nearest=True)
    assert again.reused and again.substitutions == {"six": ("1.16.99", "1.17.0")}
    # An interrupted build (no marker) is never trusted.
    (again.path / environments.MARKER).unlink()
    third = environments.ensure(local_settings, recorded, what="wine:9", find_links=[str(wheel_dir)], no_index=True, nearest=True)
    assert not third.reused and "no marker" in str(third.rebuilt_because)


def test_python_of_the_record_is_found_or_named(tmp_path: Path) -> None:
    exe, version = environments.find_python(sys.version.split()[0])
    assert version == sys.version.split()[0] and exe.exists()
    with pytest.raises(EnvironmentBuildError, match=r"trained with Python 2.9.1; no python2.9 was found .*put python2.9 on PATH"):
        environments.find_python("2.9.1", path=str(tmp_path))
    with pytest.raises(EnvironmentBuildError, match="recorded no list of the distributions its job imports"):
        environments.requirements({"python": "3.11.7", "packages": {"numpy": "2.0.0"}}, "wine:1")
    assert environments.requirements({"packages": {"NumPy": "2.0.0", "x": "1"}, "imported": ["numpy"]}) == ["numpy==2.0.0"]
