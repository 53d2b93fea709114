"""Training jobs and drift checks on a real local[2] Spark (one JVM per test worker, `spark_session`).

A Spark job is registered, pinned, traced and retrained like any other version; `--engine spark`
drift gives the same statistics and verdicts as DuckDB on the same snapshots.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest

from lakehouse.catalog import load_catalog
from lakehouse.config import load_settings
from lineage import events as ev
from models import artifacts, spark_jobs
from models.drift import check_model, compute_drift, stored_checks
from models.exceptions import DriftError, ReproduceError, TrainingInputError
from models.jobs import get_job
from models.renewal import job_for
from models.retrain import retrain
from models.trace import trace
from models.train import train
from tests.conftest import run_cli
from tests.models.conftest import land, wine_part


def test_spark_job_is_registered_pinned_traced_and_retrained_bit_identically(tmp_path: Path, spark: Any, transport: Any) -> None:
    s = load_settings()
    s1 = land(s, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    transport.events.clear()
    mv = train(s, get_job("wine_spark"), transport=transport).version

    # Registered with the snapshot it read, counted and fingerprinted by Spark, and the engine in its code record.
    (inp,) = mv.inputs
    assert (inp.table, inp.snapshot_id, inp.rows) == ("raw.wine", s1, 178)
    assert inp.fingerprint.startswith(spark_jobs.FINGERPRINT_PREFIX)
    assert mv.code["engine"] == "spark" and mv.entry_point == "models.jobs:train_wine_spark"
    assert 0.8 <= mv.metrics["accuracy"] <= 1.0, mv.metrics
    assert "pyspark" in mv.environment["imported"]
    assert mv.environment["determinism"]["spark"]["master"] == "local[2]"
    complete = [e for e in transport.events if e["eventType"] == "COMPLETE"][-1]
    assert complete["job"]["name"] == "train.wine_spark"
    assert [ev.dataset_version(d) for d in complete["inputs"]] == [str(s1)]

    # Pinned: the snapshot carries the version's tag. Traced: the trace names the snapshot and its landing.
    table = load_catalog(s).load_table(("raw", "wine"))
    assert table.metadata.refs["model/wine_spark/1"].snapshot_id == s1
    traced = trace(s, "wine_spark:1")
    assert [(i["table"], i["snapshot_id"], i["rows"]) for i in traced["inputs"]] == [("raw.wine", s1, 178)]
    assert traced["inputs"][0]["ingest_run"]["run_id"]

    # The artifact is the archived Spark ML model: its bytes match the recorded sha256, and it loads and predicts.
    blob = artifacts.get(s, mv.artifact_uri, mv.sha256)
    assert hashlib.sha256(blob).hexdigest() == mv.sha256
    from pyspark.ml.classification import LogisticRegressionModel

    model = LogisticRegressionModel.load(str(spark_jobs.unarchive(blob, tmp_path / "model")))
    assert model.numClasses == 3 and model.numFeatures == 13

    # Newer data lands; the retrain still reads the recorded snapshot, and with 2 partitions MLlib's
    # L-BFGS is deterministic: the archive is bit-identical.
    land(s, wine_part(tmp_path / "b.csv", 0, 60, id_offset=1000, alcohol_shift_sd=1.0), "raw.wine", transport)
    transport.events.clear()
    report = retrain(s, "wine_spark:1", transport=transport)
    assert [(i.snapshot_id, i.rows, i.identical) for i in report.inputs] == [(s1, 178, True)]
    assert report.verdict == "reproduced", report.to_json()
    assert report.identical and report.new_sha256 == mv.sha256 and report.causes == []
    complete = [e for e in transport.events if e["eventType"] == "COMPLETE"][-1]
    assert complete["job"]["name"] == "retrain.wine_spark"
    assert [ev.dataset_version(d) for d in complete["inputs"]] == [str(s1)]

    # Automatic renewal does not score Spark models yet, and says what to do instead.
    with pytest.raises(TrainingInputError, match="trained on Spark, and automatic renewal does not score Spark models yet"):
        job_for(mv)

    # A Spark job retrains in the current environment only, and says so.
    with pytest.raises(ReproduceError, match="is a Spark job, which retrains in the current environment and code only"):
        retrain(s, "wine_spark:1", environment="recorded", transport=transport)


def test_archive_of_the_same_model_is_the_same_bytes(tmp_path: Path, spark: Any) -> None:
    """Saving one model twice gives two directories that differ (save time, random file names);
    the archives are equal, and a different model's archive is not."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors

    rows = [(float(i % 2), Vectors.dense([float(i), float(i * i % 7)])) for i in range(40)]
    df = spark.createDataFrame(rows, ["label", "features"]).repartition(2)
    model = LogisticRegression(maxIter=5).fit(df)
    first, second = spark_jobs.archive(model), spark_jobs.archive(model)
    assert first == second
    model.write().save(str(tmp_path / "a"))
    model.write().save(str(tmp_path / "b"))
    names = lambda p: sorted(x.name for x in (p / "data").iterdir())  # noqa: E731
    assert names(tmp_path / "a") != names(tmp_path / "b")  # Spark's own saves differ: what archive removes
    other = LogisticRegression(maxIter=6, regParam=0.5).fit(df)
    assert spark_jobs.archive(other) != first


def _two_snapshots(settings: Any) -> tuple[int, int]:
    """A table with every kind of column drift looks at: floats with NaN and nulls, integers,
    single precision, text; the second snapshot shifted, rescaled, with more missing values and a
    new category."""
    import numpy as np
    import pyarrow as pa

    from lakehouse.tables import TableName, ensure_table

    def chunk(seed: int, drifted: bool) -> pa.Table:
        rng = np.random.default_rng(seed)
        n = 3000
        x = rng.normal(5.0 + (0.8 if drifted else 0.0), 2.0, n)
        x[rng.random(n) < (0.1 if drifted else 0.01)] = np.nan
        cats = np.array(["a", "b", "c", "d"] + (["new"] if drifted else []))
        return pa.table({
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "x": pa.array(x, mask=rng.random(n) < 0.02),
            "count": pa.array(rng.poisson(4 if not drifted else 6, n).astype(np.int32)),
            "ratio": pa.array(rng.uniform(0, 1, n).astype(np.float32)),
            "amount": pa.array(np.round(rng.gamma(2, 10 * (1.3 if drifted else 1.0), n), 2)),
            "kind": pa.array(rng.choice(cats, n), mask=rng.random(n) < (0.05 if drifted else 0.0)),
        })

    catalog = load_catalog(settings)
    table = ensure_table(catalog, TableName.parse("raw.features"), chunk(1, False).schema)
    table.append(chunk(1, False))
    base = table.refresh().current_snapshot().snapshot_id
    table = table.refresh()
    table.overwrite(chunk(2, True))
    return base, table.refresh().current_snapshot().snapshot_id


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats within 1e-9 (summation order differs between the engines)."""
    if isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{path}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_spark_drift_gives_duckdbs_statistics_and_verdicts(spark: Any) -> None:
    s = load_settings()
    base, cur = _two_snapshots(s)
    duck = compute_drift(s, "raw.features", base, cur, engine="duckdb").to_json()
    sp = compute_drift(s, "raw.features", base, cur, engine="spark").to_json()
    _same(duck, sp)
    assert duck["drifted"] and set(duck["drifted_features"]) >= {"x", "count", "kind"}, duck["drifted_features"]
    kind = next(f for f in sp["features"] if f["column"] == "kind")
    assert kind["new_categories"] == ["new"] and kind["category_shift"] > 0.1
    # One column only, and a snapshot against itself: no drift, in both.
    for engine in ("duckdb", "spark"):
        same = compute_drift(s, "raw.features", cur, cur, columns=["kind"], engine=engine)
        assert not same.drifted and same.features[0].category_shift == 0.0
    with pytest.raises(DriftError, match="engine 'polars' is not one of duckdb, spark"):
        compute_drift(s, "raw.features", base, cur, engine="polars")


def test_model_drift_check_with_engine_spark(tmp_path: Path, spark: Any, transport: Any) -> None:
    s = load_settings()
    land(s, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    train(s, get_job("wine_classifier"), transport=transport)
    land(s, wine_part(tmp_path / "b.csv", 0, 178, id_offset=1000, alcohol_shift_sd=1.5), "raw.wine", transport)
    by_duckdb = check_model(s, "wine", transport=transport)
    transport.events.clear()
    by_spark = check_model(s, "wine", transport=transport, engine="spark")
    assert by_spark.drifted and "alcohol" in by_spark.tables[0].drifted_features
    _same([t.to_json() for t in by_duckdb.tables], [t.to_json() for t in by_spark.tables])
    start = next(e for e in transport.events if e["eventType"] == "START")
    assert start["run"]["facets"]["tidemark_parameters"]["parameters"]["engine"] == "spark"


def test_engine_spark_without_java_says_what_to_install(tmp_path: Path, transport: Any) -> None:
    """No Java: one line naming what to install, exit 1, and no drift check or version made."""
    from models.registry import Registry

    s = load_settings()
    land(s, wine_part(tmp_path / "a.csv", 0, 178), "raw.wine", transport)
    train(s, get_job("wine_classifier"), transport=transport)
    proc = run_cli(
        "models", "drift", "wine", "--check", "--engine", "spark", "--output", "json", check=False,
        env={"JAVA_HOME": str(tmp_path / "no-jdk")},
    )
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("tidemark: error: Spark needs Java 17 (JAVA_HOME=") and "run `make spark`" in line, line
    assert stored_checks(s, "wine") == []  # no check was stored
    proc = run_cli("train", "wine_spark", check=False, env={"JAVA_HOME": str(tmp_path / "no-jdk")})
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and line.startswith("tidemark: error: Spark needs Java 17 (JAVA_HOME="), line
    assert [v.model for v in Registry(s, load_catalog(s)).versions()] == ["wine"]  # no wine_spark version
    proc = run_cli("models", "drift", "wine", "--engine", "spark", check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "tidemark: error: --engine chooses who reads the snapshots of a new check; add --check"


def not_a_spark_model(spark: Any, inputs: dict[str, Any], params: dict[str, Any]) -> Any:
    """A Spark job that returns something Spark ML cannot save."""
    from models.jobs import Trained

    return Trained(estimator={"rows": inputs["raw.wine"].count()}, metrics={"accuracy": 1.0})


def test_spark_job_must_return_a_spark_model_and_nothing_is_registered(tmp_path: Path, spark: Any, transport: Any) -> None:
    from models.jobs import TrainingJob
    from models.registry import Registry

    s = load_settings()
    land(s, wine_part(tmp_path / "a.csv", 0, 40), "raw.wine", transport)
    job = TrainingJob(name="bad", model="bad", inputs=("raw.wine",), entry_point=f"{__name__}:not_a_spark_model", engine="spark")
    with pytest.raises(TrainingInputError, match=r"returned a dict as its estimator; return a Spark ML model \(one with \.write\(\)\)"):
        train(s, job, transport=transport)
    assert Registry(s, load_catalog(s)).versions("bad") == []
    assert "model/bad/1" not in load_catalog(s).load_table(("raw", "wine")).metadata.refs


def test_a_training_job_names_a_known_engine() -> None:
    from models.exceptions import UnknownJobError
    from models.jobs import TrainingJob

    with pytest.raises(UnknownJobError, match="job j: engine 'dask' must be one of python, spark"):
        TrainingJob(name="j", model="m", inputs=("raw.wine",), entry_point="m:f", engine="dask")
