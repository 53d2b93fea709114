"""Source files: checksum, format, and reading them into Arrow with clear errors for bad input."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Source:
    path: Path
    fmt: str
    sha256: str
    size: int


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def open_source(location: str, fmt: str | None = None) -> Source:
    path = Path(location).expanduser()
    if not path.exists():
        raise SourceError(f"{location}: no such file; check the path")
    if not path.is_file():
        raise SourceError(f"{location}: not a regular file")
    path = path.resolve()
    if fmt is None:
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise SourceError(f"{location}: cannot tell the format from the extension; pass --format csv|parquet|jsonl")
    elif fmt not in set(FORMATS.values()):
        raise SourceError(f"--format {fmt} is not supported; use csv, parquet or jsonl")
    size = path.stat().st_size
    if size == 0:
        raise SourceError(f"{location}: the file is empty; nothing to land")
    return Source(path=path, fmt=fmt, sha256=sha256_file(path), size=size)


def read(source: Source) -> pa.Table:
    """Read the whole source into Arrow. Errors name the file and the problem in one line."""
    import pyarrow as pa

    try:
        if source.fmt == "csv":
            from pyarrow import csv

            table = csv.read_csv(source.path)
            # pyarrow reads a text column that is not valid UTF-8 as binary rather than failing.
            binary = [f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
            if binary:
                raise SourceError(f"{source.path}: the file is not valid UTF-8 text (column {', '.join(binary)}); re-encode it as UTF-8")
        elif source.fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(source.path)
        else:
            from pyarrow import json as pjson

            table = pjson.read_json(source.path)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if "invalid UTF8" in first or "UTF8" in first:
            first = "the file is not valid UTF-8 text"
        raise SourceError(f"{source.path}: cannot read as {source.fmt}: {first}") from exc
    if table.num_rows == 0:
        raise SourceError(f"{source.path}: no data rows (header only?); nothing to land")
    return table
