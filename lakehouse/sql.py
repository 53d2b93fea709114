"""DuckDB over Iceberg: extensions loaded from pip packages (never downloaded), tables as views.

Each view reads the table's *current* metadata_location as the catalog reports it: DuckDB's own
version guessing can pick a stale metadata file, so we never rely on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import BrokenTableError, QueryError, TidemarkError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

DUCKDB_VERSION = "v1.5.5"
log = logging.getLogger(__name__)


def _extension_path(module_name: str, ext: str) -> str:
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pkg = module_name.replace("_", "-")
        raise TidemarkError(f"DuckDB extension package {pkg} is missing; run `pip install {pkg}==1.5.5`") from exc
    path = os.path.join(os.path.dirname(module.__file__ or ""), "extensions", DUCKDB_VERSION, f"{ext}.duckdb_extension")
    if not os.path.isfile(path):
        raise TidemarkError(f"{path} is missing; reinstall {module_name.replace('_', '-')}==1.5.5 to match duckdb 1.5.5")
    return path


def connect(s3: Mapping[str, str] | None = None, iceberg: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with avro and iceberg loaded by path, and S3 access when the tables need it.

    `s3` takes the catalog's pyiceberg properties: with an `s3://` warehouse or any `s3.*` property,
    httpfs is loaded (from its pip package) and a DuckDB secret is made from the same credentials,
    so DuckDB reads exactly what pyiceberg wrote. `iceberg=False` skips the two extensions (~0.2 s):
    views made by `attach_tables` read the snapshot's Parquet files directly and need them only for
    tables with delete files.
    """
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    if s3 and _uses_s3(s3):
        con.execute(f"LOAD '{_extension_path('duckdb_extension_httpfs', 'httpfs')}'")
        try:
            con.execute(s3_secret_sql(s3))
        except duckdb.Error as exc:
            from lakehouse.redact import redact

            # DuckDB may quote the statement back, and it holds the keys: hence `from None`, no chained cause.
            first = redact(str(exc).splitlines()[0]) if str(exc) else exc.__class__.__name__
            raise QueryError(f"DuckDB refused the S3 settings (catalog s3.* properties): {first}; check them in tidemark.yaml or TIDEMARK__CATALOG__S3__...") from None
    if iceberg:
        load_iceberg(con)
    return con


def _uses_s3(props: Mapping[str, str]) -> bool:
    return str(props.get("warehouse", "")).startswith(("s3://", "s3a://")) or any(k.startswith("s3.") for k in props)


def s3_secret_sql(props: Mapping[str, str]) -> str:
    """`CREATE SECRET` for DuckDB's httpfs from pyiceberg's `s3.*` properties (never log the result).

    Without keys in the config, DuckDB's credential chain (env, instance profile) is used instead,
    as pyiceberg does.
    """
    from urllib.parse import urlsplit

    parts = ["TYPE s3"]
    key, secret = props.get("s3.access-key-id"), props.get("s3.secret-access-key")
    if key and secret:
        parts += [f"KEY_ID {_quote_literal(key)}", f"SECRET {_quote_literal(secret)}"]
        if props.get("s3.session-token"):
            parts.append(f"SESSION_TOKEN {_quote_literal(props['s3.session-token'])}")
    else:
        parts.append("PROVIDER credential_chain")
    if props.get("s3.region"):
        parts.append(f"REGION {_quote_literal(props['s3.region'])}")
    endpoint = props.get("s3.endpoint")
    if endpoint:
        # DuckDB wants host:port; the scheme says whether to use TLS.
        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        parts.append(f"ENDPOINT {_quote_literal(url.netloc)}")
        parts.append(f"USE_SSL {'false' if url.scheme == 'http' else 'true'}")
    # Path-style addressing unless pyiceberg is told to use virtual hosts (MinIO and moto want path).
    virtual = str(props.get("s3.force-virtual-addressing", "false")).lower() == "true"
    parts.append(f"URL_STYLE {_quote_literal('vhost' if virtual else 'path')}")
    return f"CREATE OR REPLACE SECRET tidemark_s3 ({', '.join(parts)})"


def load_iceberg(con: duckdb.DuckDBPyConnection) -> None:
    # avro before iceberg: the iceberg extension reads manifests through it.
    con.execute(f"LOAD '{_extension_path('duckdb_extension_avro', 'avro')}'")
    con.execute(f"LOAD '{_extension_path('duckdb_extension_iceberg', 'iceberg')}'")


def _view_body(con: duckdb.DuckDBPyConnection, table: Any, snapshot_id: int, filename: bool = False) -> str:
    """SQL reading one snapshot of a table.

    pyiceberg plans the scan (it has the metadata loaded already); when the snapshot has no delete
    files, its rows are exactly its Parquet data files, which DuckDB reads natively (`filename`:
    with each row's data file in a column `filename`). Otherwise DuckDB's iceberg extension applies
    the deletes (and there is no `filename` column).
    """
    tasks = list(table.scan(snapshot_id=snapshot_id).plan_files())
    if tasks and not any(t.delete_files for t in tasks):
        files = ", ".join(_quote_literal(t.file.file_path) for t in tasks)
        return f"SELECT * FROM read_parquet([{files}], union_by_name => true{', filename => true' if filename else ''})"
    if not tasks:
        return ""
    load_iceberg(con)
    return f"SELECT * FROM iceberg_scan({_quote_literal(table.metadata_location)}, snapshot_from_id => {int(snapshot_id)})"


def snapshot_view(con: duckdb.DuckDBPyConnection, target: str, table: Any, snapshot_id: int | None) -> None:
    """Make `target` (a quoted name) read one snapshot of `table`: a view over its data files, or,
    for no snapshot or a snapshot without data files, an empty table of its schema (so the name
    stays usable). A data file the snapshot needs that is gone is MissingDataFileError naming the
    table, the snapshot and the file (DuckDB checks the files when the view is made)."""
    import duckdb

    from lakehouse.tables import missing_data_file, schema_at

    body = _view_body(con, table, snapshot_id) if snapshot_id is not None else ""
    if not body:
        snap = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
        con.register("__tidemark_empty", schema_at(table, snap).as_arrow().empty_table())
        con.execute(f"DROP VIEW IF EXISTS {target}")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM __tidemark_empty")
        con.unregister("__tidemark_empty")
        return
    con.execute(f"DROP TABLE IF EXISTS {target}")
    try:
        con.execute(f"CREATE OR REPLACE VIEW {target} AS {body}")
    except duckdb.IOException as exc:
        missing = missing_data_file(".".join(table.name()), int(snapshot_id or 0), exc)
        if missing is None:
            raise
        raise missing from exc


def snapshot_sql(con: duckdb.DuckDBPyConnection, table: Any, snapshot_id: int, *, filename: bool = False) -> str:
    """A SELECT reading one snapshot of a pyiceberg table (time travel), or "" if it holds no data
    files; `filename`: with each row's data file as a column `filename` where the snapshot has no
    delete files (see `_view_body`)."""
    return _view_body(con, table, snapshot_id, filename)


def quote_ident(name: str) -> str:
    """`name` as a DuckDB identifier, whatever it holds (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _snapshot_as_of(table: Any, name: str, as_of_ms: int) -> Any:
    """The snapshot current at `as_of_ms`; an error when expiry already removed that part of history."""
    from lakehouse.tables import EXPIRED_BEFORE

    expired_before = int(table.properties.get(EXPIRED_BEFORE, "0"))
    if as_of_ms < expired_before:
        from datetime import datetime, timezone

        kept = datetime.fromtimestamp(expired_before / 1000, timezone.utc).isoformat()
        raise QueryError(
            f"{name} keeps history only from {kept} (older snapshots were expired); ask for a later time, "
            "or keep more history (lineage.keep_snapshots_s)"
        )
    return table.snapshot_as_of_timestamp(as_of_ms)


def attach_tables(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    namespaces: Iterable[str] | None = None,
    as_of_ms: int | None = None,
    only: Iterable[str] | None = None,
    locations: list[str] | None = None,
    on_broken: Callable[[BrokenTableError], None] | None = None,
) -> list[str]:
    """Create a schema per namespace and a view per table; returns the `ns.table` names made.

    `locations`: a list each viewed table's location is added to (what `read_only` must allow).

    With `as_of_ms` (epoch milliseconds), each view reads the snapshot that was current then:
    time travel, so a question is answered as the store stood at that moment. `only` limits the
    views to these `ns.table` names (each view costs a metadata read). A broken table (its metadata
    file missing or unreadable, or a data file of the snapshot read missing) goes to `on_broken`
    (default: logged as a warning) and its view raises that error when read; every other table is
    attached as usual.
    """
    made: list[str] = []
    wanted = set(only) if only is not None else None
    names = list(namespaces) if namespaces is not None else [ns[0] for ns in catalog.list_namespaces()]
    for ns in names:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(ns)}")
        for ident in catalog.list_tables(ns):
            name = ident[-1]
            if wanted is not None and f"{ns}.{name}" not in wanted:
                continue
            target = f"{quote_ident(ns)}.{quote_ident(name)}"
            try:
                table = catalog.load_table(ident)
                if locations is not None:
                    locations.append(table.location())
                snap = table.current_snapshot() if as_of_ms is None else _snapshot_as_of(table, f"{ns}.{name}", as_of_ms)
                snapshot_view(con, target, table, snap.snapshot_id if snap is not None else None)
            except BrokenTableError as exc:
                # One broken table must not take every other one down: warn once, and leave a view
                # that fails with the same words when a query reads it (not "no such table").
                (on_broken or _warn)(exc)
                con.execute(f"DROP TABLE IF EXISTS {target}")
                fail = f"error({_quote_literal(str(exc))})"
                # In the filter too: `count(*)` never evaluates a column the query does not use.
                con.execute(f"CREATE OR REPLACE VIEW {target} AS SELECT {fail} AS broken FROM range(1) WHERE {fail} IS NULL")
                continue
            made.append(f"{ns}.{name}")
    return made


def _warn(exc: BrokenTableError) -> None:
    log.warning("%s", exc)


# What a read-only connection runs: queries, and plans of queries. (`SHOW`, `DESCRIBE`, `SUMMARIZE`,
# `FROM t`, `VALUES` and `PRAGMA version` parse as SELECT.) `COPY`, `EXPORT`, `ATTACH`, `INSTALL`,
# `LOAD`, `SET`, `PRAGMA`s that change settings, `CALL` and DDL do not.
_READ_ONLY_STATEMENTS = ("SELECT", "EXPLAIN")
_UNSAFE_HINT = "tidemark sql is read-only; the owner may pass --unsafe to lift this"
# httpfs's legacy S3 settings: filled from AWS_* variables, and readable by current_setting(). The
# tables are read through the `tidemark_s3` secret instead, so a read-only connection empties them.
_S3_SETTINGS = ("s3_access_key_id", "s3_secret_access_key", "s3_session_token")


def _local_path(location: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(location).path) if location.startswith("file:") else location


def read_only(con: duckdb.DuckDBPyConnection, roots: Iterable[str]) -> None:
    """Lock `con` down to reading files under `roots` (the warehouse, the tables' locations).

    DuckDB's own switches: `enable_external_access=false` with `allowed_directories` (no file,
    network or extension access elsewhere: no `read_text('/etc/hostname')`, `COPY ... TO '/tmp/x'`,
    `INSTALL`, `ATTACH`), no extension auto-install or auto-load, no unredacted secrets, then
    `lock_configuration=true` so no `SET` undoes any of it. Writes inside the roots are stopped by
    `check_read_only` (DuckDB allows them there). Call after every extension is loaded and every
    view made: loading needs the access this takes away.
    """
    dirs: set[str] = set()
    for root in roots:
        if not root:
            continue
        for form in {root, _local_path(root)}:
            dirs.add(form.rstrip("/") + "/")
    loaded = {r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    if "httpfs" in loaded:
        for name in _S3_SETTINGS:
            con.execute(f"SET {name} = ''")
    con.execute("SET allowed_directories = ?", [sorted(dirs)])
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions", "allow_unredacted_secrets", "allow_community_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")


def require_text(sql: str) -> None:
    """Refuse empty SQL with one line (DuckDB would answer it with nothing to convert)."""
    if not sql.strip():
        raise QueryError("the query is empty; give SQL text, e.g. \"SELECT * FROM lineage.events LIMIT 5\"", parameter="query")


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse, with one line, SQL that is empty or is more than queries (`read_only`'s other half)."""
    import duckdb

    require_text(sql)
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {str(exc).splitlines()[0]}", parameter="query") from exc
    if not statements:
        raise QueryError("the query holds no statement (only comments or semicolons); give SQL text", parameter="query")
    for st in statements:
        text = " ".join(st.query.split())
        words = text.split(" ", 2)
        allowed = st.type.name in _READ_ONLY_STATEMENTS
        if st.type.name == "EXPLAIN":
            # EXPLAIN ANALYZE runs its statement: it must be a query as well.
            inner = " ".join(words[2:] if len(words) > 1 and words[1].upper() in ("ANALYZE", "ANALYSE") else words[1:])
            allowed = bool(inner) and all(s.type.name in _READ_ONLY_STATEMENTS for s in con.extract_statements(inner))
        if not allowed:
            raise QueryError(f"{words[0].upper()} is not allowed ({text[:60]!r}): {_UNSAFE_HINT}", parameter="query")


def query(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
    """Run SQL with bound parameters; a DuckDB error becomes a QueryError naming the problem."""
    import duckdb

    require_text(sql)
    try:
        result = con.execute(sql, list(params or []))
    except duckdb.PermissionException as exc:
        raise QueryError(f"query failed: {str(exc).splitlines()[0]} ({_UNSAFE_HINT})") from exc
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {str(exc).splitlines()[0]}") from exc
    if result.description is None:
        # A statement with no result (SET, CREATE ... in unsafe mode): an empty answer, not a crash.
        import pyarrow as pa

        return pa.table({})
    try:
        return result.to_arrow_table()
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {str(exc).splitlines()[0]}") from exc
