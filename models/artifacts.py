"""Model artifacts, stored content-addressed in the warehouse: `<warehouse>/artifacts/sha256/<hex>`.

Written through pyiceberg's FileIO, so the same code stores to a local warehouse or to S3.
"""

from __future__ import annotations

import hashlib

from lakehouse.config import Settings


def _io(settings: Settings, location: str):  # type: ignore[no-untyped-def]
    from pyiceberg.io import load_file_io

    return load_file_io(dict(settings.catalog.properties), location)


def artifact_uri(settings: Settings, digest: str) -> str:
    return f"{settings.warehouse.rstrip('/')}/artifacts/sha256/{digest}"


def put(settings: Settings, data: bytes) -> tuple[str, str]:
    """Store bytes under their sha256; storing the same bytes twice writes once. Returns (uri, sha256)."""
    digest = hashlib.sha256(data).hexdigest()
    uri = artifact_uri(settings, digest)
    io = _io(settings, uri)
    if not io.new_input(uri).exists():
        with io.new_output(uri).create(overwrite=True) as out:
            out.write(data)
    return uri, digest


def get(settings: Settings, uri: str, expected_sha256: str | None = None) -> bytes:
    io = _io(settings, uri)
    with io.new_input(uri).open() as fh:
        data = fh.read()
    if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ValueError(f"artifact {uri} does not match its sha256 {expected_sha256}; it was altered")
    return bytes(data)


def put_text(settings: Settings, uri: str, text: str) -> None:
    io = _io(settings, uri)
    with io.new_output(uri).create(overwrite=True) as out:
        out.write(text.encode("utf-8"))
