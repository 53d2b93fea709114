"""Monitoring a model in production: drift-check every version that holds an alias on new snapshots,
and on the traffic it answered.

What a scheduler runs when a model's input tables get new data: each alias holder of the model is
compared with the new snapshots (`models.drift.check_model`, one lineage run per check), and the
first one that drifted is reported with what renewal needs to act on it. When its prediction log
gets new rows (or hourly): each holder's recent traffic against its training data
(`models.drift.check_traffic`), reported the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lakehouse.config import Settings
from lakehouse.catalog import load_catalog
from lakehouse.tables import load_table
from models.drift import DEFAULT_WINDOW, check_model, check_traffic, parse_window
from models.exceptions import DriftError
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


def check_traffic_of_alias_holders(settings: Settings, model: str, window: str = DEFAULT_WINDOW) -> dict[str, Any] | None:
    """Drift-check the traffic each alias holder of `model` answered in the last `window`; the
    first that drifted (as `check_alias_holders` reports it, plus the log snapshot), or None.

    A holder with no logged traffic in the window is skipped, said in the log: nothing to compare
    is not drift. `snapshots` are the input tables' current ones: what a renewal would train on.
    """
    parse_window(window)  # a bad window is bad input, not "no traffic": it must fail, not skip
    registry = Registry(settings)
    holders = sorted((alias, v) for (m, alias), v in registry.current_aliases().items() if m == model)
    found = None
    for alias, version in holders:
        try:
            check = check_traffic(settings, f"{model}@{alias}", window=window)
        except DriftError as exc:
            log.info("%s@%s (version %s): %s", model, alias, version, exc)
            continue
        features = sorted({f for t in check.tables for f in t.drifted_features})
        log.info("%s@%s (version %s) traffic of the last %s: %s", model, alias, version, window, f"DRIFT in {', '.join(features)}" if check.drifted else "no drift")
        if check.drifted and found is None:
            catalog = load_catalog(settings)
            mv = registry.get(model, version)
            snapshots = {}
            for inp in mv.inputs:
                snap = load_table(catalog, inp.table).current_snapshot()
                if snap is not None:
                    snapshots[inp.table] = snap.snapshot_id
            found = {
                "model": model, "alias": alias, "version": version, "snapshots": snapshots, "drift_run_id": check.run_id,
                "drifted_features": features, "traffic_snapshot_id": check.tables[0].current_snapshot_id, "window": window,
            }
    return found
