"""A batch of raw Kafka records -> Arrow rows for every lineage table, in one vectorised pass.

Decoding event by event in Python (parse into dicts, build row dicts, `pa.Table.from_pylist`) costs
~50 µs an event, twice the whole budget of the throughput target. Here DuckDB parses the batch's
JSON in C++ and returns the columns of every table at once; Python touches each event only to
check its id against the ones already stored.

The vectorised path only takes events it can prove are well-formed under stricter rules than the
consumer's own (`consumer.check_event`); everything else, good or bad, goes through the per-event
Python path, which gives a dead letter its precise reason. So an event is accepted or refused, and
gets the same columns, whichever path it took.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage import store

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# Event ids are kept as the first 16 bytes of their sha256: plenty to tell events apart, small in a set.
KEY_BYTES = 16

# Stricter than `check_event`: an eventTime DuckDB and Python read alike, datasets that are objects
# with facet groups that are objects with no key in common (so merging them is a concatenation).
# DuckDB's JSON reader also accepts NaN, Infinity and trailing commas, which orjson refuses: events
# containing anything like them take the Python path, which decides.
_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)"
_LENIENT = r",\s*[}\]]|NaN|Inf"

_EVENTS_SQL = rf"""
SELECT i, t, s, f, sha256(payload) AS event_id, try_cast(s[1] AS TIMESTAMPTZ) AS event_time
FROM (
    SELECT i, payload,
        json_type(payload, ['$', '$.eventTime', '$.eventType', '$.run', '$.run.runId', '$.job', '$.job.name',
                            '$.inputs', '$.outputs', '$.run.facets']) AS t,
        json_extract_string(payload, ['$.eventTime', '$.eventType', '$.run.runId', '$.job.namespace', '$.job.name',
            '$.producer', '$.run.facets.parent.run.runId', '$.run.facets.parent.job.name',
            '$.run.facets.parent.root.run.runId', '$.run.facets.errorMessage.message']) AS s,
        json_extract(payload, ['$.run.facets', '$.job.facets', '$.inputs', '$.outputs']) AS f
    FROM (SELECT i, payload FROM raw WHERE json_valid(payload) AND NOT regexp_matches(payload, '{_LENIENT}'))
    WHERE json_type(payload) = 'OBJECT'
)
WHERE t[2] = 'VARCHAR' AND regexp_full_match(s[1], '{_TIME}') AND t[3] IS NOT NULL
  AND t[4] = 'OBJECT' AND t[5] = 'VARCHAR' AND s[3] <> '' AND t[6] = 'OBJECT' AND t[7] = 'VARCHAR' AND s[5] <> ''
  AND coalesce(t[8], 'NULL') IN ('NULL', 'ARRAY') AND coalesce(t[9], 'NULL') IN ('NULL', 'ARRAY')
  AND coalesce(t[10], 'NULL') IN ('NULL', 'OBJECT')
  AND try_cast(s[1] AS TIMESTAMPTZ) IS NOT NULL
"""

# One row per dataset of the events above. `ok` is false for a dataset the fast path cannot store
# exactly as the Python path would; its whole event then takes the Python path.
_DATASETS_SQL = r"""
WITH d AS (
    SELECT j, direction, ds,
        json_type(ds, ['$', '$.facets', '$.inputFacets', '$.outputFacets']) AS t,
        json_extract(ds, ['$.facets', '$.inputFacets', '$.outputFacets']) AS g,
        json_extract_string(ds, ['$.namespace', '$.name', '$.facets.datasetType.datasetType',
                                 '$.facets.version.datasetVersion']) AS s,
        json_extract(ds, '$.facets.symlinks.identifiers[*]') AS idents
    FROM (
        SELECT j, 'input' AS direction, unnest(json_extract(inputs, '$[*]')) AS ds FROM ds_src
        UNION ALL
        SELECT j, 'output' AS direction, unnest(json_extract(outputs, '$[*]')) AS ds FROM ds_src
    )
), typed AS (
    SELECT *,
        t[1] = 'OBJECT' AND coalesce(t[2], 'NULL') IN ('NULL', 'OBJECT') AND coalesce(t[3], 'NULL') IN ('NULL', 'OBJECT')
        AND coalesce(t[4], 'NULL') IN ('NULL', 'OBJECT') AS shape_ok,
        list_filter(idents, x -> json_extract_string(x, '$.type') = 'TABLE')[1] AS ident
    FROM d
)
SELECT j, direction, s[1] AS dataset_namespace, s[2] AS dataset_name,
    CASE WHEN starts_with(json_extract_string(ident, '$.name'), json_extract_string(ident, '$.namespace') || '.')
         THEN json_extract_string(ident, '$.name')[length(json_extract_string(ident, '$.namespace')) + 2:]
         ELSE json_extract_string(ident, '$.name') END AS table_name,
    nullif(s[3], '') AS dataset_type, s[4] AS version,
    '{' || array_to_string(list_filter(
        [CASE WHEN t[2] = 'OBJECT' THEN g[1][2:-2] END, CASE WHEN t[3] = 'OBJECT' THEN g[2][2:-2] END,
         CASE WHEN t[4] = 'OBJECT' THEN g[3][2:-2] END], x -> x IS NOT NULL AND x <> ''), ',') || '}' AS facets,
    shape_ok
        AND coalesce(json_type(ident, '$.name'), 'VARCHAR') = 'VARCHAR'
        AND coalesce(json_type(ident, '$.namespace'), 'VARCHAR') = 'VARCHAR'
        AND coalesce(json_type(ds, '$.facets.version.datasetVersion'), 'VARCHAR') IN ('VARCHAR', 'UBIGINT', 'BIGINT', 'NULL')
        AND len(list_intersect(coalesce(json_keys(g[1]), []), coalesce(json_keys(g[2]), []))) = 0
        AND len(list_intersect(coalesce(json_keys(g[1]), []) || coalesce(json_keys(g[2]), []), coalesce(json_keys(g[3]), []))) = 0
        AS ok
FROM typed
"""


@dataclass
class Decoded:
    """The rows of one batch. `events`, `runs` and `jobs` have one row per good event, in the same
    order as `keys`, `partitions` and `offsets`; `run_datasets` rows name their event in `dataset_event`.
    `jobs` holds every event's job row: the writer keeps only those of jobs it has not stored yet."""

    keys: list[bytes]
    partitions: list[int]
    offsets: list[int]
    tables: dict[str, pa.Table]
    dataset_event: list[int]
    job_keys: list[tuple[str, str]]
    # Events the model registry may care about, as dicts (the only ones turned into Python objects).
    registry_events: list[dict[str, Any]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)  # (record index, reason)


def connect() -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    # A naive time is UTC to the Python path; make DuckDB agree (and export UTC timestamps).
    con.execute("SET TimeZone = 'UTC'")
    return con


def decode(
    con: duckdb.DuckDBPyConnection,
    partitions: Sequence[int],
    offsets: Sequence[int],
    values: Sequence[bytes],
    slow_parse: Callable[[int], tuple[dict[str, Any], str] | str],
    max_bytes: int,
) -> Decoded:
    """Decode one batch. `slow_parse(i)` is the per-event path for record i: (event, event id) or a reason."""
    import pyarrow as pa

    n = len(values)
    # Payloads DuckDB may read: UTF-8 (it refuses anything else as VARCHAR) and within the size limit.
    fast_in = [i for i, v in enumerate(values) if len(v) <= max_bytes and (v.isascii() or _utf8(v))]
    raw = pa.table(
        {
            "i": pa.array(fast_in, pa.int64()),
            "payload": pa.array([values[i] for i in fast_in], pa.binary()).cast(pa.string()),
        }
    )
    con.register("raw", raw)
    try:
        ev = con.execute(_EVENTS_SQL).to_arrow_table()
    finally:
        con.unregister("raw")
    ev = ev.sort_by("i")
    idx = ev.column("i").to_pylist()
    f = ev.column("f")
    ds_src = pa.table(
        {
            "j": pa.array(range(len(idx)), pa.int64()),
            "inputs": _list_item(f, 2),
            "outputs": _list_item(f, 3),
        }
    )
    con.register("ds_src", ds_src)
    try:
        ds = con.execute(_DATASETS_SQL).to_arrow_table().sort_by("j")
    finally:
        con.unregister("ds_src")

    # Events with a dataset the fast path cannot take exactly go the slow way, as do all it refused.
    bad_j = set(ds.filter(pa.compute.invert(ds.column("ok").fill_null(False))).column("j").to_pylist())
    keep = [j for j in range(len(idx)) if j not in bad_j]
    if bad_j:
        ev = ev.take(keep)
        ds = _renumber(ds.filter(pa.compute.invert(pa.compute.is_in(ds.column("j"), pa.array(sorted(bad_j), pa.int64())))), keep)
        idx = [idx[j] for j in keep]
    fast = set(idx)

    s = ev.column("s")
    col = lambda k: _list_item(s, k)  # noqa: E731 - a column of the extracted strings
    event_id = ev.column("event_id")
    event_time = ev.column("event_time").cast(pa.timestamp("us", tz="UTC"))
    run_id, job_ns, job_name = col(2), col(3), col(4)
    facets = ev.column("f")
    run_facets = _falsy_to_empty(_list_item(facets, 0))
    job_facets = _falsy_to_empty(_list_item(facets, 1))
    ids = event_id.to_pylist()
    keys = [bytes.fromhex(h[:KEY_BYTES * 2]) for h in ids]
    parts = [partitions[i] for i in idx]
    offs = [offsets[i] for i in idx]
    payload = pa.array([values[i] for i in idx], pa.binary()).cast(pa.string())
    registry = [_loads(values[i]) for i in idx if _may_be_registry(values[i])]
    job_keys = list(zip(job_ns.fill_null("").to_pylist(), job_name.fill_null("").to_pylist()))

    tables = {
        store.EVENTS: _table(store.EVENTS, {
            "event_id": event_id, "event_time": event_time, "event_type": col(1), "run_id": run_id,
            "job_namespace": job_ns, "job_name": job_name, "parent_run_id": col(6), "producer": col(5),
            "payload": payload, "kafka_partition": pa.array(parts, pa.int32()), "kafka_offset": pa.array(offs, pa.int64()),
        }),
        store.RUNS: _table(store.RUNS, {
            "event_id": event_id, "event_time": event_time, "event_type": col(1), "run_id": run_id,
            "job_namespace": job_ns, "job_name": job_name, "parent_run_id": col(6), "parent_job_name": col(7),
            "root_run_id": col(8), "error_message": col(9), "run_facets": run_facets,
        }),
        store.JOBS: _table(store.JOBS, {
            "job_namespace": job_ns.fill_null(""), "job_name": job_name.fill_null(""), "first_seen": event_time,
            "first_run_id": run_id, "job_facets": job_facets,
        }),
    }
    dj = ds.column("j")
    ds_event = dj.to_pylist()
    take = lambda c: c.take(dj) if len(dj) else pa.array([], c.type)  # noqa: E731 - an event column per dataset row
    tables[store.RUN_DATASETS] = _table(store.RUN_DATASETS, {
        "event_id": take(event_id), "event_time": take(event_time), "event_type": take(col(1)), "run_id": take(run_id),
        "job_namespace": take(job_ns), "job_name": take(job_name), "direction": ds.column("direction"),
        "dataset_namespace": ds.column("dataset_namespace"), "dataset_name": ds.column("dataset_name"),
        "table_name": ds.column("table_name"), "dataset_type": ds.column("dataset_type"),
        "version": ds.column("version"), "facets": ds.column("facets"),
    })
    out = Decoded(keys, parts, offs, tables, ds_event, job_keys, registry)
    _add_slow(out, [i for i in range(n) if i not in fast], partitions, offsets, values, slow_parse)
    return out


def _add_slow(
    out: Decoded,
    rest: list[int],
    partitions: Sequence[int],
    offsets: Sequence[int],
    values: Sequence[bytes],
    slow_parse: Callable[[int], tuple[dict[str, Any], str] | str],
) -> None:
    """Records the fast path did not take: decided one by one, their rows appended to the batch's."""
    import pyarrow as pa

    rows: dict[str, list[dict[str, Any]]] = {short: [] for short in out.tables}
    for i in rest:
        result = slow_parse(i)
        if isinstance(result, str):
            out.dead.append((i, result))
            continue
        event, eid = result
        try:
            event_rows = store.event_row(event, eid, partitions[i], offsets[i], values[i].decode("utf-8"))
            run_rows = store.run_row(event, eid)
            job_rows = store.job_row(event)
            ds_rows = store.run_dataset_rows(event, eid)
            _check_types(event_rows, run_rows, job_rows, ds_rows)
        except (TypeError, ValueError, AttributeError) as exc:
            # Valid enough to pass the checks, too odd to store (a facet that is not an object...).
            out.dead.append((i, f"event cannot be stored: {exc.__class__.__name__}: {exc}"))
            continue
        j = len(out.keys) + len(rows[store.EVENTS])
        rows[store.EVENTS].append(event_rows)
        rows[store.RUNS].append(run_rows)
        rows[store.JOBS].append(job_rows)
        rows[store.RUN_DATASETS] += ds_rows
        out.dataset_event += [j] * len(ds_rows)
        out.job_keys.append((job_rows["job_namespace"], job_rows["job_name"]))
        if _may_be_registry(values[i]):
            out.registry_events.append(event)
    added = len(rows[store.EVENTS])
    if not added:
        return
    for r in rows[store.EVENTS]:
        out.keys.append(bytes.fromhex(r["event_id"][: KEY_BYTES * 2]))
        out.partitions.append(r["kafka_partition"])
        out.offsets.append(r["kafka_offset"])
    for short, table in out.tables.items():
        extra = pa.Table.from_pylist(rows[short], schema=store.arrow_schema(short))
        out.tables[short] = pa.concat_tables([table, extra])


def _check_types(*rows: Any) -> None:
    """The string columns must hold strings: a producer may send a number where a name belongs."""
    for group in rows:
        for row in group if isinstance(group, list) else [group]:
            for k, v in row.items():
                if k in ("event_id", "run_id", "event_type", "job_namespace", "job_name", "producer", "parent_run_id",
                         "parent_job_name", "root_run_id", "error_message", "dataset_namespace", "dataset_name",
                         "version", "first_run_id") and v is not None and not isinstance(v, str):
                    row[k] = str(v)


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _may_be_registry(value: bytes) -> bool:
    # The registry facets' names (model_store.VERSION_FACET / ALIAS_FACET), or an escaped spelling of them.
    return b"tidemark_model" in value or b"\\u" in value


def _loads(value: bytes) -> dict[str, Any]:
    import orjson

    result: dict[str, Any] = orjson.loads(value)
    return result


def _list_item(column: Any, k: int) -> pa.ChunkedArray:
    """Element k of each list in a list column (DuckDB's multi-path JSON functions return lists)."""
    import pyarrow.compute as pc

    return pc.list_element(column, k)


def _falsy_to_empty(column: Any) -> Any:
    """`event.get(facets) or {}` as JSON text: missing, null, false, 0, "" and [] become {}."""
    import pyarrow as pa
    import pyarrow.compute as pc

    falsy = pc.is_in(column, pa.array(["null", "false", "0", '""', "[]"]))
    return pc.if_else(pc.or_kleene(pc.is_null(column), falsy), "{}", column)


def _renumber(ds: pa.Table, keep: list[int]) -> pa.Table:
    """Dataset rows' event index after the events not kept are dropped."""
    import pyarrow as pa

    new = {old: k for k, old in enumerate(keep)}
    return ds.set_column(ds.schema.get_field_index("j"), "j", pa.array([new[j] for j in ds.column("j").to_pylist()], pa.int64()))


def _table(short: str, columns: dict[str, Any]) -> pa.Table:
    import pyarrow as pa

    schema = store.arrow_schema(short)
    return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)
