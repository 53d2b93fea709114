"""What a text source's bytes are, told from its first bytes: compressed, UTF-16, or not text at all.

A CSV or JSON Lines file is read as UTF-8 text. Rather than let the parser fail on something
else with a misleading message ("Empty CSV file" for gzip, "Expected 3 columns, got 1" for
UTF-16), the first bytes are looked at once, when the file is opened:

- gzip, bzip2 or zstd data (by magic bytes, whatever the file's name): decompressed while read;
- a UTF-16 byte-order mark, or UTF-16 without one (every other byte NUL): decoded while read;
- a Parquet file or a zip archive named as text: refused, naming what it is and what to do;
- bytes that are not text (NULs or many control bytes): refused as binary data.

The file's sha256 stays the checksum of its bytes as stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

SNIFF_BYTES = 4096
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\x28\xb5\x2f\xfd": "zstd"}
# Share of control bytes (other than tab, CR, LF, FF) above which a head is binary data, not text.
BINARY_SHARE = 0.05


@dataclass(frozen=True)
class Content:
    """How to read a text source: its compression codec and text encoding (None: none / UTF-8)."""

    compression: str | None = None
    encoding: str | None = None

    def describe(self) -> str:
        parts = [f"{self.compression}-compressed" if self.compression else "", self.encoding.upper() if self.encoding else ""]
        return ", ".join(p for p in parts if p)


def sniff(fs: pafs.FileSystem, path: str, label: str, fmt: str) -> Content:
    """What the file's first bytes say (module docstring); SourceError for a file that is not `fmt` text."""
    import pyarrow as pa

    head = _head(fs, path, None, label)
    compression = next((codec for magic, codec in COMPRESSIONS.items() if head.startswith(magic)), None)
    if compression is not None:
        try:
            head = _head(fs, path, compression, label)
        except (pa.ArrowException, OSError) as exc:
            raise SourceError(f"{label}: starts as {compression} data but does not decompress ({exc}); is the file complete?") from exc
        if not head:
            raise SourceError(f"{label}: {compression}-compressed, and empty inside; nothing to land")
    what = f"{compression}-compressed data holding " if compression else ""
    if head.startswith(b"PAR1"):
        raise SourceError(f"{label}: is {what}a Parquet file, not {fmt}; name it .parquet or pass --format parquet")
    if head.startswith(b"PK\x03\x04"):
        raise SourceError(f"{label}: is {what}a zip archive, not {fmt}; unzip it and land the files inside")
    encoding = _utf16(head)
    if encoding is None:
        controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13)) + head.count(127)
        if head and controls / len(head) > BINARY_SHARE:
            raise SourceError(
                f"{label}: is {what}binary data, not {fmt} text ({controls} control or NUL bytes in its first "
                f"{len(head):,}); check that this is the file you meant"
            )
    return Content(compression, encoding)


def open_text(fs: pafs.FileSystem, path: str, content: Content) -> Any:
    """The file as a stream of UTF-8 bytes: decompressed and decoded as `content` says."""
    import pyarrow as pa

    stream = fs.open_input_stream(path)
    if content.compression:
        stream = pa.CompressedInputStream(stream, content.compression)
    if content.encoding:
        stream = pa.transcoding_input_stream(stream, content.encoding, "utf-8")
    return stream


def _head(fs: pafs.FileSystem, path: str, compression: str | None, label: str) -> bytes:
    import pyarrow as pa

    try:
        with fs.open_input_stream(path) as raw:
            stream = pa.CompressedInputStream(raw, compression) if compression else raw
            return bytes(stream.read(SNIFF_BYTES))
    except OSError as exc:
        if compression:
            raise
        raise SourceError(f"{label}: cannot read the file: {exc}") from exc


def _utf16(head: bytes) -> str | None:
    """`utf-16` (with a byte-order mark, which the codec reads), `utf-16-le`/`-be` without one, else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and not head.startswith(b"\xff\xfe\x00\x00"):
        return "utf-16"
    pairs = len(head) // 2
    if pairs >= 2:
        even_nuls = sum(1 for i in range(0, 2 * pairs, 2) if head[i] == 0)
        odd_nuls = sum(1 for i in range(1, 2 * pairs, 2) if head[i] == 0)
        # ASCII-range text in UTF-16: one byte of each pair is NUL, the other almost never.
        if odd_nuls > 0.9 * pairs and even_nuls < 0.1 * pairs:
            return "utf-16-le"
        if even_nuls > 0.9 * pairs and odd_nuls < 0.1 * pairs:
            return "utf-16-be"
    return None
