"""lakehouse.spark: the SparkSession factory over Tidemark's catalog, its settings and its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakehouse import spark as lspark
from lakehouse.config import load_settings
from lakehouse.exceptions import ConfigError, SparkUnavailableError, TidemarkError


def test_sqlite_uri_becomes_an_absolute_jdbc_url(tmp_path: Path) -> None:
    assert lspark.jdbc_catalog_uri(f"sqlite:///{tmp_path}/catalog.db") == (f"jdbc:sqlite:{tmp_path}/catalog.db", {})
    # Relative to the working directory of Tidemark, not of the JVM.
    assert lspark.jdbc_catalog_uri("sqlite:///rel/catalog.db") == (f"jdbc:sqlite:{tmp_path}/rel/catalog.db", {})


def test_postgres_uri_keeps_host_port_database_and_credentials() -> None:
    url, props = lspark.jdbc_catalog_uri("postgresql+psycopg2://ice:s3cret@db.example:6543/lake?sslmode=require")
    assert url == "jdbc:postgresql://db.example:6543/lake?sslmode=require"
    assert props == {"jdbc.user": "ice", "jdbc.password": "s3cret"}
    assert lspark.jdbc_catalog_uri("postgresql://postgres@127.0.0.1/test") == ("jdbc:postgresql://127.0.0.1/test", {"jdbc.user": "postgres"})


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sqlite://", "in-memory SQLite catalog cannot be shared with Spark"),
        ("mysql+pymysql://u@h/db", "only SQLite and PostgreSQL catalogs"),
        ("not a url", "not a database URL"),
    ],
)
def test_catalogs_spark_cannot_share_are_refused(uri: str, message: str) -> None:
    with pytest.raises(SparkUnavailableError, match=message) as err:
        lspark.jdbc_catalog_uri(uri)
    assert err.value.parameter == "uri"


def test_catalog_conf_names_the_catalog_as_pyiceberg_does(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIDEMARK__CATALOG__NAME", "lake")
    settings = load_settings()
    conf = lspark.catalog_conf(settings)
    assert conf == {
        "spark.sql.catalog.lake": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.lake.type": "jdbc",
        "spark.sql.catalog.lake.uri": f"jdbc:sqlite:{settings.home / 'catalog.db'}",
        "spark.sql.catalog.lake.warehouse": (settings.home / "warehouse").as_uri(),
        "spark.sql.catalog.lake.cache-enabled": "false",
        "spark.sql.catalog.lake.jdbc.init-catalog-tables": "false",
    }


def test_s3_warehouse_maps_the_readme_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "WAREHOUSE": "s3://tidemark/warehouse",
        "S3__ENDPOINT": "http://127.0.0.1:9000",
        "S3__ACCESS_KEY_ID": "AK",
        "S3__SECRET_ACCESS_KEY": "SK",
        "S3__REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(f"TIDEMARK__CATALOG__{key}", value)
    conf = lspark.catalog_conf(load_settings())
    prefix = "spark.sql.catalog.tidemark"
    assert {k[len(prefix) + 1 :]: v for k, v in conf.items() if k.startswith(prefix + ".") and k[len(prefix) + 1 :] not in ("type", "uri", "cache-enabled", "jdbc.init-catalog-tables")} == {
        "warehouse": "s3://tidemark/warehouse",
        "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.access-key-id": "AK",
        "s3.secret-access-key": "SK",
        "client.region": "eu-west-1",
        "s3.path-style-access": "true",
    }


def test_s3_warehouse_without_the_aws_sdk_says_which_jar_to_add(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("snowpark_connect_deps_iceberg", reason="the Iceberg runtime is not installed: run `make spark`")
    if not lspark.JACKSON_JAR.is_file():
        pytest.skip(f"{lspark.JACKSON_JAR} is missing: run `make spark`")
    monkeypatch.setenv("TIDEMARK__CATALOG__WAREHOUSE", "s3://tidemark/warehouse")
    with pytest.raises(SparkUnavailableError, match=r"iceberg-aws-bundle-1\.10\.2\.jar with spark\.jars \(TIDEMARK__SPARK__JARS\)"):
        lspark.classpath(load_settings())


def test_spark_section_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().spark.master == "local[2]"  # the default
    (tmp_path / "tidemark.yaml").write_text("spark:\n  master: local[4]\n  conf: {spark.driver.memory: 4g}\n")
    monkeypatch.setenv("TIDEMARK__SPARK__JARS", f"{tmp_path}/a.jar, {tmp_path}/b.jar")
    monkeypatch.setenv("TIDEMARK__SPARK__CONF__SPARK__SQL__SHUFFLE__PARTITIONS", "8")
    s = load_settings().spark
    assert (s.master, s.app_name, s.jars) == ("local[4]", "tidemark", (f"{tmp_path}/a.jar", f"{tmp_path}/b.jar"))
    assert dict(s.conf) == {"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "8"}


def test_bad_spark_section_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK__SPARK__MASTERS", "local[2]")
    with pytest.raises(ConfigError, match="unknown key.*masters.*section 'spark'"):
        load_settings()


def test_missing_extra_jar_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("snowpark_connect_deps_iceberg", reason="the Iceberg runtime is not installed: run `make spark`")
    if not lspark.JACKSON_JAR.is_file():
        pytest.skip(f"{lspark.JACKSON_JAR} is missing: run `make spark`")
    monkeypatch.setenv("TIDEMARK__SPARK__JARS", str(tmp_path / "nope.jar"))
    with pytest.raises(SparkUnavailableError, match="nope.jar \\(spark.jars\\) does not exist"):
        lspark.classpath(load_settings())


def test_missing_relocated_jackson_says_make_spark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("snowpark_connect_deps_iceberg", reason="the Iceberg runtime is not installed: run `make spark`")
    monkeypatch.setattr(lspark, "JACKSON_JAR", tmp_path / "gone.jar")
    with pytest.raises(SparkUnavailableError, match=r"gone\.jar is missing: run `make spark`"):
        lspark.classpath(load_settings())


def _session_error(env: dict[str, str], prelude: str = "") -> str:
    """`lakehouse.spark.session` in a fresh process (no JVM of this test process to reuse): its one-line error."""
    code = (
        f"{prelude}\nfrom lakehouse import spark\nfrom lakehouse.config import load_settings\n"
        "from lakehouse.exceptions import SparkUnavailableError\n"
        "try:\n    spark.session(load_settings())\nexcept SparkUnavailableError as exc:\n    print(exc)\n"
    )
    import os

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_missing_java_is_one_line_naming_make_spark(tmp_path: Path) -> None:
    message = _session_error({"JAVA_HOME": str(tmp_path / "no-jdk")})
    assert message == f"Spark needs Java 17 (JAVA_HOME={tmp_path / 'no-jdk'} has no bin/java): {lspark.INSTALL}"
    assert "make spark" in message and "\n" not in message


def test_missing_pyspark_is_one_line_naming_the_extra() -> None:
    # A process where `import pyspark` fails, as on an install without the [spark] extra.
    message = _session_error({}, prelude="import sys; sys.modules['pyspark'] = None")
    assert message == f"pyspark is not installed: {lspark.INSTALL}"
    assert "pip install 'tidemark[spark]'" in message


def _small_table(settings: Any) -> Any:
    from lakehouse.catalog import load_catalog

    catalog = load_catalog(settings)
    catalog.create_namespace("raw")
    table = catalog.create_table("raw.t", schema=pa.schema([("id", pa.int64()), ("x", pa.string())]))
    table.append(pa.table({"id": [1, 2], "x": ["a", "b"]}), snapshot_properties={"tidemark.run_id": "r1"})
    return catalog.load_table("raw.t")


@pytest.mark.integration
def test_read_table_at_snapshot_branch_and_tag(spark: Any) -> None:
    settings = load_settings()
    table = _small_table(settings)
    first = table.current_snapshot().snapshot_id
    with table.manage_snapshots() as ms:
        ms.create_tag(first, "v1").create_branch(first, "audit")
    table = table.refresh()
    table.append(pa.table({"id": [3], "x": ["c"]}), branch="audit")
    table = table.refresh()
    table.append(pa.table({"id": [4], "x": ["d"]}))

    name = lspark.use_catalog(spark, settings)
    assert name == settings.catalog.name

    def ids(**ref: Any) -> list[int]:
        return sorted(r.id for r in lspark.read_table(spark, settings, "raw.t", **ref).collect())

    assert ids() == [1, 2, 4]
    assert ids(snapshot_id=first) == [1, 2]
    assert ids(tag="v1") == [1, 2]
    assert ids(branch="audit") == [1, 2, 3]
    assert spark.sql(f"SELECT count(*) AS n FROM {lspark.table_name(settings, 'raw.t')}").first().n == 3
    with pytest.raises(TidemarkError, match="read one of snapshot_id, branch or tag, not snapshot_id and tag") as err:
        lspark.read_table(spark, settings, "raw.t", snapshot_id=first, tag="v1")
    assert err.value.parameter == "tag"


@pytest.mark.integration
def test_a_catalog_name_bound_to_another_database_is_refused(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lspark.use_catalog(spark, load_settings())
    monkeypatch.setenv("TIDEMARK__CATALOG__URI", f"sqlite:///{tmp_path}/other.db")
    with pytest.raises(SparkUnavailableError, match="already has a catalog .* at another database"):
        lspark.use_catalog(spark, load_settings())


def test_every_file_with_spark_tests_is_in_the_spark_unit_of_work(request: pytest.FixtureRequest) -> None:
    """`make test` runs SPARK_FILES on one worker and one JVM; a Spark test file missing from the list
    would quietly start a second JVM on the other worker."""
    from tests.conftest import SPARK_FILES

    using = {item.nodeid.split("::", 1)[0] for item in request.session.items if "spark_session" in getattr(item, "fixturenames", ())}
    assert using <= set(SPARK_FILES), f"add {sorted(using - set(SPARK_FILES))} to SPARK_FILES in tests/conftest.py"
