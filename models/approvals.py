"""Protected aliases: a move is requested by one actor and approved (or rejected) by another.

An alias in `models.protected_aliases` (or a model's own `models.protected_aliases_per_model`)
never moves on `models promote` or automatic renewal alone: they create a request that records the
requester (`lineage.actors`), the promotion gate's verdict, the metrics against the current holder
and the version's input snapshots. `approve` by a different actor re-checks all of it and moves the
alias through the signed path (`Registry.promote`, with the request's id as its approval); `reject`
closes it. Every step is a row of `lineage.alias_requests` and a signed lineage event carrying a
notification (`lineage.notifications`), so a subscriber can tell the approvers.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from typing import Any

from lakehouse.config import Settings
from lakehouse.failpoints import step
from lakehouse.tables import append_missing
from lineage import actors, alias_requests, notifications
from lineage import events as ev
from lineage.outbox import OutboxTransport
from lineage.transport import Transport
from models.exceptions import ApprovalRefusedError, ModelNotFoundError, PromotionRefusedError
from models.promotion import check, gated
from models.registry import ModelVersion, Registry, check_name

REQUEST_JOB = "models.request"
APPROVE_JOB = "models.approve"
REJECT_JOB = "models.reject"
# The in-flight context of an approval's move: its approve row and the facets of its event (`finish`).
RECOVERY_KEY = "approval"


def is_protected(settings: Settings, model: str, alias: str) -> bool:
    return settings.models.is_protected(model, alias)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _steps(registry: Registry, model: str) -> dict[str, dict[str, Any]]:
    return alias_requests.requests(alias_requests.rows(registry.catalog, registry.settings, model))


def _emit(registry: Registry, mv: ModelVersion, row: dict[str, Any], job: str, note: dict[str, Any], transport: Transport | None) -> None:
    """The step's COMPLETE event: the version as input with the signed request facet, the actor and the notification."""
    settings = registry.settings
    dataset = registry.model_dataset(mv)
    dataset["facets"][alias_requests.FACET] = alias_requests.request_facet(settings, row)
    event = ev.run_event(
        producer=settings.lineage.producer,
        event_type="COMPLETE",
        run_id=row["run_id"],
        job_namespace=settings.lineage.job_namespace,
        job_name=job,
        inputs=[dataset],
        run_facets={actors.FACET: actors.current_actor(settings).as_facet(settings.lineage.producer), notifications.FACET: note},
        event_time=row["event_time"].isoformat().replace("+00:00", "Z"),
    )
    tr = transport or OutboxTransport(settings)
    try:
        tr.emit(event)
    finally:
        if transport is None:
            tr.close()


def _write(registry: Registry, row: dict[str, Any]) -> None:
    settings = registry.settings
    alias_requests.ensure(registry.catalog, settings)
    append_missing(
        registry.catalog, (settings.lineage.namespace, alias_requests.TABLE), [row], ("request_id", "action"),
        alias_requests.arrow_schema(), job_name=REQUEST_JOB,
    )


def _stored(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON for the outbox (`finish` reads it back)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def finish(registry: Registry, run_id: str, context: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rest of an approval whose process died after its move `run_id` committed: its approve row
    (written unless there; idempotent) and the dataset and run facets of the move's event, the same
    signed content the dead process would have sent. `context`: what `approve` noted (RECOVERY_KEY)."""
    row = {**context["row"], "run_id": run_id}
    row["event_time"] = datetime.fromisoformat(row["event_time"])
    _write(registry, row)
    return context["dataset_facets"], context["run_facets"]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A step as JSON: JSON columns parsed, times as ISO text."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k in ("gate_problems", "gate_notes", "metrics", "inputs", "actor_facet"):
            out[k] = json.loads(v) if v else None
        elif isinstance(v, datetime):
            out[k] = v.isoformat()
        elif k == "closed_by":
            out[k] = _public(v) if v else None
        else:
            out[k] = v
    return out


def request(
    settings: Settings,
    model: str,
    version: int,
    alias: str,
    *,
    reason: str | None = None,
    force: bool = False,
    requested_by: str | None = None,
    transport: Transport | None = None,
) -> dict[str, Any]:
    """Ask to move protected `alias` to `version`: a pending request with the gate's verdict now.

    Refused like a promotion when the gate refuses and not `force` (a request that could never be
    approved helps nobody); `force` (with a reason) records a forced request that the approver sees as such.
    `requested_by`: what made it when not a person's command (automatic renewal), shown in the reason.
    """
    check_name("model", model, "model")
    check_name("alias", alias, "alias")
    if force and not (reason and reason.strip()):
        raise PromotionRefusedError("force needs reason: a text recorded in the request and the alias history", parameter="reason")
    registry, mv, report = gated(
        settings, model, version, alias, force=force, what=f"request {model}:{version} for {alias}", recorded="the approver sees it"
    )
    if mv.archived:
        raise ModelNotFoundError(f"model {model} version {version} is archived; request a version that is not")
    holder_version = registry.current_aliases().get((model, alias))
    holder = registry.get(model, holder_version) if holder_version is not None else None
    known = set(_steps(registry, model))
    request_id = next(r for r in (f"r{secrets.token_hex(4)}" for _ in range(100)) if r not in known)
    actor = actors.current_actor(settings)
    row = {
        "event_time": datetime.now(timezone.utc),
        "request_id": request_id,
        "model": model,
        "alias": alias,
        "version": version,
        "action": alias_requests.REQUEST,
        "actor": actor.name,
        "actor_facet": _json(actor.to_json()),
        "reason": reason if not requested_by else f"{requested_by}: {reason}" if reason else requested_by,
        "forced": bool(force and report.problems),
        "holder_version": holder_version,
        "gate_problems": _json(report.problems),
        "gate_notes": _json(report.notes),
        "metrics": _json({"primary_metric": mv.primary_metric, "candidate": mv.metrics, "holder": holder.metrics if holder else None}),
        "inputs": _json([i.to_json() for i in mv.inputs]),
        "run_id": ev.new_run_id(),
    }
    _write(registry, row)
    summary = f"{actor.name} asks to move {model}@{alias} to version {version} (now {holder_version or 'none'}): request {request_id}"
    note = notifications.facet(
        settings.lineage.producer, notifications.ALIAS_REQUEST, model=model, alias=alias, version=version, actor=actor.name,
        summary=summary, details={"requestId": request_id, "holderVersion": holder_version, "forced": row["forced"],
                                  "gateProblems": report.problems, "approve": approve_command(model, request_id)},
    )
    _emit(registry, mv, row, REQUEST_JOB, note, transport)
    return {**_public(row), "approve_with": approve_command(model, request_id)}


def approve_command(model: str, request_id: str) -> str:
    return f"tidemark models approve {model} {request_id}"


def _open_request(registry: Registry, model: str, request_id: str, verb: str) -> dict[str, Any]:
    """The pending request `request_id` of `model`, or the one-line refusal that says why not."""
    check_name("model", model, "model")
    req = _steps(registry, model).get(request_id)
    if req is None:
        raise ApprovalRefusedError(
            f"{model} has no request {request_id!r}; nothing {verb}. See `tidemark models requests {model} --all`", parameter="request"
        )
    closed = req["closed_by"]
    if closed is not None:
        done = "approved" if closed["action"] == alias_requests.APPROVE else "rejected"
        raise ApprovalRefusedError(
            f"request {request_id} is already closed: {done} by {closed['actor']} at {closed['event_time']:%Y-%m-%d %H:%M:%S}; nothing {verb}",
            parameter="request",
        )
    applied = [m for m in registry.alias_history(model) if m.get("approval") == request_id]
    if applied:
        raise ApprovalRefusedError(
            f"request {request_id} is already applied (alias move run {applied[0]['run_id']}) but its approval is not recorded yet: "
            f"run `tidemark lineage recover` to finish it; nothing {verb}",
            parameter="request",
        )
    return req


def _closing(req: dict[str, Any], action: str, actor: actors.Actor, reason: str | None) -> dict[str, Any]:
    """The row of the step that closes `req`: its request's fields, taken now by `actor`."""
    return {
        **{k: v for k, v in req.items() if k != "closed_by"},
        "event_time": datetime.now(timezone.utc),
        "action": action,
        "actor": actor.name,
        "actor_facet": _json(actor.to_json()),
        "reason": reason,
        "run_id": ev.new_run_id(),
    }


def approve(settings: Settings, model: str, request_id: str, *, reason: str | None = None, transport: Transport | None = None) -> dict[str, Any]:
    """Apply pending request `request_id` of `model`, as an actor other than its requester.

    Refused (nothing moves) when the request is unknown or closed, when the approver made it, when
    the alias's holder changed since it was made, or when the promotion gate, checked again now,
    finds a problem the request did not carry (a snapshot expired since, a landing found to have
    failed its gate)."""
    registry = Registry(settings)
    req = _open_request(registry, model, request_id, "approved")
    actor = actors.current_actor(settings)
    if actor.name == req["actor"]:
        raise ApprovalRefusedError(
            f"request {request_id} was made by {actor.name}; another actor must approve it (nothing moved)", parameter="request"
        )
    alias, version = req["alias"], int(req["version"])
    holder_now = registry.current_aliases().get((model, alias))
    if holder_now != req["holder_version"]:
        raise ApprovalRefusedError(
            f"the holder of {model}@{alias} changed since request {request_id} (version {req['holder_version'] or 'none'} then, "
            f"{holder_now or 'none'} now): its verdict no longer holds; reject it and make a new request",
            parameter="request",
        )
    mv = registry.get(model, version)
    report = check(settings, registry, mv, alias)
    accepted = set(json.loads(req["gate_problems"] or "[]")) if req["forced"] else set()
    new = [p for p in report.problems if p not in accepted]
    if new:
        raise ApprovalRefusedError(
            f"the promotion gate no longer passes request {request_id}: {'; '.join(new)}; reject it and make a new request",
            parameter="request",
        )
    row = {**_closing(req, alias_requests.APPROVE, actor, reason), "gate_problems": _json(report.problems), "gate_notes": _json(report.notes)}
    summary = f"{actor.name} approved request {request_id} of {req['actor']}: {model}@{alias} -> version {version}"
    note = notifications.facet(
        settings.lineage.producer, notifications.ALIAS_APPROVED, model=model, alias=alias, version=version, actor=actor.name,
        summary=summary, details={"requestId": request_id, "requestedBy": req["actor"], "previousVersion": holder_now},
    )
    overridden = "; ".join(report.problems) or None
    dataset_facets = {alias_requests.FACET: alias_requests.request_facet(settings, row)}
    run_facets = {notifications.FACET: note}
    step("approve.decided")

    def record(move: dict[str, Any]) -> None:
        # The approve row after the committed move and before its event; from here a death leaves
        # the run in flight with everything recovery needs to write this row and send this event.
        step("approve.moved")
        row["run_id"] = move["run_id"]
        _write(registry, row)
        step("approve.recorded")

    # The move and its approval are one event: the consumer stores the approval before it vets the
    # move (`lineage.model_store.vet_moves` wants one for a protected alias).
    move = registry.promote(
        model, version, alias,
        reason=f"request {request_id} by {req['actor']}, approved by {actor.name}" + (f": {req['reason']}" if req["reason"] else ""),
        transport=transport, forced=bool(req["forced"] and overridden), overridden=overridden, approval=request_id,
        job=APPROVE_JOB, actor=actor, dataset_facets=dataset_facets, run_facets=run_facets, after_commit=record,
        recovery={RECOVERY_KEY: {"row": _stored(row), "dataset_facets": dataset_facets, "run_facets": run_facets}},
    )
    step("approve.emitted")
    return {**_public(row), "move": move}


def reject(settings: Settings, model: str, request_id: str, *, reason: str, transport: Transport | None = None) -> dict[str, Any]:
    """Close pending request `request_id` without moving anything (its requester may withdraw it)."""
    if not (reason and reason.strip()):
        raise ApprovalRefusedError("reject needs --reason: a text recorded with the request", parameter="reason")
    registry = Registry(settings)
    req = _open_request(registry, model, request_id, "rejected")
    actor = actors.current_actor(settings)
    row = _closing(req, alias_requests.REJECT, actor, reason)
    _write(registry, row)
    summary = f"{actor.name} rejected request {request_id} of {req['actor']} ({model}@{req['alias']} -> version {req['version']}): {reason}"
    note = notifications.facet(
        settings.lineage.producer, notifications.ALIAS_REJECTED, model=model, alias=req["alias"], version=req["version"],
        actor=actor.name, summary=summary, details={"requestId": request_id, "requestedBy": req["actor"], "reason": reason},
    )
    _emit(registry, registry.get(model, int(req["version"])), row, REJECT_JOB, note, transport)
    return _public(row)


def listing(settings: Settings, model: str | None = None, include_closed: bool = False) -> list[dict[str, Any]]:
    """Requests (of `model`, or all), oldest first: the pending ones, or all with `include_closed`."""
    registry = Registry(settings)
    if model is not None:
        registry.resolve(model)  # a clear error for an unknown model
    found = alias_requests.requests(alias_requests.rows(registry.catalog, settings, model)).values()
    return [{**_public(r), "status": _status(r)} for r in found if include_closed or r["closed_by"] is None]


def _status(req: dict[str, Any]) -> str:
    closed = req["closed_by"]
    return "pending" if closed is None else "approved" if closed["action"] == alias_requests.APPROVE else "rejected"
