"""The real producers' OpenLineage corpus: where the tests find it, and how to assemble it.

The events are third-party data (OpenLineage/OpenLineage, Apache-2.0), so they live beside the
project, never in it (tests/data/README.md). `tests/data/openlineage-producers.tsv` and
`openlineage-columns.tsv` name each file's origin: repository path and commit. Assembling is
`git show <commit>:<path>` for each row, from a local clone of OpenLineage/OpenLineage:

    python -m tests.lineage.corpus ~/src/OpenLineage [DEST]

DEST defaults to where the tests look (`TIDEMARK_OPENLINEAGE_CORPUS`, else
`../shared/openlineage-producers` beside the checkout). Nothing is downloaded: a commit the clone
lacks is refused, naming the `git fetch` that brings it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
# The lists of origins, each with where its copy goes in the corpus (what the tests look for).
LISTS = ((DATA / "openlineage-producers.tsv", "SOURCES.tsv"), (DATA / "openlineage-columns.tsv", "columns/SOURCES"))


# Why the tests that need it skip without it, and what to do.
MISSING = (
    "the real producers' corpus is not beside the project (../shared/openlineage-producers/ or TIDEMARK_OPENLINEAGE_CORPUS): "
    "it is third-party data, not committed here; assemble it with `python -m tests.lineage.corpus <OpenLineage clone>`"
)


class CorpusError(Exception):
    """The corpus cannot be assembled; the message says what to do."""


def corpus_root() -> Path:
    """Where the tests read the corpus from (it may not exist)."""
    env = os.environ.get("TIDEMARK_OPENLINEAGE_CORPUS")
    return Path(env) if env else ROOT.parent / "shared" / "openlineage-producers"


def _git_show(checkout: Path, commit: str, path: str) -> bytes:
    proc = subprocess.run(["git", "-C", str(checkout), "show", f"{commit}:{path}"], capture_output=True)
    if proc.returncode != 0:
        reason = (proc.stderr.decode(errors="replace").strip().splitlines() or ["git show failed"])[-1]
        raise CorpusError(
            f"{checkout}: cannot read {path} at commit {commit[:12]} ({reason}); "
            f"clone OpenLineage/OpenLineage with its history there (git -C {checkout} fetch origin {commit})"
        )
    return proc.stdout


def assemble(checkout: Path, dest: Path, lists: tuple[tuple[Path, str], ...] = LISTS) -> int:
    """Copy every file the lists name from `checkout` at its commit into `dest`, with the lists and
    the repository's LICENSE; returns the number of files copied. Built in a temporary directory
    beside `dest` and moved into place at the end, so a failure leaves `dest` as it was."""
    if not (checkout / ".git").exists() and not (checkout / "HEAD").exists():
        raise CorpusError(f"{checkout} is not a git clone; clone https://github.com/OpenLineage/OpenLineage there first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        copied, first_commit = 0, None
        for tsv, copy_to in lists:
            rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:] if line.strip()]
            for name, _repo, path, commit, _license in rows:
                target = build / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_git_show(checkout, commit, path))
                copied += 1
                first_commit = first_commit or commit
            (build / copy_to).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tsv, build / copy_to)
        if first_commit is not None:
            (build / "LICENSE").write_bytes(_git_show(checkout, first_commit, "LICENSE"))
        if dest.exists():
            shutil.rmtree(dest)
        build.rename(dest)
        return copied
    finally:
        shutil.rmtree(build, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m tests.lineage.corpus OPENLINEAGE_CLONE [DEST]", file=sys.stderr)
        return 2
    dest = Path(argv[1]) if len(argv) == 2 else corpus_root()
    try:
        n = assemble(Path(argv[0]), dest)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{n} files in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
