"""The model registry: versions and alias history in Iceberg tables, every change also an event.

Tables (namespace `lineage`): `model_versions` (one row per registered version) and
`model_alias_events` (one row per alias move: the history, never updated in place). Version
numbers are allocated by an Iceberg commit that asserts the table did not change since it was
read, so two trainings at once cannot both get version N. Each registration commit also records
every model's highest version in its snapshot summary, so the next one reads the numbers from
the table metadata instead of scanning every row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import names
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import InvalidNameError
from lakehouse.failpoints import step
from lakehouse.tables import JOB_NAME, RUN_ID, summary_properties, transaction, with_commit_retry
from lineage import events as ev
from lineage import actors, model_store, signing
from lineage.actors import Actor
from lineage.outbox import OutboxTransport
from lineage.transport import Transport
from models.exceptions import InvalidModelNameError, ModelNotFoundError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

VERSIONS = model_store.VERSIONS
ALIAS_EVENTS = model_store.ALIAS_EVENTS
PROMOTE_JOB = "models.promote"
ARCHIVE_JOB = "models.archive"
# Snapshot summary of a registration commit: JSON {model: highest version} in the table as of that snapshot.
VERSION_MAX = "tidemark.registry.version-max"
# Each model's owner as of that registration (model -> owner), read as VERSION_MAX is.
OWNERS = "tidemark.registry.owners"
_VERSION = re.compile(r"[0-9]{1,9}")
# How recovery finishes an alias move or archive whose process died (lineage.recovery).
ALIAS_RESOLVER = "models.recovery:resolve_alias_move"


@dataclass(frozen=True)
class InputSnapshot:
    """One input of a training run: the table, the snapshot read, and what it held then."""

    table: str
    snapshot_id: int | None
    rows: int | None = None
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "snapshot_id": self.snapshot_id, "rows": self.rows, "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> InputSnapshot:
        sid = d.get("snapshot_id")
        return cls(d["table"], int(sid) if sid not in (None, "") else None, d.get("rows"), d.get("fingerprint"))


@dataclass
class ModelVersion:
    model: str
    version: int
    run_id: str
    job_name: str
    entry_point: str
    artifact_uri: str
    sha256: str
    metrics: dict[str, float]
    inputs: list[InputSnapshot]
    parameters: dict[str, Any]
    created_at: datetime
    aliases: list[str] = field(default_factory=list)
    code: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    primary_metric: str | None = None
    metric_goal: str | None = None
    card_uri: str | None = None
    archived: dict[str, Any] | None = None
    # False: registered by an event without a valid signature (see lineage.model_store); None: a row
    # from before Tidemark recorded it.
    verified: bool | None = None
    # Who registered it (None: a row from before Tidemark recorded actors) and who owns the model.
    actor: Actor | None = None
    owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "run_id": self.run_id,
            "job_name": self.job_name,
            "entry_point": self.entry_point,
            "artifact_uri": self.artifact_uri,
            "sha256": self.sha256,
            "metrics": self.metrics,
            "inputs": [i.to_json() for i in self.inputs],
            "parameters": self.parameters,
            "created_at": self.created_at.isoformat(),
            "aliases": self.aliases,
            "code": self.code,
            "environment": self.environment,
            "primary_metric": self.primary_metric,
            "metric_goal": self.metric_goal,
            "card_uri": self.card_uri,
            "archived": self.archived,
            "verified": self.verified,
            "actor": self.actor.to_json() if self.actor else None,
            "owner": self.owner,
        }


def check_name(kind: names.Kind, value: str, parameter: str | None = None) -> str:
    """`value` if it is an allowed model or alias name (`lakehouse.names`); else InvalidModelNameError."""
    try:
        return names.check(kind, value, parameter)
    except InvalidNameError as exc:
        raise InvalidModelNameError(str(exc), parameter=parameter) from None


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str, parameter: str | None = None) -> ModelRef:
        """NAME, NAME@ALIAS or NAME:VERSION, each name by its rule (`lakehouse.names`)."""
        text = text or ""
        name, alias, version = text, None, None
        if "@" in text:
            name, alias = text.split("@", 1)
        elif ":" in text:
            name, version = text.rsplit(":", 1)
        if version is not None and not _VERSION.fullmatch(version):
            raise ModelNotFoundError(
                f"{names.shown(text)} is not a model reference: write NAME, NAME@ALIAS or NAME:VERSION (a number)", parameter=parameter
            )
        check_name("model", name, parameter)
        if alias is not None:
            check_name("alias", alias, parameter)
        return cls(name, alias, int(version) if version is not None else None)

    @classmethod
    def of(cls, model: str | None, *, version: int | str | None = None, alias: str | None = None) -> ModelRef:
        """A reference from its parts, as a form hands them over (empty means not given): the model's
        latest version, a version, or an alias holder. Errors name the parameter they are about."""
        name = (model or "").strip()
        if not name:
            raise ModelNotFoundError("model is required: a registered name, e.g. wine", parameter="model")
        check_name("model", name, "model")
        if alias:
            check_name("alias", alias, "alias")
        if version is None or version == "":
            return cls.parse(f"{name}@{alias}" if alias else name)
        if alias:
            raise ModelNotFoundError("alias cannot be given with a version; leave one of them empty", parameter="alias")
        try:
            number = int(version)
        except ValueError as exc:
            raise ModelNotFoundError(f"version must be a whole number, got {version!r}", parameter="version") from exc
        return cls.parse(f"{name}:{number}")

    def __str__(self) -> str:
        return self.name + (f"@{self.alias}" if self.alias else f":{self.version}" if self.version else "")


class Registry:
    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or load_catalog(settings)
        self.ns = settings.lineage.namespace
        # Each table is created or brought up to date on its first use here, so a training run
        # never loads the alias history it does not touch.
        self._ensured: set[str] = set()
        # Loaded moments ago: the first registration starts from it instead of loading it again (a
        # stale one only costs a retry, the commit asserts what it read).
        self._versions_table: Table | None = self._table(VERSIONS)

    def _table(self, short: str) -> Table:
        if short not in self._ensured:
            table = model_store.ensure_tables(self.catalog, self.settings, only=(short,))[short]
            self._ensured.add(short)
            return table
        return self.catalog.load_table((self.ns, short))

    def _rows(self, short: str) -> list[dict[str, Any]]:
        table = self._table(short)
        if table.current_snapshot() is None:
            return []
        return table.scan().to_arrow().to_pylist()

    # -- versions ---------------------------------------------------------------------------------

    def register(
        self,
        *,
        model: str,
        run_id: str,
        job_name: str,
        entry_point: str,
        artifact_uri: str,
        sha256: str,
        metrics: Mapping[str, float],
        inputs: Sequence[InputSnapshot],
        parameters: Mapping[str, Any],
        code: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        primary_metric: str | None = None,
        metric_goal: str | None = None,
        before_commit: Callable[[ModelVersion], None] | None = None,
        actor: Actor | None = None,
        owner: str | None = None,
    ) -> ModelVersion:
        """Allocate the next version number of `model` and record it; safe with concurrent trainings.

        `before_commit(mv)` runs once the version number is known and before the row is committed
        (training writes the model card there, so a registered version always has its card).
        `actor`: who registers it (default: `lineage.actors.current_actor`); `owner`: who owns the
        model (default: the owner its latest version recorded, else `default_owner` of the actor).
        """
        import pyarrow as pa

        actor = actor or actors.current_actor(self.settings)
        created: list[ModelVersion] = []

        def attempt() -> None:
            table, self._versions_table = self._versions_table or self._table(VERSIONS), None
            latest, owners = latest_registrations(table)
            version = latest.get(model, 0) + 1
            latest[model] = version
            # A model keeps its owner when someone else trains the next version: the first
            # registering actor owns it until a training job names another owner.
            owners[model] = owner or owners.get(model) or default_owner(actor)
            mv = ModelVersion(
                model=model,
                version=version,
                run_id=run_id,
                job_name=job_name,
                entry_point=entry_point,
                artifact_uri=artifact_uri,
                sha256=sha256,
                metrics=dict(metrics),
                inputs=list(inputs),
                parameters=dict(parameters),
                created_at=datetime.now(timezone.utc),
                code=dict(code) if code is not None else None,
                environment=dict(environment) if environment is not None else None,
                primary_metric=primary_metric,
                metric_goal=metric_goal,
                card_uri=card_uri(self.settings, model, version, run_id),
                verified=True,
                actor=actor,
                owner=owners[model],
            )
            if before_commit is not None:
                before_commit(mv)
            row = version_row(mv)
            # The append asserts main is where we read it: a concurrent registration makes it fail and retry.
            with transaction(table) as tx:
                tx.append(
                    pa.Table.from_pylist([row], schema=model_store.arrow_schema(VERSIONS)),
                    snapshot_properties={
                        RUN_ID: run_id,
                        JOB_NAME: job_name,
                        VERSION_MAX: json.dumps(latest, sort_keys=True),
                        OWNERS: json.dumps(owners, sort_keys=True),
                    },
                )
            created.append(mv)

        with_commit_retry(attempt, f"registering a version of model {model}")
        return created[-1]

    def versions(self, model: str | None = None, include_archived: bool = True) -> list[ModelVersion]:
        history = self.alias_history()
        aliases = model_store.current_aliases(history)
        archived = {(r["model"], int(r["version"])): r for r in history if r["action"] == model_store.ARCHIVE and r["version"] is not None}
        out = []
        for r in self._rows(VERSIONS):
            if model is not None and r["model"] != model:
                continue
            mv = ModelVersion(
                model=r["model"],
                version=int(r["version"]),
                run_id=r["run_id"],
                job_name=r["job_name"],
                entry_point=r["entry_point"],
                artifact_uri=r["artifact_uri"],
                sha256=r["sha256"],
                metrics=json.loads(r["metrics"] or "{}"),
                inputs=[InputSnapshot.from_json(i) for i in json.loads(r["inputs"] or "[]")],
                parameters=json.loads(r["parameters"] or "{}"),
                created_at=r["created_at"],
                code=json.loads(r["code"]) if r.get("code") else None,
                environment=json.loads(r["environment"]) if r.get("environment") else None,
                primary_metric=r.get("primary_metric"),
                metric_goal=r.get("metric_goal"),
                card_uri=r.get("card_uri"),
                verified=r.get("verified"),
                actor=actors.from_columns(r),
                owner=r.get("owner"),
            )
            arch = archived.get((mv.model, mv.version))
            if arch is not None:
                if not include_archived:
                    continue
                by = actors.from_columns(arch)
                mv.archived = {
                    "at": arch["event_time"].isoformat(), "reason": arch["reason"], "run_id": arch["run_id"],
                    "actor": by.to_json() if by else None,
                }
            mv.aliases = sorted(a for (m, a), v in aliases.items() if m == mv.model and v == mv.version)
            out.append(mv)
        return sorted(out, key=lambda m: (m.model, m.version))

    def get(self, model: str, version: int) -> ModelVersion:
        check_name("model", model, "model")
        for mv in self.versions(model):
            if mv.version == version:
                return mv
        known = [str(m.version) for m in self.versions(model)]
        if not known:
            raise ModelNotFoundError(f"model {model!r} is not registered; see `tidemark models list`")
        raise ModelNotFoundError(f"model {model} has no version {version}; versions: {', '.join(known)}")

    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """NAME@ALIAS, NAME:VERSION, or NAME (its latest version)."""
        r = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if r.version is not None:
            return self.get(r.name, r.version)
        if r.alias is not None:
            holder = self.current_aliases().get((r.name, r.alias))
            if holder is None:
                if not self.versions(r.name):
                    raise ModelNotFoundError(f"model {r.name!r} is not registered; see `tidemark models list`")
                raise ModelNotFoundError(
                    f"model {r.name} has no alias {r.alias!r}; set it with `tidemark models promote {r.name} VERSION --alias {r.alias}`"
                )
            return self.get(r.name, holder)
        versions = self.versions(r.name)
        if not versions:
            raise ModelNotFoundError(f"model {r.name!r} is not registered; see `tidemark models list`")
        return versions[-1]

    # -- aliases ----------------------------------------------------------------------------------

    def alias_history(self, model: str | None = None) -> list[dict[str, Any]]:
        rows = [r for r in self._rows(ALIAS_EVENTS) if model is None or r["model"] == model]
        return sorted(rows, key=lambda r: r["event_time"])

    def current_aliases(self) -> dict[tuple[str, str], int]:
        return model_store.current_aliases(self.alias_history())

    def rejected_moves(self, model: str | None = None) -> list[dict[str, Any]]:
        """Alias moves and archives that events claimed and the lineage consumer refused (never applied)."""
        return model_store.rejected_moves(self.catalog, self.settings, model)

    def promote(
        self,
        model: str,
        version: int,
        alias: str,
        *,
        reason: str | None = None,
        transport: Transport | None = None,
        forced: bool = False,
        overridden: str | None = None,
        approval: str | None = None,
        job: str = PROMOTE_JOB,
        dataset_facets: Mapping[str, Any] | None = None,
        run_facets: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
        after_commit: Callable[[dict[str, Any]], None] | None = None,
        recovery: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Point `alias` at `version`; recorded in the alias history and emitted as a lineage event.

        This records the move; `models.promotion.promote` decides whether it may happen, and
        `models.approvals.approve` for a protected alias (`approval`: the request it applies; its
        approval step rides in the same event as `dataset_facets`, its notification as `run_facets`).
        `after_commit(move)` runs between the committed move and its event (the approve row);
        `recovery`: more context for `models.recovery.resolve_alias_move` should this process die.
        """
        check_name("alias", alias, "alias")
        mv = self.get(model, version)
        if mv.archived:
            raise ModelNotFoundError(f"model {model} version {version} is archived; promote a version that is not")
        return self._record(
            mv, alias, "set", reason=reason, transport=transport, forced=forced, overridden=overridden, job=job, actor=actor,
            approval=approval, dataset_facets=dataset_facets, run_facets=run_facets, after_commit=after_commit, recovery=recovery,
        )

    def archive(
        self, model: str, version: int, *, reason: str | None = None, transport: Transport | None = None, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Mark a version archived (recorded as an event of the alias history). It must hold no alias.

        The caller releases its snapshot pins (`models.pinning.release`): archiving is what lets
        snapshot expiry remove the data only this version needed.
        """
        mv = self.get(model, version)
        if mv.aliases:
            aliases = ", ".join(mv.aliases)
            raise ModelNotFoundError(
                f"model {model} version {version} holds alias {aliases}; promote another version to it first"
            )
        if mv.archived:
            return {"model": model, "version": version, "action": model_store.ARCHIVE, "already": True, **mv.archived}
        return self._record(mv, "", model_store.ARCHIVE, reason=reason, transport=transport, job=ARCHIVE_JOB, actor=actor)

    def _record(
        self,
        mv: ModelVersion,
        alias: str,
        action: str,
        *,
        reason: str | None,
        transport: Transport | None,
        job: str,
        forced: bool = False,
        overridden: str | None = None,
        approval: str | None = None,
        dataset_facets: Mapping[str, Any] | None = None,
        run_facets: Mapping[str, Any] | None = None,
        actor: Actor | None = None,
        after_commit: Callable[[dict[str, Any]], None] | None = None,
        recovery: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        import pyarrow as pa

        run_id = ev.new_run_id()
        by = actor or actors.current_actor(self.settings)
        move: dict[str, Any] = {}

        def attempt() -> None:
            table = self._table(ALIAS_EVENTS)
            previous = self.current_aliases().get((mv.model, alias)) if action == "set" else None
            move.clear()
            move.update(
                {
                    "event_time": datetime.now(timezone.utc),
                    "model": mv.model,
                    "alias": alias,
                    "version": mv.version,
                    "previous_version": previous,
                    "action": action,
                    "reason": reason,
                    "run_id": run_id,
                    "forced": forced,
                    "overridden": overridden,
                    "approval": approval,
                    **by.columns(),
                }
            )
            # NO_REBASE: `previous_version` was read; a concurrent move makes this fail and re-read.
            table.append(
                pa.Table.from_pylist([move], schema=model_store.arrow_schema(ALIAS_EVENTS)),
                snapshot_properties={RUN_ID: run_id, JOB_NAME: job},
            )

        tr = transport or OutboxTransport(self.settings)
        try:
            # In flight before the commit: if this process dies after it, recovery finds the row by
            # its run id and sends the move's event (models.recovery.resolve_alias_move).
            expect = getattr(tr, "expect", None)
            if expect is not None:
                expect(run_id, job, ALIAS_RESOLVER, {"model": mv.model, "version": mv.version, **(recovery or {})})
            step("promote.start")
            with_commit_retry(attempt, f"recording {action} {alias} of model {mv.model}".replace("  ", " "))
            step("promote.registered")
            if after_commit is not None:
                after_commit(move)
            tr.emit(self.alias_event(mv, move, job, dataset_facets, run_facets))
            step("promote.emitted")
        finally:
            if transport is None:
                tr.close()
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in move.items()}

    def alias_event(
        self,
        mv: ModelVersion,
        move: Mapping[str, Any],
        job: str,
        dataset_facets: Mapping[str, Any] | None = None,
        run_facets: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The COMPLETE event of an alias move or archive: the version as input, with the move's facet."""
        producer = self.settings.lineage.producer
        dataset = self.model_dataset(mv)
        dataset["facets"].update(dataset_facets or {})
        by = actors.from_columns(move)
        dataset["facets"][model_store.ALIAS_FACET] = ev.facet(
            producer,
            f"{ev.TIDEMARK_FACETS}/ModelAliasDatasetFacet.json",
            alias=move["alias"],
            action=move["action"],
            previousVersion=move["previous_version"],
            reason=move["reason"],
            forced=bool(move["forced"]),
            overridden=move["overridden"],
            **({"approval": move["approval"]} if move.get("approval") is not None else {}),
            **({"actor": by.signed()} if by is not None else {}),
            # Made with this installation's registry key: a consumer applies a move without it only
            # if the move passes the promotion gate, and never one that claims `forced`.
            signature=signing.sign(self.settings, model_store.signed_move(move)),
        )
        return ev.run_event(
            producer=producer,
            event_type="COMPLETE",
            run_id=str(move["run_id"]),
            job_namespace=self.settings.lineage.job_namespace,
            job_name=job,
            inputs=[dataset],
            event_time=move["event_time"].isoformat().replace("+00:00", "Z"),
            # The run's actor too, as on every other run, so the lineage `runs` table answers "who moved it".
            run_facets={**({actors.FACET: by.as_facet(producer)} if by is not None else {}), **(run_facets or {})},
        )

    def model_dataset(self, mv: ModelVersion, registration: bool = False) -> dict[str, Any]:
        """The version as an OpenLineage MODEL dataset; `registration`: with its whole registry row."""
        extra: dict[str, Any] = {}
        if mv.owner:
            extra["ownership"] = ev.ownership_facet(self.settings.lineage.producer, mv.owner, "dataset")
        if registration:
            facet = model_store.version_facet(self.settings.lineage.producer, version_row(mv))
            # Signed with the registry key: a consumer takes an unsigned registration as unverified.
            facet["signature"] = signing.sign(self.settings, model_store.signed_registration(facet))
            extra[model_store.VERSION_FACET] = facet
        return ev.model_dataset(
            producer=self.settings.lineage.producer,
            namespace=model_namespace(self.settings),
            name=mv.model,
            version=str(mv.version),
            artifact_uri=mv.artifact_uri,
            sha256=mv.sha256,
            metrics=mv.metrics,
            extra_facets=extra,
        )


def latest_registrations(table: Table) -> tuple[dict[str, int], dict[str, str | None]]:
    """Each model's highest version in `table` (`model_versions`) at its current snapshot, and the
    owner that version recorded (None: none).

    From the snapshot summary when the newest commit was a registration, which recorded both;
    otherwise (the lineage consumer adding rows from events, a registry made before this was
    recorded) by one scan of the three columns: it reads every version's file, one more with each
    training, so it is paid once for both answers.
    """
    snap = table.current_snapshot()
    if snap is None:
        return {}, {}
    summary = summary_properties(snap)
    versions, owners = summary.get(VERSION_MAX), summary.get(OWNERS)
    if versions is not None and owners is not None:
        return (
            {str(m): int(v) for m, v in json.loads(versions).items()},
            {str(m): o for m, o in json.loads(owners).items()},
        )
    newest: dict[str, tuple[int, str | None]] = {}
    for r in table.scan(selected_fields=("model", "version", "owner")).to_arrow().to_pylist():
        if r["model"] not in newest or int(r["version"]) > newest[r["model"]][0]:
            newest[r["model"]] = (int(r["version"]), r["owner"])
    return {m: v for m, (v, _) in newest.items()}, {m: o for m, (_, o) in newest.items()}


def version_row(mv: ModelVersion) -> dict[str, Any]:
    """The `model_versions` row of a version (JSON columns as text)."""
    return {
        "model": mv.model,
        "version": mv.version,
        "run_id": mv.run_id,
        "job_name": mv.job_name,
        "entry_point": mv.entry_point,
        "artifact_uri": mv.artifact_uri,
        "sha256": mv.sha256,
        "metrics": json.dumps(mv.metrics, sort_keys=True),
        "inputs": json.dumps([i.to_json() for i in mv.inputs]),
        "parameters": json.dumps(mv.parameters, sort_keys=True, default=str),
        "created_at": mv.created_at,
        "code": json.dumps(mv.code, sort_keys=True) if mv.code is not None else None,
        "environment": json.dumps(mv.environment, sort_keys=True) if mv.environment is not None else None,
        "primary_metric": mv.primary_metric,
        "metric_goal": mv.metric_goal,
        "card_uri": mv.card_uri,
        # Written by this registry itself (not taken from an event): see lineage.model_store.
        "verified": True,
        **(mv.actor.columns() if mv.actor else actors.NO_COLUMNS),
        "owner": mv.owner,
    }


def default_owner(actor: Actor) -> str:
    """Who owns a model its training job names no owner for: the registering person, or for an
    Airflow run the DAG's owner (a team, usually), not the `airflow:` actor name."""
    return actor.dag_owner or actor.name


def card_uri(settings: Settings, model: str, version: int, run_id: str) -> str:
    """Where the card of a version goes; written before its registry row commits, so a training that
    loses the race for number N (and retries as N+1) never overwrites the winner's card."""
    return f"{settings.warehouse.rstrip('/')}/models/{model}/{version}/{run_id}/card.json"


def model_namespace(settings: Settings) -> str:
    """Dataset namespace of every model in this registry."""
    return f"tidemark-registry://{settings.catalog.name}"
