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
    if props.get("type") == "sql":
        # pyiceberg's SQL catalog with a commit that does not re-read the table it was handed
        # (lakehouse.sqlcatalog); pyiceberg takes a class path instead of a type for that.
        from lakehouse.sqlcatalog import IMPL

        del props["type"]
        props["py-catalog-impl"] = IMPL
    error: Exception | None = None
    for attempt in range(3):
        try:
            catalog = _load(settings.catalog.name, **props)
        except Exception as exc:  # pyiceberg raises many kinds; all mean "cannot open the catalog"
            error = exc
            # Processes opening a new SQL catalog at once race to create its tables; the loser
            # sees "already exists" / a unique violation. The tables exist then: open it again.
            text = str(exc)
            if not ("already exists" in text or "UniqueViolation" in text or "duplicate key" in text):
                break
        else:
            if uri.startswith("sqlite:///"):
                _use_wal(uri, catalog)
            return catalog
    # One line: drivers add hints and links on further lines (the full text stays on __cause__).
    reason = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
    raise CatalogError(
        f"cannot open Iceberg catalog {settings.catalog.name!r} at {_redact(uri)}: {reason}; "
        "check catalog.uri in tidemark.yaml or TIDEMARK__CATALOG__URI"
    ) from error


# SQLite catalog files this process has already switched to write-ahead logging.
_WAL: set[str] = set()


def _use_wal(uri: str, catalog: Catalog) -> None:
    """Put an SQLite catalog in WAL mode (kept in the file, so once per file and process suffices).

    Every Iceberg commit updates one catalog row; in SQLite's default rollback-journal mode that
    costs several fsyncs, and under I/O from other processes a model registration spent ~20-40 ms
    of its wall time there (WAL: one fsync per commit, still durable with synchronous=FULL, and
    readers no longer wait for a writer).
    """
    if uri in _WAL:
        return
    engine = getattr(catalog, "engine", None)
    if engine is None:
        return
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    except Exception:  # another process holds a lock right now: the next load tries again
        return
    _WAL.add(uri)


def _redact(uri: str) -> str:
    """Never print a password that sits in a catalog URI."""
    from lakehouse.redact import redact

    return redact(uri)
