"""Reference training jobs on data sets that ship inside scikit-learn, and how jobs are found.

A job is a plain function `fn(inputs: dict[str, pyarrow.Table], params: dict) -> Trained`, fed
its input tables already read at pinned snapshots. Deterministic: every seed is a parameter,
and rows are put in a defined order before use (a table scan promises no order).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from models.exceptions import UnknownJobError

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Trained:
    estimator: Any
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainingJob:
    name: str
    model: str
    inputs: tuple[str, ...]
    entry_point: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def function(self) -> Callable[[dict[str, pa.Table], dict[str, Any]], Trained]:
        return load_entry_point(self.entry_point)


def load_entry_point(entry_point: str) -> Callable[..., Any]:
    module_name, _, attr = entry_point.partition(":")
    if not module_name or not attr:
        raise UnknownJobError(f"entry point {entry_point!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownJobError(f"entry point {entry_point} does not import: {exc}; check the module and function name") from exc
    if not callable(fn):
        raise UnknownJobError(f"entry point {entry_point} is not a function")
    return fn  # type: ignore[no-any-return]


def _features(table: pa.Table, target: str) -> tuple[Any, Any]:
    df = table.to_pandas().sort_values("id", kind="stable").reset_index(drop=True)
    features = [c for c in df.columns if c not in ("id", target)]
    return df[features].to_numpy(dtype="float64"), df[target].to_numpy()


def train_wine_classifier(inputs: dict[str, pa.Table], params: dict[str, Any]) -> Trained:
    """Logistic regression on scikit-learn's wine data set (3 cultivars, 13 measurements)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _features(inputs["raw.wine"], "target")
    seed = int(params["seed"])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=float(params["test_size"]), random_state=seed, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]), random_state=seed))
    model.fit(X_train, y_train)
    pred = model.predict(X_test)
    return Trained(
        estimator=model,
        metrics={
            "accuracy": float(accuracy_score(y_test, pred)),
            "f1_macro": float(f1_score(y_test, pred, average="macro")),
        },
    )


JOBS: dict[str, TrainingJob] = {
    job.name: job
    for job in (
        TrainingJob(
            name="wine_classifier",
            model="wine",
            inputs=("raw.wine",),
            entry_point="models.jobs:train_wine_classifier",
            params={"seed": 7, "test_size": 0.25, "C": 1.0, "max_iter": 1000},
        ),
    )
}


def get_job(name: str) -> TrainingJob:
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJobError(f"unknown training job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None
