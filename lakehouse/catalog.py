"""The Iceberg catalog: embedded SQLite by default, anything pyiceberg supports by config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.config import Settings
from lakehouse.exceptions import CatalogError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def load_catalog(settings: Settings) -> Catalog:
    """Open the configured catalog, creating the local warehouse folder for the embedded default."""
    from pyiceberg.catalog import load_catalog as _load

    props = dict(settings.catalog.properties)
    uri = props.get("uri", "")
    if uri.startswith("sqlite:///"):
        # SQLite and a file:// warehouse are the embedded default: make their folders on first use.
        settings.home.mkdir(parents=True, exist_ok=True)
        props.setdefault("type", "sql")
    if props.get("warehouse", "").startswith("file://"):
        from urllib.parse import urlparse
        from pathlib import Path

        Path(urlparse(props["warehouse"]).path).mkdir(parents=True, exist_ok=True)
    if uri.startswith(("postgresql", "sqlite", "mysql")):
        props.setdefault("type", "sql")
    error: Exception | None = None
    for attempt in range(3):
        try:
            return _load(settings.catalog.name, **props)
        except Exception as exc:  # pyiceberg raises many kinds; all mean "cannot open the catalog"
            error = exc
            # Processes opening a new SQL catalog at once race to create its tables; the loser
            # sees "already exists" / a unique violation. The tables exist then: open it again.
            text = str(exc)
            if not ("already exists" in text or "UniqueViolation" in text or "duplicate key" in text):
                break
    # One line: drivers add hints and links on further lines (the full text stays on __cause__).
    reason = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
    raise CatalogError(
        f"cannot open Iceberg catalog {settings.catalog.name!r} at {_redact(uri)}: {reason}; "
        "check catalog.uri in tidemark.yaml or TIDEMARK__CATALOG__URI"
    ) from error


def _redact(uri: str) -> str:
    """Never print a password that sits in a catalog URI."""
    from lakehouse.redact import redact

    return redact(uri)
