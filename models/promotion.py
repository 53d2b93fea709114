"""The promotion gate: which versions may hold an alias, and why not.

A version is refused when its lineage is incomplete (an input without a snapshot id, a snapshot
that is gone or never reached main, a landing whose validation gate did not pass or is unknown to
the lineage store) or when its primary metric is worse than the current holder's by more than
`models.promotion_threshold`. `force` with a reason overrides; both the reason and what was
overridden are recorded in the alias event.
"""

from __future__ import annotations

from typing import Any

from lakehouse.config import Settings
from lineage import gate
from lineage.gate import NOT_IN_STORE, GateReport, lineage_problems
from lineage.transport import Transport
from models.exceptions import PromotionRefusedError
from models.registry import ModelVersion, Registry, check_name

# The gate's checks live in `lineage.gate` (the lineage consumer applies them to alias moves that
# arrive as events); `lineage_problems`, `GateReport` and `NOT_IN_STORE` are re-exported for this package's callers.
__all__ = ["NOT_IN_STORE", "GateReport", "check", "gated", "lineage_problems", "promote"]


def check(settings: Settings, registry: Registry, mv: ModelVersion, alias: str) -> GateReport:
    """The promotion gate for moving `alias` to `mv`, compared with the alias's current holder."""
    holder_version = registry.current_aliases().get((mv.model, alias))
    holder = registry.get(mv.model, holder_version) if holder_version is not None else None
    return gate.check(settings, mv, holder, alias)


def gated(
    settings: Settings, model: str, version: int, alias: str, *, force: bool, what: str, recorded: str = "it is recorded"
) -> tuple[Registry, ModelVersion, GateReport]:
    """The registry, the version and the gate's report for moving `alias` to it; refused (naming
    `what` was refused) when the gate finds a problem and not `force`."""
    registry = Registry(settings)
    mv = registry.get(model, version)
    report = check(settings, registry, mv, alias)
    if not report.ok and not force:
        raise PromotionRefusedError(
            f"refusing to {what}: {'; '.join(report.problems)}. Fix that, or pass force with a reason ({recorded})", parameter="force"
        )
    return registry, mv, report


def promote(
    settings: Settings,
    model: str,
    version: int,
    alias: str,
    *,
    reason: str | None = None,
    force: bool = False,
    transport: Transport | None = None,
) -> dict[str, Any]:
    """Move `alias` to `version` if the gate allows it (or `force`, which needs a reason).

    A protected alias (`models.protected_aliases`) is not moved: a pending request is made instead
    (`models.approvals.request`, forced or not), returned with `request_id`, for another actor to approve.
    """
    # Names first: an alias like `../../etc` or 5,000 characters is refused before any read or write.
    check_name("model", model, "model")
    check_name("alias", alias, "alias")
    if force and not (reason and reason.strip()):
        raise PromotionRefusedError("force needs reason: a text recorded in the alias history", parameter="reason")
    if settings.models.is_protected(model, alias):
        from models.approvals import request

        return request(settings, model, version, alias, reason=reason, force=force, transport=transport)
    registry, mv, report = gated(settings, model, version, alias, force=force, what=f"promote {model}:{version} to {alias}")
    overridden = "; ".join(report.problems) if report.problems else None
    move = registry.promote(
        model, version, alias, reason=reason, transport=transport, forced=bool(force and overridden), overridden=overridden
    )
    return {**move, "checks": {"problems": report.problems, "notes": report.notes}}
