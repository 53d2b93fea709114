"""Source files (ingest.sources): found, checksummed over their exact bytes, format told, streamed
as record batches, and every problem named in one line with the file and the fix."""

from __future__ import annotations

import os

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest import sources
from ingest.exceptions import SourceError


def _rows(src: sources.Source) -> list[dict[str, object]]:
    return pa.Table.from_batches(list(sources.batches(src))).to_pylist()


def test_a_local_file_is_checksummed_over_its_exact_bytes(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"id,name\r\n1,x\r\n2,y\r\n")
    src = sources.open_source(str(f))
    assert src.sha256 == hashlib.sha256(f.read_bytes()).hexdigest() == sources.sha256_file(f)
    assert (src.fmt, src.size, src.uri, src.path) == ("csv", f.stat().st_size, str(f), str(f))
    assert _rows(src) == [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]


def test_the_checksum_streams_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "HASH_BLOCK_BYTES", 7)  # many blocks, one digest
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'{"id": 1}\n{"id": 2}\n' * 10)
    assert sources.open_source(str(f)).sha256 == hashlib.sha256(f.read_bytes()).hexdigest()


def test_parquet_streams_row_group_by_row_group_and_jsonl_line_by_line(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": list(range(10))}), p, row_group_size=4)
    batches = list(sources.batches(sources.open_source(str(p)), batch_rows=3))
    assert [b.num_rows for b in batches] == [3, 1, 3, 1, 2]  # never across a row group
    j = tmp_path / "a.ndjson"
    j.write_text('{"id": 1, "v": "a"}\n{"id": 2, "v": null}\n')
    src = sources.open_source(str(j))
    assert src.fmt == "jsonl" and _rows(src) == [{"id": 1, "v": "a"}, {"id": 2, "v": None}]


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [("a.CSV", None, "csv"), ("a.pq", None, "parquet"), ("a.jsonl", None, "jsonl"), ("a.txt", "csv", "csv"), ("s3://b/k.parquet?v=1", None, "parquet")],
)
def test_the_format_comes_from_the_extension_or_is_given(name: str, fmt: str | None, expected: str) -> None:
    assert sources.detect_format(name, fmt) == expected


def test_an_unknown_format_names_the_fix() -> None:
    # The library names its parameter `fmt`; the CLI says --format (reword).
    with pytest.raises(SourceError, match=r"a.txt: cannot tell the format from the extension; pass fmt: csv, parquet or jsonl") as err:
        sources.detect_format("a.txt", None)
    assert err.value.parameter == "fmt"
    with pytest.raises(SourceError, match="fmt xml is not supported; use csv, parquet or jsonl") as err:
        sources.detect_format("a.csv", "xml")
    assert err.value.parameter == "fmt"


def test_missing_empty_and_non_regular_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="missing.csv: no such file; check the path"):
        sources.open_source(str(tmp_path / "missing.csv"))
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(SourceError, match="empty.csv: the file is empty; nothing to land"):
        sources.open_source(str(tmp_path / "empty.csv"))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(SourceError, match="dir.csv: is a directory; name a file in it, or all of them with a pattern such as .*dir.csv/\\*.csv"):
        sources.open_source(str(tmp_path / "dir.csv"))
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="pipe.csv: not a regular file"):
        sources.open_source(str(fifo))


def test_a_glob_expands_to_its_sorted_files_and_a_path_stays_as_it_is(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "c.parquet"):
        (tmp_path / name).write_text("id\n1\n")
    (tmp_path / "sub.csv").mkdir()  # a folder that matches is not a file to land
    assert sources.expand(str(tmp_path / "*.csv")) == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    assert sources.expand(str(tmp_path / "a.csv")) == [str(tmp_path / "a.csv")]
    with pytest.raises(SourceError, match=r"\*.jsonl: the pattern matches no file; check the path"):
        sources.expand(str(tmp_path / "*.jsonl"))


def test_a_file_that_changed_after_its_checksum_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("id\n1\n")
    src = sources.open_source(str(f))
    sources.check_unchanged(src)
    f.write_text("id\n1\n2\n")
    with pytest.raises(SourceError, match="a.csv: the file changed while it was being landed; land it again once it is complete"):
        sources.check_unchanged(src)


def test_unreadable_content_is_named_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,name\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(SourceError, match="latin.csv: the file is not valid UTF-8 text \\(column name\\); re-encode it as UTF-8"):
        _rows(sources.open_source(str(latin)))
    monkeypatch.setattr(sources, "TEXT_BLOCK_BYTES", 64)  # the new field shows after the first block
    drift = tmp_path / "drift.jsonl"
    drift.write_text('{"id": 1}\n' * 20 + '{"id": 2, "new": true}\n')
    with pytest.raises(SourceError, match="drift.jsonl: cannot read as jsonl: .*fields and types are inferred from the start of the file"):
        list(sources.batches(sources.open_source(str(drift))))


def test_uris_get_their_filesystem_and_s3_uses_the_catalog_credentials() -> None:
    import pyarrow.fs as pafs

    fs, path = sources.filesystem_for("s3://bucket/raw/a.csv", {"s3.endpoint": "http://127.0.0.1:9", "s3.access-key-id": "k", "s3.secret-access-key": "s", "s3.region": "eu-west-1"})
    assert isinstance(fs, pafs.S3FileSystem) and path == "bucket/raw/a.csv" and fs.region == "eu-west-1"
    fs, path = sources.filesystem_for("file:///tmp/a.csv")
    assert isinstance(fs, pafs.LocalFileSystem) and path == "/tmp/a.csv"
    with pytest.raises(SourceError, match="nosuch://x/a.csv: cannot open this URI with pyarrow .*; use a local path or s3://"):
        sources.filesystem_for("nosuch://x/a.csv")
