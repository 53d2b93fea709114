"""`tidemark up|init|down|status|demo|airflow`: the stack the other commands run on."""

from __future__ import annotations

import argparse
from typing import Any

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
    sp.add_argument(
        "--airflow", action="store_true",
        help="the continuous loop in Airflow: start Airflow and the lineage consumer, land two batches, watch train, promote, drift, renew",
    )
    sp.add_argument("--keep-running", action="store_true", help="with --airflow: keep Airflow and the consumer running afterwards (Ctrl-C stops them)")

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
    info: dict[str, Any] = {
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
    if args.airflow:
        import os

        from tidemark.airflow_demo import run_airflow_demo

        port = int(os.environ.get("AIRFLOW__API__PORT", "8080"))
        result = run_airflow_demo(current_settings(), main, api_port=port, keep_running=args.keep_running, say=lambda m: print(m, flush=True))
        if args.output == "json":
            emit_json(result)
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
        if argv[0] in SERVICES:
            return _run_service(["airflow", *argv], env)
        return subprocess.call(["airflow", *argv], env=env)
    except FileNotFoundError:
        raise ConfigError("the `airflow` command is not installed here; `make venv` installs it (extra `airflow`)") from None


# Airflow commands that run until stopped: Ctrl-C must stop them and every process they started.
SERVICES = ("standalone", "api-server", "scheduler", "dag-processor", "triggerer")
STOP_GRACE_S = 10.0


def _run_service(argv: list[str], env: dict[str, str], grace_s: float = STOP_GRACE_S) -> int:
    """Run a long-running Airflow command in a session of its own; Ctrl-C (or SIGTERM) stops the whole
    session: SIGTERM, then SIGKILL after `grace_s`. `airflow standalone` alone took 35 s and more to
    stop on Ctrl-C (issue 18), and a plain kill of it left its scheduler and API server running."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(argv, env=env, start_new_session=True)

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        progress(f"stopping {' '.join(argv[:2])} (at most {grace_s:.0f} s) ...")
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait_s)
                if sig == signal.SIGTERM:  # the leader is gone; what it left in its session goes too
                    os.killpg(proc.pid, signal.SIGKILL)
                break
            except (subprocess.TimeoutExpired, ProcessLookupError):
                continue
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
