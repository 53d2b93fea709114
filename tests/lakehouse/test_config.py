from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import load_settings
from lakehouse.exceptions import ConfigError


def test_defaults_are_the_embedded_stack(isolated_env: Path) -> None:
    s = load_settings()
    assert s.home == isolated_env
    assert s.catalog.name == "tidemark"
    assert s.catalog.properties["uri"] == f"sqlite:///{isolated_env / 'catalog.db'}"
    assert s.warehouse == (isolated_env / "warehouse").as_uri()
    assert s.uses_local_broker and s.kafka.topic == "tidemark.lineage"


def test_file_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tidemark.yaml").write_text(
        "kafka: {bootstrap_servers: 'file:9092', topic: from-file, partitions: 6}\n"
        "catalog: {name: cat, uri: 'postgresql+psycopg2://u@h/db', 's3.endpoint': 'http://x'}\n"
    )
    s = load_settings()
    assert s.config_file == Path("tidemark.yaml")
    assert (s.kafka.bootstrap_servers, s.kafka.topic, s.kafka.partitions) == ("file:9092", "from-file", 6)
    assert s.catalog.name == "cat" and s.catalog.properties["s3.endpoint"] == "http://x"
    monkeypatch.setenv("TIDEMARK__KAFKA__TOPIC", "from-env")
    monkeypatch.setenv("TIDEMARK__KAFKA__PARTITIONS", "2")
    s = load_settings()
    assert (s.kafka.bootstrap_servers, s.kafka.topic, s.kafka.partitions) == ("file:9092", "from-env", 2)
    assert s.kafka.compression == "zstd"  # the default
    monkeypatch.setenv("TIDEMARK__KAFKA__COMPRESSION", "None")  # case does not matter
    assert load_settings().kafka.compression == "none"
    s = load_settings(overrides={"kafka": {"topic": "explicit"}})
    assert s.kafka.topic == "explicit"


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(AttributeError):
        s.kafka.topic = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.catalog.properties["uri"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("kafka: [1, 2]\n", "section 'kafka' must be a mapping"),
        ("kafak: {topic: x}\n", "unknown config section 'kafak'"),
        ("kafka: {topik: x}\n", "unknown key(s) topik in section 'kafka'"),
        ("kafka: {partitions: many}\n", "kafka.partitions must be a whole number"),
        ("kafka: {compression: brotli}\n", "kafka.compression must be one of none, gzip, snappy, lz4, zstd, got 'brotli'"),
        ("lineage: {batch_size: 0}\n", "lineage.batch_size must be at least 1, got 0"),
        ("lineage: {batch_size: lots}\n", "lineage.batch_size must be a whole number"),
        ("kafka: {bootstrap_servers: [\n", "is not valid YAML"),
        ("models: {protected_aliases: {production: true}}\n", "models.protected_aliases must be a list of alias names"),
        ("models: {protected_aliases_per_model: [wine]}\n", "models.protected_aliases_per_model must map model names to alias lists"),
        ("models: {protected_aliases_per_model: {wine: 3}}\n", "models.protected_aliases_per_model.wine must be a list of alias names"),
        ("notifications: {webhook_url: 'ftp://x'}\n", "notifications.webhook_url must be an http:// or https:// URL, got 'ftp://x'"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, yaml_text: str, message: str) -> None:
    (tmp_path / "tidemark.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError, match=None) as err:
        load_settings()
    assert message in str(err.value)


def test_missing_explicit_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIDEMARK_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="TIDEMARK_CONFIG points to .*nope.yaml"):
        load_settings()


def test_home_is_found_by_walking_up_like_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.config import load_settings

    monkeypatch.delenv("TIDEMARK_HOME")
    project = tmp_path / "project"
    (project / ".tidemark").mkdir(parents=True)
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    s = load_settings()
    assert s.home == (project / ".tidemark").resolve() and s.home_source == "found"
    assert s.catalog.properties["uri"] == f"sqlite:///{project.resolve() / '.tidemark' / 'catalog.db'}"
    # TIDEMARK_HOME wins over what the walk finds.
    assert load_settings(environ={"TIDEMARK_HOME": str(tmp_path / "other")}).home_source == "env"
    # Nothing at or above: ./.tidemark, and the source says so.
    lone = tmp_path / "lone"
    lone.mkdir()
    monkeypatch.chdir(lone)
    if not any((p / ".tidemark").is_dir() for p in lone.resolve().parents):
        s = load_settings()
        assert s.home == (lone / ".tidemark").resolve() and s.home_source == "default"


def test_protected_aliases_from_the_file_the_environment_and_per_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load_settings().models.is_protected("wine", "production")  # nothing is protected by default
    (tmp_path / "tidemark.yaml").write_text("models: {protected_aliases: [production], protected_aliases_per_model: {scratch: []}}\n")
    m = load_settings().models
    assert m.is_protected("wine", "production") and not m.is_protected("wine", "staging") and not m.is_protected("scratch", "production")
    monkeypatch.setenv("TIDEMARK__MODELS__PROTECTED_ALIASES", "production, staging")
    monkeypatch.setenv("TIDEMARK__MODELS__PROTECTED_ALIASES_PER_MODEL__DIABETES", "canary")
    m = load_settings().models
    assert m.is_protected("wine", "staging") and m.is_protected("diabetes", "canary") and not m.is_protected("diabetes", "production")
