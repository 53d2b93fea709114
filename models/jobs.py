"""Reference training jobs on data sets that ship inside scikit-learn, and how jobs are found.

A job is a plain function `fn(inputs: dict[str, pyarrow.Table], params: dict) -> Trained`, fed
its input tables already read at pinned snapshots. Its holdout scorer, if it has one, is
`score(estimator, inputs, params) -> dict[str, float]`: the job's metrics of any estimator on the
holdout `params` cut from `inputs` (automatic renewal scores the holder and a candidate with it). Deterministic: every seed is a parameter,
and rows are put in a defined order before use (a table scan promises no order).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from models.exceptions import TrainingInputError, UnknownJobError

ENGINES = ("python", "spark")

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Trained:
    estimator: Any
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainingJob:
    """A named training job: which model it registers, which tables it reads, which function trains.

    `primary_metric` and `metric_goal` ("max": higher is better, "min": lower is better) are what the
    promotion gate compares against the current holder of an alias.
    """

    name: str
    model: str
    inputs: tuple[str, ...]
    entry_point: str
    params: Mapping[str, Any] = field(default_factory=dict)
    primary_metric: str | None = None
    metric_goal: str = "max"
    # (estimator, inputs, params) -> metrics on the holdout `params` cut from `inputs`: how automatic
    # renewal scores the production model and a candidate on the same rows.
    holdout_entry_point: str | None = None
    # The input columns the model is trained on, per input table in the order the model sees them,
    # and the column it learns to predict. Training reports them as the
    # model's column-level lineage (feature <- table column at the pinned snapshot).
    features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    target: str | None = None
    # Who owns the model (a person or a team): recorded on each version it registers and emitted as
    # the OpenLineage ownership facet. None: the actor who registers the version.
    owner: str | None = None
    # Who runs the entry point: "python" (`fn(inputs: dict[str, pyarrow.Table], params)`) or "spark"
    # (`fn(spark, inputs: dict[str, pyspark DataFrame], params)`, the inputs read by Spark at the
    # pinned snapshot ids, the estimator a Spark ML model; see `models.spark_jobs`).
    engine: str = "python"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UnknownJobError(f"job {self.name}: engine {self.engine!r} must be one of {', '.join(ENGINES)}", parameter="engine")

    def function(self) -> Callable[[dict[str, pa.Table], dict[str, Any]], Trained]:
        return load_entry_point(self.entry_point)


def load_entry_point(entry_point: str, allow_job: bool = False) -> Any:
    module_name, _, attr = entry_point.partition(":")
    if not module_name or not attr:
        raise UnknownJobError(f"entry point {entry_point!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except ModuleNotFoundError as exc:
        # The usual cause under Airflow: the module is on the user's path but not on the workers'.
        raise UnknownJobError(
            f"entry point {entry_point} does not import: {exc}; install it or put its folder on PYTHONPATH (under Airflow: the workers' too)"
        ) from exc
    except (ImportError, AttributeError) as exc:
        raise UnknownJobError(f"entry point {entry_point} does not import: {exc}; check the module and function name") from exc
    if allow_job and isinstance(fn, TrainingJob):
        return fn
    if not callable(fn):
        raise UnknownJobError(f"entry point {entry_point} is not a function")
    return fn  # type: ignore[no-any-return]


# The reference jobs' declared features: exactly the columns they train on (a later schema may add
# columns the model never used), in the tables' own column order.
WINE_FEATURES = (
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols", "flavanoids",
    "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue", "od280_od315_of_diluted_wines", "proline",
)
DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def _features(table: pa.Table, target: str, features: Sequence[str] | None = None) -> tuple[Any, Any]:
    """The feature matrix (the declared `features`, or every numeric column but id and target) and
    the target, in id order."""
    missing = [c for c in (*(features or ()), target) if c not in table.column_names]
    if missing:
        raise TrainingInputError(
            f"the input has no column(s) {', '.join(missing)}, which the job trains on; land a file that has them"
        )
    df = table.to_pandas().sort_values("id", kind="stable").reset_index(drop=True)
    if features is None:
        # Numeric columns only: a later schema may add e.g. a text column that the model never used.
        from pandas.api.types import is_numeric_dtype

        features = [c for c in df.columns if c not in ("id", target) and is_numeric_dtype(df[c])]
    return df[list(features)].to_numpy(dtype="float64"), df[target].to_numpy()


def _wine_split(inputs: dict[str, pa.Table], params: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    X, y = _features(inputs["raw.wine"], "target", WINE_FEATURES)
    return train_test_split(X, y, test_size=float(params["test_size"]), random_state=int(params["seed"]), stratify=y)  # type: ignore[no-any-return]


def _wine_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = estimator.predict(X)
    return {"accuracy": float(accuracy_score(y, pred)), "f1_macro": float(f1_score(y, pred, average="macro"))}


def train_wine_classifier(inputs: dict[str, pa.Table], params: dict[str, Any]) -> Trained:
    """Logistic regression on scikit-learn's wine data set (3 cultivars, 13 measurements)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = _wine_split(inputs, params)
    seed = int(params["seed"])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]), random_state=seed))
    model.fit(X_train, y_train)
    return Trained(estimator=model, metrics=_wine_metrics(model, X_test, y_test))


def holdout_wine_classifier(estimator: Any, inputs: dict[str, pa.Table], params: dict[str, Any]) -> dict[str, float]:
    """Score any wine model on the holdout that `params` (seed, test_size) cut from `inputs`."""
    _, X_test, _, y_test = _wine_split(inputs, params)
    return _wine_metrics(estimator, X_test, y_test)


def _diabetes_split(inputs: dict[str, pa.Table], params: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    X, y = _features(inputs["raw.diabetes"], "target", DIABETES_FEATURES)
    return train_test_split(X, y.astype("float64"), test_size=float(params["test_size"]), random_state=int(params["seed"]))  # type: ignore[no-any-return]


def _diabetes_metrics(estimator: Any, X: Any, y: Any) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    pred = estimator.predict(X)
    return {"rmse": float(mean_squared_error(y, pred) ** 0.5), "mae": float(mean_absolute_error(y, pred)), "r2": float(r2_score(y, pred))}


def train_diabetes_regressor(inputs: dict[str, pa.Table], params: dict[str, Any]) -> Trained:
    """Gradient-boosted trees on scikit-learn's diabetes data set (442 patients, 10 baseline variables)."""
    from sklearn.ensemble import GradientBoostingRegressor

    X_train, X_test, y_train, y_test = _diabetes_split(inputs, params)
    model = GradientBoostingRegressor(
        n_estimators=int(params["n_estimators"]),
        max_depth=int(params["max_depth"]),
        learning_rate=float(params["learning_rate"]),
        subsample=float(params["subsample"]),
        random_state=int(params["seed"]),
    )
    model.fit(X_train, y_train)
    return Trained(estimator=model, metrics=_diabetes_metrics(model, X_test, y_test))


def holdout_diabetes_regressor(estimator: Any, inputs: dict[str, pa.Table], params: dict[str, Any]) -> dict[str, float]:
    """Score any diabetes model on the holdout that `params` (seed, test_size) cut from `inputs`."""
    _, X_test, _, y_test = _diabetes_split(inputs, params)
    return _diabetes_metrics(estimator, X_test, y_test)


def train_wine_spark(spark: Any, inputs: dict[str, Any], params: dict[str, Any]) -> Trained:
    """Spark MLlib's multinomial logistic regression on the wine table, run by Spark (engine="spark").

    Deterministic by construction, so a retrain is bit-identical (`reproduced`): the rows go to
    `partitions` partitions by `id` modulo `partitions` (a scan promises neither order nor split,
    and `repartitionByRange` samples with a per-session seed), sorted by id inside each; the holdout
    is the rows whose xxhash64(id, seed) falls in the first `test_size` of 100 (not `randomSplit`,
    whose split follows the partitioning). L-BFGS sums each partition in row order and then adds
    the partitions' sums in the order their tasks finish: with 2 partitions that is a + b or b + a,
    the same double either way; with 3 or more the order can change the last bits of the
    coefficients and a retrain may be only `within_tolerance`.
    """
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    df = inputs["raw.wine"]
    missing = [c for c in (*WINE_FEATURES, "target", "id") if c not in df.columns]
    if missing:
        raise TrainingInputError(f"the input has no column(s) {', '.join(missing)}, which the job trains on; land a file that has them")
    parts = int(params["partitions"])
    rows = df.repartition(parts, F.pmod(F.col("id"), F.lit(parts))).sortWithinPartitions("id")
    rows = VectorAssembler(inputCols=list(WINE_FEATURES), outputCol="features").transform(rows)
    rows = rows.withColumn("label", F.col("target").cast("double"))
    holdout = F.pmod(F.xxhash64(F.col("id"), F.lit(int(params["seed"]))), F.lit(100)) < F.lit(int(round(float(params["test_size"]) * 100)))
    train, test = rows.where(~holdout), rows.where(holdout)
    lr = LogisticRegression(
        maxIter=int(params["max_iter"]), regParam=float(params["reg_param"]), family="multinomial", tol=1e-9, standardization=True
    )
    model = lr.fit(train)
    predictions = model.transform(test)
    metrics = {
        name: float(MulticlassClassificationEvaluator(metricName=metric).evaluate(predictions))
        for name, metric in (("accuracy", "accuracy"), ("f1_weighted", "f1"))
    }
    return Trained(estimator=model, metrics=metrics)


JOBS: dict[str, TrainingJob] = {
    job.name: job
    for job in (
        TrainingJob(
            name="wine_classifier",
            model="wine",
            inputs=("raw.wine",),
            entry_point="models.jobs:train_wine_classifier",
            params={"seed": 7, "test_size": 0.25, "C": 1.0, "max_iter": 1000},
            primary_metric="accuracy",
            metric_goal="max",
            holdout_entry_point="models.jobs:holdout_wine_classifier",
            features={"raw.wine": WINE_FEATURES},
            target="target",
        ),
        TrainingJob(
            name="diabetes_regressor",
            model="diabetes",
            inputs=("raw.diabetes",),
            entry_point="models.jobs:train_diabetes_regressor",
            params={"seed": 7, "test_size": 0.25, "n_estimators": 150, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8},
            primary_metric="rmse",
            metric_goal="min",
            holdout_entry_point="models.jobs:holdout_diabetes_regressor",
            features={"raw.diabetes": DIABETES_FEATURES},
            target="target",
        ),
        TrainingJob(
            name="wine_spark",
            model="wine_spark",
            inputs=("raw.wine",),
            entry_point="models.jobs:train_wine_spark",
            params={"seed": 7, "test_size": 0.25, "partitions": 2, "max_iter": 100, "reg_param": 0.01},
            primary_metric="accuracy",
            metric_goal="max",
            features={"raw.wine": WINE_FEATURES},
            target="target",
            engine="spark",
        ),
    )
}


def get_job(name: str) -> TrainingJob:
    try:
        return JOBS[name]
    except KeyError:
        raise UnknownJobError(f"unknown training job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def resolve_job(
    spec: str,
    *,
    model: str | None = None,
    inputs: Sequence[str] = (),
    primary_metric: str | None = None,
    metric_goal: str | None = None,
    holdout_entry_point: str | None = None,
) -> TrainingJob:
    """A reference job by name, or a user's job as `module:attr`.

    `attr` may be a `TrainingJob` (everything declared in code) or a plain training function, which
    then needs `model` and `inputs`. Either way the function is run,
    recorded and retrained exactly like a reference job.
    """
    if ":" not in spec:
        job = get_job(spec)
    else:
        target = load_entry_point(spec, allow_job=True)
        if isinstance(target, TrainingJob):
            job = target
        else:
            if not model or not inputs:
                raise UnknownJobError(
                    f"{spec} is a function: pass model (the name it registers) and inputs (the tables it reads)",
                    parameter="inputs" if model else "model",
                )
            job = TrainingJob(name=spec.replace(":", "."), model=model, inputs=tuple(inputs), entry_point=spec)
    overrides: dict[str, Any] = {}
    if holdout_entry_point:
        load_entry_point(holdout_entry_point)  # refuse a scorer that does not import now, not at the first renewal
        overrides["holdout_entry_point"] = holdout_entry_point
    if model and model != job.model:
        overrides["model"] = model
    if inputs and tuple(inputs) != job.inputs:
        overrides["inputs"] = tuple(inputs)
    if primary_metric:
        overrides["primary_metric"] = primary_metric
    if metric_goal:
        if metric_goal not in ("max", "min"):
            raise UnknownJobError(f"metric goal {metric_goal!r} must be max (higher is better) or min (lower is better)")
        overrides["metric_goal"] = metric_goal
    return replace(job, **overrides) if overrides else job
