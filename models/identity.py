"""What code and which environment produced a model: recorded at training, compared at retrain.

Code identity is the entry point, the sha256 of its module's source, and the git commit and dirty
flag of the repository holding that module (None when it is not in a git repository). The source
hash is what decides "same code": a commit can change elsewhere in a repository without touching
the job, and a dirty tree can still hold the recorded source.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.exceptions import UnknownJobError


def _git(directory: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def code_identity(entry_point: str) -> dict[str, Any]:
    """The identity of `module:function`'s code; the module must import (its source is hashed)."""
    import importlib

    module_name = entry_point.partition(":")[0]
    try:
        module = importlib.import_module(module_name)
        source = inspect.getsource(module)
    except (ImportError, OSError, TypeError) as exc:
        raise UnknownJobError(f"entry point {entry_point}: cannot read the source of module {module_name}: {exc}") from exc
    path = Path(inspect.getsourcefile(module) or "").resolve()
    identity: dict[str, Any] = {
        "entry_point": entry_point,
        "module": module_name,
        "source_sha256": hashlib.sha256(source.encode("utf-8")).hexdigest(),
        "git_commit": None,
        "git_dirty": None,
        "repo": None,
    }
    top = _git(path.parent, "rev-parse", "--show-toplevel")
    if top:
        commit = _git(path.parent, "rev-parse", "HEAD")
        status = _git(path.parent, "status", "--porcelain")
        identity.update(
            repo=top.strip(),
            git_commit=commit.strip() if commit else None,
            git_dirty=bool(status.strip()) if status is not None else None,
        )
    return identity


def environment() -> dict[str, Any]:
    """Python and every installed distribution with its version: what bit-identical retraining needs."""
    import copy

    return copy.deepcopy(_environment())


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    # Scanning every installed distribution costs tens of milliseconds, and what is installed does
    # not change under a running interpreter's imports: once per process is enough.
    from importlib.metadata import distributions

    packages: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": dict(sorted(packages.items())),
    }


def compare_code(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """(same code?, the differences in words)."""
    if not recorded:
        return False, ["no code identity was recorded for this version"]
    diffs = []
    if recorded.get("entry_point") != current.get("entry_point"):
        diffs.append(f"entry point {recorded.get('entry_point')} -> {current.get('entry_point')}")
    if recorded.get("source_sha256") != current.get("source_sha256"):
        diffs.append(f"source of {current.get('module')} changed (sha256 {str(recorded.get('source_sha256'))[:12]}… -> {str(current.get('source_sha256'))[:12]}…)")
    same = not diffs
    # Informational: the commit may move without the job's source changing.
    if recorded.get("git_commit") != current.get("git_commit"):
        diffs.append(f"git commit {recorded.get('git_commit')} -> {current.get('git_commit')}")
    if recorded.get("git_dirty") != current.get("git_dirty"):
        diffs.append(f"git dirty {recorded.get('git_dirty')} -> {current.get('git_dirty')}")
    return same, diffs


def compare_environment(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> tuple[bool, list[str]]:
    if not recorded:
        return False, ["no environment was recorded for this version"]
    diffs = []
    if recorded.get("python") != current.get("python"):
        diffs.append(f"python {recorded.get('python')} -> {current.get('python')}")
    old, new = recorded.get("packages") or {}, current.get("packages") or {}
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            diffs.append(f"{name} {old.get(name) or '(absent)'} -> {new.get(name) or '(absent)'}")
    return not diffs, diffs
