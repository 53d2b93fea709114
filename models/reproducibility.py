"""Which versions of a model can still be reproduced, and which cannot, before anyone needs one.

Per version: the last retrain's verdict and causes (each retrain writes them beside the model
card, `<warehouse>/models/NAME/VERSION/RUN/last-retrain.json`), and what would block a reproduction
now: an input snapshot expired or its table dropped, the code neither importable as recorded
nor recoverable (commit unreachable, no stored source), the environment not rebuildable (no list
of imported distributions, no interpreter of its Python, and with `check_install` a version pip
cannot install from the configured sources).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import TableName, load_table
from models import artifacts, environments
from models.exceptions import EnvironmentBuildError, ModelNotFoundError
from models.registry import ModelVersion, Registry, card_uri

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def last_retrain_uri(settings: Settings, model: str, version: int, run_id: str) -> str:
    """Beside the version's card (whose folder names the training run that registered it)."""
    return card_uri(settings, model, version, run_id).rsplit("/", 1)[0] + "/last-retrain.json"


def record_retrain(settings: Settings, report: Any) -> None:
    """Keep a retrain's verdict and causes beside the version's card (the latest one wins)."""
    data = {
        "at": datetime.now(timezone.utc).isoformat(),
        "run_id": report.run_id,
        "verdict": report.verdict,
        "identical": report.identical,
        "causes": report.causes,
        "environment": report.environment_ran.get("kind"),
        "code": report.code_ran.get("kind"),
        "as_of": report.as_of,
    }
    uri = last_retrain_uri(settings, report.model, report.version, report.reproduces_run_id)
    artifacts.put_text(settings, uri, json.dumps(data, indent=2, sort_keys=True))


def last_retrain(settings: Settings, mv: ModelVersion) -> dict[str, Any] | None:
    try:
        return json.loads(artifacts.get(settings, last_retrain_uri(settings, mv.model, mv.version, mv.run_id)))  # type: ignore[no-any-return]
    except (FileNotFoundError, OSError, ValueError):
        return None


@dataclass
class VersionReproducibility:
    model: str
    version: int
    last_retrain: dict[str, Any] | None
    blockers: list[str] = field(default_factory=list)
    # What each part would run from: "current", "recorded", or why neither.
    data: str = "available"
    code: str = "current"
    environment: str = "current"

    @property
    def reproducible(self) -> bool:
        return not self.blockers

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "reproducible": self.reproducible,
            "blockers": self.blockers,
            "data": self.data,
            "code": self.code,
            "environment": self.environment,
            "last_retrain": self.last_retrain,
        }


def _data(settings: Settings, catalog: Catalog, mv: ModelVersion) -> list[str]:
    blockers = []
    for inp in mv.inputs:
        try:
            table = load_table(catalog, TableName.parse(inp.table))
        except TableNotFoundError:
            blockers.append(f"data: table {inp.table} was dropped")
            continue
        if inp.snapshot_id is None:
            blockers.append(f"data: no snapshot of {inp.table} was recorded")
        elif table.snapshot_by_id(inp.snapshot_id) is None:
            blockers.append(f"data: snapshot {inp.snapshot_id} of {inp.table} expired")
    return blockers


def _git(repo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)


def _code(mv: ModelVersion) -> tuple[str, list[str]]:
    """(what the code would run from, blockers)."""
    rec = mv.code or {}
    module = rec.get("module") or mv.entry_point.partition(":")[0]
    path = None
    try:
        import importlib.util

        spec = importlib.util.find_spec(module)
        path = spec.origin if spec else None
    except (ImportError, ValueError):
        path = None
    if path and os.path.exists(path) and rec.get("source_file_sha256"):
        if hashlib.sha256(Path(path).read_bytes()).hexdigest() == rec["source_file_sha256"]:
            return "current (the module is unchanged)", []
    # The current module differs or is gone: can the recorded one be got back?
    commit, repo = rec.get("git_commit"), rec.get("repository")
    if commit and repo and Path(repo).is_dir():
        if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            why = f"code: commit {commit} is not in {repo}"
        elif not _git(repo, "for-each-ref", "--contains", commit, "--format=%(refname)", "refs/heads", "refs/tags", "refs/remotes").stdout.strip():
            why = f"code: commit {commit} is on no branch or tag of {repo} (history rewritten)"
        else:
            return f"recorded (git commit {commit[:12]}; retrain --code recorded)", []
        return "unavailable", [why]
    if commit and repo:
        return "unavailable", [f"code: the repository {repo} holding commit {commit} is gone"]
    if rec.get("source_uri"):
        return "recorded (stored source; retrain --code recorded)", []
    return "unavailable", [f"code: {module} has changed or is gone, and neither a commit nor its source was recorded"]


def _check_install(pins: Sequence[str], find_links: Sequence[str], no_index: bool) -> str | None:
    """Why pip could not install `pins` here (a dry run resolving against the configured sources), or None."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("\n".join(pins) + "\n")
        source = [a for d in find_links for a in ("--find-links", str(d))] + (["--no-index"] if no_index else [])
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run", "--ignore-installed", "--no-deps",
             "-q", *source, "-r", str(req)],
            capture_output=True, text=True,
        )
    if done.returncode == 0:
        return None
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")]
    return (errors[0] if errors else done.stderr.strip()[-300:]).removeprefix("ERROR: ")


def _environment(settings: Settings, mv: ModelVersion, check_install: bool, find_links: Sequence[str], no_index: bool,
                 checked: dict[str, str | None]) -> tuple[str, list[str]]:
    what = f"{mv.model}:{mv.version}"
    try:
        pins = environments.requirements(mv.environment, what)
        _exe, python = environments.find_python(str((mv.environment or {}).get("python") or ""))
    except EnvironmentBuildError as exc:
        return "unavailable", [f"environment: {exc}"]
    key = environments.environment_key(python, pins, False)
    if (settings.home / "environments" / key[:24] / environments.MARKER).exists():
        return f"recorded (built, {settings.home / 'environments' / key[:24]})", []
    if not check_install:
        return "recorded (not built yet; --check-install asks pip whether it can be)", []
    if key not in checked:
        checked[key] = _check_install(pins, find_links, no_index)
    if checked[key]:
        return "unavailable", [f"environment: cannot be installed: {checked[key]}"]
    return "recorded (installable)", []


def status(
    settings: Settings,
    name: str,
    *,
    check_install: bool = False,
    find_links: Sequence[str] = (),
    no_index: bool = False,
) -> list[VersionReproducibility]:
    """For each version of `name`: the last retrain's verdict and what would block reproducing it."""
    catalog = load_catalog(settings)
    versions = Registry(settings, catalog).versions(name)
    if not versions:
        raise ModelNotFoundError(f"model {name!r} is not registered; tidemark models list shows the models there are", parameter="name")
    checked: dict[str, str | None] = {}
    out = []
    for mv in sorted(versions, key=lambda v: v.version):
        blockers = _data(settings, catalog, mv)
        code, code_blockers = _code(mv)
        env, env_blockers = _environment(settings, mv, check_install, find_links, no_index, checked)
        out.append(
            VersionReproducibility(
                model=mv.model,
                version=mv.version,
                last_retrain=last_retrain(settings, mv),
                blockers=blockers + code_blockers + env_blockers,
                data="unavailable" if blockers else "available",
                code=code,
                environment=env,
            )
        )
    return out
