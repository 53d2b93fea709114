"""What code and which environment produced a model: recorded at training, compared at retrain.

Code identity is the entry point, the sha256 of its module's source, and the git commit and dirty
flag of the repository holding that module (None when it is not in a git repository; untracked
files do not make it dirty). The source
hash is what decides "same code": a commit can change elsewhere in a repository without touching
the job, and a dirty tree can still hold the recorded source.
"""

from __future__ import annotations

import functools
import platform
import sys
from collections.abc import Mapping
from typing import Any


def code_identity(entry_point: str, sdk_facet: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The identity of `module:function`'s code, as the registry records it.

    Built from the lineage SDK's `tidemark_code` run facet (`lineage.code.code_identity`: git
    commit, dirty flag, sha256 of the module source) so the event and the registry row always
    agree and git runs once per training run; computed here when no facet is given.
    """
    module_name = entry_point.partition(":")[0]
    if sdk_facet is None:
        from lineage.code import code_identity as sdk_identity
        from models.jobs import load_entry_point

        sdk_facet = sdk_identity(load_entry_point(entry_point))
    return {
        "entry_point": entry_point,
        "module": module_name,
        "source_sha256": sdk_facet.get("sourceSha256"),
        "git_commit": sdk_facet.get("gitCommit"),
        "git_dirty": sdk_facet.get("gitDirty"),
    }


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
