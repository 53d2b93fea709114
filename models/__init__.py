"""Models: reference training jobs, the model registry with aliases, and trace of a model version.

Public surface: the modules in `__all__`, and in each of them every name that does not start with an
underscore. `artifacts` is public for serving, which loads and checks a version's artifact;
`fingerprint`, `inputs`, `execution`, `runner` and `sourcecode` serve training and retraining;
tests/test_architecture.py fails when another package imports them or an underscored name.
"""

__all__ = [
    "approvals",
    "artifacts",
    "drift",
    "drift_plot",
    "environments",
    "exceptions",
    "history",
    "jobs",
    "monitor",
    "pinning",
    "promotion",
    "recovery",
    "registry",
    "renewal",
    "reproducibility",
    "retrain",
    "signature",
    "status",
    "trace",
    "trace_graph",
    "train",
]
