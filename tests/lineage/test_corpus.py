"""Assembling the real producers' corpus from a local OpenLineage clone (tests/lineage/corpus.py),
against a real git repository made here: the files at the commits the lists name, or nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lineage.corpus import DATA, CorpusError, assemble, main

HEADER = "file\trepository\tpath\tcommit\tlicense\n"


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo)}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


def _commit(repo: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "x")
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository whose event file changed between two commits."""
    repo = tmp_path / "OpenLineage"
    repo.mkdir()
    _git(repo, "init", "-q")
    old = _commit(repo, {"LICENSE": "Apache 2.0\n", "integration/spark/1.json": '{"v": 1}', "spec/facet.json": '{"f": 1}'})
    new = _commit(repo, {"integration/spark/1.json": '{"v": 2}'})
    return repo, old, new


def _lists(tmp_path: Path, rows: list[str], column_rows: list[str]) -> tuple[tuple[Path, str], ...]:
    (tmp_path / "p.tsv").write_text(HEADER + "".join(rows))
    (tmp_path / "c.tsv").write_text(HEADER + "".join(column_rows))
    return ((tmp_path / "p.tsv", "SOURCES.tsv"), (tmp_path / "c.tsv", "columns/SOURCES"))


def test_each_file_is_copied_as_it_was_at_its_commit(clone: tuple[Path, str, str], tmp_path: Path) -> None:
    repo, old, new = clone
    lists = _lists(
        tmp_path,
        [f"spark/a.json\tOpenLineage/OpenLineage\tintegration/spark/1.json\t{old}\tApache-2.0\n",
         f"spark/b.json\tOpenLineage/OpenLineage\tintegration/spark/1.json\t{new}\tApache-2.0\n"],
        [f"columns/f.json\tOpenLineage/OpenLineage\tspec/facet.json\t{new}\tApache-2.0\n"],
    )
    dest = tmp_path / "corpus"
    assert assemble(repo, dest, lists) == 3
    assert (dest / "spark/a.json").read_text() == '{"v": 1}' and (dest / "spark/b.json").read_text() == '{"v": 2}'
    assert (dest / "columns/f.json").read_text() == '{"f": 1}' and (dest / "LICENSE").read_text() == "Apache 2.0\n"
    assert (dest / "SOURCES.tsv").read_text() == (tmp_path / "p.tsv").read_text()
    assert (dest / "columns/SOURCES").read_text() == (tmp_path / "c.tsv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".corpus")) == []  # no build directory left


def test_a_commit_the_clone_lacks_is_refused_and_the_corpus_is_left_as_it_was(clone: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, old, _ = clone
    dest = tmp_path / "corpus"
    dest.mkdir()
    (dest / "kept").write_text("from before")
    missing = "0" * 40
    lists = _lists(tmp_path, [f"spark/a.json\tOpenLineage/OpenLineage\tintegration/spark/1.json\t{old}\tApache-2.0\n",
                              f"spark/b.json\tOpenLineage/OpenLineage\tintegration/spark/1.json\t{missing}\tApache-2.0\n"], [])
    with pytest.raises(CorpusError, match=f"cannot read integration/spark/1.json at commit 000000000000 .*git -C {repo} fetch origin {missing}"):
        assemble(repo, dest, lists)
    assert [p.name for p in dest.iterdir()] == ["kept"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["OpenLineage", "corpus", "p.tsv", "c.tsv"])

    assert main([str(tmp_path / "nowhere"), str(dest)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a git clone; clone https://github.com/OpenLineage/OpenLineage there first" in err


def test_the_committed_lists_name_files_from_the_openlineage_repository() -> None:
    for tsv in ("openlineage-producers.tsv", "openlineage-columns.tsv"):
        lines = (DATA / tsv).read_text().splitlines()
        assert lines[0] + "\n" == HEADER
        for line in lines[1:]:
            name, repo, path, commit, license_ = line.split("\t")
            assert repo == "OpenLineage/OpenLineage" and license_ == "Apache-2.0" and len(commit) == 40 and name.endswith(".json"), line
