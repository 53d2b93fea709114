"""Configuration: one `tidemark.yaml` plus `TIDEMARK__SECTION__KEY` environment variables.

Search order for the file: `$TIDEMARK_CONFIG`, then `./tidemark.yaml`, then `$TIDEMARK_HOME/tidemark.yaml`.
TIDEMARK_HOME, when not set, is the nearest `.tidemark` folder in the working directory or above
it (as git finds `.git`), else `./.tidemark`.
Precedence, lowest first: built-in defaults, the file, environment variables, explicit arguments to
`load_settings(overrides=...)`. The result is frozen: code never changes settings after load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lakehouse.exceptions import ConfigError

ENV_PREFIX = "TIDEMARK__"
DEFAULT_HOME = ".tidemark"
# Kafka's record batch codecs (kafka.compression).
KAFKA_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True)
class CatalogSettings:
    """The Iceberg catalog. `properties` go to pyiceberg unchanged (uri, warehouse, s3.*, ...)."""

    name: str
    properties: Mapping[str, str]


@dataclass(frozen=True)
class KafkaSettings:
    """Where lineage events travel. No bootstrap address means: use the embedded local broker."""

    bootstrap_servers: str | None
    topic: str = "tidemark.lineage"
    partitions: int = 3
    # How long a producer or consumer waits for a broker before it says which address failed.
    connect_timeout_s: float = 5.0
    # How producers compress record batches (`KAFKA_COMPRESSIONS`). zstd: a broker that stores and
    # serves compressed batches does far less work per event (the local broker's CPU per event fell
    # from ~9 µs to ~0.6 µs in the throughput benchmark: 1.4x the events/s end to end).
    # Subscribers need the codec: Java and librdkafka clients have it; kafka-python needs `zstandard`.
    compression: str = "zstd"
    # kafka-python settings (security_protocol, sasl_mechanism, ssl_cafile, ...): each client Tidemark
    # builds (producer, consumer, admin, watch) gets those it knows (lineage.kafka._config). The keys
    # in KAFKA_SECURITY_KEYS may also sit in the kafka section.
    client: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class LineageSettings:
    namespace: str = "lineage"
    consumer_group: str = "tidemark-lineage-store"
    job_namespace: str = "tidemark"
    producer: str = "https://github.com/tidemark/tidemark"
    # How much history the consumer keeps when it expires snapshots: --as-of reaches back this far.
    # More history means more snapshots in the metadata, and slower commits.
    keep_snapshots_s: float = 3600.0
    # Records per commit of the consumer at most (`lineage consume --batch-size`). A commit costs
    # ~30 ms per lineage table whatever its size, so a small cap makes commits the consumer's main
    # cost under load (1,000: ~120 µs per event; 20,000: ~6 µs). Below ~10,000 events/s the commit
    # interval comes first. Peak memory grows with it: ~600 MB RSS at 20,000 events of 1.4 KB.
    batch_size: int = 20_000
    # The secret that authenticates registry changes (alias moves, archives) carried by events: the
    # consumer applies a move claiming `forced` only with a valid HMAC made with it
    # (`lineage.signing`). Empty: a key file `registry.key` under TIDEMARK_HOME, made on first use.
    # Every producer whose moves the consumer should accept, and the consumer, need the same key.
    registry_key: str | None = None


@dataclass(frozen=True)
class ActorSettings:
    """Who this process acts as (`lineage.actors`). A name here makes every run, registry row and
    alias event carry this service identity (kind "service") instead of the Airflow DAG owner or
    the OS user: set it where a shared account runs Tidemark (a CI job, a scheduler host)."""

    name: str | None = None


@dataclass(frozen=True)
class IngestSettings:
    # None: the suites that ship with the `ingest` package.
    suites_dir: Path | None = None


@dataclass(frozen=True)
class ModelsSettings:
    # Promotion refuses a version whose primary metric is worse than the alias holder's by more than this.
    promotion_threshold: float = 0.01
    # How long automatic renewal waits for the lineage consumer to store the validation its promotion
    # gate needs (a landing's events can still be in Kafka when its asset event starts the renewal).
    lineage_wait_s: float = 120.0
    # Retrain says `within_tolerance` when every metric is within this relative difference of the
    # recorded one (0.01: 1%), the promise "within a few percent"; bit-identical is `reproduced`.
    # The training DAG promotes a model's first version to `production` through the gate when no
    # version holds it yet, so the continuous loop (monitor -> renew) has a holder to watch. Off: the
    # first holder is promoted by hand.
    promote_first_version: bool = False
    retrain_tolerance: float = 0.01
    # Per model, per metric: {"wine": {"accuracy": 0.02, "*": 0.05}} ("*": the model's other metrics).
    tolerances: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    # Aliases that move only by an approved request (`models.approvals`): `models promote` and
    # automatic renewal create a request, and `models approve` by another actor applies it.
    protected_aliases: tuple[str, ...] = ()
    # Per model, its own list instead of `protected_aliases` ({"scratch": []}: nothing protected).
    protected_aliases_per_model: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def is_protected(self, model: str, alias: str) -> bool:
        """Does moving `model@alias` need an approved request?"""
        return alias in self.protected_aliases_per_model.get(model, self.protected_aliases)

    def tolerance(self, model: str, metric: str) -> float:
        """The relative tolerance for `metric` of `model`: its own, else the model's "*", else the default."""
        own = self.tolerances.get(model) or {}
        return float(own.get(metric, own.get("*", self.retrain_tolerance)))


@dataclass(frozen=True)
class NotificationSettings:
    """The `notifications` section: where the example subscriber (`lineage.webhook`) posts the
    notifications it reads from the lineage topic (docs/events.md)."""

    webhook_url: str | None = None
    timeout_s: float = 10.0
    consumer_group: str = "tidemark-notifications"


@dataclass(frozen=True)
class DriftThresholds:
    """When a drift check calls a change drift. A numeric column drifts if psi > psi, or if the KS
    test is significant (p < ks_pvalue) *and* the shift is material (statistic > ks_statistic): on a
    table of millions of rows any trivial shift is significant, so the p-value alone would always fire."""

    psi: float = 0.2
    ks_statistic: float = 0.1
    ks_pvalue: float = 0.01
    category_shift: float = 0.1
    missing_rate_change: float = 0.05
    row_count_change: float = 0.5
    # Schema: how many columns may be added, removed or change type before the table counts as
    # drifted (0: any change). A model that reads every numeric column sees a new one at once.
    schema_changes: float = 0

    def to_json(self) -> dict[str, float]:
        return {f: getattr(self, f) for f in DRIFT_KEYS}


DRIFT_KEYS = tuple(DriftThresholds.__dataclass_fields__)


@dataclass(frozen=True)
class DriftSettings:
    """The `drift` section: default thresholds, and per model name its own (defaults plus its overrides)."""

    defaults: DriftThresholds = field(default_factory=DriftThresholds)
    models: Mapping[str, DriftThresholds] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SparkSettings:
    """The `spark` section: how `lakehouse.spark` builds a SparkSession over the same catalog.

    `jars`: more jars for Spark's classpath (e.g. the AWS SDK bundle an `s3://` warehouse needs);
    `conf`: any Spark setting, passed through unchanged (`spark.driver.memory: 4g`).
    """

    master: str = "local[2]"
    app_name: str = "tidemark"
    jars: tuple[str, ...] = ()
    conf: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


# How the prediction log's local buffer reaches the disk (`serving.log_synchronous`): SQLite's
# synchronous=FULL (an append survives a power cut) or NORMAL (it survives any process death,
# SIGKILL included, but a power cut may lose the last appends; fewer fsyncs).
LOG_SYNCHRONOUS = ("full", "normal")


@dataclass(frozen=True)
class ServingSettings:
    """The `serving` section: how `tidemark serve` answers and follows its alias, and how the
    prediction log (`serving.predlog`) commits its buffered rows to Iceberg: as soon as
    `log_batch_rows` wait, and at least every `log_interval_s` while any wait."""

    # A request body over this many bytes is refused (413) before it is parsed.
    max_body_bytes: int = 1 << 20
    # How often the service re-reads the registry for its alias holder: the safety net for an alias
    # move whose event it missed (broker down, event lost). Events make swaps fast; this makes them sure.
    registry_poll_s: float = 30.0
    # Append every answered record to the prediction log (`serving.predlog`), when that module is installed.
    log_predictions: bool = True
    # 10,000, not 1,000: each commit costs ~45 ms of CPU in the serving process whatever its size
    # (catalog, manifests, lineage run; measured on the wine log), so at 6,000 rows/s (60 requests
    # of 100 records) 1,000-row commits took ~4.5 ms per request, and made files of 1,000 rows.
    log_batch_rows: int = 10000
    log_interval_s: float = 2.0
    log_synchronous: str = "full"


@dataclass(frozen=True)
class Settings:
    home: Path
    catalog: CatalogSettings
    kafka: KafkaSettings
    lineage: LineageSettings
    ingest: IngestSettings
    config_file: Path | None = None
    # Where `home` came from: "env" (TIDEMARK_HOME), "config" (the file's `home`), "found" (the
    # nearest .tidemark at or above the working directory), "default" (./.tidemark).
    home_source: str = "default"
    models: ModelsSettings = field(default_factory=ModelsSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    actor: ActorSettings = field(default_factory=ActorSettings)
    serving: ServingSettings = field(default_factory=ServingSettings)

    @property
    def warehouse(self) -> str:
        return str(self.catalog.properties.get("warehouse", ""))

    @property
    def uses_local_broker(self) -> bool:
        return not self.kafka.bootstrap_servers


def find_home(start: Path | None = None) -> Path | None:
    """The nearest `.tidemark` folder in `start` (default: the working directory) or above it, as git
    finds `.git`; None when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_HOME).is_dir():
            return folder / DEFAULT_HOME
    return None


def _home(env: Mapping[str, str]) -> tuple[Path, str]:
    """TIDEMARK_HOME if set ("env"), else the nearest `.tidemark` at or above the working directory
    ("found"), else `./.tidemark`, made by the first command that writes ("default"). Walking up means
    a command run from a subfolder uses the project's home instead of silently starting an empty one."""
    if env.get("TIDEMARK_HOME"):
        return Path(env["TIDEMARK_HOME"]).expanduser().resolve(), "env"
    found = find_home()
    if found is not None:
        return found, "found"
    return Path(DEFAULT_HOME).resolve(), "default"


def _config_file(home: Path) -> Path | None:
    explicit = os.environ.get("TIDEMARK_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"TIDEMARK_CONFIG points to {path}, which does not exist; fix or unset it")
        return path
    for candidate in (Path("tidemark.yaml"), home / "tidemark.yaml"):
        if candidate.is_file():
            return candidate
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc.__class__.__name__}); fix the file") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (catalog:, kafka:, ...)")
    return data


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    """TIDEMARK__KAFKA__BOOTSTRAP_SERVERS=x -> {"kafka": {"bootstrap_servers": "x"}}."""
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts:
            node[parts[-1]] = value
    return tree


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _as_int(section: str, key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}.{key} must be a whole number, got {value!r}") from exc


def _as_count(section: str, key: str, value: Any) -> int:
    number = _as_int(section, key, value)
    if number < 1:
        raise ConfigError(f"{section}.{key} must be at least 1, got {value!r}")
    return number


def _as_bool(value: Any) -> bool:
    """A boolean setting: YAML gives a bool, the environment text (`text_to_bool`)."""
    return value if isinstance(value, bool) else text_to_bool(str(value))


def text_to_bool(text: str) -> bool:
    """A yes/no setting given as text (environment variables are text)."""
    return text.strip().lower() not in ("false", "0", "no")


def _as_choice(section: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigError(f"{section}.{key} must be one of {', '.join(choices)}, got {value!r}")
    return text


def _as_float(section: str, key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}.{key} must be a number, got {value!r}") from exc


# TLS and SASL settings accepted directly in the kafka section (TIDEMARK__KAFKA__SASL_PLAIN_PASSWORD);
# they go to every kafka-python client with `kafka.client`.
KAFKA_SECURITY_KEYS = frozenset(
    {
        "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
        "sasl_kerberos_service_name", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password",
        "ssl_crlfile", "ssl_check_hostname",
    }
)

_KNOWN = {
    "catalog": None,  # any pyiceberg property is allowed
    "kafka": {"bootstrap_servers", "topic", "partitions", "connect_timeout_s", "compression", "client"} | KAFKA_SECURITY_KEYS,
    "lineage": {"namespace", "consumer_group", "job_namespace", "producer", "keep_snapshots_s", "batch_size", "registry_key"},
    "ingest": {"suites_dir"},
    "models": {"promotion_threshold", "retrain_tolerance", "tolerances", "lineage_wait_s", "promote_first_version",
               "protected_aliases", "protected_aliases_per_model"},
    "notifications": {"webhook_url", "timeout_s", "consumer_group"},
    "drift": {*DRIFT_KEYS, "models"},
    "spark": {"master", "app_name", "jars", "conf"},
    "actor": {"name"},
    "serving": {"max_body_bytes", "registry_poll_s", "log_predictions", "log_batch_rows", "log_interval_s", "log_synchronous"},
    "home": None,
}


def _flatten_catalog(section: Mapping[str, Any]) -> dict[str, Any]:
    """Nested catalog keys become pyiceberg's dotted property names, as pyiceberg's own
    PYICEBERG_CATALOG__ variables do: TIDEMARK__CATALOG__S3__ACCESS_KEY_ID -> `s3.access-key-id`.
    Top-level keys stay as written (`uri`, `warehouse`, `s3.endpoint` written out in YAML)."""
    if not isinstance(section, Mapping):
        raise ConfigError("config section 'catalog' must be a mapping of pyiceberg properties")
    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, Mapping):
            for sub, leaf in _flatten_catalog(value).items():
                out[f"{key}.{str(sub).replace('_', '-')}"] = leaf
        else:
            out[str(key)] = value
    return out


def _drift(raw: Mapping[str, Any]) -> DriftSettings:
    """The `drift` section: thresholds, and per model (`drift.models.<name>.<key>`) overrides."""
    from dataclasses import replace

    defaults = DriftThresholds(**{k: _as_float("drift", k, raw[k]) for k in DRIFT_KEYS if k in raw})
    per_model = raw.get("models") or {}
    if not isinstance(per_model, Mapping):
        raise ConfigError("drift.models must map model names to thresholds, e.g. drift: {models: {wine: {psi: 0.3}}}")
    models: dict[str, DriftThresholds] = {}
    for name, keys in per_model.items():
        if not isinstance(keys, Mapping) or set(keys) - set(DRIFT_KEYS):
            raise ConfigError(f"drift.models.{name} must set only {', '.join(DRIFT_KEYS)}")
        models[str(name)] = replace(defaults, **{k: _as_float(f"drift.models.{name}", k, v) for k, v in keys.items()})
    return DriftSettings(defaults=defaults, models=MappingProxyType(models))


def _spark(raw: Mapping[str, Any]) -> SparkSettings:
    """The `spark` section. `jars` is a list or comma-separated text (from the environment); nested
    `conf` keys join with dots, so TIDEMARK__SPARK__CONF__SPARK__DRIVER__MEMORY=4g sets spark.driver.memory."""
    jars = raw.get("jars") or ()
    if isinstance(jars, str):
        jars = [j for j in (part.strip() for part in jars.split(",")) if j]
    if not isinstance(jars, (list, tuple)):
        raise ConfigError("spark.jars must be a list of jar paths (or comma-separated text)")
    conf = raw.get("conf") or {}
    if not isinstance(conf, Mapping):
        raise ConfigError("spark.conf must be a mapping of Spark settings, e.g. spark: {conf: {spark.driver.memory: 4g}}")

    def flat(node: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in node.items():
            name = f"{prefix}{key}"
            out.update(flat(value, f"{name}.") if isinstance(value, Mapping) else {name: str(value)})
        return out

    return SparkSettings(
        master=str(raw.get("master", SparkSettings.master)),
        app_name=str(raw.get("app_name", SparkSettings.app_name)),
        jars=tuple(str(Path(str(j)).expanduser()) for j in jars),
        conf=MappingProxyType(flat(conf)),
    )


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load settings from defaults, the config file, `TIDEMARK__...` variables and `overrides`."""
    env = os.environ if environ is None else environ
    home, home_source = _home(env)
    config_file = _config_file(home)
    raw: dict[str, Any] = _read_yaml(config_file) if config_file else {}
    raw = _merge(raw, _env_tree(env))
    raw = _merge(raw, overrides or {})
    for section, value in raw.items():
        if section not in _KNOWN:
            raise ConfigError(
                f"unknown config section {section!r} (from {config_file or 'environment'}); "
                f"known sections: {', '.join(sorted(_KNOWN))}"
            )
        keys = _KNOWN[section]
        if keys is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"config section {section!r} must be a mapping")
            unknown = set(value) - keys
            if unknown:
                raise ConfigError(
                    f"unknown key(s) {', '.join(sorted(unknown))} in section {section!r}; known: {', '.join(sorted(keys))}"
                )
    if "home" in raw:
        home, home_source = Path(str(raw["home"])).expanduser().resolve(), "config"

    cat = _flatten_catalog(raw.get("catalog") or {})
    name = str(cat.pop("name", "tidemark"))
    props = {k: str(v) for k, v in cat.items()}
    props.setdefault("uri", f"sqlite:///{home / 'catalog.db'}")
    props.setdefault("warehouse", (home / "warehouse").as_uri())

    k = raw.get("kafka") or {}
    client = k.get("client") or {}
    if not isinstance(client, Mapping):
        raise ConfigError("kafka.client must be a mapping of kafka-python settings")
    client = {**client, **{key: k[key] for key in KAFKA_SECURITY_KEYS if key in k}}
    if isinstance(client.get("ssl_check_hostname"), str):  # from the environment: a string
        client["ssl_check_hostname"] = text_to_bool(client["ssl_check_hostname"])
    kafka = KafkaSettings(
        bootstrap_servers=(str(k["bootstrap_servers"]) if k.get("bootstrap_servers") else None),
        topic=str(k.get("topic", KafkaSettings.topic)),
        partitions=_as_int("kafka", "partitions", k.get("partitions", KafkaSettings.partitions)),
        connect_timeout_s=_as_float("kafka", "connect_timeout_s", k.get("connect_timeout_s", KafkaSettings.connect_timeout_s)),
        compression=_as_choice("kafka", "compression", k.get("compression", KafkaSettings.compression), KAFKA_COMPRESSIONS),
        client=MappingProxyType(dict(client)),
    )
    lin = raw.get("lineage") or {}
    lineage = LineageSettings(
        **{key: str(v) for key, v in lin.items() if key not in ("keep_snapshots_s", "batch_size")},
        keep_snapshots_s=_as_float("lineage", "keep_snapshots_s", lin.get("keep_snapshots_s", LineageSettings.keep_snapshots_s)),
        batch_size=_as_count("lineage", "batch_size", lin.get("batch_size", LineageSettings.batch_size)),
    )
    from lakehouse import redact

    # Whatever prints or logs later can mask these values (see lakehouse/redact.py).
    redact.remember(redact.secrets_in(props) + redact.secrets_in(client) + ([lineage.registry_key] if lineage.registry_key else []))
    ing = raw.get("ingest") or {}
    suites_dir = Path(str(ing["suites_dir"])).expanduser().resolve() if ing.get("suites_dir") else None
    return Settings(
        drift=_drift(raw.get("drift") or {}),
        spark=_spark(raw.get("spark") or {}),
        home=home,
        home_source=home_source,
        catalog=CatalogSettings(name=name, properties=MappingProxyType(props)),
        kafka=kafka,
        lineage=lineage,
        ingest=IngestSettings(suites_dir=suites_dir),
        config_file=config_file,
        models=_models(raw.get("models") or {}),
        notifications=_notifications(raw.get("notifications") or {}),
        actor=_actor(raw.get("actor") or {}),
        serving=_serving(raw.get("serving") or {}),
    )


def _serving(raw: Mapping[str, Any]) -> ServingSettings:
    """The `serving` section; intervals must be positive (0 would spin on the registry or the catalog)."""
    poll = _as_float("serving", "registry_poll_s", raw.get("registry_poll_s", ServingSettings.registry_poll_s))
    if poll <= 0:
        raise ConfigError(f"serving.registry_poll_s must be a number of seconds above 0, got {raw.get('registry_poll_s')!r}")
    interval = _as_float("serving", "log_interval_s", raw.get("log_interval_s", ServingSettings.log_interval_s))
    if not interval > 0:
        raise ConfigError(f"serving.log_interval_s must be a number of seconds above 0, got {raw.get('log_interval_s')!r}")
    return ServingSettings(
        max_body_bytes=_as_count("serving", "max_body_bytes", raw.get("max_body_bytes", ServingSettings.max_body_bytes)),
        registry_poll_s=poll,
        log_predictions=_as_bool(raw.get("log_predictions", ServingSettings.log_predictions)),
        log_batch_rows=_as_count("serving", "log_batch_rows", raw.get("log_batch_rows", ServingSettings.log_batch_rows)),
        log_interval_s=interval,
        log_synchronous=_as_choice("serving", "log_synchronous", raw.get("log_synchronous", ServingSettings.log_synchronous), LOG_SYNCHRONOUS),
    )


def _notifications(raw: Mapping[str, Any]) -> NotificationSettings:
    url = raw.get("webhook_url")
    if url and not str(url).startswith(("http://", "https://")):
        raise ConfigError(f"notifications.webhook_url must be an http:// or https:// URL, got {url!r}")
    return NotificationSettings(
        webhook_url=str(url) if url else None,
        timeout_s=_as_float("notifications", "timeout_s", raw.get("timeout_s", NotificationSettings.timeout_s)),
        consumer_group=str(raw.get("consumer_group", NotificationSettings.consumer_group)),
    )


def _aliases(where: str, value: Any) -> tuple[str, ...]:
    """A list of alias names: YAML gives a list, the environment comma-separated text."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"models.{where} must be a list of alias names, e.g. [production] (or production,staging)")
    return tuple(value)


def _actor(raw: Mapping[str, Any]) -> ActorSettings:
    from lakehouse import names

    name = str(raw.get("name") or "").strip()
    if name and not names.is_valid("owner", name):
        raise ConfigError(f"actor.name {names.shown(name)} is not allowed: {names.RULES['owner'].text}; e.g. svc-renewal")
    return ActorSettings(name=name or None)


def _models(raw: Mapping[str, Any]) -> ModelsSettings:
    """The `models` section; `tolerances.<model>.<metric>` (or `*`) are relative tolerances >= 0."""

    def tolerance(where: str, value: Any) -> float:
        number = _as_float("models", where, value)
        if number < 0:
            raise ConfigError(f"models.{where} must be a relative tolerance of 0 or more (0.01 is 1%), got {value!r}")
        return number

    per_model = raw.get("tolerances") or {}
    if not isinstance(per_model, Mapping) or not all(isinstance(v, Mapping) for v in per_model.values()):
        raise ConfigError("models.tolerances must map model names to {metric: tolerance}, e.g. models: {tolerances: {wine: {accuracy: 0.02}}}")
    tolerances = {
        str(name): MappingProxyType({str(metric): tolerance(f"tolerances.{name}.{metric}", v) for metric, v in metrics.items()})
        for name, metrics in per_model.items()
    }
    return ModelsSettings(
        promotion_threshold=_as_float("models", "promotion_threshold", raw.get("promotion_threshold", ModelsSettings.promotion_threshold)),
        retrain_tolerance=tolerance("retrain_tolerance", raw.get("retrain_tolerance", ModelsSettings.retrain_tolerance)),
        tolerances=MappingProxyType(tolerances),
        lineage_wait_s=_as_float("models", "lineage_wait_s", raw.get("lineage_wait_s", ModelsSettings.lineage_wait_s)),
        promote_first_version=_as_bool(raw.get("promote_first_version", False)),
        protected_aliases=_aliases("protected_aliases", raw.get("protected_aliases")),
        protected_aliases_per_model=MappingProxyType(
            {str(m): _aliases(f"protected_aliases_per_model.{m}", v) for m, v in _per_model_aliases(raw).items()}
        ),
    )


def _per_model_aliases(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    per_model = raw.get("protected_aliases_per_model") or {}
    if not isinstance(per_model, Mapping):
        raise ConfigError("models.protected_aliases_per_model must map model names to alias lists, e.g. {wine: [production]}")
    return per_model
