"""Recorded code: the job's module as it was at training, for `retrain --code recorded`.

Training records the repository holding the job's module, the commit, the dirty flag, the
module's path in the repository, and the module's source itself (content-addressed beside the
artifacts). Getting it back: a temporary `git worktree` of the recorded commit (detached, removed
afterwards), with the stored source of the module laid over it when the tree was dirty; the
stored source alone when the module was not in git. A commit no branch or tag reaches any more
(history rewritten) is refused, naming the commit: what it held may not be what was reviewed.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lakehouse.config import Settings
from models import artifacts
from models.exceptions import RecordedCodeError
from models.registry import ModelVersion


def _git(repo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)


def _stored_source(settings: Settings, rec: dict[str, Any], into: Path, what: str) -> Path:
    uri, digest = rec.get("source_uri"), rec.get("source_file_sha256")
    if not uri:
        raise RecordedCodeError(f"{what} stored no source of {rec.get('module')}; its code cannot be got back")
    try:
        data = artifacts.get(settings, uri, digest)
    except (OSError, ValueError) as exc:
        raise RecordedCodeError(f"the stored source of {rec.get('module')} for {what} ({uri}) cannot be read: {exc}") from exc
    path = into / "recorded-source" / f"{rec.get('module')}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@contextmanager
def checkout(settings: Settings, mv: ModelVersion, into: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(the runner's `code` request, what ran in words for the report) for `mv`'s recorded code,
    valid inside the block; the worktree is removed afterwards."""
    what = f"{mv.model}:{mv.version}"
    rec = dict(mv.code or {})
    module = rec.get("module") or mv.entry_point.partition(":")[0]
    rec["module"] = module
    commit, repo, rel = rec.get("git_commit"), rec.get("repository"), rec.get("path")
    if not commit:
        # Not in git when trained: the stored source is all there is.
        source = _stored_source(settings, rec, into, what)
        yield {"overlay": {module: str(source)}}, {
            "kind": "recorded", "from": "stored source (the module was not in git)", "source_sha256": rec.get("source_file_sha256"),
        }
        return
    if not repo or not rel:
        raise RecordedCodeError(
            f"{what} recorded git commit {commit} but not the repository and path of {module} "
            "(trained before Tidemark recorded them); check the commit out yourself and retrain from there"
        )
    if not Path(repo).is_dir():
        raise RecordedCodeError(f"the repository {repo} that held {module} when {what} was trained no longer exists; restore it to run commit {commit}")
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise RecordedCodeError(
            f"commit {commit} of {what} is not in {repo} (unreachable: history rewritten, or never pushed here); fetch it to run the recorded code"
        )
    refs = _git(repo, "for-each-ref", "--contains", commit, "--format=%(refname)", "refs/heads", "refs/tags", "refs/remotes")
    if refs.returncode == 0 and not refs.stdout.strip():
        raise RecordedCodeError(
            f"commit {commit} of {what} is on no branch or tag of {repo} any more (history was rewritten); refusing to run it: "
            "tag it if it is the code you mean"
        )
    if _git(repo, "cat-file", "-e", f"{commit}:{rel}").returncode != 0:
        raise RecordedCodeError(f"{rel} (module {module}) is not in commit {commit} of {repo}; the module was not committed when {what} was trained")
    tree = into / "worktree"
    added = _git(repo, "worktree", "add", "--detach", str(tree), commit)
    if added.returncode != 0:
        raise RecordedCodeError(f"git worktree add of commit {commit} failed: {added.stderr.strip()}")
    try:
        # The folder on sys.path: the module's file less its dotted path (src/pkg/mod.py for pkg.mod -> src).
        root = (tree / rel).parents[len(module.split(".")) - 1]
        code: dict[str, Any] = {"root": str(root)}
        ran: dict[str, Any] = {"kind": "recorded", "from": "git worktree", "commit": commit, "repository": repo}
        committed = (tree / rel).read_bytes()
        if rec.get("git_dirty") and rec.get("source_file_sha256") != hashlib.sha256(committed).hexdigest():
            # The tree was dirty and the module itself differed from the commit: its stored source ran.
            code["overlay"] = {module: str(_stored_source(settings, rec, into, what))}
            ran["from"] = "git worktree with the module's recorded (uncommitted) source"
        yield code, ran
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree))
