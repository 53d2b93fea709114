"""Drift: how far a table's newer snapshot has moved from the snapshot a model was trained on.

- `stats`: the statistics as pure functions of counts (PSI, the KS statistic and its p-value,
  missing rates), unit-tested against scipy;
- `scan`: DuckDB over both snapshots, each column reduced to counts and scored (`compute_drift`),
  category shift in SQL;
- `spark`: the same counts by Spark (`compute_drift(..., engine="spark")`), for tables past one machine;
- `check`: the check of a model version as a lineage run with its facets (`check_model`);
- `stored`: the checks stored in `lineage.drift` (`stored_checks`);
- `traffic`: the prediction log's recent rows against the training snapshot (`check_traffic`).
"""

from lakehouse.config import DriftThresholds
from models.drift.check import DRIFT_JOB, DriftCheck, baseline_table, check_model, drift_facet, quality_facet, record_check, thresholds_for
from models.drift.scan import BUCKETS, ENGINES, KEY_COLUMNS, FeatureDrift, TableDrift, check_snapshot, compare_relations, compute_drift
from models.drift.stats import PSI_BINS, PSI_EPSILON, kolmogorov_sf, ks_pvalue, psi
from models.drift.stored import stored_checks
from models.drift.traffic import DEFAULT_WINDOW, check_traffic, parse_window

__all__ = [
    "BUCKETS",
    "DEFAULT_WINDOW",
    "DRIFT_JOB",
    "ENGINES",
    "KEY_COLUMNS",
    "PSI_BINS",
    "PSI_EPSILON",
    "DriftCheck",
    "DriftThresholds",
    "FeatureDrift",
    "TableDrift",
    "baseline_table",
    "check_model",
    "check_traffic",
    "check_snapshot",
    "compare_relations",
    "compute_drift",
    "drift_facet",
    "kolmogorov_sf",
    "ks_pvalue",
    "parse_window",
    "psi",
    "quality_facet",
    "record_check",
    "stored_checks",
    "thresholds_for",
]
