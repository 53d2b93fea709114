"""Notifications: the events a subscriber acts on (a pending request, an approval, a drift alarm, a renewal decision).

They travel on the lineage topic, as the lineage events of the runs they are about, with one extra
run facet, `tidemark_notification`: {kind, model, alias, version, actor, summary, details}. One
delivery path (outbox, at least once, the same ordering and trust) and one fact: the notification
cannot say something the lineage record does not (docs/events.md says why not a topic of its own).
A subscriber reads the topic with its own consumer group and keeps the events whose run carries the
facet (`from_event`); `lineage.webhook` is the example one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lineage import events as ev

FACET = "tidemark_notification"
ALIAS_REQUEST = "alias_request"
ALIAS_APPROVED = "alias_approved"
ALIAS_REJECTED = "alias_rejected"
DRIFT_ALARM = "drift_alarm"
RENEWAL_DECISION = "renewal_decision"
KINDS = (ALIAS_REQUEST, ALIAS_APPROVED, ALIAS_REJECTED, DRIFT_ALARM, RENEWAL_DECISION)


def facet(
    producer: str,
    kind: str,
    *,
    model: str,
    summary: str,
    alias: str | None = None,
    version: int | None = None,
    actor: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run facet that makes a run's event a notification of `kind` (one of KINDS)."""
    assert kind in KINDS, kind
    return ev.facet(
        producer,
        f"{ev.TIDEMARK_FACETS}/NotificationRunFacet.json",
        kind=kind, model=model, alias=alias, version=version, actor=actor, summary=summary, details=dict(details or {}),
    )


def from_event(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The notification an event carries (its facet, with the run id, job and time), or None.

    Only COMPLETE events: a run's START carries the same facets, and one notification per run is
    what a subscriber wants."""
    if event.get("eventType") != "COMPLETE":
        return None
    run = event.get("run") or {}
    found = (run.get("facets") or {}).get(FACET)
    if not isinstance(found, dict) or found.get("kind") not in KINDS:
        return None
    return {
        **{k: v for k, v in found.items() if not k.startswith("_")},
        "runId": run.get("runId"),
        "job": (event.get("job") or {}).get("name"),
        "eventTime": event.get("eventTime"),
    }
