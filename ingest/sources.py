"""Source files: where they are, their checksum and format, and streaming them as Arrow record batches.

A source is a local path, a glob, or any URI pyarrow's filesystems read (`s3://bucket/key` with the
warehouse's `s3.*` catalog properties, `file:///...`). Nothing is ever read whole into memory: the
checksum is computed over the exact bytes in blocks, and rows arrive as record batches. Every error
names the file and the problem in one line.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.content import Content, open_text, sniff
from ingest.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# A compressed text file's format is its name's suffix before these (`a.csv.gz`); the content says the codec.
COMPRESSED_SUFFIXES = {".gz", ".gzip", ".bz2", ".zst"}
TEXT_FORMATS = {"csv", "jsonl"}
GLOB_CHARS = set("*?[")
# Text formats are parsed in blocks of this size. JSON Lines types are inferred from the first block
# (a larger block: fewer "type changed further down" errors); a CSV file's are settled over the
# whole file (`ingest.inference`).
TEXT_BLOCK_BYTES = 16 << 20
HASH_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Source:
    """One source file, identified by its content checksum."""

    uri: str  # what the user gave (or what a glob matched), for messages and lineage
    path: str  # path inside `filesystem`
    fmt: str
    sha256: str
    size: int
    mtime_ns: int | None
    filesystem: Any  # pyarrow.fs.FileSystem
    content: Content = Content()  # a text format's compression and encoding, from its first bytes
    local_copy: str | None = None  # `open_source(copy_into=)`: the local copy of a file on another filesystem

    def open_text(self) -> Any:
        """The file as UTF-8 bytes (decompressed, decoded): what the CSV and JSON readers read."""
        return open_text(self.filesystem, self.path, self.content)

    @property
    def name(self) -> str:
        return self.uri


def _has_scheme(location: str) -> bool:
    head, sep, _ = location.partition("://")
    return bool(sep) and head.isalnum() and len(head) > 1


def filesystem_for(location: str, catalog_properties: Mapping[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path of a location (local path or URI)."""
    import pyarrow.fs as pafs

    props = dict(catalog_properties or {})
    if not _has_scheme(location):
        try:
            return pafs.LocalFileSystem(), str(Path(location).expanduser().resolve())
        except RuntimeError as exc:  # Python 3.11 raises RuntimeError("Symlink loop from ...")
            raise SourceError(f"{location}: a symbolic link loop ({exc}); point the link at a file") from exc
    scheme, _, rest = location.partition("://")
    if scheme in ("s3", "s3a", "s3n"):
        # The warehouse's own credentials (pyiceberg's property names), so one config serves both.
        kwargs: dict[str, Any] = {}
        if props.get("s3.endpoint"):
            endpoint = props["s3.endpoint"]
            kwargs["scheme"] = "https" if endpoint.startswith("https") else "http"
            kwargs["endpoint_override"] = endpoint.split("://", 1)[-1]
        if props.get("s3.access-key-id"):
            kwargs["access_key"] = props["s3.access-key-id"]
            kwargs["secret_key"] = props.get("s3.secret-access-key")
        if props.get("s3.session-token"):
            kwargs["session_token"] = props["s3.session-token"]
        if props.get("s3.region"):
            kwargs["region"] = props["s3.region"]
        if kwargs.get("endpoint_override"):
            kwargs["force_virtual_addressing"] = False
        return pafs.S3FileSystem(**kwargs), rest
    try:
        return pafs.FileSystem.from_uri(location)
    except Exception as exc:  # pyarrow raises ArrowInvalid / ArrowNotImplementedError / OSError
        raise SourceError(f"{location}: cannot open this URI with pyarrow ({_first_line(exc)}); use a local path or s3://") from exc


def expand(location: str, catalog_properties: Mapping[str, str] | None = None) -> list[str]:
    """A glob becomes the sorted list of files it matches; anything else is returned as is."""
    if not GLOB_CHARS & set(location):
        return [location]
    import pyarrow.fs as pafs

    if not _has_scheme(location):
        import glob

        matches = sorted(p for p in glob.glob(str(Path(location).expanduser()), recursive=True) if Path(p).is_file())
    else:
        fs, pattern = filesystem_for(location, catalog_properties)
        scheme = location.split("://", 1)[0]
        # Only the path up to the first wildcard is listed; fnmatch decides the rest.
        base = pattern[: min(pattern.index(c) for c in GLOB_CHARS if c in pattern)].rsplit("/", 1)[0]
        try:
            infos = fs.get_file_info(pafs.FileSelector(base, recursive="**" in pattern or pattern.count("/") > base.count("/") + 1))
        except Exception as exc:
            raise SourceError(f"{location}: cannot list {base}: {_first_line(exc)}") from exc
        matches = sorted(
            f"{scheme}://{i.path}" for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, pattern)
        )
    if not matches:
        raise SourceError(f"{location}: the pattern matches no file; check the path")
    return matches


def detect_format(location: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            raise SourceError(f"fmt {fmt} is not supported; use csv, parquet or jsonl", parameter="fmt")
        return fmt
    name = Path(location.split("?", 1)[0])
    suffix = name.suffix.lower()
    if suffix in COMPRESSED_SUFFIXES:
        suffix = name.with_suffix("").suffix.lower()
    found = FORMATS.get(suffix)
    if found is None:
        raise SourceError(f"{location}: cannot tell the format from the extension; pass fmt: csv, parquet or jsonl", parameter="fmt")
    return found


def open_source(
    location: str, fmt: str | None = None, catalog_properties: Mapping[str, str] | None = None, *, copy_into: Path | None = None,
) -> Source:
    """Check the file exists and is not empty, tell its format, and checksum its bytes (streamed).

    `copy_into`: a local folder. A file on another filesystem (`s3://`) is copied into it, under its
    own name, by the same pass that checksums it (`Source.local_copy`): the object is read once, and
    the copy is exactly the bytes the checksum names. A local file is not copied.
    """
    import pyarrow.fs as pafs

    fs, path = filesystem_for(location, catalog_properties)
    try:
        info = fs.get_file_info(path)
    except Exception as exc:
        raise SourceError(f"{location}: cannot reach the file: {_first_line(exc)}") from exc
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"{location}: no such file; check the path")
    if info.type == pafs.FileType.Directory:
        raise SourceError(f"{location}: is a directory; name a file in it, or all of them with a pattern such as {location.rstrip('/')}/*.csv")
    if info.type != pafs.FileType.File:
        raise SourceError(f"{location}: not a regular file")
    fmt = detect_format(location, fmt)
    size = int(info.size or 0)
    if size == 0:
        raise SourceError(f"{location}: the file is empty; nothing to land")
    content = sniff(fs, path, location, fmt) if fmt in TEXT_FORMATS else Content()
    copy = None if copy_into is None or isinstance(fs, pafs.LocalFileSystem) else copy_into / Path(path).name
    return Source(
        uri=location if _has_scheme(location) else path,
        path=path,
        fmt=fmt,
        sha256=sha256_of(fs, path, location, copy_to=copy),
        size=size,
        mtime_ns=info.mtime_ns,
        filesystem=fs,
        content=content,
        local_copy=None if copy is None else str(copy),
    )


def sha256_of(fs: pafs.FileSystem, path: str, label: str, *, copy_to: Path | None = None) -> str:
    """The file's sha256, read in blocks; `copy_to`: a local file the same blocks are written to as they are read."""
    digest = hashlib.sha256()
    try:
        with open(copy_to, "wb") if copy_to is not None else nullcontext() as sink:
            for block in _blocks(fs, path, label):
                digest.update(block)
                if sink is not None:
                    sink.write(block)
    except OSError as exc:  # the copy's: a read error is a SourceError already
        raise SourceError(f"{label}: cannot write its local copy {copy_to}: {_first_line(exc)}; free disk space there") from exc
    return digest.hexdigest()


def _blocks(fs: pafs.FileSystem, path: str, label: str) -> Iterator[bytes]:
    try:
        with fs.open_input_stream(path) as fh:
            while block := fh.read(HASH_BLOCK_BYTES):
                yield block
    except OSError as exc:
        raise SourceError(f"{label}: cannot read the file: {_first_line(exc)}") from exc


def sha256_file(path: Path) -> str:
    import pyarrow.fs as pafs

    return sha256_of(pafs.LocalFileSystem(), str(path), str(path))


def check_unchanged(source: Source) -> None:
    """The rows landed must be the bytes checksummed: refuse a file that changed while it was read."""
    info = source.filesystem.get_file_info(source.path)
    if info.size != source.size or (source.mtime_ns is not None and info.mtime_ns != source.mtime_ns):
        raise SourceError(f"{source.uri}: the file changed while it was being landed; land it again once it is complete")


def batches(source: Source, batch_rows: int = 256_000, warnings: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Stream the source as record batches. Errors (also those found deep into the file) are SourceError.

    A CSV file's column types are settled over the whole file first (`ingest.inference`); what that
    widened is added to `warnings`.
    """
    import pyarrow as pa

    try:
        if source.fmt == "csv":
            yield from _csv_batches(source, [] if warnings is None else warnings)
        elif source.fmt == "parquet":
            import pyarrow.parquet as pq

            with source.filesystem.open_input_file(source.path) as fh:
                pf = pq.ParquetFile(fh)
                unique_columns(pf.schema_arrow.names, source.uri)
                # One reader per row group: a single iter_batches over the whole file keeps every
                # pre-buffered row group cached until the end (the whole compressed file in memory).
                for group in range(pf.num_row_groups):
                    yield from pf.iter_batches(batch_size=batch_rows, row_groups=[group])
        else:
            from pyarrow import json as pajson

            yield from _json_batches(source)
    except (SourceError, MemoryError):  # pyarrow's ArrowMemoryError is an ArrowException too: not the file's fault
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = _first_line(exc)
        codec = source.content.compression
        if codec and any(w in first.lower() for w in ("compress", "truncat", "zlib", "gzip", "bz2", "zstd")):
            first = f"its {codec} data is cut short or corrupt ({first}); is the file complete?"
        elif "UTF8" in first or "UTF-8" in first:
            first = "the file is not valid UTF-8 text; re-encode it as UTF-8"
        elif source.fmt == "jsonl" and ("unexpected field" in first or "changed from" in first):
            first += " (fields and types are inferred from the start of the file; one appears or changes further down)"
        raise SourceError(f"{source.uri}: cannot read as {source.fmt}: {first}") from exc


def _json_batches(source: Source) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    from pyarrow import json as pajson

    from ingest import inference

    opened: list[Any] = []

    def open_reader(types: dict[str, pa.DataType] | None) -> Any:
        for fh in opened:
            fh.close()
        opened[:] = [source.open_text()]
        parse = pajson.ParseOptions(explicit_schema=pa.schema(types) if types else None)
        return pajson.open_json(opened[0], read_options=pajson.ReadOptions(block_size=TEXT_BLOCK_BYTES), parse_options=parse)

    try:
        exact = inference.settle_json(open_reader, source.uri)
        reader = open_reader(None)
        if exact:
            reader = open_reader({**{f.name: f.type for f in reader.schema}, **exact})
        yield from reader
    finally:
        for fh in opened:
            fh.close()


def _csv_batches(source: Source, warnings: list[str]) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa
    from pyarrow import csv

    from ingest import inference

    opened: list[Any] = []

    def open_reader(types: dict[str, pa.DataType] | None, strings_null: bool = False) -> Any:
        for fh in opened:
            fh.close()
        opened[:] = [source.open_text()]
        convert = csv.ConvertOptions(column_types=types or {}, strings_can_be_null=strings_null)
        reader = csv.open_csv(opened[0], read_options=csv.ReadOptions(block_size=TEXT_BLOCK_BYTES), convert_options=convert)
        unique_columns(reader.schema.names, source.uri)
        return reader

    try:
        # A compressed or re-encoded file's size says nothing of its text's: always settle over it.
        size = source.size if source.content == Content() else TEXT_BLOCK_BYTES + 1
        types = inference.settle(open_reader, source.uri, size, TEXT_BLOCK_BYTES, warnings)
        reader = open_reader(types)
        # pyarrow reads a text column that is not valid UTF-8 as binary rather than failing.
        binary = [f.name for f in reader.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        if binary:
            raise SourceError(
                f"{source.uri}: the file is not valid UTF-8 text (column {', '.join(binary)}); re-encode it as UTF-8"
            )
        yield from reader
    finally:
        for fh in opened:
            fh.close()


def unique_columns(names: list[str], label: str) -> None:
    """A table cannot have two columns of one name: refuse a header that repeats one, naming it."""
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    twice = [f"{n!r} ({count} times)" for n, count in seen.items() if count > 1]
    if twice:
        raise SourceError(f"{label}: the header repeats column name {', '.join(twice)}; give each column its own name")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
