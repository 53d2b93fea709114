"""Drift: how far a table's newer snapshot has moved from the snapshot a model was trained on.

- `stats`: the statistics as pure functions of counts (PSI, the KS statistic and its p-value,
  missing rates), unit-tested against scipy;
- `scan`: DuckDB over both snapshots, each column reduced to counts and scored (`compute_drift`),
  category shift in SQL;
- `spark`: the same counts by Spark (`compute_drift(..., engine="spark")`), for tables past one machine;
- `check`: the check of a model version as a lineage run with its facets (`check_model`);
- `stored`: the checks stored in `lineage.drift` (`stored_checks`).
"""

from lakehouse.config import DriftThresholds
from models.drift.check import DRIFT_JOB, DriftCheck, check_model, drift_facet, quality_facet, thresholds_for
from models.drift.scan import BUCKETS, ENGINES, KEY_COLUMNS, FeatureDrift, TableDrift, check_snapshot, compute_drift
from models.drift.stats import PSI_BINS, PSI_EPSILON, kolmogorov_sf, ks_pvalue, psi
from models.drift.stored import stored_checks

__all__ = [
    "BUCKETS",
    "DRIFT_JOB",
    "ENGINES",
    "KEY_COLUMNS",
    "PSI_BINS",
    "PSI_EPSILON",
    "DriftCheck",
    "DriftThresholds",
    "FeatureDrift",
    "TableDrift",
    "check_model",
    "check_snapshot",
    "compute_drift",
    "drift_facet",
    "kolmogorov_sf",
    "ks_pvalue",
    "psi",
    "quality_facet",
    "stored_checks",
    "thresholds_for",
]
