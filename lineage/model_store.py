"""The model registry's Iceberg tables, and how lineage events become their rows.

`lineage.model_versions` (one row per registered version) and `lineage.model_alias_events` (one
row per alias move or archive: the history, never updated in place). The `models` package writes
them directly (version allocation needs read-your-writes), and the lineage consumer upserts the
same rows from the events, so a registry fed only through Kafka is complete too.

An alias move or archive from an event is a claim, not a fact: the consumer applies it only if the
version is in the registry and the move passes the promotion gate (`lineage.gate`), or it carries
the signature of an authorised `models promote` / `models archive` (`lineage.signing`: how a move
forced past the gate on purpose is told from a forged one). Any other move is kept, with the
reason, in `lineage.rejected_moves` and never applied (`vet_moves`). docs/events.md has the whole
trust model.

This module is generic on purpose: it knows the two Tidemark facets (`tidemark_modelVersion` on a
MODEL output of a COMPLETE event, `tidemark_modelAlias` on a MODEL dataset of an alias move), never
the `models` package (imports point models -> lineage -> lakehouse).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.tables import NO_REBASE, TableName, append_missing, ensure_table, with_commit_retry
from lakehouse.times import parse_time
from lineage import events as ev
from lineage import actors, gate, signing

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

VERSIONS = "model_versions"
ALIAS_EVENTS = "model_alias_events"
REJECTED = "rejected_moves"
VERSION_FACET = "tidemark_modelVersion"
ALIAS_FACET = "tidemark_modelAlias"
SYNC_JOB = "tidemark.lineage.registry-sync"
# The alias-events action that archives a version (its alias column is empty).
ARCHIVE = "archive"


def schemas() -> dict[str, Any]:
    """The registry tables' Iceberg schemas, by short name (a new dict of the same Schema objects)."""
    return dict(_schemas())


@functools.cache
def _schemas() -> dict[str, Any]:
    # Built once per process: every training opens the registry, which checks its table's columns.
    from pyiceberg.schema import Schema
    from pyiceberg.types import BooleanType, IntegerType, TimestamptzType

    from lineage.store import column as s

    return {
        VERSIONS: Schema(
            s(1, "model", required=True),
            s(2, "version", IntegerType(), required=True),
            s(3, "run_id", required=True),
            s(4, "job_name"),
            s(5, "entry_point"),
            s(6, "artifact_uri"),
            s(7, "sha256"),
            s(8, "metrics"),  # JSON {name: value}
            s(9, "inputs"),  # JSON [{table, snapshot_id, rows, fingerprint}]
            s(10, "parameters"),  # JSON
            s(11, "created_at", TimestamptzType(), required=True),
            s(12, "code"),  # JSON {entry_point, module, source_sha256, git_commit, git_dirty, repo}
            s(13, "environment"),  # JSON {python, platform, packages}
            s(14, "primary_metric"),
            s(15, "metric_goal"),  # "max" or "min"
            s(16, "card_uri"),
            # False: registered by an event without a valid signature (`lineage.signing`); such a
            # version gets an alias only from `models promote` or a signed move, never an unsigned one.
            s(17, "verified", BooleanType()),
            # Who registered it (`lineage.actors`; null in a registry made before actors were
            # recorded), and who owns the model from this version on (the training job's owner, else
            # the registering actor).
            s(18, "actor"),
            s(19, "actor_kind"),
            s(20, "triggered_by"),
            s(21, "owner"),
        ),
        ALIAS_EVENTS: Schema(
            s(1, "event_time", TimestamptzType(), required=True),
            s(2, "model", required=True),
            s(3, "alias", required=True),
            s(4, "version", IntegerType()),
            s(5, "previous_version", IntegerType()),
            s(6, "action", required=True),  # set | archive
            s(7, "reason"),
            s(8, "run_id"),
            s(9, "forced", BooleanType()),
            s(10, "overridden"),  # why promotion was refused, when --force overrode it
            # Who moved it (`lineage.actors`), covered by the move's signature when present.
            s(11, "actor"),
            s(12, "actor_kind"),
            s(13, "triggered_by"),
            # The approved request (`lineage.alias_requests`) this move applies: a protected alias
            # moves only with one (`models approve`).
            s(14, "approval"),
        ),
        # Alias moves and archives that events claimed and the consumer refused to apply.
        REJECTED: Schema(
            s(1, "received_time", TimestamptzType(), required=True),
            s(2, "event_time", TimestamptzType(), required=True),
            s(3, "model", required=True),
            s(4, "alias", required=True),
            s(5, "version", IntegerType()),
            s(6, "action", required=True),
            s(7, "run_id", required=True),
            s(8, "job_name"),
            s(9, "producer"),
            s(10, "forced", BooleanType()),
            s(11, "signed", BooleanType()),  # whether it carried a signature at all (valid ones are never refused for it)
            s(12, "reason"),  # the reason the event gave for the move
            s(13, "rejected_because", required=True),
            s(14, "claim"),  # the move as the event claimed it (JSON), to judge it again when its version arrives
            s(15, "actor"),  # who the event says made the move (a claim, like the rest)
        ),
    }


@functools.cache
def arrow_schema(short: str) -> pa.Schema:
    # Built once per process: every registration writes a row with it (Arrow schemas are immutable).
    return schemas()[short].as_arrow()


def ensure_tables(catalog: Catalog, settings: Settings, only: Iterable[str] | None = None) -> dict[str, Table]:
    """Create the registry tables if missing; add columns a registry made by an older Tidemark lacks.

    `only`: just these tables (a training run needs `model_versions`, not the alias history).
    """
    from pyiceberg.exceptions import NoSuchTableError

    out = {}
    for short, schema in schemas().items():
        if only is not None and short not in only:
            continue
        name = TableName(settings.lineage.namespace, short)
        try:
            # One catalog round trip in the common case (every training run opens the registry).
            table = catalog.load_table(name.identifier)
        except NoSuchTableError:
            table = ensure_table(catalog, name, schema, properties={"format-version": "2", **NO_REBASE})
        missing = [f.name for f in schema.fields if f.name not in {x.name for x in table.schema().fields}]
        if missing:

            def evolve() -> None:
                t = catalog.load_table(name.identifier)
                if all(n in {x.name for x in t.schema().fields} for n in missing):
                    return
                with t.update_schema() as update:
                    update.union_by_name(schema)

            with_commit_retry(evolve, f"adding columns {', '.join(missing)} to {name}")
            table = catalog.load_table(name.identifier)
        out[short] = table
    return out


# -- facets ---------------------------------------------------------------------------------------


def version_facet(producer: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a `model_versions` row holds, as a facet of the MODEL output dataset."""
    return ev.facet(
        producer,
        f"{ev.TIDEMARK_FACETS}/ModelVersionDatasetFacet.json",
        model=row["model"],
        version=int(row["version"]),
        jobName=row.get("job_name"),
        entryPoint=row.get("entry_point"),
        artifactUri=row.get("artifact_uri"),
        sha256=row.get("sha256"),
        metrics=json.loads(row.get("metrics") or "{}"),
        inputs=json.loads(row.get("inputs") or "[]"),
        parameters=json.loads(row.get("parameters") or "{}"),
        createdAt=_iso(row["created_at"]),
        code=json.loads(row.get("code") or "null"),
        environment=json.loads(row.get("environment") or "null"),
        primaryMetric=row.get("primary_metric"),
        metricGoal=row.get("metric_goal"),
        cardUri=row.get("card_uri"),
        # Only when known, so a registry row from before actors and owners signs as it always did.
        **({"actor": actor.signed()} if (actor := actors.from_columns(row)) is not None else {}),
        **({"owner": row["owner"]} if row.get("owner") else {}),
    )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def version_row_from_event(event: Mapping[str, Any], settings: Settings | None = None) -> list[dict[str, Any]]:
    """`model_versions` rows carried by a COMPLETE event's MODEL outputs (none for other events).

    `verified`: the facet's signature verifies with `settings`' registry key (never without settings).
    """
    if event.get("eventType") != "COMPLETE":
        return []
    rows = []
    for ds in event.get("outputs") or []:
        facet = (ds.get("facets") or {}).get(VERSION_FACET)
        if ev.dataset_type(ds) != "MODEL" or not isinstance(facet, dict):
            continue
        if not names.is_valid("model", facet.get("model")):
            continue  # a name no Tidemark producer writes (a path, a quote): the event is stored, the row is not
        try:
            rows.append(
                {
                    "model": str(facet["model"]),
                    "version": int(facet["version"]),
                    "run_id": str(event["run"]["runId"]),
                    "job_name": facet.get("jobName") or (event.get("job") or {}).get("name"),
                    "entry_point": facet.get("entryPoint"),
                    "artifact_uri": facet.get("artifactUri"),
                    "sha256": facet.get("sha256"),
                    "metrics": _dumps(facet.get("metrics") or {}),
                    "inputs": _dumps(facet.get("inputs") or []),
                    "parameters": _dumps(facet.get("parameters") or {}),
                    "created_at": parse_time(str(facet.get("createdAt") or event["eventTime"]), parameter="createdAt"),
                    "code": _dumps(facet.get("code")),
                    "environment": _dumps(facet.get("environment")),
                    "primary_metric": facet.get("primaryMetric"),
                    "metric_goal": facet.get("metricGoal"),
                    "card_uri": facet.get("cardUri"),
                    "verified": settings is not None and signing.verify(settings, signed_registration(facet), facet.get("signature")),
                    **_actor_columns(facet.get("actor")),
                    "owner": str(facet["owner"]) if facet.get("owner") else None,
                }
            )
        except (KeyError, TypeError, ValueError):
            continue  # a malformed facet from some producer: the event itself is still stored
    return rows


def alias_rows_from_event(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`model_alias_events` rows carried by an event's datasets with a `tidemark_modelAlias` facet."""
    if event.get("eventType") != "COMPLETE":
        return []
    rows = []
    for ds in list(event.get("inputs") or []) + list(event.get("outputs") or []):
        facet = (ds.get("facets") or {}).get(ALIAS_FACET)
        if not isinstance(facet, dict):
            continue
        try:
            prev = facet.get("previousVersion")
            row = {
                "event_time": parse_time(str(event["eventTime"]), parameter="eventTime"),
                "model": str(ds["name"]),
                "alias": str(facet.get("alias") or ""),
                "version": int(ev.dataset_version(ds) or 0) or None,
                "previous_version": int(prev) if prev is not None else None,
                "action": str(facet.get("action") or "set"),
                "reason": facet.get("reason"),
                "run_id": str(event["run"]["runId"]),
                "forced": bool(facet.get("forced", False)),
                "overridden": facet.get("overridden"),
                "approval": facet.get("approval"),
                **_actor_columns(facet.get("actor")),
            }
        except (KeyError, TypeError, ValueError):
            continue
        # Not columns: what `vet_moves` checks the claim with.
        row[_SIGNATURE] = facet.get("signature")
        row[_ORIGIN] = {"job_name": (event.get("job") or {}).get("name"), "producer": event.get("producer")}
        rows.append(row)
    return rows


def _actor_columns(value: Any) -> dict[str, Any]:
    actor = actors.from_facet(value)
    return actor.columns() if actor is not None else dict(actors.NO_COLUMNS)


_SIGNATURE, _ORIGIN = "_signature", "_origin"
# Why a move waits for its version: its registration may come in a later batch (another partition).
_NO_VERSION = "has no version"


def _claim(move: Mapping[str, Any]) -> str:
    """A refused move as JSON, everything needed to judge it again (`_reconsidered`)."""
    return json.dumps({**{k: v for k, v in move.items() if not k.startswith("_")}, "signature": move.get(_SIGNATURE), "origin": move.get(_ORIGIN)}, default=str)


def _from_claim(text: str) -> dict[str, Any]:
    c = json.loads(text)
    return {
        **{k: c.get(k) for k in ("model", "alias", "version", "previous_version", "action", "reason", "run_id", "forced", "overridden", "approval", *actors.NO_COLUMNS)},
        "event_time": parse_time(str(c["event_time"]).replace(" ", "T"), parameter="event_time"),
        _SIGNATURE: c.get("signature"),
        _ORIGIN: c.get("origin"),
    }


def signed_move(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an alias-events row that its signature covers, by their facet names.

    `approval` only when the move has one, so the signatures of moves made before it existed still verify."""
    approval = {"approval": row["approval"]} if row.get("approval") is not None else {}
    return {
        **approval,
        "model": row["model"],
        "version": None if row["version"] is None else int(row["version"]),
        "alias": row["alias"],
        "action": row["action"],
        "previousVersion": row["previous_version"],
        "forced": bool(row["forced"]),
        "overridden": row["overridden"],
        "reason": row["reason"],
        "runId": row["run_id"],
        # Only when the move names its actor: moves signed before actors were recorded still verify.
        **({"actor": actor.signed()} if (actor := actors.from_columns(row)) is not None else {}),
    }


def signed_registration(facet: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a `tidemark_modelVersion` facet that its signature covers: all of its own."""
    return signing.facet_fields(facet)


def current_aliases(history: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """(model, alias) -> version, from alias-events rows in time order."""
    current: dict[tuple[str, str], int] = {}
    for r in history:
        if r["action"] == "set" and r["version"] is not None:
            current[(r["model"], r["alias"])] = int(r["version"])
        elif r["action"] == "remove":
            current.pop((r["model"], r["alias"]), None)
    return current


@dataclass(frozen=True)
class _Input:
    table: str
    snapshot_id: int | None


@dataclass(frozen=True)
class StoredVersion:
    """A `model_versions` row as the promotion gate reads it (`lineage.gate.GateVersion`)."""

    model: str
    version: int
    inputs: tuple[_Input, ...]
    metrics: Mapping[str, float]
    primary_metric: str | None
    metric_goal: str | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> StoredVersion:
        inputs = []
        for i in json.loads(r.get("inputs") or "[]"):
            sid = i.get("snapshot_id")
            inputs.append(_Input(str(i.get("table")), int(sid) if sid not in (None, "") else None))
        return cls(
            str(r["model"]), int(r["version"]), tuple(inputs), json.loads(r.get("metrics") or "{}"),
            r.get("primary_metric"), r.get("metric_goal"),
        )


def _scan(table: Table) -> list[dict[str, Any]]:
    return table.scan().to_arrow().to_pylist() if table.current_snapshot() is not None else []


def vet_moves(
    catalog: Catalog, settings: Settings, moves: Sequence[Mapping[str, Any]], now: datetime | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split alias-events rows claimed by events into (to apply, refused): `rejected_moves` rows.

    A move already recorded (the producer's direct write, a replay) is neither. In event-time order,
    each move is judged against the registry as the moves before it left it:
    - its version must be registered, and for a move not be archived;
    - an archive: the version holds no alias (what `models archive` requires);
    - a move with a valid signature (an authorised `models promote`, forced or not) is applied;
    - a move of a protected alias (`models.protected_aliases`) needs an approval: the id of an
      approved request for exactly this move in `alias_requests` (the approval and the move travel
      in one event, whose steps are stored before its moves), signed or not;
    - a move claiming `forced` without one, or with a signature that does not verify, is refused;
    - any other move must pass the promotion gate now, against the alias's current holder.
    """
    tables = ensure_tables(catalog, settings)
    history = sorted(_scan(tables[ALIAS_EVENTS]), key=lambda r: r["event_time"])
    recorded = {(r["run_id"], r["model"], r["alias"]) for r in history}
    versions = {(r["model"], int(r["version"])): r for r in _scan(tables[VERSIONS])}
    current = current_aliases(history)
    archived = {(r["model"], int(r["version"])) for r in history if r["action"] == ARCHIVE and r["version"] is not None}
    con: Any = None
    approved: dict[str, tuple[str, str, int | None]] | None = None
    received = now or datetime.now(timezone.utc)
    accepted: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for m in sorted(moves, key=lambda r: r["event_time"]):
        key = (m["run_id"], m["model"], m["alias"])
        if key in recorded:
            continue
        recorded.add(key)
        why: str | None
        signature = m.get(_SIGNATURE)
        signed = signing.verify(settings, signed_move(m), signature)
        model, version, alias = m["model"], m["version"], m["alias"]
        row = versions.get((model, version)) if version is not None else None
        holding = sorted(a for (mm, a), v in current.items() if mm == model and v == version)
        if signature is not None and not signed:
            why = "its signature does not verify with this installation's registry key (lineage.registry_key)"
        elif not names.is_valid("model", model) or (alias and not names.is_valid("alias", alias)):
            bad = ("model", model) if not names.is_valid("model", model) else ("alias", alias)
            why = f"{bad[0]} name {names.shown(bad[1])} is not allowed: {names.RULES[bad[0]].text}"
        elif row is None:
            why = f"model {model} {_NO_VERSION} {version} in the registry"
        elif m["action"] == ARCHIVE:
            why = f"version {version} holds alias {', '.join(holding)}; an archive needs a version without aliases" if holding else None
        elif m["action"] != "set":
            why = f"unknown action {m['action']!r}"
        elif not alias:
            why = "the move names no alias"
        elif (model, version) in archived:
            why = f"version {version} is archived"
        elif settings.models.is_protected(model, alias) and not m.get("approval"):
            why = f"{model}@{alias} is protected (models.protected_aliases): it moves only by an approved request (`tidemark models approve`)"
        elif settings.models.is_protected(model, alias) and (approved := approved or _approved(catalog, settings)).get(str(m["approval"])) != (model, alias, version):
            why = f"it names approval {m['approval']}, which is not a stored approval of {model}:{version} to {alias} (lineage.alias_requests)"
        elif signed:
            why = None
        elif m["forced"]:
            why = "it claims forced, but carries no signature of an authorised `models promote --force`"
        elif row.get("verified") is False:
            why = (
                f"version {version} was registered by an event without a valid signature (its metrics and artifact "
                "are unverified); only `tidemark models promote` or a signed move can give it an alias"
            )
        else:
            if con is None:
                from lineage import query as lineage_query

                con = lineage_query.connect(settings)
            holder_version = current.get((model, alias))
            holder = (
                StoredVersion.from_row(versions[(model, holder_version)])
                if holder_version is not None and (model, holder_version) in versions else None
            )
            report = gate.check(settings, StoredVersion.from_row(row), holder, alias, con, catalog)
            why = None if report.ok else "the promotion gate refuses it: " + "; ".join(report.problems)
        if why is not None:
            origin = m.get(_ORIGIN) or {}
            refused.append(
                {
                    # (A hostile name is kept cut short: the refusal says what it was.)
                    "received_time": received, "event_time": m["event_time"], "model": model[:200], "alias": alias[:200],
                    "version": version, "action": m["action"], "run_id": m["run_id"], "job_name": origin.get("job_name"),
                    "producer": origin.get("producer"), "forced": m["forced"], "signed": signature is not None,
                    "reason": m["reason"], "rejected_because": why, "claim": _claim(m), "actor": m.get("actor"),
                }
            )
            continue
        accepted.append({k: v for k, v in m.items() if not k.startswith("_")})
        if m["action"] == ARCHIVE:
            archived.add((model, version))
        else:
            current[(model, alias)] = int(version)
    return accepted, refused


def _approved(catalog: Catalog, settings: Settings) -> dict[str, tuple[str, str, int | None]]:
    """request id -> (model, alias, version) of each approved request."""
    from lineage import alias_requests

    return {r["request_id"]: (r["model"], r["alias"], r["version"]) for r in alias_requests.rows(catalog, settings) if r["action"] == alias_requests.APPROVE}


# -- the consumer's upsert ------------------------------------------------------------------------


def upsert_from_events(catalog: Catalog, settings: Settings, events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Add the registry rows these events carry and the tables lack; returns rows added per table.

    Idempotent: versions are keyed by (model, version), alias moves by their run id, so a replay,
    or an event whose row the producer already wrote directly, adds nothing.
    """
    from lineage import alias_requests

    events = list(events)
    versions = [r for e in events for r in version_row_from_event(e, settings)]
    moves = [r for e in events for r in alias_rows_from_event(e)]
    added = {VERSIONS: 0, ALIAS_EVENTS: 0, REJECTED: 0, alias_requests.TABLE: 0}
    # Requests and their approvals before moves: an approval travels in the event of the move it makes.
    added[alias_requests.TABLE], refused_steps = alias_requests.upsert_from_events(catalog, settings, events)
    if not versions and not moves and not refused_steps:
        return added
    ensure_tables(catalog, settings)
    key = ("run_id", "model", "alias")
    ns = settings.lineage.namespace
    # Versions first: a move in the same batch may name a version registered by an earlier event of it.
    if versions:
        # NO_REBASE tables: a concurrent registration makes the commit re-read, never duplicate a version.
        added[VERSIONS] = append_missing(catalog, (ns, VERSIONS), versions, ("model", "version"), arrow_schema(VERSIONS), job_name=SYNC_JOB)
    if versions:
        moves += _reconsidered(catalog, settings, {(r["model"], r["version"]) for r in versions})
    if moves:
        accepted, refused = vet_moves(catalog, settings, moves)
    else:
        accepted, refused = [], []
    # A refused approval and the refused move it came with share their run id: the action tells them apart.
    for short, rows, keys in ((ALIAS_EVENTS, accepted, key), (REJECTED, refused + refused_steps, (*key, "action"))):
        if rows:
            added[short] = append_missing(catalog, (ns, short), rows, keys, arrow_schema(short), job_name=SYNC_JOB)
    return added


def _reconsidered(catalog: Catalog, settings: Settings, versions: set[tuple[str, int]]) -> list[dict[str, Any]]:
    """Moves refused because their version was not registered yet, for versions registered now.

    The registration and the move travel under different run ids, so in different partitions, and
    a consumer may read the move first. Judged again, such a move is applied if it passes now (and
    stays refused, recorded once, if not)."""
    table = ensure_tables(catalog, settings, only=(REJECTED,))[REJECTED]
    return [
        _from_claim(r["claim"])
        for r in _scan(table)
        if r.get("claim") and _NO_VERSION in r["rejected_because"] and (r["model"], r["version"]) in versions
    ]


def rejected_moves(catalog: Catalog, settings: Settings, model: str | None = None) -> list[dict[str, Any]]:
    """The refused moves (of `model`, or all), oldest first; not those applied later (`_reconsidered`)."""
    tables = ensure_tables(catalog, settings, only=(REJECTED, ALIAS_EVENTS))
    applied = {(r["run_id"], r["model"], r["alias"]) for r in _scan(tables[ALIAS_EVENTS])}
    rows = (r for r in _scan(tables[REJECTED]) if (model is None or r["model"] == model) and (r["run_id"], r["model"], r["alias"]) not in applied)
    return sorted(rows, key=lambda r: r["event_time"])
