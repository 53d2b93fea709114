"""Catalog identity: a catalog and its warehouse know each other, so a lost catalog never looks new.

An Iceberg catalog is one row per table pointing at the table's current metadata file; the
warehouse holds the files. Lose the catalog (an emptied `catalog.db`, a fresh PostgreSQL database,
a typo in `catalog.uri`) and pyiceberg happily opens an empty one: the next landing creates a new
table over the old one's location, and orphan removal then takes the old table's files for garbage.

So both sides carry the same identity: a row in the catalog database (`tidemark_catalog_identity`,
one per catalog name) and a marker file at the warehouse root (`.tidemark-catalog.json`), written
together on first use. `verify` runs whenever `lakehouse.catalog.load_catalog` opens a catalog and
refuses, in one line naming `tidemark catalog recover`, a catalog that is empty while the warehouse
holds tables, or whose identity is not the warehouse's. `recover` re-registers every table found
in the warehouse from its newest readable metadata file and writes both markers again.

Only SQL catalogs (SQLite, PostgreSQL) carry the row; for other catalog types (REST, Glue, ...) the
catalog service owns its state, and nothing is checked.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import BrokenTableError, CatalogError, CatalogIdentityError

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem
    from pyiceberg.catalog import Catalog

MARKER_FILE = ".tidemark-catalog.json"
IDENTITY_TABLE = "tidemark_catalog_identity"
RECOVER_COMMAND = "tidemark catalog recover"
_VERSION = re.compile(r"^(\d+)-.*\.metadata\.json$")


@dataclass(frozen=True)
class Identity:
    """Who a catalog is: its id, and the catalog (name, URI) that wrote a warehouse marker."""

    catalog_id: str
    catalog_name: str = ""
    uri: str = ""
    written: str = ""

    def to_json(self) -> dict[str, str]:
        return {"catalog_id": self.catalog_id, "catalog_name": self.catalog_name, "uri": self.uri, "written": self.written}


# -- the two markers --------------------------------------------------------------------------------


def _engine(catalog: Catalog) -> Any:
    return getattr(catalog, "engine", None)


def _identity_table() -> Any:
    import sqlalchemy as sa

    meta = sa.MetaData()
    return sa.Table(
        IDENTITY_TABLE, meta,
        sa.Column("catalog_name", sa.String(255), primary_key=True),
        sa.Column("catalog_id", sa.String(64), nullable=False),
        sa.Column("warehouse", sa.String(2000), nullable=False),
        sa.Column("written", sa.String(40), nullable=False),
    )


def catalog_identity(catalog: Catalog) -> Identity | None:
    """The identity row of this catalog, None if it has none (a new, emptied or replaced catalog)."""
    import sqlalchemy as sa

    engine = _engine(catalog)
    if engine is None:
        return None
    table = _identity_table()
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.catalog_name == catalog.name)).first()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return None  # no identity table: a catalog database Tidemark never marked
    if row is None:
        return None
    return Identity(row.catalog_id, catalog.name, _uri(catalog), row.written)


def _store_catalog_identity(catalog: Catalog, identity: Identity, warehouse: str, *, replace: bool) -> Identity:
    """Store `identity` as this catalog's row and return the identity that holds afterwards.

    `replace=False` (first use): only if the catalog has none yet; when two processes start at once
    the first insert wins and both read it back. `replace=True` (recovery): whatever was there.
    """
    import sqlalchemy as sa

    engine = _engine(catalog)
    table = _identity_table()
    try:
        table.metadata.create_all(engine, checkfirst=True)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
        pass  # two processes creating it at once; the insert below tells whether it exists
    values = {"catalog_name": catalog.name, "catalog_id": identity.catalog_id, "warehouse": warehouse, "written": identity.written}
    try:
        with engine.begin() as conn:
            updated = replace and conn.execute(sa.update(table).where(table.c.catalog_name == catalog.name).values(**values)).rowcount
            if not updated:
                conn.execute(sa.insert(table).values(**values))
    except sa.exc.IntegrityError:
        pass  # a concurrent first use inserted its own: read it back
    return catalog_identity(catalog) or identity


def _marker_location(warehouse: str) -> str:
    return f"{warehouse.rstrip('/')}/{MARKER_FILE}"


def warehouse_identity(catalog: Catalog, warehouse: str) -> Identity | None:
    """The identity in the warehouse's marker file, None if it has none."""
    from pyiceberg.io import load_file_io

    location = _marker_location(warehouse)
    io = load_file_io(dict(catalog.properties), location)
    try:
        with io.new_input(location).open() as fh:
            data = json.loads(fh.read())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogIdentityError(
            f"the warehouse marker {location} is not valid JSON; delete it and run `{RECOVER_COMMAND}`"
        ) from exc
    except OSError as exc:
        if any(words in str(exc).lower() for words in ("not found", "no such", "does not exist")):
            return None
        raise CatalogError(f"cannot read the warehouse marker {location}: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}") from exc
    return Identity(str(data.get("catalog_id", "")), str(data.get("catalog_name", "")), str(data.get("uri", "")), str(data.get("written", "")))


def _write_warehouse_identity(catalog: Catalog, warehouse: str, identity: Identity) -> None:
    from pyiceberg.io import load_file_io

    location = _marker_location(warehouse)
    io = load_file_io(dict(catalog.properties), location)
    body = json.dumps({**identity.to_json(), "catalog_name": catalog.name, "uri": _uri(catalog)}, indent=2).encode()
    with io.new_output(location).create(overwrite=True) as fh:
        fh.write(body)


def _uri(catalog: Catalog) -> str:
    from lakehouse.redact import redact

    return redact(str(catalog.properties.get("uri", "")))


def _new_identity() -> Identity:
    return Identity(uuid.uuid4().hex, written=datetime.now(timezone.utc).isoformat(timespec="seconds"))


# -- the warehouse's tables -------------------------------------------------------------------------


def _filesystem(catalog: Catalog, location: str) -> tuple[FileSystem, str]:
    """The pyarrow file system under `location` (file, s3, ...), with the catalog's settings, and its path there."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    scheme, netloc, path = PyArrowFileIO.parse_location(location)
    return PyArrowFileIO(dict(catalog.properties)).fs_by_scheme(scheme, netloc), path.rstrip("/")


def _subdirectories(fs: FileSystem, path: str) -> list[str]:
    from pyarrow.fs import FileSelector, FileType

    infos = fs.get_file_info(FileSelector(path, recursive=False, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == FileType.Directory)


@dataclass(frozen=True)
class MetadataFile:
    location: str
    version: int
    modified: float


def _metadata_files(fs: FileSystem, path: str, scheme_prefix: str) -> list[MetadataFile]:
    """The table's metadata files under `path/metadata`, newest first (version, then time written)."""
    from pyarrow.fs import FileSelector, FileType

    found = []
    for info in fs.get_file_info(FileSelector(f"{path}/metadata", recursive=False, allow_not_found=True)):
        match = _VERSION.match(info.base_name)
        if info.type == FileType.File and match:
            modified = info.mtime.timestamp() if info.mtime is not None else 0.0
            found.append(MetadataFile(f"{scheme_prefix}{info.path}", int(match.group(1)), modified))
    return sorted(found, key=lambda m: (m.version, m.modified), reverse=True)


def warehouse_tables(catalog: Catalog, warehouse: str, limit: int | None = None) -> Iterator[tuple[tuple[str, str], list[MetadataFile]]]:
    """Every Iceberg table laid out as the catalog lays tables out (`<warehouse>/<namespace>/<table>/metadata/`):
    its identifier and its metadata files, newest first. `limit`: stop after that many tables."""
    from urllib.parse import urlparse

    fs, root = _filesystem(catalog, warehouse)
    scheme = urlparse(warehouse).scheme
    prefix = f"{scheme}://" if scheme else ""
    found = 0
    for namespace in _subdirectories(fs, root):
        for name in _subdirectories(fs, f"{root}/{namespace}"):
            files = _metadata_files(fs, f"{root}/{namespace}/{name}", prefix)
            if files:
                yield (namespace, name), files
                found += 1
                if limit is not None and found >= limit:
                    return


def _registered(catalog: Catalog, ident: tuple[str, str]) -> bool:
    """Whether the catalog has a row for the table (without reading its metadata, which may be broken)."""
    return ident in {tuple(t) for t in catalog.list_tables(ident[0])} if catalog.namespace_exists(ident[0]) else False


def _catalog_tables(catalog: Catalog) -> list[tuple[str, ...]]:
    return [ident for ns in catalog.list_namespaces() for ident in catalog.list_tables(ns)]


# -- the check --------------------------------------------------------------------------------------


def verify(catalog: Catalog) -> Identity | None:
    """Check that `catalog` and its warehouse belong together; mark both on first use.

    Raises CatalogIdentityError (one line, naming `tidemark catalog recover`) when the catalog is
    empty while the warehouse holds tables, or when the two identities differ. Returns the identity,
    or None for a catalog this cannot check (not SQL, or no warehouse configured).
    """
    warehouse = str(catalog.properties.get("warehouse", ""))
    if _engine(catalog) is None or not warehouse:
        return None
    mine = catalog_identity(catalog)
    theirs = warehouse_identity(catalog, warehouse)
    where = f"catalog {catalog.name!r} at {_uri(catalog)}"
    if mine and theirs:
        if mine.catalog_id == theirs.catalog_id:
            return mine
        raise CatalogIdentityError(
            f"{where} (identity {mine.catalog_id[:12]}) does not belong to warehouse {warehouse} (identity "
            f"{theirs.catalog_id[:12]}, of catalog {theirs.catalog_name!r} at {theirs.uri or '?'}); point catalog.uri and "
            f"catalog.warehouse at a matching pair, or run `{RECOVER_COMMAND}` to take the warehouse's tables into this catalog"
        )
    if mine:
        # The warehouse lost its marker (or is new): the catalog's identity stands; mark it again.
        _write_warehouse_identity(catalog, warehouse, mine)
        return mine
    registered = _catalog_tables(catalog)
    if not registered:
        stored = list(warehouse_tables(catalog, warehouse, limit=1))
        if stored:
            (ns, name), _ = stored[0]
            other = theirs and theirs.uri and theirs.uri != _uri(catalog)
            origin = f" (made with catalog {theirs.catalog_name!r} at {theirs.uri})" if theirs and other else ""
            raise CatalogIdentityError(
                f"{where} is empty, but its warehouse {warehouse}{origin} holds Iceberg tables (e.g. {ns}.{name}): "
                f"the catalog was lost or replaced; run `{RECOVER_COMMAND}` to re-register them from their latest metadata files"
            )
    elif theirs:
        raise CatalogIdentityError(
            f"{where} holds {len(registered)} tables but no identity, and warehouse {warehouse} belongs to catalog "
            f"{theirs.catalog_name!r} at {theirs.uri or '?'} (identity {theirs.catalog_id[:12]}); point catalog.uri and "
            f"catalog.warehouse at a matching pair, or run `{RECOVER_COMMAND}`"
        )
    # A new pair, or one from before identities existed (tables registered, no marker): mark both.
    identity = _store_catalog_identity(catalog, _new_identity(), warehouse, replace=False)
    _write_warehouse_identity(catalog, warehouse, identity)
    return identity


# -- recovery ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveredTable:
    table: str
    metadata_location: str
    # registered | would register | repaired | would repair | already registered | kept | failed
    action: str
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {"table": self.table, "metadata_location": self.metadata_location, "action": self.action, "note": self.note}


@dataclass
class RecoveryReport:
    catalog: str
    uri: str
    warehouse: str
    catalog_id: str
    dry_run: bool
    tables: list[RecoveredTable] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for t in self.tables if t.action == action)

    def to_json(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog, "uri": self.uri, "warehouse": self.warehouse, "catalog_id": self.catalog_id,
            "dry_run": self.dry_run, "tables": [t.to_json() for t in self.tables],
        }


def _readable(catalog: Catalog, location: str) -> str | None:
    """None if the metadata file parses; else why not."""
    from pyiceberg.io import load_file_io
    from pyiceberg.serializers import FromInputFile

    try:
        FromInputFile.table_metadata(load_file_io(dict(catalog.properties), location).new_input(location))
    except Exception as exc:  # truncated, not JSON, not Iceberg metadata, unreadable: all mean "not this one"
        return (str(exc).splitlines() or [exc.__class__.__name__])[0][:200]
    return None


def recover(catalog: Catalog, dry_run: bool = False) -> RecoveryReport:
    """Re-register every table of the catalog's warehouse from its newest readable metadata file,
    then mark catalog and warehouse with one identity (the catalog's, else the warehouse's, else new).

    A table the catalog already has is kept as the catalog has it (its row is the record of which
    commit won; a newer file may belong to a commit that lost), unless its current metadata file is
    missing or unreadable: then it is repaired, pointed at its newest readable one. When several metadata files share
    the newest version (a writer that lost its commit and gave up), the newest written is taken
    and the others are named in the note.
    """
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

    warehouse = str(catalog.properties.get("warehouse", ""))
    if _engine(catalog) is None or not warehouse:
        raise CatalogError(
            f"`{RECOVER_COMMAND}` works on a SQL catalog (SQLite, PostgreSQL) with catalog.warehouse set; "
            f"catalog {catalog.name!r} is not one"
        )
    mine, theirs = catalog_identity(catalog), warehouse_identity(catalog, warehouse)
    identity = mine or (theirs if theirs and theirs.catalog_id else None) or _new_identity()
    report = RecoveryReport(catalog.name, _uri(catalog), warehouse, identity.catalog_id, dry_run)
    for ident, files in warehouse_tables(catalog, warehouse):
        name = ".".join(ident)
        broken: BrokenTableError | None = None
        if _registered(catalog, ident):
            try:
                current = catalog.load_table(ident).metadata_location
            except BrokenTableError as exc:
                broken = exc  # its current metadata file is gone or unreadable: fall back below
            else:
                newest = files[0].location
                if current == newest:
                    report.tables.append(RecoveredTable(name, current, "already registered"))
                else:
                    report.tables.append(RecoveredTable(name, current, "kept", f"the catalog's; newest in the warehouse is {newest}"))
                continue
        chosen, skipped = None, []
        for candidate in files:
            why = _readable(catalog, candidate.location)
            if why is None:
                chosen = candidate
                break
            skipped.append(f"{candidate.location.rsplit('/', 1)[-1]} unreadable ({why})")
        if chosen is None:
            report.tables.append(RecoveredTable(name, files[0].location, "failed", "; ".join(skipped)))
            continue
        notes = list(skipped)
        twins = [f for f in files if f.version == chosen.version and f is not chosen]
        if twins:
            notes.append(f"{len(twins)} other file(s) of version {chosen.version} (a commit that lost): {', '.join(t.location for t in twins)}")
        if broken is not None:
            notes.insert(0, f"its metadata file {broken.location} was missing or unreadable; commits after version {chosen.version} are lost")
            if dry_run:
                report.tables.append(RecoveredTable(name, chosen.location, "would repair", "; ".join(notes)))
            elif catalog.repoint(ident, broken.location, chosen.location):  # type: ignore[attr-defined]
                report.tables.append(RecoveredTable(name, chosen.location, "repaired", "; ".join(notes)))
            else:
                report.tables.append(RecoveredTable(name, broken.location, "failed", "another process changed the table meanwhile; run again"))
            continue
        if dry_run:
            report.tables.append(RecoveredTable(name, chosen.location, "would register", "; ".join(notes)))
            continue
        try:
            catalog.create_namespace(ident[0])
        except NamespaceAlreadyExistsError:
            pass
        try:
            catalog.register_table(ident, chosen.location)
        except TableAlreadyExistsError:
            report.tables.append(RecoveredTable(name, chosen.location, "already registered", "registered meanwhile by another process"))
            continue
        report.tables.append(RecoveredTable(name, chosen.location, "registered", "; ".join(notes)))
    if not dry_run:
        stored = _store_catalog_identity(catalog, identity, warehouse, replace=True)
        _write_warehouse_identity(catalog, warehouse, stored)
    return report
