"""Training jobs that run on Spark (`TrainingJob(engine="spark")`): inputs as DataFrames at pinned snapshots.

A Spark job is `fn(spark: SparkSession, inputs: dict[str, DataFrame], params: dict) -> Trained`,
its `estimator` a Spark ML model (anything with `.write().save(path)`). Train and retrain run it
the same way (`run`): each input is read at its pinned snapshot id (Iceberg's `snapshot-id` read
option, through `lakehouse.spark`'s session over Tidemark's catalog), counted and fingerprinted in
Spark (the rows never come to Python), and the job is called through `models.execution.run_job`
(imported distributions, platform and seeds recorded as for any job).

The artifact is the model as Spark ML saves it (a directory), archived so the same model gives the
same bytes: entries sorted, times, owners and modes fixed, no compression. Spark's writer puts three
things in that directory that differ between saves of the same model, and `archive` takes them out:
the save time (`timestamp` in each `metadata/part-00000`, set to 0; that JSON is also written with
its keys sorted, since the param maps come out in a different order on each save), the random uids of the stages
(renamed `<Class>_tidemark<i>` in metadata text and stage folder names, in path order), and the
random UUID in data file names (`part-00000-<uuid>-c000.snappy.parquet` -> `part-00000-c000...`;
the checksum files `.crc` of the rewritten files are left out, Hadoop reads without them). The
archive still loads with the model class's `load` (`unarchive`).

Whether a retrain is bit-identical then depends on the algorithm: see `train_wine_spark` in
`models.jobs` for what holds for MLlib's logistic regression.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse import spark as lspark
from lakehouse.config import Settings
from models.exceptions import TrainingInputError
from models.execution import Execution, run_job

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ENGINE = "spark"
# Prefix of a fingerprint computed by Spark: a different function from `models.fingerprint`'s, so
# the two are never compared with each other.
FINGERPRINT_PREFIX = "spark-xxhash64-v1:"
_PART_UUID = re.compile(r"^(part-\d+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(.*)$")
_UID = re.compile(rb'"uid":"([^"]+)"')


@dataclass
class SparkInput:
    rows: int
    fingerprint: str


@dataclass
class SparkRun:
    execution: Execution
    inputs: dict[str, SparkInput]
    blob: bytes  # the archived model


def fingerprint(df: DataFrame) -> tuple[int, str]:
    """(rows, fingerprint) of a DataFrame, computed in Spark and independent of row order and
    partitioning: sha256 over the schema, the row count, and the sum and XOR of each row's xxhash64
    over every column (sums exact, as DECIMAL(38,0))."""
    from pyspark.sql import functions as F

    h = F.xxhash64(*[F.col(f"`{c}`") for c in df.columns])
    row = df.agg(F.count(F.lit(1)), F.sum(h.cast("decimal(38,0)")), F.bit_xor(h)).first()
    rows, total, xor = (int(row[0]), row[1], row[2]) if row is not None else (0, None, None)
    digest = hashlib.sha256(f"{df.schema.simpleString()}|{rows}|{total}|{xor}".encode()).hexdigest()
    return rows, FINGERPRINT_PREFIX + digest


def read_inputs(spark: SparkSession, settings: Settings, pinned: Mapping[str, int]) -> dict[str, DataFrame]:
    """Each input table as a DataFrame at its pinned snapshot id."""
    return {name: lspark.read_table(spark, settings, name, snapshot_id=sid) for name, sid in pinned.items()}


def run(
    settings: Settings,
    fn: Callable[..., Any],
    pinned: Mapping[str, int],
    params: dict[str, Any],
    progress: Callable[[str], None] = lambda _msg: None,
) -> SparkRun:
    """Read the inputs at `pinned`, fingerprint them, run `fn(spark, inputs, params)`, archive the model."""
    spark = lspark.session(settings)  # SparkUnavailableError says what to install
    frames = read_inputs(spark, settings, pinned)
    described = {}
    for name, df in frames.items():
        progress(f"reading {name} at snapshot {pinned[name]} in Spark")
        rows, fp = fingerprint(df)
        described[name] = SparkInput(rows, fp)

    @functools.wraps(fn)  # the job's own module, which run_job leaves out of the imported distributions
    def call(inputs: dict[str, Any], job_params: dict[str, Any]) -> Any:
        return fn(spark, inputs, job_params)

    execution = run_job(call, frames, params)
    execution.determinism["spark"] = spark_settings(spark)
    estimator = execution.trained.estimator
    if not hasattr(estimator, "write"):
        raise TrainingInputError(
            f"the Spark job returned a {type(estimator).__name__} as its estimator; return a Spark ML model (one with .write())"
        )
    return SparkRun(execution=execution, inputs=described, blob=archive(estimator))


def spark_settings(spark: SparkSession) -> dict[str, Any]:
    """What Spark ran with that can change a result: version, master, parallelism, shuffle partitions."""
    conf = spark.sparkContext.getConf()
    return {
        "version": spark.version,
        "master": conf.get("spark.master"),
        "default_parallelism": spark.sparkContext.defaultParallelism,
        "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    }


def archive(model: Any) -> bytes:
    """The model saved by Spark ML, as a tar whose bytes depend only on the model (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="tidemark-spark-model-") as tmp:
        root = Path(tmp) / "model"
        model.write().save(str(root))
        return _tar(root)


def _tar(root: Path) -> bytes:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".crc"))
    uids: dict[bytes, bytes] = {}
    for p in files:  # every stage's uid, in path order: renamed the same way on every save
        if p.parent.name == "metadata" and p.name.startswith("part-"):
            for m in _UID.finditer(p.read_bytes()):
                uid = m.group(1)
                uids.setdefault(uid, uid.split(b"_")[0] + b"_tidemark" + str(len(uids)).encode())

    def clean_name(rel: str) -> str:
        for old, new in uids.items():
            rel = rel.replace(old.decode(), new.decode())
        return "/".join(_PART_UUID.sub(r"\1\2", part) for part in rel.split("/"))

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for p in files:
            data = p.read_bytes()
            if p.parent.name == "metadata" and p.name.startswith("part-"):
                for old, new in uids.items():
                    data = data.replace(b'"' + old + b'"', b'"' + new + b'"')
                data = _canonical_metadata(data)
            entries.append((clean_name(p.relative_to(root).as_posix()), data))
        for name, data in sorted(entries):
            info = tarfile.TarInfo(f"model/{name}")
            info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _canonical_metadata(data: bytes) -> bytes:
    """Spark ML's metadata (a JSON object per line) with the save time set to 0 and keys sorted:
    the param maps come out of a Scala hash map in an order that changes from one save to the next."""
    lines = []
    for line in data.splitlines():
        if line.strip():
            obj = json.loads(line)
            if "timestamp" in obj:
                obj["timestamp"] = 0
            line = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        lines.append(line)
    return b"\n".join(lines) + (b"\n" if data.endswith(b"\n") else b"")


def unarchive(blob: bytes, dest: Path) -> Path:
    """Extract an archived Spark ML model under `dest`; the folder to pass to the model class's `load`."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(dest, filter="data")
    return dest / "model"
