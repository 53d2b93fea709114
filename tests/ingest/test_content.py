"""ingest.content: a text source's compression and encoding from its first bytes, or why it is not text."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from ingest.content import Content, open_text, sniff
from ingest.exceptions import SourceError

TEXT = "id,name\n1,café\n2,naïve\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TEXT.encode(), Content()),
        (TEXT.encode("utf-16"), Content(None, "utf-16")),
        (TEXT.encode("utf-16-le"), Content(None, "utf-16-le")),
        (TEXT.encode("utf-16-be"), Content(None, "utf-16-be")),
        (gzip.compress(TEXT.encode()), Content("gzip", None)),
        (bz2.compress(TEXT.encode("utf-16")), Content("bz2", "utf-16")),
    ],
    ids=["utf-8", "utf-16 bom", "utf-16-le", "utf-16-be", "gzip", "bz2 of utf-16"],
)
def test_text_is_read_back_as_the_utf8_it_holds(tmp_path: Path, data: bytes, expected: Content) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(data)
    fs = pafs.LocalFileSystem()
    found = sniff(fs, str(f), "a.csv", "csv")
    assert found == expected
    with open_text(fs, str(f), found) as stream:
        assert stream.read().decode() == TEXT


def test_zstd_is_decompressed(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    with pa.output_stream(str(f), compression="zstd") as out:
        out.write(TEXT.encode())
    assert sniff(pafs.LocalFileSystem(), str(f), "a.csv", "csv") == Content("zstd", None)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"PAR1" + b"\x00" * 100, "a.csv: is a Parquet file, not csv"),
        (b"PK\x03\x04" + b"\x00" * 100, "a.csv: is a zip archive, not csv; unzip it"),
        (bytes(range(256)) * 8, "a.csv: is binary data, not csv text"),
        (gzip.compress(b"\x00\x01\x02\x03" * 500), "a.csv: is gzip-compressed data holding binary data"),
    ],
    ids=["parquet", "zip", "binary", "gzip of binary"],
)
def test_what_is_not_text_is_named(tmp_path: Path, data: bytes, says: str) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(data)
    with pytest.raises(SourceError, match=says):
        sniff(pafs.LocalFileSystem(), str(f), "a.csv", "csv")
