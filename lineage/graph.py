"""Up- and downstream lineage: a recursive DuckDB query over `run_datasets`.

A node is one of:
- `NS.TABLE` or `NS.TABLE@SNAPSHOT` (an Iceberg table, optionally at one snapshot; any dotted
  name, so a symlink name such as Spark's `default.x` or `project.dataset.table` works too),
- `dataset:NAMESPACE:NAME[@VERSION]` (any dataset, e.g. a source file),
- `model:NAME[:VERSION]` (a model, optionally one version),
- `job:NAME` (every run of a job), `run:RUN_ID` (one run).
The walk goes run by run: upstream, from a run to the runs that produced its inputs; downstream,
from a run to the runs that read its outputs. `depth` counts runs. Every value is a bound
parameter: names from events or the command line never become SQL text.

Which write a read saw (docs/events.md, "How walks join runs"): a read with a version matches the
write of exactly that version; a read without one matches the latest write of that dataset
completed before the reading run started (by event time), as Marquez links a run to the dataset
version current when it ran. A dataset is one node under its own name and its symlink names.
JobEvents' declared inputs and outputs (run id `job:NAMESPACE:NAME`) take part the same way.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lakehouse.sql import query
from lineage.exceptions import NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    import duckdb

    from lakehouse.config import Settings

Direction = Literal["upstream", "downstream"]
_TABLE = re.compile(r"^(?P<table>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+)(?:@(?P<version>\S+))?$")


@dataclass(frozen=True)
class Node:
    kind: Literal["table", "dataset", "model", "job", "run"]
    name: str
    namespace: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Node:
        kind, sep, rest = text.partition(":")
        if sep and kind == "run" and rest:
            return cls("run", rest)
        if sep and kind == "job" and rest:
            return cls("job", rest)
        if sep and kind == "model" and rest:
            name, _, version = rest.partition(":")
            return cls("model", name, version=version or None)
        if sep and kind == "dataset" and rest:
            body, _, version = rest.rpartition("@") if "@" in rest else (rest, "", "")
            ns, sep2, name = body.rpartition(":")
            if sep2 and ns and name:
                return cls("dataset", name, namespace=ns, version=version or None)
        # Looked up, not created: other producers' names (`db.schema.table`, hyphens) are found too;
        # what Tidemark itself creates is checked by lakehouse.names.
        m = _TABLE.match(text)
        if m:
            return cls("table", m["table"], version=m["version"])
        raise NotFoundError(
            f"{text!r} is not a lineage node; write NS.TABLE[@SNAPSHOT], dataset:NAMESPACE:NAME[@VERSION], "
            "model:NAME[:VERSION], job:NAME or run:RUN_ID"
        )


# Event types whose datasets are edges: a run's START/RUNNING/COMPLETE, a JobEvent's declaration.
_EDGE_TYPES = "('COMPLETE', 'START', 'RUNNING', 'JOB')"
# Columns added to run_datasets by issue 17; a store written before has files without them.
_NEWER_COLUMNS = ("symlink_namespace", "symlink_name")


def refused_tables() -> tuple[str, str]:
    """The registry's tables that say which alias moves the consumer refused (`model_store.vet_moves`)
    and which it applied. Imported when called: at the top, the registry's module added ~70 ms to every walk's start."""
    from lineage.model_store import ALIAS_EVENTS, REJECTED

    return REJECTED, ALIAS_EVENTS


def walk_tables() -> tuple[str, ...]:
    """The tables a walk reads (short names, in the lineage namespace): `run_datasets` and the
    refused alias moves' (`_refused_sql`). A connection for walks attaches these, and an answer
    read from a walk is current while none of them changed."""
    return ("run_datasets", *refused_tables())


def _refused_state(con: duckdb.DuckDBPyConnection, ns: str) -> list[tuple[str, str]]:
    """(name, view SQL) of each refused-moves table this connection holds (`refused_tables`):
    which are there decides `_refused_sql`, and their state keys the edge cache (`_cache_file`).
    A table DuckDB holds for an empty one has no view: its name alone, as it has no rows."""
    return con.execute(
        "SELECT table_name, coalesce(sql, '') FROM duckdb_views() v RIGHT JOIN information_schema.tables t "
        "ON v.schema_name = t.table_schema AND v.view_name = t.table_name "
        "WHERE t.table_schema = ? AND t.table_name IN (?, ?) ORDER BY 1", [ns, *refused_tables()]
    ).fetchall()


def refused_filter(con: duckdb.DuckDBPyConnection, ns: str) -> str:
    """`_refused_sql` for another query of `run_datasets` (`lineage.search`): it leaves out the rows a walk leaves out."""
    return _refused_sql(ns, {name for name, _ in _refused_state(con, ns)})


def _refused_sql(ns: str, present: set[str]) -> str:
    """A filter dropping the model datasets of alias moves the consumer refused (issue 16: no event
    rewrites the registry).

    A forged `models.promote` event is stored as it came (the store is an honest log), so its
    dataset `wine @ 99` is in `run_datasets`; drawn, it is a model version the registry never had.
    The walk hides it rather than marking it: a refused move changed nothing, so it is no step of
    any lineage, and the refusal itself (who, when, why) is shown where a user looks for it
    (`lineage.rejected_moves`, `models status`, the Models page). The verdict is the one the
    consumer stored; a move refused and applied later (its registration came after it,
    `model_store._reconsidered`) is in `model_alias_events` and is kept. Only the dataset that
    carried the refused claim (the alias facet, in that run) is dropped: a forged event reusing a
    real run's id cannot hide that run's own model output."""
    from lineage.model_store import ALIAS_FACET

    refused, applied_table = refused_tables()
    if refused not in present:
        return ""  # no model event stored yet: nothing was refused
    applied = (f' ANTI JOIN "{ns}".{applied_table} a ON a.run_id = j.run_id AND a.model = j.model AND a.alias = j.alias'
               if applied_table in present else "")
    # coalesce: a row without a type or facets (NULL) is no refused claim, and is kept.
    return (f""" AND NOT coalesce(dataset_type = 'MODEL' AND contains(facets, '"{ALIAS_FACET}"') AND (run_id, dataset_name) IN (
                SELECT j.run_id, j.model FROM "{ns}".{refused} j{applied}), FALSE)""")


def _edges_sql(con: duckdb.DuckDBPyConnection, ns: str, refused: list[tuple[str, str]]) -> str:
    """One row per run and dataset it read or wrote, with the times the walk joins on:
    `done_at` (the run's last event naming it: when a write was done), `started` (the run's first
    event), `next_at` (for a write: when the next write of that dataset was done, else NULL), and
    the dataset's identity `kns`/`kname` with symlinks resolved. Refused alias moves are left out
    (`_refused_sql`; `refused`: `_refused_state`)."""
    table = f'"{ns}".run_datasets'
    have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    sym = ", ".join(c if c in have else f"NULL::VARCHAR AS {c}" for c in _NEWER_COLUMNS)
    return f"""
    WITH r AS (
        SELECT run_id, job_name, direction, dataset_namespace AS ns, dataset_name AS name,
               coalesce(table_name, dataset_name) AS label, dataset_type, version, event_time, {sym}
        FROM {table} WHERE event_type IN {_EDGE_TYPES} AND direction IN ('input', 'output'){_refused_sql(ns, {name for name, _ in refused})}
    ),
    -- a dataset named by one of its symlinks is the dataset that declares that symlink
    alias AS (
        SELECT symlink_namespace AS sns, symlink_name AS sname,
               first(ns ORDER BY ns, name) AS ns, first(name ORDER BY ns, name) AS name
        FROM r WHERE symlink_name IS NOT NULL GROUP BY ALL
    ),
    g AS (
        SELECT run_id, direction, ns, name, version, any_value(job_name) AS job_name, any_value(label) AS label,
               any_value(dataset_type) AS dataset_type, any_value(symlink_namespace) AS sym_ns,
               any_value(symlink_name) AS sym, max(event_time) AS done_at, min(event_time) AS first_at
        FROM r GROUP BY run_id, direction, ns, name, version
    ),
    k AS (
        SELECT g.*, coalesce(a.ns, g.ns) AS kns, coalesce(a.name, g.name) AS kname,
               min(first_at) OVER (PARTITION BY run_id) AS started
        FROM g LEFT JOIN alias a ON a.sns = g.ns AND a.sname = g.name
    )
    SELECT *, CASE WHEN direction = 'output'
                   THEN lead(done_at) OVER (PARTITION BY direction, kns, kname
                                             ORDER BY done_at, run_id, coalesce(version, '')) END AS next_at
    FROM k
    """


_CACHE_VARIABLE = "tidemark_walk_cache"
# Bump when _edges_sql changes: cached edge files of another shape are then never read.
_EDGES_VERSION = "5"
_CACHE_KEEP = 4  # edge files kept per cache folder (the newest); older states are rarely asked again


def _edges(con: duckdb.DuckDBPyConnection, ns: str) -> tuple[str, str]:
    """This connection's edge table and link table, built on first use.

    Edges: one row per run and dataset it read or wrote (`_edges_sql`). Links: one row per
    (reader run, writer run) such that a read of the reader saw a write of the writer (the rule
    in `_SAW_SQL`), so a walk is one narrow join per hop. A connection reads one state of the
    store (its views are pinned to data files), so both are worked out once and every further
    walk on it (warm) only follows them.

    With a cache folder (`connect_for_walk` sets one, under TIDEMARK_HOME) both are also kept on
    disk as Parquet, keyed by the hash of the `run_datasets` view (its exact data files): a new
    connection to an unchanged store (cold) reads them instead of working them out again. The
    first walk after a consumer commit builds them: the only walk that pays for the windows and
    the join over the whole table.
    """
    tag = hashlib.sha1(ns.encode()).hexdigest()[:12]
    names = (f"walk_edges_{tag}", f"walk_links_{tag}")
    if con.execute("SELECT 1 FROM duckdb_tables() WHERE temporary AND table_name = ?", [names[1]]).fetchall():
        return names
    refused = _refused_state(con, ns)  # looked up once: for the cache's key and for the edges' filter
    cache = _cache_file(con, ns, refused)
    files = (cache.with_name(f"walk-edges-{cache.name}"), cache.with_name(f"walk-links-{cache.name}")) if cache else None
    if files and all(f.is_file() for f in files):
        try:
            # The links are read whole by every hop: into memory. The edges only by the seed and
            # the answer's rows: a view, so a cold walk reads just the columns and row groups it
            # needs instead of copying the whole table (the copy was most of a cold walk).
            con.execute(f"CREATE OR REPLACE TEMP TABLE {names[1]} AS SELECT * FROM read_parquet({_literal(str(files[1]))})")
            con.execute(f"CREATE OR REPLACE TEMP VIEW {names[0]} AS SELECT * FROM read_parquet({_literal(str(files[0]))})")
            con.execute(f"SELECT count(*) FROM {names[0]}").fetchall()  # a damaged file fails here, not mid-walk
            return names
        except Exception:  # a damaged or half-written file: work them out again below
            con.execute(f"DROP VIEW IF EXISTS {names[0]}")
            con.execute(f"DROP TABLE IF EXISTS {names[1]}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {names[0]} AS {_edges_sql(con, ns, refused)}")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {names[1]} AS
        SELECT DISTINCT r.run_id AS reader, w.run_id AS writer
        FROM {names[0]} r JOIN {names[0]} w ON r.direction = 'input' AND w.direction = 'output'
             AND w.kns = r.kns AND w.kname = r.kname  -- same dataset: a hash join
        WHERE {_SAW_SQL}""")
    # The times only served the links: a narrower table is faster to keep, read back and join.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {names[0]} AS SELECT * EXCLUDE (done_at, first_at, started, next_at) FROM {names[0]}")
    if files:
        for name, f in zip(names, files):
            _store_cache(con, name, f)
    return names


def _cache_file(con: duckdb.DuckDBPyConnection, ns: str, refused: list[tuple[str, str]]) -> Path | None:
    folder = con.execute(f"SELECT getvariable('{_CACHE_VARIABLE}')").fetchone()
    view = con.execute("SELECT sql FROM duckdb_views() WHERE schema_name = ? AND view_name = 'run_datasets'", [ns]).fetchone()
    if not folder or not folder[0] or not view or "read_parquet" not in (view[0] or ""):
        return None  # no cache asked for, or a table without files / read through iceberg_scan
    # The refused moves decide which edges there are too: their tables' state (`_refused_state`) is part of the key.
    key = hashlib.sha256(f"{_EDGES_VERSION}\0{ns}\0{view[0]}\0{refused}".encode()).hexdigest()[:32]
    return Path(folder[0]) / f"{key}.parquet"


def _store_cache(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    """Write the edges beside the others, atomically (a reader never sees half a file), and
    keep only the newest few."""
    import os

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        # Sorted by run, in small row groups: a walk's answer is a few runs, and DuckDB skips the
        # row groups whose run ids fall outside the ones its join is looking for.
        order = "ORDER BY run_id" if path.name.startswith("walk-edges-") else ""
        con.execute(f"COPY (SELECT * FROM {table} {order}) TO {_literal(str(tmp))} (FORMAT parquet, ROW_GROUP_SIZE 8192)")
        os.replace(tmp, path)
        prefix = path.name.split("-")[0] + "-" + path.name.split("-")[1]  # walk-edges / walk-links
        old = sorted(path.parent.glob(f"{prefix}-*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)[_CACHE_KEEP:]
        for stale in old:
            stale.unlink(missing_ok=True)
    except OSError:
        pass  # a cache that cannot be written only costs the next cold walk its edges


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _seed(con: duckdb.DuckDBPyConnection, node: Node, direction: Direction, e: str) -> list[str]:
    """The run ids the walk starts from (in edge table `e`).

    Found in steps, each a query with constant filters only: DuckDB pushes those into the scan of
    the cached edges, while in one query joining the steps it guessed the sizes wrong and built
    its hash table on all edges instead of on the few matches (a warm walk's largest cost at 1M events)."""
    if node.kind == "run":
        return [node.name]
    if node.kind == "job":
        return query(con, f"SELECT DISTINCT run_id FROM {e} WHERE job_name = ?", [node.name]).column("run_id").to_pylist()
    # A dataset: every name of it leads to the same node (its identity with symlinks resolved).
    # Each way of naming it is its own lookup (an `a OR b` over different columns is checked row by
    # row; each `AND` of equalities is pushed into the scan).
    params: list[str | None]  # a dataset node's namespace may be None
    if node.kind == "table":
        # NS.TABLE (Tidemark's table name), a symlink name, or a dataset named like that
        wheres, params = ["label = ?", "sym = ?", "name = ?"], [node.name] * 3
    elif node.kind == "model":
        wheres, params = ["dataset_type = 'MODEL' AND name = ?"], [node.name]
    else:
        wheres, params = ["ns = ? AND name = ?", "sym_ns = ? AND sym = ?"], [node.namespace, node.name] * 2
    names = " UNION ".join(f"SELECT kns, kname FROM {e} WHERE {w}" for w in wheres)
    keys = query(con, names, params).to_pylist()
    if not keys:
        return []
    # Upstream starts at the runs that wrote the dataset, downstream at the runs that read it.
    side = "output" if direction == "upstream" else "input"
    version = "" if node.version is None else " AND version = ?"
    runs = " UNION ".join(f"SELECT run_id FROM {e} WHERE direction = '{side}' AND kns = ? AND kname = ?{version}" for _ in keys)
    key_params = [p for k in keys for p in (k["kns"], k["kname"], *([node.version] if node.version is not None else []))]
    return query(con, runs, key_params).column("run_id").to_pylist()


def connect_for_walk(settings: Settings, as_of: str | datetime | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding just what a walk reads (`walk_tables`), without extensions;
    as the store stood at `as_of` (see `lineage.query.connect`)."""
    from lineage.query import connect

    ns = settings.lineage.namespace
    con = connect(settings, as_of, only=[f"{ns}.{t}" for t in walk_tables()], iceberg=False)
    con.execute(f"SET VARIABLE {_CACHE_VARIABLE} = {_literal(str(settings.home / 'cache' / 'walk'))}")
    return con


# Which write a read saw (docs/events.md): `r` is a run's input row, `w` another run's output
# row of the same dataset. A versioned read saw exactly that version; an unversioned one the
# latest write done before the reading run started.
_SAW_SQL = """CASE WHEN r.version IS NOT NULL THEN w.version = r.version
                   ELSE w.done_at < r.started AND (w.next_at IS NULL OR w.next_at >= r.started) END"""


def walk(con: duckdb.DuckDBPyConnection, node: Node, direction: Direction, depth: int, ns: str = "lineage") -> list[dict[str, Any]]:
    """Every dataset edge of every run within `depth` runs of `node`, nearest first."""
    if depth < 1:
        raise NotFoundError(f"depth must be at least 1, got {depth}", parameter="depth")
    # Upstream: from a reader to the writers it saw. Downstream: from a writer to its readers.
    here, there = ("reader", "writer") if direction == "upstream" else ("writer", "reader")
    # The tables by their own names, not through a CTE: DuckDB would copy a CTE named several
    # times (materialised) on every walk, which cost more than the walk itself.
    e, links = _edges(con, ns)
    seeds = _seed(con, node, direction, e)
    rows: list[dict[str, Any]] = []
    if seeds:
        runs = query(con, f"""
        WITH RECURSIVE walk(depth, run_id) AS (
            SELECT 1, unnest(?::VARCHAR[])
            UNION
            SELECT w.depth + 1, l.{there}
            FROM walk w JOIN {links} l ON l.{here} = w.run_id
            WHERE w.depth < ?
        )
        SELECT run_id, min(depth) AS depth FROM walk GROUP BY run_id
        """, [seeds, depth]).to_pydict()
        # The runs' edges in a query of their own, the ids bound as a list: a constant filter that
        # DuckDB checks against each row group's run-id range (the edges are sorted by run), so it
        # reads only the row groups holding them. Joined to the walk in one query, DuckDB cannot
        # tell the walk is small and built its hash table on all edges (at 1M events ~40 of a warm
        # walk's ~65 ms CPU).
        rows = query(con, f"""
        SELECT r.depth, e.run_id, e.job_name, e.direction, e.label AS dataset, e.ns AS dataset_namespace,
               e.name AS dataset_name, e.dataset_type, e.version
        FROM {e} e JOIN (SELECT unnest(?::VARCHAR[]) AS run_id, unnest(?::INTEGER[]) AS depth) r USING (run_id)
        WHERE e.run_id = ANY(?::VARCHAR[])
        ORDER BY r.depth, e.job_name, e.run_id, e.direction, e.label
        """, [runs["run_id"], runs["depth"], runs["run_id"]]).to_pylist()
    if not rows:
        raise NotFoundError(f"nothing in the lineage store matches {_describe(node)}; check the name, or run `tidemark lineage consume --once`")
    return rows


def _describe(node: Node) -> str:
    version = f" at {node.version}" if node.version else ""
    return f"{node.kind} {node.namespace + ':' if node.namespace else ''}{node.name}{version}"
