"""docker-compose.yml checked against the code, since no Docker engine runs here to try it.

Each check is one way a deployment breaks on `docker compose up`: an env var the config never reads,
a topic or port that does not match, a dependency on a service without a health check, a secret
written into the file or an image.
"""

from __future__ import annotations

import re
import subprocess
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


def _heredoc(path: Path, opener: str) -> dict[str, str]:
    """The `key=value` lines of the heredoc that starts with OPENER in a shell script."""
    text = path.read_text()
    body = text.split(opener, 1)[1].split("\nPROPS\n", 1)[0]
    lines = [line for line in body.splitlines()[1:] if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def _kafka_properties() -> dict[str, str]:
    """The broker's settings, as infra/kafka/start.sh writes them."""
    return _heredoc(ROOT / "infra" / "kafka" / "start.sh", 'cat > "$config" <<PROPS')


def _acls() -> list[dict[str, Any]]:
    """Each `kafka-acls.sh --add` of infra/kafka/init.sh: principal, operations, resource."""
    grants = []
    for line in (ROOT / "infra" / "kafka" / "init.sh").read_text().splitlines():
        if line.startswith('"${acl[@]}"'):
            words = line.split()
            ops = {words[i + 1] for i, w in enumerate(words) if w == "--operation"}
            principal = words[words.index("--allow-principal") + 1]
            kind = next(w for w in words if w in ("--topic", "--group", "--cluster"))
            grants.append({"principal": principal, "operations": ops, "resource": kind.lstrip("-"),
                           "name": words[words.index(kind) + 1] if kind != "--cluster" else ""})
    return grants


def test_the_required_services_are_there_with_pinned_images(services: dict[str, Any]) -> None:
    expected = {
        "preflight", "kafka", "kafka-init", "postgres", "minio", "minio-init", "redis", "init", "lineage-consumer", "serve",
        "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
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
    assert {services[n]["command"][0] for n in airflow} == {"api-server", "scheduler", "dag-processor", "triggerer", "celery"}


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
    assert {n for n, _ in seen} >= {"init", "lineage-consumer", "airflow-scheduler", "serve"}
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
    kafka = _kafka_properties()
    # Bootstrap: a listener the broker advertises under the service's own name.
    (bootstrap,) = settings.kafka.bootstrap_servers.split(",")
    assert bootstrap in {urlsplit(u).netloc for u in kafka["advertised.listeners"].split(",")}
    assert bootstrap.split(":")[0] == "kafka"
    assert any(_port_of(urlsplit(u).netloc) == _port_of(bootstrap) for u in kafka["listeners"].split(","))
    # Single node: nothing may ask for more replicas than there are brokers.
    assert all(kafka[k] == "1" for k in kafka if k.endswith(("replication.factor", "min.isr", "min.insync.replicas")))
    assert kafka["process.roles"] == "broker,controller" and "kafka-data:" in services["kafka"]["volumes"][0]
    assert kafka["log.dirs"] == services["kafka"]["volumes"][0].split(":")[1]
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
    mc = (ROOT / "infra" / "minio" / "init.sh").read_text()
    assert 'mc mb --ignore-existing "local/$TIDEMARK_BUCKET"' in mc and "http://minio:9000" in mc
    bucket = urlsplit(_interpolate(_env(services["lineage-consumer"])["TIDEMARK__CATALOG__WAREHOUSE"])).netloc
    assert bucket == _interpolate(_env(services["minio-init"])["TIDEMARK_BUCKET"])

    # Published ports are the ones the services listen on; Airflow's workers reach the API server.
    assert "127.0.0.1:9000:9000" in services["minio"]["ports"] and "--console-address" in services["minio"]["command"]
    execution_api = urlsplit(_env(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution_api.hostname == "airflow-apiserver" and f"127.0.0.1:{execution_api.port}:{execution_api.port}" in services["airflow-apiserver"]["ports"]
    assert f"localhost:{execution_api.port}/" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    host_listener = next(u for u in kafka["advertised.listeners"].split(",") if "localhost" in u)
    assert f"127.0.0.1:{_port_of(host_listener)}:{_port_of(host_listener)}" in services["kafka"]["ports"]

    # Airflow's DAG folder is where its image puts dags/.
    dockerfile = (ROOT / services["airflow-scheduler"]["build"]["dockerfile"]).read_text()
    dags_folder = _env(services["airflow-scheduler"])["AIRFLOW__CORE__DAGS_FOLDER"]
    assert f"dags {dags_folder}" in dockerfile and _env(services["airflow-scheduler"])["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "apache-airflow==3.3.2" in dockerfile and "airflow:3.3.2" in dockerfile


def test_tidemark_commands_parse(services: dict[str, Any]) -> None:
    from tidemark.cli import build_parser

    parser = build_parser()
    parser.parse_args(services["lineage-consumer"]["command"])
    serve = parser.parse_args([_interpolate(word) for word in services["serve"]["command"]])
    assert (serve.host, serve.port) == ("0.0.0.0", 8000)  # inside the container; published on loopback only
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
    for name in ("kafka", "postgres", "minio", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "serve"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    assert services["serve"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["init"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
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


# -- Locked down by default (issue 16, item 11). Each rule is checked on the files as written, since
# no Docker engine runs here; the shell scripts are at least parsed by the shells that run them.

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Base images whose digest could not be looked up from this machine (no registry is reachable). Each
# entry says why; the test fails if one is pinned later and still listed, or if any other is unpinned.
UNPINNED_BASES = {
    "apache/airflow:3.3.2-python3.11": "no published digest could be verified offline; pin it with "
    "`docker buildx imagetools inspect apache/airflow:3.3.2-python3.11` where a registry is reachable",
}


def test_ports_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert set(published) == {"kafka", "minio", "airflow-apiserver", "serve"}, "publish only what a user needs"
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface: prefix 127.0.0.1:"
    assert not services["postgres"].get("ports"), "PostgreSQL is for the services on the compose network only"


def test_kafka_authenticates_every_listener_a_host_or_container_can_reach() -> None:
    props = _kafka_properties()
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    for listener in props["listeners"].split(","):
        name, address = listener.split("://")
        host = address.rsplit(":", 1)[0]
        if host in ("localhost", "127.0.0.1"):
            continue  # the container's own loopback: the controller, reachable by this broker only
        assert protocols[name].startswith("SASL_"), f"listener {name} ({address}) has no authentication"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert "CONTROLLER://localhost:" in props["listeners"], "the plaintext controller listener must stay on loopback"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512" and props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert set(props["super.users"].split(";")) == {"User:admin", "User:ANONYMOUS"}
    start = (ROOT / "infra" / "kafka" / "start.sh").read_text()
    for user in ("admin", "producer", "consumer", "serve"):
        assert f"--add-scram \"SCRAM-SHA-512=[name={user}," in start, f"SCRAM user {user} is not created at format time"


def test_producers_write_and_only_the_consumer_group_reads(services: dict[str, Any]) -> None:
    from lakehouse.config import KafkaSettings, LineageSettings

    topic, group = KafkaSettings.topic, LineageSettings.consumer_group
    init_env = _env(services["kafka-init"])
    assert (init_env["TOPIC"], init_env["GROUP"]) == (topic, group)
    grants = _acls()
    by = {(g["principal"], g["resource"], g["name"]): g["operations"] for g in grants}
    assert by == {
        ("User:producer", "topic", '"$TOPIC"'): {"Write", "Describe"},
        ("User:producer", "group", '"$GROUP"'): {"Describe"},
        ("User:consumer", "topic", '"$TOPIC"'): {"Read", "Describe"},
        ("User:consumer", "group", '"$GROUP"'): {"Read"},
        # `tidemark serve`: follows alias moves (reads, as groups tidemark-serve.*), writes its deployment runs.
        ("User:serve", "topic", '"$TOPIC"'): {"Read", "Write", "Describe"},
        ("User:serve", "group", "tidemark-serve."): {"Read"},
    }, f"ACLs are not least-privilege: {by}"
    init = (ROOT / "infra" / "kafka" / "init.sh").read_text()
    assert "--group tidemark-serve. --resource-pattern-type prefixed" in init and "for user in producer consumer serve; do" in init
    # Which principal each service logs in as: Airflow (and init) produce, the lineage consumer reads.
    for name, svc in services.items():
        env = _env(svc)
        user = env.get("TIDEMARK__KAFKA__SASL_PLAIN_USERNAME")
        if any(k.startswith("TIDEMARK__") for k in env):
            assert env["TIDEMARK__KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
            assert env["TIDEMARK__KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512", name
            expected = {"lineage-consumer": "consumer", "serve": "serve"}.get(name, "producer")
            assert user == expected, f"{name} logs in to Kafka as {user!r}, expected {expected!r}"
            assert env["TIDEMARK__KAFKA__SASL_PLAIN_PASSWORD"] == f"${{KAFKA_{expected.upper()}_PASSWORD:?set KAFKA_{expected.upper()}_PASSWORD in .env}}"
        if "KAFKA_ADMIN_PASSWORD" in env:
            assert name in {"kafka", "kafka-init", "preflight"}, f"{name} must not hold Kafka's admin password"


def test_tidemark_holds_a_bucket_scoped_minio_user_not_the_root_keys(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        env = _env(svc)
        if any(k.startswith("MINIO_ROOT") for k in env):
            assert name in {"minio", "minio-init", "preflight"}, f"{name} must not hold MinIO's root credentials"
        if "TIDEMARK__CATALOG__S3__ACCESS_KEY_ID" in env:
            assert "TIDEMARK_S3_ACCESS_KEY" in env["TIDEMARK__CATALOG__S3__ACCESS_KEY_ID"]
            assert "TIDEMARK_S3_SECRET_KEY" in env["TIDEMARK__CATALOG__S3__SECRET_ACCESS_KEY"]
    script = (ROOT / "infra" / "minio" / "init.sh").read_text()
    policy = script.split("<<JSON", 1)[1].split("\nJSON\n", 1)[0]
    import json

    document = json.loads(policy.replace("$TIDEMARK_BUCKET", "tidemark"))
    resources = {r for statement in document["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::tidemark", "arn:aws:s3:::tidemark/*"}, "the policy must name the warehouse bucket only"
    actions = {a for statement in document["Statement"] for a in statement["Action"]}
    assert not any(a.startswith("admin:") or a == "s3:*" for a in actions)
    assert 'mc admin policy attach local tidemark-warehouse --user "$TIDEMARK_S3_ACCESS_KEY"' in script


def test_every_container_runs_as_a_non_root_user(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        user = str(svc.get("user", ""))
        assert user, f"{name}: set `user:` to the image's unprivileged user"
        assert user.split(":")[0] not in ("0", "root"), f"{name} runs as root"
    for dockerfile in (ROOT / "infra").glob("*Dockerfile"):
        users = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), f"{dockerfile.name} ends as root"


def test_images_are_pinned_by_digest(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        if not svc.get("build"):
            assert _DIGEST.search(svc["image"]), f"{name}: pin {svc['image']} by digest (image@sha256:...)"
    bases = [line.split()[1] for dockerfile in (ROOT / "infra").glob("*Dockerfile")
             for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]
    for base in bases:
        if base in UNPINNED_BASES:
            continue
        assert _DIGEST.search(base), f"FROM {base}: pin the base image by digest"
    assert set(UNPINNED_BASES) <= set(bases), "an UNPINNED_BASES entry is pinned now or gone: remove it"


def test_build_contexts_leave_out_secrets_state_and_environments() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    for entry in (".env", ".tidemark/", "**/.tidemark/", ".venv/", ".git/"):
        assert entry in ignored, f".dockerignore must list {entry}"
    # Every build of the stack uses the repository root as its context, where that file applies.
    contexts = {svc["build"].get("context") for svc in services_of_compose().values() if svc.get("build")}
    assert contexts == {"."}


def services_of_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, str(ROOT / "infra" / "preflight.py")], env=env, capture_output=True, text=True, timeout=60)


def test_preflight_refuses_the_placeholders_of_env_example(services: dict[str, Any]) -> None:
    example = _env_example()
    result = _preflight(example)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    placeholders = {k for k, v in example.items() if "change-me" in v}
    assert placeholders >= {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "TIDEMARK_S3_SECRET_KEY", "KAFKA_PRODUCER_PASSWORD", "AIRFLOW_FERNET_KEY"}
    for name in placeholders:
        assert any(line.startswith(f"preflight: {name} still has the placeholder") for line in lines), name
    # The preflight service sees every secret, and every other service waits for it.
    assert placeholders <= set(_env(services["preflight"]))
    for name in ("kafka", "postgres", "minio"):
        assert services[name]["depends_on"]["preflight"]["condition"] == "service_completed_successfully"


def test_preflight_accepts_real_values_and_names_each_weak_one() -> None:
    import secrets

    from cryptography.fernet import Fernet

    good = dict(_env_example())
    for key, value in good.items():
        if "change-me" in value:
            good[key] = secrets.token_hex(16)
    good["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
    ok = _preflight(good)
    assert (ok.returncode, ok.stderr) == (0, "")

    weak = dict(good, KAFKA_CONSUMER_PASSWORD=good["KAFKA_PRODUCER_PASSWORD"], POSTGRES_PASSWORD="short",
                AIRFLOW_FERNET_KEY="not-a-key", TIDEMARK_S3_ACCESS_KEY=good["MINIO_ROOT_USER"])
    weak.pop("KAFKA_ADMIN_PASSWORD")
    result = _preflight(weak)
    assert result.returncode == 1
    problems = sorted(line.split()[1] for line in result.stderr.splitlines())
    assert problems == sorted(["KAFKA_ADMIN_PASSWORD", "POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "TIDEMARK_S3_ACCESS_KEY"]), result.stderr
    for line in result.stderr.splitlines():
        assert good["KAFKA_PRODUCER_PASSWORD"] not in line, "preflight must not print a secret"


@pytest.mark.parametrize("script, shell", [("kafka/start.sh", "bash"), ("kafka/init.sh", "bash"), ("minio/init.sh", "sh")])
def test_the_init_scripts_parse_and_refuse_missing_settings(script: str, shell: str, tmp_path: Path) -> None:
    path = ROOT / "infra" / script
    assert subprocess.run([shell, "-n", str(path)], capture_output=True).returncode == 0
    # With no settings, each stops at its first line of checks, before touching anything.
    result = subprocess.run([shell, str(path)], env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    # bash says "parameter null or not set", dash "parameter not set or null": either names the variable.
    assert result.returncode != 0 and re.search(r"(\w+): parameter (null or not set|not set or null)", result.stderr), result.stderr


# -- Airflow on Celery workers (issue 23, item 2): the compose stack runs the CeleryExecutor.


def test_airflow_runs_on_two_celery_workers_with_redis_and_postgres(services: dict[str, Any]) -> None:
    airflow = {n: _env(s) for n, s in services.items() if n.startswith("airflow-")}
    assert {env["AIRFLOW__CORE__EXECUTOR"] for env in airflow.values()} == {"CeleryExecutor"}
    env = airflow["airflow-worker"]
    broker = urlsplit(_interpolate(env["AIRFLOW__CELERY__BROKER_URL"]))
    assert (broker.scheme, broker.hostname, broker.port, broker.password) == ("redis", "redis", 6379, "dummy-redis_password")
    backend = urlsplit(_interpolate(env["AIRFLOW__CELERY__RESULT_BACKEND"]).removeprefix("db+"))
    metadata = urlsplit(_interpolate(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    assert (backend.hostname, backend.path) == (metadata.hostname, metadata.path) == ("postgres", "/airflow")
    worker = services["airflow-worker"]
    assert worker["command"] == ["celery", "worker"] and worker["deploy"]["replicas"] == 2
    assert "inspect ping" in " ".join(worker["healthcheck"]["test"])
    for name in ("airflow-worker", "airflow-scheduler"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert ".[s3,airflow,celery]" in (ROOT / "infra" / "airflow.Dockerfile").read_text()
    # The worker command is one Airflow knows, with the provider the image installs.
    import shutil
    import sys

    airflow_bin = Path(sys.executable).with_name("airflow")
    if not airflow_bin.exists():
        pytest.skip("no airflow in this environment")
    result = subprocess.run([str(airflow_bin), *worker["command"], "--help"], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(Path(shutil.os.environ.get("TMPDIR", "/tmp")) / "tm-compose-airflow"),
                                 "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__CORE__LOAD_EXAMPLES": "false"})
    assert result.returncode == 0 and "--concurrency" in result.stdout, result.stderr[-2000:]


def test_redis_takes_its_password_from_stdin_and_the_health_check_uses_it(services: dict[str, Any], tmp_path: Path) -> None:
    import shutil
    import socket
    import time

    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.skip("redis-server/redis-cli are not installed here")
    redis = services["redis"]
    # What compose runs: `$$` is compose's escape for a literal `$`.
    shell, flag, script = (part.replace("$$", "$") for part in redis["entrypoint"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "REDIS_PASSWORD": "s3cret-for-the-test-only"}
    server = subprocess.Popen([shell, flag, f"{script} --port {port} --bind 127.0.0.1 --dir {tmp_path}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        check = " ".join(redis["healthcheck"]["test"][1:]).replace("$$", "$").replace("redis-cli", f"redis-cli -p {port}")
        deadline = time.monotonic() + 20
        while subprocess.run(["sh", "-c", check], env=env).returncode != 0:
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.2)
        denied = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=10)
        assert "NOAUTH" in denied.stdout + denied.stderr, "redis answers without the password"
        # No process on the machine shows the password in its command line.
        assert "s3cret-for-the-test-only" not in subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    finally:
        server.terminate()
        server.wait(timeout=10)


# -- Serving (issue 21, item 6): `tidemark serve` as a compose service.


def test_serve_answers_on_loopback_is_health_checked_and_follows_its_own_group(services: dict[str, Any]) -> None:
    from serving.follow import group_id

    svc = services["serve"]
    assert svc["ports"] == ["127.0.0.1:8000:8000"]
    test = " ".join(svc["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in test and svc["healthcheck"]["test"][0] == "CMD"
    assert svc["build"]["dockerfile"] == "infra/Dockerfile" and svc["user"] == "10001:10001"
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert "COPY serving ./serving" in dockerfile, "the image must hold the serving package"
    # The group the ACL grants is the prefix of the one the follower uses.
    assert group_id("wine", "production").startswith("tidemark-serve.")
    assert "KAFKA_SERVE_PASSWORD" in (ROOT / ".env.example").read_text()


def test_every_tidemark_home_is_on_a_named_volume_owned_by_its_image(compose: dict[str, Any], services: dict[str, Any]) -> None:
    """The home holds the outbox (events not yet acknowledged), runs in flight and the serving buffer
    (predictions answered, not yet committed): in a container's own layer, a re-created container would
    lose them. A named volume mounted there keeps them; the image creates the folder for its user, so
    the volume starts owned by it."""
    dockerfiles = {
        "infra/Dockerfile": "chown tidemark /var/lib/tidemark",
        "infra/airflow.Dockerfile": "chown airflow:0 /var/lib/tidemark",
    }
    for name, env in _tidemark_services(services):
        home = env.get("TIDEMARK_HOME")
        if home is None or services[name].get("restart") == "no":
            continue  # one-shot containers keep nothing between runs
        mounts = [str(v) for v in services[name].get("volumes", [])]
        named = [m for m in mounts if m.endswith(f":{home}") and not m.startswith((".", "/"))]
        assert named, f"{name}: TIDEMARK_HOME {home} is not on a named volume"
        assert named[0].split(":")[0] in (compose.get("volumes") or {}), f"{name}: volume {named[0]} is not declared"
        dockerfile = services[name]["build"]["dockerfile"]
        assert dockerfiles[dockerfile] in (ROOT / dockerfile).read_text(), f"{dockerfile} must create {home} for its user"
