"""Landing a source with Apache Spark (`tidemark ingest --engine spark`): the same write-audit-publish.

For files larger than one process's memory: Spark (`lakehouse.spark`, `local[2]` by default) reads
the file in parallel tasks, spilling to disk, where the pyarrow path (`ingest.land`) holds about two
1M-row batches in memory. What a landing guarantees is the same on both engines:

1. Checksum the file; a sha256 already in main's history is a no-op (`--force` lands it again).
2. Read it with Spark (CSV with a header, types inferred over the whole file; Parquet; JSON Lines;
   an `s3://` file is copied to local disk under the home by the one pass that checksums it, and
   removed after the landing: Spark's `s3a` filesystem needs hadoop-aws and the AWS SDK jars, which
   no package reachable here ships),
   make or load the table and reconcile the file's columns with its schema by the default engine's
   rules and code (`ingest.target`, `ingest.schema`: new columns added as optional, types widened
   where Iceberg allows, anything else refused in one line before anything is written), and cast
   the rows to the schema they are written in.
3. The table's Great Expectations suite runs on those rows with GX's Spark execution engine, over
   the whole landing at once (`ingest.gate.SparkGate`); rows read from text are cached (memory, then
   local disk) so the gate and the write parse the file once.
4. Spark appends the same rows as one snapshot to branch `audit-<run>` made from main (Iceberg's
   `branch_` write), with Tidemark's summary keys (run, job, source, gate verdict, engine) set by
   `snapshot-property.` write options. Spark's Iceberg writer writes only in the table's current
   schema, even to a branch: a schema evolved for this file is made current for the write's
   duration alone and the previous one current again right after (`lakehouse.branches.schema_current`;
   lineage recovery restores it if the process dies in between), so main's readers get the new
   columns when the landing is published, as on the default engine.
5. Gate passed: main moves to the audited snapshot only if main is still its parent; if another
   writer (Spark or Tidemark) moved main meanwhile, the audited files are appended again on the new
   main (`lakehouse.branches.publish`, as for every landing). Gate failed: main is untouched and the
   branch becomes `quarantine-<run>`.
A Spark job that fails while writing leaves main untouched: the branch is kept as `quarantine-<run>`
with one empty snapshot whose summary names the source and the failure, so `tidemark ingest
quarantine list` shows it. The run's lineage is the pyarrow path's (`ingest.datasets`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import columns, datasets, sources, target, verdict
from ingest import gate as gates
from ingest.exceptions import PublishError, SourceError, SparkLandingError
from ingest.land import RESOLVER, already_landed, checked, landing_run, new_result, own, quarantine_or_publish
from ingest.result import LandingResult
from ingest.verdict import AUDIT_PREFIX, GATE_DOCS, GATE_FAILURES, GATE_SUCCESS, GATE_SUITE, QUARANTINE_PREFIX
from ingest.write import Progress
from lakehouse import branches
from lakehouse import spark as lspark
from lakehouse.catalog import load_catalog
from lakehouse.config import Settings
from lakehouse.failpoints import armed, step
from lakehouse.tables import JOB_NAME, RUN_ID, SOURCE_PATH, SOURCE_SHA256, TableName, load_table
from lineage.transport import Transport

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.schema import Schema
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

ENGINE = "tidemark.ingest.engine"  # summary key: which engine wrote the landing's files
# `TIDEMARK_FAILPOINT=ingest.spark-write`: the write job's last task fails (tests of that fault).
WRITE_FAULT = "ingest.spark-write"
# The step after Spark committed the audit branch, while a schema evolved for the file is still
# current (`lakehouse.failpoints.STEPS["ingest-spark"]`: the kill suite dies here too).
WRITTEN = "ingest.spark-written"
# Spark's Java logging off while the CLI lands (its stack traces would bury the one-line error).
LOG_CONFIG = Path(__file__).resolve().parent / "spark_log4j2.properties"
# Spark picks a text file's codec by its name; these it reads without native libraries.
_SPARK_CODECS = {"gzip": (".gz", ".gzip"), "bz2": (".bz2",)}


def land_spark(
    settings: Settings,
    location: str,
    table: str,
    *,
    suite_file: str | None = None,
    fmt: str | None = None,
    force: bool = False,
    strict: bool = False,
    transport: Transport | None = None,
    progress: Progress = lambda _msg: None,
    rename: Mapping[str, str] | None = None,
    data_docs: bool = True,
    spark: SparkSession | None = None,
    owner: str | None = None,
) -> LandingResult:
    """Land one source file into `namespace.table` with Spark, through the table's gate (module docstring).

    `spark`: a running session to use (else `lakehouse.spark.session(settings)`, which says in one
    line what to install when pyspark, Java or a jar is missing). Errors: SourceError,
    SchemaMismatchError, GateFailedError, SparkLandingError (the job failed; main untouched),
    PublishError; SparkUnavailableError from lakehouse. `owner`: as for `ingest.land.land`.
    """
    started = time.perf_counter()
    name, suite = checked(settings, location, table, suite_file, strict, owner)
    if spark is None:
        # Before the checksum: a missing Java is said at once. No console progress bars: the
        # landing reports its own steps.
        # Spark's 200 shuffle partitions by default are 200 tasks per GX uniqueness check on 2 cores.
        conf = {"spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "8"}
        conf = {k: v for k, v in conf.items() if k not in settings.spark.conf}
        if "spark.driver.extraJavaOptions" not in settings.spark.conf:
            conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"
        spark = lspark.session(settings, conf=conf)
    else:
        lspark.use_catalog(spark, settings)
    # An object-store source is copied to local disk by the pass that checksums it: Spark here has
    # no S3 filesystem (module docstring), and the object is read once.
    with _scratch(settings) as scratch:
        t0 = time.perf_counter()
        src = sources.open_source(location, fmt, settings.catalog.properties, copy_into=scratch)
        local = _spark_path(src)
        result = new_result(name, src, suite)
        if src.local_copy is not None:
            progress(f"copied {src.uri} to local disk for Spark while checksumming it in {time.perf_counter() - t0:.1f} s")
        progress(f"{src.uri}: {src.fmt}, {src.size:,} bytes, sha256 {src.sha256[:12]}…, on Spark {spark.sparkContext.master}")

        catalog = load_catalog(settings)
        if already_landed(catalog, name, result, force=force, owner=owner, progress=progress):
            return result

        rename = dict(rename or {})
        with _unreadable(src.uri):
            frame = _renamed(_read(spark, src, local), rename, src.uri)
            if not frame.take(1):
                raise SourceError(f"{src.uri}: no data rows (header only?); nothing to land")
        arrow_schema = _arrow_schema(frame)

        source_ds = datasets.source_dataset(settings, src)
        with landing_run(
            settings, name, src, suite, source_ds, force=force, rename=rename, transport=transport, code=land_spark, engine="spark",
        ) as run:
            result.run_id = run.run_id
            prepared = target.prepare(catalog, name, arrow_schema, src.uri, result.warnings)
            tbl, created = prepared.table, prepared.created
            tbl = own(catalog, name, tbl, owner, run)
            cached: DataFrame | None = None
            try:
                spark_table = lspark.table_name(settings, str(name))
                cached = _conform(frame, prepared.schema)
                if src.fmt != "parquet":
                    # Text is parsed once, into a cache the gate and the write share; Parquet is cheaper to
                    # read again (GX reads only the columns the suite names) than to cache.
                    cached = cached.persist(_storage_level())
                t0 = time.perf_counter()
                with _unreadable(src.uri):
                    result.rows = cached.count()
                result.seconds["read"] = time.perf_counter() - t0
                progress(f"read {result.rows:,} rows in {result.seconds['read']:.1f} s")
                props = {RUN_ID: run.run_id, JOB_NAME: run.job_name, SOURCE_SHA256: src.sha256, SOURCE_PATH: src.uri, ENGINE: "spark"}
                if suite is not None:
                    progress(f"gate: suite {suite.name} ({len(suite.expectations)} expectations) on GX's Spark engine")
                    gate = gates.SparkGate(suite)
                    result.gate = gate.check(cached)
                    result.seconds["gate"] = gate.seconds
                    progress(f"gate {'passed' if result.gate.success else 'FAILED'} in {gate.seconds:.1f} s")
                    props.update(verdict.properties(result.gate))
                    if data_docs:
                        result.data_docs = verdict.write_data_docs(settings, name, run.run_id, gate, result.gate, result.warnings)
                        if result.data_docs:
                            props[GATE_DOCS] = result.data_docs
                run.recoverable(RESOLVER, rows=result.rows, checks=datasets.assertions(result))
                step("ingest.written")
                branch = f"{AUDIT_PREFIX}{run.run_id}"
                commit_started = time.perf_counter()
                evolved = prepared.schema.schema_id
                # Recorded before the schema is made current for Spark's write (schema_current decides
                # whether it is): recovery makes the old one current again if this process dies while it is.
                with branches.schema_current(catalog, name, evolved, switching=lambda before: run.recoverable(RESOLVER, schema=[evolved, before])):
                    audited = _write_branch(catalog, name, spark_table, branch, cached, props, src.uri, result.rows, evolved)
                result.seconds["write"] = time.perf_counter() - commit_started
            except BaseException:
                if created:
                    target.drop_if_pristine(catalog, name)
                raise
            finally:
                if cached is not None:
                    cached.unpersist()
            tbl = load_table(catalog, name)
            added = branches.added_data_files(tbl, audited)
            result.data_files, result.bytes_written = len(added), sum(f.file_size_in_bytes for f in added)
            column_lineage = columns.lineage_facet(settings, source_ds, arrow_schema, prepared.schema, rename)  # the schema the files are in
            progress(f"audited snapshot {audited.snapshot_id} on branch {branch}")
            step("ingest.audited")
            quarantine_or_publish(settings, catalog, run, tbl, branch, audited, result, column_lineage, progress, files=added)
            result.seconds["commit"] = time.perf_counter() - commit_started
        result.seconds["total"] = time.perf_counter() - started
        return result


def _spark_path(src: sources.Source) -> str:
    """The local path Spark reads (an object-store file's local copy), in an encoding and codec Spark reads as they are."""
    if src.content.encoding:
        raise SourceError(f"{src.uri} is {src.content.encoding.upper()} text; the Spark engine reads UTF-8 only: land it with the default engine")
    codec = src.content.compression
    if codec and not src.path.lower().endswith(_SPARK_CODECS.get(codec, ())):
        names = " or ".join(_SPARK_CODECS.get(codec, ())) or "(none: Spark has no reader for it here)"
        raise SourceError(
            f"{src.uri} is {codec}-compressed, which Spark reads only from a file named {names}; rename it, or land it with the default engine"
        )
    return src.local_copy or src.path  # `open_source(copy_into=)` copied any file not on local disk


@contextmanager
def _scratch(settings: Settings) -> Iterator[Path]:
    """A temporary folder under the home for an object-store file's local copy (under the file's own name:
    Spark picks a text codec by it), removed after the landing."""
    import shutil
    import tempfile

    (settings.home / "tmp").mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="spark-source-", dir=settings.home / "tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read(spark: SparkSession, src: sources.Source, path: str) -> DataFrame:
    """The source as a DataFrame; a row Spark cannot parse fails the job (FAILFAST), never a silent null."""
    reader = spark.read
    if src.fmt == "csv":
        # Types inferred over the whole file (one pass), as the pyarrow path settles them.
        return reader.options(header=True, inferSchema=True, mode="FAILFAST", enforceSchema=False).csv(path)
    if src.fmt == "jsonl":
        return reader.options(mode="FAILFAST").json(path)
    return reader.parquet(path)


def _renamed(frame: DataFrame, rename: Mapping[str, str], uri: str) -> DataFrame:
    missing = [c for c in rename if c not in frame.columns]
    if missing:
        raise SourceError(f"{uri} has no column {', '.join(missing)} to rename; its columns are {', '.join(frame.columns)}", parameter="rename")
    for old, new in rename.items():
        frame = frame.withColumnRenamed(old, new)
    duplicated = sorted({c for c in frame.columns if frame.columns.count(c) > 1})
    if duplicated:
        raise SourceError(f"{uri}: column {', '.join(duplicated)} appears twice (after renames); rename one")
    return frame


def _arrow_schema(frame: DataFrame) -> pa.Schema:
    """The file's columns as Arrow types, whole numbers as int64 and floats as float64 (as the pyarrow path lands them)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(frame.schema)
    widen = {pa.int8(): pa.int64(), pa.int16(): pa.int64(), pa.int32(): pa.int64(), pa.float32(): pa.float64()}
    return pa.schema([f.with_type(widen.get(f.type, f.type)) for f in schema])


def _conform(frame: DataFrame, schema: Schema) -> DataFrame:
    """`frame`'s rows in the columns and types of `schema` (the table's, or the one evolved for this
    file): casts are lossless (`ingest.target` refused any other); absent columns are nulls."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    have = set(frame.columns)
    # Iceberg's timestamp without zone is Spark's TIMESTAMP_NTZ, as Iceberg's Spark runtime maps it.
    fields = from_arrow_schema(schema_to_pyarrow(schema), prefer_timestamp_ntz=True).fields
    return frame.select(
        [(F.col(f"`{f.name}`") if f.name in have else F.lit(None)).cast(f.dataType).alias(f.name) for f in fields]
    )


def _storage_level() -> Any:
    from pyspark import StorageLevel

    return StorageLevel.MEMORY_AND_DISK


def _write_branch(
    catalog: Catalog, name: TableName, spark_table: str, branch: str, rows: DataFrame,
    props: dict[str, str], uri: str, count: int, schema_id: int,
) -> Any:
    """Spark appends `rows` as one snapshot on `branch`, made here from main, in schema `schema_id`
    (the current one while this runs); the snapshot.

    A failed job is kept as `quarantine-<run>` (an empty snapshot naming the failure) and raised
    as SparkLandingError; main never moves here.
    """
    from pyspark.sql import functions as F

    base = branches.create(catalog, name, branch)
    if armed(WRITE_FAULT):
        # The fault tests ask for: the write job's last task fails after the others wrote their files.
        last = rows.rdd.getNumPartitions() - 1
        first = rows.columns[0]
        rows = rows.withColumn(
            first, F.when(F.spark_partition_id() == last, F.raise_error(F.lit(f"failpoint {WRITE_FAULT}"))).otherwise(F.col(f"`{first}`"))
        )
    writer = rows.writeTo(f"{spark_table}.`branch_{branch}`")
    for key, value in props.items():
        writer = writer.option(f"snapshot-property.{key}", value)
    try:
        writer.append()
    except Exception as exc:  # py4j and pyspark raise several kinds; each means the job wrote nothing that counts
        reason = _first_line(exc)
        quarantine = _keep_failed(catalog, name, branch, props, reason)
        raise SparkLandingError(
            f"{uri}: the Spark job writing to {name} failed ({reason}); main is unchanged, the landing is kept as "
            f"branch {quarantine} (`tidemark ingest quarantine drop {name} {quarantine}` removes it)"
        ) from exc
    step(WRITTEN)
    tbl = load_table(catalog, name)
    audited = branches.head(tbl, branch)
    written = int((audited.summary.additional_properties if audited.summary else {}).get("added-records", -1))
    if audited.parent_snapshot_id != base or written != count or audited.schema_id != schema_id:
        branches.drop_quietly(catalog, name, branch)
        raise PublishError(
            f"{uri}: Spark wrote {written} rows in schema {audited.schema_id} on branch {branch} of {name} but read {count} "
            f"for schema {schema_id} (another writer changed the table's schema meanwhile?); nothing was published, land it again"
        )
    return audited


def _keep_failed(catalog: Catalog, name: TableName, branch: str, props: dict[str, str], reason: str) -> str:
    """Keep a failed write's branch as `quarantine-<run>`: one empty snapshot whose summary says what failed."""
    import json

    failed = {k: v for k, v in props.items() if not k.startswith("tidemark.gate.")}
    failed.update({
        GATE_SUITE: props.get(GATE_SUITE, "spark-write"),
        GATE_SUCCESS: "false",
        GATE_FAILURES: json.dumps([{"expectation": "spark_write", "error": reason[:1000]}]),
    })
    quarantine = QUARANTINE_PREFIX + branch.removeprefix(AUDIT_PREFIX)
    try:
        branches.commit_files(catalog, name, branch, [], failed)
        branches.rename(catalog, name, branch, quarantine)
    except Exception:
        log.warning("could not keep the failed Spark landing's branch %s of %s as %s", branch, name, quarantine, exc_info=True)
        branches.drop_quietly(catalog, name, branch)
    return quarantine


@contextmanager
def _unreadable(uri: str) -> Iterator[None]:
    """A Spark job reading the file failed (a malformed row under FAILFAST, a broken file): one line, nothing written."""
    from lakehouse.exceptions import TidemarkError

    try:
        yield
    except TidemarkError:
        raise
    except Exception as exc:  # py4j and pyspark raise several kinds
        raise SourceError(f"{uri}: Spark could not read it ({_first_line(exc)}); nothing was written, fix the file and land it again") from exc


def _first_line(exc: BaseException) -> str:
    """The cause Spark gives, in one line (a py4j error's first line is the Java exception's message)."""
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("An error occurred while calling", "py4j.")):
            return line[:300]
    return exc.__class__.__name__
