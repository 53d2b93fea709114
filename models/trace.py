"""Trace a model version back to its origin: training run, input snapshots, ingest runs, source files.

`trace_prediction` starts one step earlier, at one answered request: its row in a prediction log
(`serving.<model>_predictions`) names the version that answered, and the log's commit (its snapshot
summary) the flush run that logged it; from the version on it is `trace`.

The registry resolves the alias; the lineage tables (through DuckDB) say which runs produced each
input snapshot and from which files. When the lineage store has not yet received an ingest run's
events, the snapshot's own summary properties still name the run and the source checksum.
"""

from __future__ import annotations

from typing import Any

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.tables import JOB_NAME, OWNER, RUN_ID, SOURCE_PATH, SOURCE_SHA256, TableName, ancestors, summary_properties
from lineage import actors, columns
from lineage import query as lineage_query
from lineage.column_graph import feature_sources
from lineage import trace as lt
from models.exceptions import PredictionNotFoundError
from models.registry import ModelRef, Registry
from models.signature import PREDICTIONS_NAMESPACE, PREDICTIONS_SUFFIX, prediction_table

PREDICTION_PREFIX = "prediction:"

GATE_PREFIX = "tidemark.gate."


def trace(settings: Settings, ref: str) -> dict[str, Any]:
    """The whole origin of `ref` (NAME@ALIAS, NAME:VERSION or NAME) as a JSON-ready dict."""
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    parsed = ModelRef.parse(ref)
    mv = registry.resolve(parsed)
    ns = settings.lineage.namespace
    columns.ensure(catalog, settings)
    con = lineage_query.connect(settings, only=[f"{ns}.run_datasets", f"{ns}.runs", f"{ns}.{columns.COLUMN_LINEAGE}"], iceberg=False)
    recorded = {i.table: i for i in mv.inputs}
    from_events = {i.table: i for i in lt.run_inputs(con, mv.run_id, ns)}
    inputs = []
    for table_name, inp in sorted(recorded.items()):
        table = catalog.load_table(TableName.parse(table_name).identifier)
        event_input = from_events.get(table_name)
        # The table's identity comes from its location, the same whoever emitted the event.
        producer = lt.snapshot_producer(con, _ds_namespace(table), _ds_name(table), str(inp.snapshot_id), ns)
        # A version registered before snapshot ids were recorded has none: no summary, no landings.
        snap = table.snapshot_by_id(inp.snapshot_id) if inp.snapshot_id is not None else None
        props = summary_properties(snap) if snap else {}
        entry: dict[str, Any] = {
            "table": table_name,
            "snapshot_id": inp.snapshot_id,
            "rows": inp.rows,
            "fingerprint": inp.fingerprint,
            # The gate's verdict as the landing recorded it in the snapshot summary (suite, success,
            # failures, data docs): documented keys, read here without importing ingest.
            "gate": {k.removeprefix(GATE_PREFIX): v for k, v in props.items() if k.startswith(GATE_PREFIX)},
            "in_lineage_events": event_input is not None and event_input.snapshot_id == str(inp.snapshot_id),
            "snapshot_exists": snap is not None,
            "owner": table.properties.get(OWNER),
        }
        if producer is not None:
            entry["ingest_run"] = {
                "run_id": producer.run_id,
                "job": producer.job_name,
                "time": producer.event_time,
                "source": "lineage",
                "parent": lt.run_parent(con, producer.run_id, ns),
                "actor": lt.run_actor(con, producer.run_id, ns),
            }
            entry["source_files"] = [{"path": s.path, "sha256": s.sha256} for s in producer.sources]
            entry["validation"] = producer.assertions
        elif props.get(RUN_ID):
            entry["ingest_run"] = {"run_id": props[RUN_ID], "job": props.get("tidemark.job-name"), "source": "snapshot-summary"}
            entry["source_files"] = (
                [{"path": props.get(SOURCE_PATH), "sha256": props[SOURCE_SHA256]}] if props.get(SOURCE_SHA256) else []
            )
        entry["landings"] = _landings(table, inp.snapshot_id) if inp.snapshot_id is not None else []
        inputs.append(entry)
    return {
        "model": mv.model,
        "version": mv.version,
        "alias": parsed.alias,
        "aliases": mv.aliases,
        "run_id": mv.run_id,
        "parent": lt.run_parent(con, mv.run_id, ns),
        "job": mv.job_name,
        "entry_point": mv.entry_point,
        "artifact_uri": mv.artifact_uri,
        "sha256": mv.sha256,
        "metrics": mv.metrics,
        "parameters": mv.parameters,
        "trained_at": mv.created_at.isoformat(),
        # Who trained it (the registry row), who owns the model, and who moved each alias it holds there.
        "actor": mv.actor.to_json() if mv.actor else None,
        "owner": mv.owner,
        "alias_moves": _alias_moves(registry, mv),
        "inputs": inputs,
        # Column-level lineage: each feature <- the table column at its snapshot <- the file column.
        "features": feature_sources(con, mv.model, str(mv.version), ns),
    }


def _alias_moves(registry: Registry, mv: Any) -> list[dict[str, Any]]:
    """The moves that gave `mv` each alias it holds now: alias, when, by whom."""
    out: dict[str, dict[str, Any]] = {}
    for r in registry.alias_history(mv.model):  # oldest first: an alias's last move to this version wins
        if r["action"] == "set" and r["alias"] in mv.aliases and r["version"] == mv.version:
            by = actors.from_columns(r)
            out[r["alias"]] = {"alias": r["alias"], "time": r["event_time"].isoformat(), "run_id": r["run_id"], "actor": by.to_json() if by else None}
    return [out[a] for a in sorted(out)]


def _ds_namespace(table: Any) -> str:
    from lineage.events import warehouse_namespace

    return warehouse_namespace(table.location())


def _ds_name(table: Any) -> str:
    from lineage.events import location_path

    return location_path(table.location())


def _landings(table: Any, snapshot_id: int) -> list[dict[str, Any]]:
    """Every landing whose rows the snapshot holds (its ancestors that carry a source checksum)."""
    out = []
    for snap in ancestors(table, snapshot_id):
        props = summary_properties(snap)
        if props.get(SOURCE_SHA256):
            out.append(
                {
                    "snapshot_id": snap.snapshot_id,
                    "run_id": props.get(RUN_ID),
                    "job": props.get(JOB_NAME),
                    "source_path": props.get(SOURCE_PATH),
                    "sha256": props[SOURCE_SHA256],
                }
            )
    return out


def trace_prediction(settings: Settings, prediction_id: str, model: str | None = None) -> dict[str, Any]:
    """The origin of one prediction: its logged row (features, answer, time, the log's commit and
    run) and the whole `trace` of the version that answered. `prediction_id` may carry the
    `prediction:` prefix; `model` narrows the search to that model's log (default: every log)."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    pid = prediction_id.removeprefix(PREDICTION_PREFIX)
    catalog = load_catalog(settings)
    if model is not None:
        names = [prediction_table(model)]
    else:
        try:
            listed = catalog.list_tables(PREDICTIONS_NAMESPACE)
        except NoSuchNamespaceError:
            listed = []
        names = sorted(f"{ns}.{t}" for ns, t in listed if t.endswith(PREDICTIONS_SUFFIX))
    for name in names:
        if not catalog.table_exists(TableName.parse(name).identifier):
            continue
        found = _logged_row(catalog.load_table(TableName.parse(name).identifier), name, pid)
        if found is not None:
            return {"prediction": found, **trace(settings, f"{found['model']}:{found['version']}")}
    where = ", ".join(names) or f"no {PREDICTIONS_NAMESPACE}.*{PREDICTIONS_SUFFIX} table exists"
    raise PredictionNotFoundError(
        f"no prediction {pid} in the prediction logs ({where}); a served prediction reaches its log within "
        "serving.log_interval_s, or once the catalog answers if it was down"
    )


def _logged_row(table: Any, name: str, pid: str) -> dict[str, Any] | None:
    """The row of `pid` in one log table, with the snapshot that added it and that commit's run."""
    from lakehouse import sql

    snap = table.current_snapshot()
    if snap is None:
        return None
    con = sql.connect(iceberg=False)
    # The log is append-only, so its rows are its data files; each row's file name says which
    # commit added it (the manifests' entries below).
    body = sql.snapshot_sql(con, table, snap.snapshot_id, filename=True)
    if not body:
        return None
    rows = sql.query(con, f"SELECT * FROM ({body}) WHERE prediction_id = ? LIMIT 1", [pid]).to_pylist()
    if not rows:
        return None
    row = rows[0]
    path = row.pop("filename", None)
    # DuckDB names a local file by its path, the manifests by its file:// URI.
    added = {e["data_file"]["file_path"].removeprefix("file://"): e["snapshot_id"] for e in table.inspect.entries(snapshot_id=snap.snapshot_id).to_pylist()}
    sid = added.get(path.removeprefix("file://")) if path else None
    commit = table.snapshot_by_id(sid) if sid is not None else None
    props = summary_properties(commit) if commit is not None else {}
    own = {"prediction_id", "model", "version", "time", "prediction"}
    return {
        "prediction_id": row["prediction_id"],
        "model": row["model"],
        "version": int(row["version"]),
        "time": row["time"].isoformat() if row["time"] is not None else None,
        "prediction": row["prediction"],
        "features": {k: v for k, v in row.items() if k not in own},
        "table": name,
        "snapshot_id": sid,
        "logged_by": {"run_id": props.get(RUN_ID), "job": props.get(JOB_NAME)} if props.get(RUN_ID) else None,
    }
