"""Apache Spark over Tidemark's catalog: a SparkSession whose Iceberg catalog is the same SQL catalog.

Iceberg's Java runtime reads and commits through its `type=jdbc` catalog to the very rows pyiceberg's
SqlCatalog keeps (same `iceberg_tables`, same compare-and-swap on `metadata_location`), so Spark and
Tidemark see the same tables, snapshots, branches and tags, and can write one table at once. The
catalog name must be the same on both sides: it is a column of that table.

Nothing downloads at run time. The jars come from pip packages (pyspark; the Iceberg runtime inside
`snowpark-connect-deps-iceberg`), from Debian (JDBC drivers; Java) and from one jar `make spark`
builds: pyspark's own Jackson relocated to where that runtime looks for it (it ships without it).
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.config import Settings
from lakehouse.exceptions import SparkUnavailableError, TidemarkError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ICEBERG_RUNTIME = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
JACKSON_VERSION = "2.15.2"
# Built by `make spark` (infra/spark/relocate_jackson.py) inside the environment it serves.
JACKSON_JAR = Path(sys.prefix) / "share" / "tidemark" / "spark" / f"iceberg-shaded-jackson-{JACKSON_VERSION}.jar"
# Debian's JDBC drivers (libxerial-sqlite-jdbc-java, libpostgresql-jdbc-java), by the catalog URI's scheme.
JDBC_DRIVERS = {"sqlite": Path("/usr/share/java/sqlite-jdbc.jar"), "postgresql": Path("/usr/share/java/postgresql.jar")}
INSTALL = "run `make spark` (pip install 'tidemark[spark]' plus Java 17 and Debian's JDBC drivers)"
# The class an s3:// warehouse needs from the AWS SDK v2 (iceberg-aws-bundle), which no pip or
# Debian package carries: a deployment adds that jar with spark.jars.
_AWS_S3_CLIENT = "software/amazon/awssdk/services/s3/S3Client.class"
# pyiceberg's S3 property -> Iceberg Java's (the same names but the region).
_S3_PROPERTIES = {
    "s3.endpoint": "s3.endpoint",
    "s3.access-key-id": "s3.access-key-id",
    "s3.secret-access-key": "s3.secret-access-key",
    "s3.session-token": "s3.session-token",
    "s3.region": "client.region",
}


def jdbc_catalog_uri(uri: str) -> tuple[str, dict[str, str]]:
    """The JDBC URL and driver properties (`jdbc.user`, ...) for pyiceberg's SQLAlchemy catalog `uri`.

    `sqlite:////abs/catalog.db` -> `jdbc:sqlite:/abs/catalog.db` (a relative path is made absolute:
    the JVM's working directory is not a reliable anchor); `postgresql+psycopg2://u:p@h:5432/db`
    -> `jdbc:postgresql://h:5432/db` with user and password as properties.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise SparkUnavailableError(f"catalog uri {uri!r} is not a database URL; fix catalog.uri", parameter="uri") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise SparkUnavailableError(
                "an in-memory SQLite catalog cannot be shared with Spark; set catalog.uri to a sqlite:/// file or PostgreSQL",
                parameter="uri",
            )
        return f"jdbc:sqlite:{Path(url.database).expanduser().resolve()}", {}
    if backend == "postgresql":
        host = url.host or "localhost"
        port = f":{url.port}" if url.port else ""
        query = "&".join(f"{k}={v}" for k, v in url.query.items() if isinstance(v, str))
        props = {}
        if url.username:
            props["jdbc.user"] = url.username
        if url.password:
            props["jdbc.password"] = str(url.password)
        return f"jdbc:postgresql://{host}{port}/{url.database or ''}{'?' + query if query else ''}", props
    raise SparkUnavailableError(
        f"Spark shares only SQLite and PostgreSQL catalogs with Tidemark, not {backend}; set catalog.uri to one of those",
        parameter="uri",
    )


def catalog_conf(settings: Settings) -> dict[str, str]:
    """Spark settings that make `settings.catalog.name` Iceberg's JDBC catalog over Tidemark's catalog."""
    props = dict(settings.catalog.properties)
    uri = props.get("uri", "")
    jdbc_url, jdbc_props = jdbc_catalog_uri(uri)
    prefix = f"spark.sql.catalog.{settings.catalog.name}"
    conf = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.uri": jdbc_url,
        f"{prefix}.warehouse": settings.warehouse,
        # Spark's catalog caches each table as first loaded (30 s by default): with Tidemark committing
        # beside it, a cached table answers from a stale snapshot. Always read the catalog's current one.
        f"{prefix}.cache-enabled": "false",
        # pyiceberg makes the catalog's tables (use_catalog opens the catalog with it first). Java's
        # check for them leaves a metadata query open on SQLite, and that connection then reads a
        # frozen snapshot of the file (WAL) and fails its commits with SQLITE_BUSY_SNAPSHOT.
        f"{prefix}.jdbc.init-catalog-tables": "false",
        **{f"{prefix}.{k}": v for k, v in jdbc_props.items()},
    }
    if settings.warehouse.startswith(("s3://", "s3a://")):
        conf[f"{prefix}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
        for ours, theirs in _S3_PROPERTIES.items():
            if props.get(ours):
                conf[f"{prefix}.{theirs}"] = props[ours]
        if props.get("s3.endpoint"):
            # MinIO and moto answer path-style requests (bucket in the path), as pyiceberg and DuckDB use them.
            conf[f"{prefix}.s3.path-style-access"] = "true"
    return conf


def _driver(uri: str) -> Path:
    scheme = "sqlite" if uri.startswith("sqlite") else "postgresql"
    return JDBC_DRIVERS[scheme]


def classpath(settings: Settings) -> list[str]:
    """The jars Spark needs for this catalog, each checked to exist (else: what to install, in one line)."""
    try:
        import snowpark_connect_deps_iceberg
    except ImportError as exc:
        raise SparkUnavailableError(f"the Iceberg runtime for Spark is not installed: {INSTALL}") from exc
    runtime = Path(snowpark_connect_deps_iceberg.__file__).parent / "jars" / ICEBERG_RUNTIME
    needed = _driver(settings.catalog.properties.get("uri", ""))
    for jar in (runtime, JACKSON_JAR, needed):
        if not jar.is_file():
            raise SparkUnavailableError(f"{jar} is missing: {INSTALL}")
    # Every driver there is, not only this catalog's: a running session (its JVM's classpath is fixed
    # at start) can then take on a catalog of the other kind.
    jars = [runtime, JACKSON_JAR, *(d for d in JDBC_DRIVERS.values() if d == needed or d.is_file())]
    extra = [Path(j) for j in settings.spark.jars]
    for jar in extra:
        if not jar.is_file():
            raise SparkUnavailableError(f"{jar} (spark.jars) does not exist; fix spark.jars or TIDEMARK__SPARK__JARS", parameter="jars")
    all_jars = [*jars, *extra]
    if settings.warehouse.startswith(("s3://", "s3a://")) and not any(_has_class(j, _AWS_S3_CLIENT) for j in all_jars):
        raise SparkUnavailableError(
            "an s3:// warehouse needs the AWS SDK v2 on Spark's classpath, which no pip or Debian package carries: "
            "add iceberg-aws-bundle-1.10.2.jar with spark.jars (TIDEMARK__SPARK__JARS)",
            parameter="jars",
        )
    return [str(j) for j in all_jars]


def _has_class(jar: Path, entry: str) -> bool:
    try:
        with zipfile.ZipFile(jar) as zf:
            return entry in zf.NameToInfo
    except (OSError, zipfile.BadZipFile):
        return False


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).is_file():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH"
        raise SparkUnavailableError(f"Spark needs Java 17 ({where}): {INSTALL}")
    return java


def session(settings: Settings, conf: Mapping[str, str] | None = None) -> SparkSession:
    """A SparkSession (`spark.master`, `local[2]` by default) with Tidemark's catalog registered under its name.

    Reuses this process's running session when there is one (a JVM costs seconds to start), adding
    the catalog to it. `conf` adds Spark settings on top of the `spark.conf` section.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailableError(f"pyspark is not installed: {INSTALL}") from exc
    _java()
    jars = classpath(settings)
    # Spark's own address lookup would pick a non-loopback interface when the host name resolves to 127.0.0.1.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(settings.spark.master)
        .appName(settings.spark.app_name)
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        # Loopback only, and no UI port to collide over: a local session serves no one else.
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        # Timestamps read the same on every machine (Iceberg's timestamptz is UTC).
        .config("spark.sql.session.timeZone", "UTC")
    )
    for key, value in {**settings.spark.conf, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/pyspark raise several kinds; all mean "the JVM did not start"
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise SparkUnavailableError(f"Spark did not start ({first}); check Java 17 and {INSTALL}") from exc
    loaded = spark.sparkContext.getConf().get("spark.jars", "")
    if not set(jars) <= set(loaded.split(",")):
        raise SparkUnavailableError(
            "a Spark session already runs in this process without Tidemark's jars; stop it (spark.stop()) first"
        )
    use_catalog(spark, settings)
    return spark


def use_catalog(spark: SparkSession, settings: Settings) -> str:
    """Register Tidemark's catalog on a running session; returns its name (the name to query it by).

    Spark builds a catalog on first use and keeps it: a name already bound to another catalog
    database is refused rather than silently read from the wrong place.
    """
    from lakehouse.catalog import load_catalog

    conf = catalog_conf(settings)
    load_catalog(settings)  # pyiceberg creates the catalog's tables (and the local warehouse) if missing
    name = settings.catalog.name
    uri_key = f"spark.sql.catalog.{name}.uri"
    current = spark.conf.get(uri_key, None)
    if current is not None and current != conf[uri_key]:
        raise SparkUnavailableError(
            f"this Spark session already has a catalog {name!r} at another database; "
            "use a new session or another catalog.name",
            parameter="settings",
        )
    for key, value in conf.items():
        spark.conf.set(key, value)
    return name


def table_name(settings: Settings, table: str) -> str:
    """`ns.table` as Spark names it in Tidemark's catalog: `` `tidemark`.`ns`.`table` ``."""
    parts = [settings.catalog.name, *table.split(".")]
    return ".".join(f"`{p.replace('`', '``')}`" for p in parts)


def read_table(
    spark: SparkSession,
    settings: Settings,
    table: str,
    snapshot_id: int | None = None,
    branch: str | None = None,
    tag: str | None = None,
) -> DataFrame:
    """A table as a DataFrame: main, or one snapshot (Iceberg's `snapshot-id` read option), branch or tag."""
    chosen = [k for k, v in (("snapshot_id", snapshot_id), ("branch", branch), ("tag", tag)) if v is not None]
    if len(chosen) > 1:
        raise TidemarkError(f"read one of snapshot_id, branch or tag, not {' and '.join(chosen)}", parameter=chosen[1])
    reader = spark.read.format("iceberg")
    if snapshot_id is not None:
        reader = reader.option("snapshot-id", str(snapshot_id))
    if branch is not None:
        reader = reader.option("branch", branch)
    if tag is not None:
        reader = reader.option("tag", tag)
    return reader.load(table_name(settings, table).replace("`", ""))
