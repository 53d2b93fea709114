"""The Iceberg catalog: embedded SQLite by default, anything pyiceberg supports by config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.config import Settings
from lakehouse.exceptions import CatalogError, TidemarkError, no_space, storage_full

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def load_catalog(settings: Settings, *, verify: bool = True) -> Catalog:
    """Open the configured catalog, creating the local warehouse folder for the embedded default.

    `verify` (the default) checks that catalog and warehouse belong together (`lakehouse.identity`):
    an emptied, replaced or foreign catalog raises CatalogIdentityError naming `tidemark catalog
    recover`. Only recovery itself opens a catalog without the check.
    """
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
                _prepare_sqlite(settings.catalog.name, uri, catalog)
            if verify:
                from lakehouse.identity import verify as verify_identity

                verify_identity(catalog)
            return catalog
    raise open_error(settings.catalog.name, uri, error) from error


# What SQLite says about a file whose pages are not a database any more.
_DAMAGED = ("file is not a database", "database disk image is malformed", "malformed database schema")


def open_error(name: str, uri: str, error: BaseException | None) -> TidemarkError:
    """The one line for a catalog that failed, with its cause: a damaged SQLite file, a full disk,
    or (anything else) a catalog that cannot be reached as configured."""
    # One line: drivers add hints and links on further lines (the full text stays on __cause__).
    reason = (str(error).strip().splitlines() or [error.__class__.__name__])[0] if error else "unknown error"
    lowered = reason.lower()
    where = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else _redact(uri)
    if uri.startswith("sqlite:///") and any(d in lowered for d in _DAMAGED):
        return CatalogError(
            f"catalog file {where} is damaged ({reason.removeprefix('(sqlite3.DatabaseError) ')}); restore it from a backup, "
            "or move it aside and run `tidemark catalog recover` to rebuild it from the warehouse's metadata files"
        )
    if error is not None and no_space(error):
        return storage_full(where, f"the catalog: {reason}")
    return CatalogError(
        f"cannot open Iceberg catalog {name!r} at {_redact(uri)}: {reason}; "
        "check catalog.uri in tidemark.yaml or TIDEMARK__CATALOG__URI"
    )


# SQLite catalog files this process has checked and switched to write-ahead logging.
_PREPARED: set[str] = set()


def _prepare_sqlite(name: str, uri: str, catalog: Catalog) -> None:
    """Once per SQLite catalog file and process: refuse a damaged file, then use write-ahead logging.

    Damage: `PRAGMA quick_check` reads the whole file (a catalog is a few pages), so a damaged file
    is refused in words that say so when it is opened, not as a driver traceback from whichever
    query meets the bad page first.

    WAL (kept in the file): every Iceberg commit updates one catalog row; in SQLite's default
    rollback-journal mode that costs several fsyncs, and under I/O from other processes a model
    registration spent ~20-40 ms of its wall time there (WAL: one fsync per commit, still durable
    with synchronous=FULL, and readers no longer wait for a writer).
    """
    engine = getattr(catalog, "engine", None)
    if uri in _PREPARED or engine is None:
        return
    try:
        with engine.connect() as conn:
            verdict = str(conn.exec_driver_sql("PRAGMA quick_check").scalar())
            if verdict == "ok":
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    except Exception as exc:  # damaged, or locked by another process right now (the next load tries again)
        if any(d in str(exc).lower() for d in _DAMAGED):
            raise open_error(name, uri, exc) from exc
        return
    if verdict != "ok":
        raise open_error(name, uri, Exception(f"database disk image is malformed: {verdict.splitlines()[0]}"))
    _PREPARED.add(uri)


def _redact(uri: str) -> str:
    """Never print a password that sits in a catalog URI."""
    from lakehouse.redact import redact

    return redact(uri)
