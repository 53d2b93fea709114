"""`tidemark up|init|down|status|demo|airflow`: the stack the other commands run on."""

from __future__ import annotations

import argparse

from lakehouse.exceptions import ConfigError, TidemarkError
from tidemark.commands.arguments import Subcommands, add_command, current_settings
from tidemark.output import emit_json, progress


def register(sub: Subcommands) -> None:
    add_command(sub, "up", cmd_up, "start the embedded stack (local broker, topic, lineage tables)")
    add_command(sub, "init", cmd_init, "create the lineage topic and tables on configured Kafka and catalog (idempotent)")
    add_command(sub, "down", cmd_down, "stop the local broker")
    add_command(sub, "status", cmd_status, "show catalog, warehouse, Kafka and topic in use")

    sp = add_command(sub, "demo", cmd_demo, "run the walking-skeleton scenario end to end on the embedded stack")
    sp.add_argument("--landing-files", action="store_true", help="only write the demo's data files where the ingest DAGs look (dags/sources.yaml)")

    sp = add_command(sub, "airflow", cmd_airflow, "run an Airflow command with Tidemark's DAGs and AIRFLOW_HOME under TIDEMARK_HOME")
    sp.add_argument("airflow_args", nargs=argparse.REMAINDER, metavar="ARGS", help="e.g. standalone, dags list, dags test ingest_wine")


def cmd_up(args: argparse.Namespace) -> int:
    from lakehouse.catalog import load_catalog
    from lineage import broker
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    settings = current_settings()
    if settings.uses_local_broker:
        state = broker.start(settings)
        progress(f"local broker running at {state.bootstrap_servers} (pid {state.pid})")
    else:
        progress(f"using the configured Kafka at {settings.kafka.bootstrap_servers}; starting nothing")
    ensure_topic(settings)
    ensure_tables(load_catalog(settings), settings)
    return cmd_status(args)


def cmd_init(args: argparse.Namespace) -> int:
    """Prepare configured infrastructure, starting nothing: the lineage topic, namespace and tables.
    Idempotent, so a deployment's init job can run it on every `docker compose up`."""
    from lakehouse.catalog import load_catalog
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    settings = current_settings()
    if settings.uses_local_broker:
        raise TidemarkError("tidemark init prepares a configured Kafka: set TIDEMARK__KAFKA__BOOTSTRAP_SERVERS (or use `tidemark up`)")
    ensure_topic(settings)
    tables = ensure_tables(load_catalog(settings), settings)
    done = {"topic": settings.kafka.topic, "namespace": settings.lineage.namespace, "tables": sorted(tables)}
    if args.output == "json":
        emit_json(done)
    else:
        names = ", ".join(f"{settings.lineage.namespace}.{t}" for t in done["tables"])
        print(f"topic {settings.kafka.topic} and lineage tables {names} are ready")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from lineage import broker
    from lineage.outbox import OUTBOX_FILE, Outbox

    settings = current_settings()
    stopped = broker.stop(settings)
    kept = 0
    if (settings.home / OUTBOX_FILE).exists():
        box = Outbox(settings)
        kept = box.pending() + box.unacknowledged()
    if kept:
        # The local broker's log is in memory and goes with it; the outbox still has every event
        # the lineage store does not hold, and sends them again to the next broker.
        progress(
            f"warning: {kept} lineage events are not in the lineage store yet; they stay in the outbox and are sent "
            "again when the broker starts (`tidemark up`, then `tidemark lineage consume --once`)"
        )
    if args.output == "json":
        emit_json({"stopped": stopped, "kept_events": kept})
    else:
        print("local broker stopped" if stopped else "no local broker was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lakehouse.redact import redact, redact_config
    from lineage import broker

    settings = current_settings()
    state = broker.read_state(settings) if settings.uses_local_broker else None
    info = {
        "home": str(settings.home),
        "config_file": str(settings.config_file) if settings.config_file else None,
        "catalog": {"name": settings.catalog.name, **redact_config(settings.catalog.properties)},
        "catalog_uri": redact(settings.catalog.properties.get("uri", "")),
        "warehouse": settings.warehouse,
        "kafka": {
            "bootstrap_servers": settings.kafka.bootstrap_servers or (state.bootstrap_servers if state else None),
            "local_broker": None if not settings.uses_local_broker else ({"pid": state.pid, "port": state.port} if state else "stopped"),
            "topic": settings.kafka.topic,
            "client": redact_config(settings.kafka.client),
        },
        "lineage_topic": settings.kafka.topic,
    }
    if args.output == "json":
        emit_json(info)
    else:
        kafka = info["kafka"]
        print(f"home       {info['home']}")
        print(f"catalog    {settings.catalog.name} at {info['catalog_uri']}")
        print(f"warehouse  {info['warehouse']}")
        print(f"kafka      {kafka['bootstrap_servers'] or '(local broker stopped: run `tidemark up`)'}")
        print(f"topic      {kafka['topic']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tidemark.cli import main  # each step of the scenario is a real `tidemark` command
    from tidemark.demo import run_demo, write_landing_files

    if args.landing_files:
        for path in write_landing_files(current_settings().home):
            print(path)
        return 0
    return run_demo(main)


def cmd_airflow(args: argparse.Namespace) -> int:
    """Run the Airflow CLI in Tidemark's Airflow environment (AIRFLOW_HOME under TIDEMARK_HOME, dags/)."""
    import subprocess

    from tidemark import airflow_env

    env = airflow_env.environ(current_settings())
    argv = list(args.airflow_args)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ConfigError("give Airflow's arguments, e.g. `tidemark airflow standalone` or `tidemark airflow dags list`")
    if argv[0] in ("standalone", "api-server"):
        password = airflow_env.admin_password(env)
        port = env.get("AIRFLOW__API__PORT", "8080")
        for flag in ("--port", "-p"):
            if flag in argv[:-1]:
                port = argv[argv.index(flag) + 1]
        progress(f"Airflow UI: http://localhost:{port}  login: {airflow_env.ADMIN} / {password}")
        progress(f"AIRFLOW_HOME={env['AIRFLOW_HOME']}  DAGs: {env['AIRFLOW__CORE__DAGS_FOLDER']}")
    try:
        return subprocess.call(["airflow", *argv], env=env)
    except FileNotFoundError:
        raise ConfigError("the `airflow` command is not installed here; `make venv` installs it (extra `airflow`)") from None
