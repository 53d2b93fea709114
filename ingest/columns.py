"""A landing's columns: renames applied to the source's batches, and the column-level lineage
(source file column -> table column, with each rename and cast) its lineage run reports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ingest import schema as schemas
from ingest.exceptions import SourceError
from lakehouse.config import Settings
from lineage import columns as cl

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.schema import Schema


def parse_renames(pairs: list[str] | None) -> dict[str, str]:
    """`OLD=NEW` pairs (the CLI's `--rename`) as a mapping; a pair without `=` is refused."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise SourceError(f"--rename {pair!r} must look like SOURCE_COLUMN=TABLE_COLUMN", parameter="rename")
        out[old] = new
    return out


def check_renames(schema: pa.Schema, rename: Mapping[str, str], source_name: str) -> None:
    """Refuse, before anything is written, a rename of a column the file lacks or onto one it has."""
    missing = sorted(set(rename) - set(schema.names))
    if missing:
        raise SourceError(
            f"{source_name}: --rename names column(s) {', '.join(missing)}, which the file does not have "
            f"(its columns: {', '.join(schema.names)}); fix rename",
            parameter="rename",
        )
    kept = set(schema.names) - set(rename)
    clash = sorted(new for new in rename.values() if new in kept)
    targets = list(rename.values())
    clash += sorted({n for n in targets if targets.count(n) > 1})
    if clash:
        raise SourceError(f"{source_name}: --rename would give two columns the name(s) {', '.join(clash)}; fix rename", parameter="rename")


def renamed(batches: Iterator[pa.RecordBatch], rename: Mapping[str, str], source_name: str) -> Iterator[pa.RecordBatch]:
    """The source's batches with its columns renamed as the table names them (checked on the first)."""
    first = True
    for batch in batches:
        if first and rename:
            check_renames(batch.schema, rename, source_name)
        first = False
        yield batch.rename_columns([rename.get(n, n) for n in batch.schema.names]) if rename else batch


def lineage_facet(
    settings: Settings, source: Mapping[str, Any], landed: pa.Schema, table_schema: Schema, rename: Mapping[str, str]
) -> dict[str, Any]:
    """The `columnLineage` facet of the table a file landed in: each table column the file filled,
    from the file's column of that name (or the one renamed to it); DIRECT IDENTITY when the values
    are stored as read, DIRECT TRANSFORMATION with the cast when the table's type differs.

    `landed`: the file's columns as landed (after renames, without the all-empty ones left out).
    """
    back = {new: old for old, new in rename.items()}
    read = {f.name: f.type for f in landed}
    iceberg = {f.name: f.field_type for f in table_schema.fields}
    fields = {}
    for f in table_schema.as_arrow():
        if f.name not in read:
            continue  # not in this file: the table stores nulls for it
        original = back.get(f.name, f.name)
        cast = schemas.needs_cast(read[f.name], f.type)
        steps = ([f"CAST({original} AS {iceberg[f.name]})"] if cast else []) + ([f"RENAME {original} TO {f.name}"] if f.name != original else [])
        how = {"subtype": "TRANSFORMATION" if cast else "IDENTITY", "description": "; ".join(steps) or None}
        fields[f.name] = [cl.InputField.of(source, original, **how)]
    return cl.facet(settings.lineage.producer, fields)


def identity_facet(settings: Settings, source: Mapping[str, Any], table_schema: Schema) -> dict[str, Any]:
    """Every column of a snapshot copied as it is into another (a publish): DIRECT IDENTITY each."""
    return cl.facet(settings.lineage.producer, {f.name: [cl.InputField.of(source, f.name)] for f in table_schema.fields})
