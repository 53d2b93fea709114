"""benchmarks.common.kept_home: a benchmark's store is built once per spec and kept; a build cut
short (no marker) or another spec is built again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import common


def test_built_once_then_kept_and_rebuilt_for_another_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "BENCH_ROOT", tmp_path)
    calls: list[Path] = []

    def build(home: Path) -> int:
        calls.append(home)
        (home / "data").write_text("x")
        return 42

    with common.kept_home("store", {"rows": 10}, build) as (home, built_s, value):
        assert os.environ["TIDEMARK_HOME"] == str(home) and value == 42 and built_s > 0
    with common.kept_home("store", {"rows": 10}, build) as (home2, built_s, value):
        assert home2 == home and value == 42 and built_s == 0.0
    assert len(calls) == 1
    with common.kept_home("store", {"rows": 20}, build) as (home3, built_s, _):
        assert home3 != home and built_s > 0
    assert len(calls) == 2


def test_a_build_that_failed_is_built_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "BENCH_ROOT", tmp_path)

    def broken(home: Path) -> None:
        (home / "half").write_text("x")
        raise RuntimeError("cut short")

    with pytest.raises(RuntimeError), common.kept_home("store", {"rows": 10}, broken):
        pass
    with common.kept_home("store", {"rows": 10}, lambda home: 7) as (home, built_s, value):
        assert value == 7 and built_s > 0 and not (home / "half").exists()


def test_a_new_code_key_removes_the_stores_the_old_code_built_of_the_same_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "BENCH_ROOT", tmp_path)
    with common.kept_home("store", {"rows": 10, "code": "a"}, lambda home: 1) as (old, _, _):
        pass
    with common.kept_home("store", {"rows": 99, "code": "a"}, lambda home: 1) as (other_size, _, _):
        pass
    (tmp_path / "store" / "cut-short").mkdir()  # no marker: left for its own rebuild
    with common.kept_home("store", {"rows": 10, "code": "b"}, lambda home: 2) as (new, built_s, value):
        assert value == 2 and built_s > 0
    assert new.exists() and not old.exists()
    # Another size built by the old code is no longer current either: removed when that size builds.
    assert other_size.exists() and (tmp_path / "store" / "cut-short").exists()
    with common.kept_home("store", {"rows": 99, "code": "b"}, lambda home: 2):
        pass
    assert not other_size.exists() and new.exists()


def test_the_ingest_source_is_generated_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import bench_ingest

    monkeypatch.setattr(common, "BENCH_ROOT", tmp_path)
    path, arrow_bytes, state = bench_ingest.cached_source(1000)
    assert path.is_file() and arrow_bytes > 0 and state.startswith("generated in")
    assert bench_ingest.cached_source(1000) == (path, arrow_bytes, "cached")
