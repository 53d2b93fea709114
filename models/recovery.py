"""Finishing a training or an alias move whose process died, from the registry tables.

`lineage.recovery` calls these for runs `models.train` and `Registry.promote`/`archive` left in
flight (named with `run.recoverable` / `OutboxTransport.expect` before their commit). The
registry rows carry the run id, so the tables say how far the run got:

- training: a `model_versions` row of this run is the registration. Its model card was written
  before the row (`Registry.register(before_commit=...)`), so a registered version always has its
  card; recovery makes the pins the run may not have reached (idempotent) and sends COMPLETE with
  the MODEL output. No row: FAIL "interrupted" (an artifact stored already is content-addressed
  and harmless);
- alias move or archive: a `model_alias_events` row of this run is the move; COMPLETE with the
  same event the move would have sent (for an approval's move, with its approval step, after writing
  the approve row if the process died before it: `models.approvals.finish`). No row: FAIL "interrupted", with no model dataset, so no
  consumer takes it for a move.
"""

from __future__ import annotations

from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lineage.outbox import InFlight
from lineage.recovery import Resolution
from models import approvals, pinning
from models.registry import ALIAS_EVENTS, ModelVersion, Registry


def resolve_training(settings: Settings, run: InFlight) -> Resolution:
    """The terminal event of training run `run` (module docstring)."""
    model = run.context.get("model")
    catalog = load_catalog(settings)
    registry = Registry(settings, catalog)
    mv = _registered(registry, str(model), run.run_id) if model else None
    if mv is None:
        return Resolution("FAIL", note="no registered version of this run")
    pinned = pinning.pin(catalog, mv)
    return Resolution(
        "COMPLETE",
        [registry.model_dataset(mv, registration=True)],
        note=f"registered {mv.model} version {mv.version}; pins {', '.join(pinned) or 'none'} in place",
    )


def resolve_alias_move(settings: Settings, run: InFlight) -> Resolution:
    """The terminal event of alias-move (or archive) run `run` (module docstring)."""
    registry = Registry(settings)
    moves = [r for r in registry.alias_history(run.context.get("model")) if r.get("run_id") == run.run_id]
    if not moves:
        return Resolution("FAIL", inputs=[], note=f"no {ALIAS_EVENTS} row of this run: the move did not happen")
    move = moves[-1]
    mv = registry.get(str(move["model"]), int(move["version"]))
    dataset_facets = run_facets = None
    approval = run.context.get(approvals.RECOVERY_KEY)
    if approval:  # an approval's move: its approve row, and its approval step in the event
        dataset_facets, run_facets = approvals.finish(registry, run.run_id, approval)
    event = registry.alias_event(mv, move, run.job_name, dataset_facets, run_facets)
    label = f"{move['model']}@{move['alias']} -> {move['version']}" if move["alias"] else f"{move['model']}:{move['version']} archived"
    return Resolution(
        "COMPLETE", outputs=[], inputs=event["inputs"], event_time=event["eventTime"], note=label, run_facets=event["run"]["facets"]
    )


def _registered(registry: Registry, model: str, run_id: str) -> ModelVersion | None:
    return next((mv for mv in registry.versions(model) if mv.run_id == run_id), None)
