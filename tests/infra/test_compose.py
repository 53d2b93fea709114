"""docker-compose.yml checked against the code, since no Docker engine runs here to try it.

Each check is one way a deployment breaks on `docker compose up`: an env var the config never reads,
a topic or port that does not match, a dependency on a service without a health check, a secret
written into the file or an image.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
_VAR = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|ACCESS_KEY|_KEY$", re.I)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # safe_load resolves the `<<: *anchor` merges


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _interpolate(text: str) -> str:
    """What compose makes of `${VAR...}` with a .env that sets every variable to a dummy."""
    return _VAR.sub(lambda m: f"dummy-{m['name'].lower()}", text)


def _tidemark_services(services: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    for name, svc in services.items():
        env = _env(svc)
        if any(k.startswith("TIDEMARK__") for k in env):
            yield name, {k: _interpolate(v) for k, v in env.items() if k.startswith("TIDEMARK")}


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_the_required_services_are_there_with_pinned_images(services: dict[str, Any]) -> None:
    expected = {
        "kafka", "postgres", "minio", "minio-init", "init", "lineage-consumer",
        "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    }
    assert expected <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name, svc in services.items():
        image = svc.get("image", "")
        assert image or svc.get("build"), f"{name} has neither image nor build"
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image!r})"
        if svc.get("build"):
            dockerfile = ROOT / svc["build"].get("context", ".") / svc["build"]["dockerfile"]
            assert dockerfile.is_file(), f"{name} builds from {dockerfile}, which is missing"
    airflow = {n for n in services if n.startswith("airflow-")}
    assert {services[n]["command"][0] for n in airflow} == {"api-server", "scheduler", "dag-processor", "triggerer"}


def test_every_tidemark_variable_is_a_real_config_key(services: dict[str, Any]) -> None:
    import pyiceberg.io

    from lakehouse.config import load_settings

    pyiceberg_keys = {v for k, v in vars(pyiceberg.io).items() if k.isupper() and isinstance(v, str) and "." in v}
    seen = []
    for name, env in _tidemark_services(services):
        # load_settings refuses unknown sections and keys: a misspelt variable fails here, not in production.
        settings = load_settings(environ=env)
        for key in settings.catalog.properties:
            assert key in {"uri", "warehouse", "type"} | pyiceberg_keys, f"{name}: catalog property {key!r} is not one pyiceberg reads"
        assert env["TIDEMARK_HOME"] == str(settings.home)
        seen.append((name, settings))
    assert {n for n, _ in seen} >= {"init", "lineage-consumer", "airflow-scheduler"}
    # Producers (Airflow tasks), the init job and the consumer must agree on where lineage goes.
    facts = {
        (s.kafka.bootstrap_servers, s.kafka.topic, s.kafka.partitions, s.catalog.name, s.warehouse,
         s.catalog.properties["uri"], s.lineage.namespace)
        for _, s in seen
    }
    assert len(facts) == 1, f"services disagree on Kafka, topic, catalog or warehouse: {facts}"


def test_addresses_point_at_the_services_that_serve_them(services: dict[str, Any]) -> None:
    from lakehouse.config import load_settings

    _, env = next(_tidemark_services(services))
    settings = load_settings(environ=env)
    kafka = _env(services["kafka"])
    # Bootstrap: a listener the broker advertises under the service's own name.
    (bootstrap,) = settings.kafka.bootstrap_servers.split(",")
    assert bootstrap in {urlsplit(u).netloc for u in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert bootstrap.split(":")[0] == "kafka"
    assert any(_port_of(urlsplit(u).netloc) == _port_of(bootstrap) for u in kafka["KAFKA_LISTENERS"].split(","))
    # Single node: nothing may ask for more replicas than there are brokers.
    assert all(kafka[k] == "1" for k in kafka if k.endswith(("REPLICATION_FACTOR", "MIN_ISR", "MIN_INSYNC_REPLICAS")))
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller" and "kafka-data:" in services["kafka"]["volumes"][0]
    # The topic the code defaults to is the one the deployment uses (other teams subscribe to it).
    from lakehouse.config import KafkaSettings

    assert settings.kafka.topic == KafkaSettings.topic

    # The catalog's database exists: the init SQL creates it, as it does Airflow's.
    init_sql = (ROOT / "infra" / "postgres" / "init.sql").read_text()
    mounts = " ".join(services["postgres"]["volumes"])
    assert "./infra/postgres/init.sql:/docker-entrypoint-initdb.d/" in mounts
    created = set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    catalog = urlsplit(settings.catalog.properties["uri"])
    airflow_db = urlsplit(_interpolate(_env(services["airflow-scheduler"])["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    assert catalog.hostname == airflow_db.hostname == "postgres" and catalog.port == airflow_db.port == 5432
    assert {catalog.path.strip("/"), airflow_db.path.strip("/")} <= created
    assert catalog.path != airflow_db.path, "the Iceberg catalog and Airflow must not share a database"

    # The warehouse is the bucket the init job makes, on the MinIO service's API port.
    endpoint = urlsplit(settings.catalog.properties["s3.endpoint"])
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    assert settings.warehouse.startswith("s3://") and "s3.secret-access-key" in settings.catalog.properties
    mc = " ".join(services["minio-init"]["command"])
    assert "mc mb --ignore-existing" in mc and "http://minio:9000" in mc
    bucket = urlsplit(_interpolate(_env(services["lineage-consumer"])["TIDEMARK__CATALOG__WAREHOUSE"])).netloc
    assert bucket == _interpolate(_env(services["minio-init"])["TIDEMARK_BUCKET"])

    # Published ports are the ones the services listen on; Airflow's workers reach the API server.
    assert "9000:9000" in services["minio"]["ports"] and "--console-address" in services["minio"]["command"]
    execution_api = urlsplit(_env(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution_api.hostname == "airflow-apiserver" and f"{execution_api.port}:{execution_api.port}" in services["airflow-apiserver"]["ports"]
    assert f"localhost:{execution_api.port}/" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    host_listener = next(u for u in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",") if "localhost" in u)
    assert f"{_port_of(host_listener)}:{_port_of(host_listener)}" in services["kafka"]["ports"]

    # Airflow's DAG folder is where its image puts dags/.
    dockerfile = (ROOT / services["airflow-scheduler"]["build"]["dockerfile"]).read_text()
    dags_folder = _env(services["airflow-scheduler"])["AIRFLOW__CORE__DAGS_FOLDER"]
    assert f"dags {dags_folder}" in dockerfile and _env(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "apache-airflow==3.3.2" in dockerfile and "airflow:3.3.2" in dockerfile


def test_tidemark_commands_parse(services: dict[str, Any]) -> None:
    from tidemark.cli import build_parser

    parser = build_parser()
    parser.parse_args(services["lineage-consumer"]["command"])
    init = " ".join(services["init"]["command"])
    assert "airflow db migrate" in init
    parser.parse_args(init.split("tidemark ", 1)[1].split())


def test_start_order_is_enforced_by_health_checks(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: give each dependency a condition"
        for target, spec in deps.items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            condition = spec.get("condition")
            assert condition in {"service_healthy", "service_completed_successfully"}, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), f"{name} waits for {target} to be healthy: give it a healthcheck"
            else:
                assert services[target].get("restart", "no") == "no", f"{target} is a one-shot job: restart must be 'no'"
    # Long-running services can be waited on; the one-shot jobs finish before anything uses them.
    for name in ("kafka", "postgres", "minio", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    assert services["init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["init"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert services["lineage-consumer"]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_no_secret_is_written_in_the_file_or_an_image(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    for name, svc in services.items():
        for key, value in _env(svc).items():
            if SECRET_NAME.search(key) and not key.endswith("_USERS"):
                assert _VAR.fullmatch(value), f"{name}: {key} must come from .env as ${{VAR}}, not be written here"
            for uri in re.findall(r"\w+://\S+", value):
                password = urlsplit(uri).password
                if password:
                    assert _VAR.fullmatch(password), f"{name}: {key} has a literal password in its URI"
            for m in _VAR.finditer(value):
                if m["op"] in (None, ":?", "?"):
                    assert m["name"] in declared, f"{name}: ${{{m['name']}}} is required but not in .env.example"
    for dockerfile in (ROOT / "infra").glob("*Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.split(" ", 1)[0] in ("ENV", "ARG"):
                assert not SECRET_NAME.search(line), f"{dockerfile.name} bakes a secret into the image: {line}"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    # Local conveniences that must never reach a deployment.
    everything = COMPOSE.read_text()
    assert "SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in everything and "ALLOW_ANONYMOUS" not in everything
