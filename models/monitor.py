"""Monitoring a model in production: drift-check every version that holds an alias on new snapshots.

What a scheduler runs when a model's input tables get new data: each alias holder of the model is
compared with the new snapshots (`models.drift.check_model`, one lineage run per check), and the
first one that drifted is reported with what renewal needs to act on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lakehouse.config import Settings
from models.drift import check_model
from models.registry import Registry

log = logging.getLogger(__name__)


def check_alias_holders(settings: Settings, model: str, snapshots: Mapping[str, int]) -> dict[str, Any] | None:
    """Drift-check every alias holder of `model` against `snapshots`; the first that drifted, or None.

    Returns what a drift notice carries (the renewal DAG's asset event): model, alias, version,
    snapshots, the drift check's run id, the drifted features.
    """
    holders = sorted((alias, v) for (m, alias), v in Registry(settings).current_aliases().items() if m == model)
    if not holders:
        log.info("%s: no version holds an alias; nothing to watch", model)
        return None
    found = None
    for alias, version in holders:
        check = check_model(settings, f"{model}@{alias}", snapshots=dict(snapshots))
        features = sorted({f for t in check.tables for f in t.drifted_features})
        log.info("%s@%s (version %s) on %s: %s", model, alias, version, dict(snapshots), f"DRIFT in {', '.join(features)}" if check.drifted else "no drift")
        if check.drifted and found is None:
            found = {"model": model, "alias": alias, "version": version, "snapshots": dict(snapshots), "drift_run_id": check.run_id, "drifted_features": features}
    return found
