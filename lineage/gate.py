"""The promotion gate's checks: may this model version hold an alias, and if not, why.

A version is refused when its lineage is incomplete (an input without a snapshot id, a snapshot
that is gone or never reached main, a landing whose validation gate did not pass or is unknown to
the lineage store) or when its primary metric is worse than the current holder's by more than
`models.promotion_threshold`.

It lives in `lineage` (not `models`) because two callers apply it: `models promote` before it
writes an alias move, and the lineage consumer before it applies an alias move that arrived as an
event from a producer it cannot authenticate (`lineage.model_store`). Both must refuse the same
moves, so there is one gate. It reads versions through `GateVersion`, which `models.registry`'s
`ModelVersion` and `model_store`'s rows both satisfy, so lineage never imports models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.exceptions import TableNotFoundError
from lakehouse.tables import RUN_ID, SOURCE_SHA256, TableName, ancestors, load_table, summary_properties
from lineage import events as ev
from lineage import query as lineage_query
from lineage import trace as lt

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

# Snapshot operations that add no new data: they need no gate of their own.
_NO_NEW_DATA = {"replace", "delete"}


class GateInput(Protocol):
    """One input table of a version and the snapshot it read."""

    @property
    def table(self) -> str: ...

    @property
    def snapshot_id(self) -> int | None: ...


class GateVersion(Protocol):
    """What the gate needs to know about a model version."""

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def inputs(self) -> Sequence[GateInput]: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...

    @property
    def primary_metric(self) -> str | None: ...

    @property
    def metric_goal(self) -> str | None: ...


@dataclass
class GateReport:
    model: str
    version: int
    alias: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _on_main(table: Table, snapshot_id: int) -> bool:
    """Was this snapshot ever main's state (its history or its snapshot log)?"""
    current = table.current_snapshot()
    if current is not None and any(s.snapshot_id == snapshot_id for s in ancestors(table, current.snapshot_id)):
        return True
    return any(e.snapshot_id == snapshot_id for e in table.metadata.snapshot_log)


# The words of the one lineage problem that time can fix: the consumer has not stored the landing's
# events yet (automatic renewal waits for it, `models.renewal`).
NOT_IN_STORE = "is not in the lineage store"


def lineage_problems(
    settings: Settings, mv: GateVersion, con: duckdb.DuckDBPyConnection | None = None, catalog: Catalog | None = None
) -> list[str]:
    """Why the lineage of `mv` is incomplete; empty when every input is a gated snapshot of main."""
    problems: list[str] = []
    if not mv.inputs:
        return [f"{mv.model}:{mv.version} records no input tables"]
    catalog = catalog or load_catalog(settings)
    con = con or lineage_query.connect(settings)
    ns = settings.lineage.namespace
    for inp in mv.inputs:
        if inp.snapshot_id is None:
            problems.append(f"input {inp.table} has no snapshot id")
            continue
        try:
            table = load_table(catalog, TableName.parse(inp.table))
        except TableNotFoundError:
            problems.append(f"input table {inp.table} no longer exists")
            continue
        snap = table.snapshot_by_id(inp.snapshot_id)
        if snap is None:
            problems.append(f"snapshot {inp.snapshot_id} of {inp.table} no longer exists (expired)")
            continue
        if not _on_main(table, inp.snapshot_id):
            problems.append(
                f"snapshot {inp.snapshot_id} of {inp.table} never passed its gate (it was never published to main; "
                "a quarantined or audit-branch snapshot)"
            )
            continue
        ds_ns, ds_name = ev.warehouse_namespace(table.location()), ev.location_path(table.location())
        for s in ancestors(table, inp.snapshot_id):
            props = summary_properties(s)
            op = str(s.summary.operation.value) if s.summary else "append"
            if op in _NO_NEW_DATA or int(props.get("added-records", "0") or 0) == 0:
                continue
            if not props.get(SOURCE_SHA256):
                problems.append(
                    f"snapshot {s.snapshot_id} of {inp.table} added rows outside a gated landing (operation {op})"
                )
                continue
            # The validation result comes from events, but only from the landing run that the
            # snapshot's own summary (written with the commit, in the catalog) names, and every
            # event claiming it must agree: a forged event can make the gate refuse, never pass.
            claims = lt.snapshot_validations(con, ds_ns, ds_name, str(s.snapshot_id), props.get(RUN_ID), ns)
            assertions = [a for claim in claims for a in claim]
            if not claims:
                problems.append(
                    f"the validation of snapshot {s.snapshot_id} of {inp.table} (landing run {props.get(RUN_ID)}) {NOT_IN_STORE}; "
                    "run `tidemark lineage consume --once`"
                )
            elif not all(claims):
                problems.append(f"snapshot {s.snapshot_id} of {inp.table} was landed without a validation gate")
            elif not all(a.get("success") for a in assertions):
                failed = sorted({str(a.get("assertion")) for a in assertions if not a.get("success")})
                problems.append(f"snapshot {s.snapshot_id} of {inp.table} failed its gate ({', '.join(failed)})")
    return problems


def metric_problems(settings: Settings, mv: GateVersion, holder: GateVersion | None, alias: str) -> tuple[list[str], list[str]]:
    """(problems, notes) of comparing `mv`'s primary metric with that of `holder`, the alias's current holder."""
    if holder is None or holder.version == mv.version:
        return [], [f"{mv.model}@{alias} has no other holder to compare with"]
    metric = mv.primary_metric or holder.primary_metric
    if not metric:
        return [], [f"no primary metric declared for {mv.model}; metrics not compared"]
    if metric not in mv.metrics or metric not in holder.metrics:
        return [], [f"{metric} is missing from version {mv.version} or {holder.version}; not compared"]
    goal = mv.metric_goal or holder.metric_goal or "max"
    new, old = float(mv.metrics[metric]), float(holder.metrics[metric])
    worse_by = (old - new) if goal == "max" else (new - old)
    threshold = settings.models.promotion_threshold
    what = f"{metric} {new:.6g} vs {old:.6g} of version {holder.version}, the current {alias} ({'higher' if goal == 'max' else 'lower'} is better)"
    if worse_by > threshold:
        return [f"{what}: worse by {worse_by:.6g}, more than the threshold {threshold:g} (models.promotion_threshold)"], []
    return [], [what]


def check(
    settings: Settings,
    mv: GateVersion,
    holder: GateVersion | None,
    alias: str,
    con: duckdb.DuckDBPyConnection | None = None,
    catalog: Catalog | None = None,
) -> GateReport:
    """The whole gate for moving `alias` to `mv` while `holder` (or nobody) holds it."""
    report = GateReport(mv.model, mv.version, alias)
    if getattr(mv, "verified", None) is False:
        # Its metrics (compared below) and its artifact are the claims of an unsigned event.
        report.problems.append(
            f"version {mv.version} was registered by an event without a valid signature (its metrics and artifact are "
            "unverified; train one with `tidemark train JOB`, or force with a reason)"
        )
    report.problems += lineage_problems(settings, mv, con, catalog)
    problems, notes = metric_problems(settings, mv, holder, alias)
    report.problems += problems
    report.notes += notes
    return report
