"""The `tidemark` command. It parses arguments and wires the packages; it holds no logic.

Heavy libraries (pyiceberg, Great Expectations, scikit-learn) are imported inside the commands
that use them, so `tidemark --help` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tidemark.output import emit_json, progress, table

Handler = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Any:
    from lakehouse.config import load_settings

    return load_settings()


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    from lakehouse.exceptions import TidemarkError

    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TidemarkError(f"{flag} {item!r} must look like KEY=VALUE")
        out[key] = value
    return out


# -- stack ------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from lakehouse.catalog import load_catalog
    from lineage import broker
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    settings = _settings(args)
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
    from lakehouse.exceptions import TidemarkError
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables

    settings = _settings(args)
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

    settings = _settings(args)
    stopped = broker.stop(settings)
    if args.output == "json":
        emit_json({"stopped": stopped})
    else:
        print("local broker stopped" if stopped else "no local broker was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from lineage import broker
    from lakehouse.redact import redact, redact_config

    settings = _settings(args)
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


# -- ingest -----------------------------------------------------------------------------------------


QUARANTINE_ACTIONS = ("list", "show", "drop")


def cmd_ingest(args: argparse.Namespace) -> int:
    # `tidemark ingest quarantine list|show|drop ...` shares the word `ingest` with
    # `tidemark ingest FILE...`: a first positional `quarantine` followed by an action selects it
    # (a file literally named `quarantine` lands as ./quarantine).
    if len(args.source) >= 2 and args.source[0] == "quarantine" and args.source[1] in QUARANTINE_ACTIONS:
        return _cmd_quarantine(args, args.source[1], args.source[2:])
    from ingest.exceptions import GateFailedError
    from ingest.land import land
    from ingest.sources import expand
    from lakehouse.exceptions import TidemarkError
    from lakehouse.tables import TableName
    from tidemark.progressbar import Bar

    if not args.table:
        raise TidemarkError("tidemark ingest: --table NS.TABLE is required to land a file")
    TableName.parse(args.table)
    settings = _settings(args)
    results: list[Any] = []
    try:
        for source in args.source:
            for location in expand(source, settings.catalog.properties):  # each file of a glob: its own landing
                bar = Bar(f"landing {location}")

                def say(message: str, bar: Bar = bar) -> None:
                    bar.close()  # end the bar's line before a progress line
                    progress(message)

                try:
                    results.append(
                        land(
                            settings, location, args.table, suite_file=args.suite, fmt=args.format, force=args.force,
                            strict=args.strict, progress=say, advance=bar,
                        )
                    )
                except GateFailedError as exc:
                    bar.close()
                    # The error is one line; the failing rows it names are shown above it.
                    for o in (exc.result.failures() if exc.result else []):
                        for row in o.rows[:3]:
                            print(f"  failing row ({o.expectation}{' on ' + o.column if o.column else ''}): {row}", file=sys.stderr)
                    raise
                finally:
                    bar.close()
    finally:
        # Files landed before a failure stay landed: say so, then the error follows.
        _print_landings(args, results)
    return 0


def _print_landings(args: argparse.Namespace, results: list[Any]) -> None:
    if args.output == "json":
        if results:
            # A list whenever the command names several files (a glob, several SOURCEs), whatever landed.
            several = len(args.source) > 1 or any(set("*?[") & set(src) for src in args.source)
            emit_json([r.to_json() for r in results] if several else results[0].to_json())
    for result in results:
        if args.output == "json":
            pass
        elif result.skipped:
            print(f"{result.source} is already in {result.table} (snapshot {result.snapshot_id}); nothing landed (--force lands it again)")
        else:
            gate = f", gate {result.gate.suite} passed ({len(result.gate.outcomes)} expectations)" if result.gate else ", no gate"
            print(f"landed {result.rows:,} rows into {result.table}: snapshot {result.snapshot_id}, run {result.run_id}{gate}")
            if result.data_docs:
                print(f"  validation report: {result.data_docs}")
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)


def _cmd_quarantine(args: argparse.Namespace, action: str, rest: list[str]) -> int:
    from ingest import quarantine
    from lakehouse.exceptions import TidemarkError

    settings = _settings(args)
    if action == "list":
        if len(rest) > 1:
            raise TidemarkError("usage: tidemark ingest quarantine list [NS.TABLE]")
        items = quarantine.list_quarantined(settings, (rest[0] if rest else None) or args.table)
        if args.output == "json":
            emit_json([q.to_json() for q in items])
        else:
            rows = [
                {
                    "table": q.table, "branch": q.branch, "rows": q.rows, "source": q.source,
                    "failed": ", ".join(f"{f.get('expectation')}{'(' + f['column'] + ')' if f.get('column') else ''}" for f in q.failures),
                    "at": q.created_at,
                }
                for q in items
            ]
            print(table(rows, ["table", "branch", "rows", "source", "failed", "at"], max_width=70))
        return 0
    if len(rest) != 2:
        raise TidemarkError(f"usage: tidemark ingest quarantine {action} NS.TABLE BRANCH (see `tidemark ingest quarantine list`)")
    if action == "show":
        q = quarantine.show(settings, rest[0], rest[1])
        if args.output == "json":
            emit_json(q.to_json())
        else:
            print(f"{q.table} branch {q.branch}: snapshot {q.snapshot_id}, {q.rows} rows, at {q.created_at}")
            print(f"  source  {q.source}")
            print(f"  sha256  {q.sha256}")
            print(f"  run     {q.run_id}")
            print(f"  suite   {q.suite}")
            for f in q.failures:
                count = f" {f['unexpected_count']} rows" if f.get("unexpected_count") is not None else ""
                col = f" on {f['column']}" if f.get("column") else ""
                print(f"  failed  {f.get('expectation')}{col}:{count} e.g. {f.get('sample', [])[:3]}")
            if q.data_docs:
                print(f"  report  {q.data_docs}")
            for r in q.sample_rows:
                print(f"  row     {r}")
        return 0
    q = quarantine.drop(settings, rest[0], rest[1])
    emit_json({"dropped": q.branch, "table": q.table}) if args.output == "json" else print(f"dropped {q.branch} of {q.table}")
    return 0


# -- models -----------------------------------------------------------------------------------------


def _snapshot_ids(pairs: list[str] | None) -> dict[str, int]:
    """`--snapshot TABLE=ID ...` as {table: snapshot id}."""
    from lakehouse.exceptions import TidemarkError

    out = {}
    for k, v in _pairs(pairs, "--snapshot").items():
        if not v.isdigit():
            raise TidemarkError(f"--snapshot {k}={v}: a snapshot id is a number")
        out[k] = int(v)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from models.jobs import resolve_job
    from models.train import parse_params, train

    settings = _settings(args)
    job = resolve_job(
        args.job, model=args.model, inputs=args.input or (), primary_metric=args.primary_metric, metric_goal=args.metric_goal
    )
    snapshots = _snapshot_ids(args.snapshot)
    result = train(settings, job, params=parse_params(job, args.param or []), snapshots=snapshots, progress=progress)
    mv = result.version
    if args.output == "json":
        emit_json(result.to_json())
    else:
        metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(mv.metrics.items()))
        pins = ", ".join(f"{i.table}@{i.snapshot_id}" for i in mv.inputs)
        print(f"trained {mv.model} version {mv.version} (run {mv.run_id}) on {pins}: {metrics}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from models.registry import Registry

    versions = Registry(_settings(args)).versions(args.name)
    if args.output == "json":
        emit_json([v.to_json() for v in versions])
    else:
        rows = [
            {
                "model": v.model,
                "version": v.version,
                "aliases": ",".join(v.aliases) or ("(archived)" if v.archived else ""),
                "metrics": " ".join(f"{k}={x:.4f}" for k, x in sorted(v.metrics.items())),
                "inputs": ", ".join(f"{i.table}@{i.snapshot_id}" for i in v.inputs),
                "created": v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            }
            for v in versions
        ]
        print(table(rows, ["model", "version", "aliases", "metrics", "inputs", "created"], max_width=80))
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    from models.registry import Registry

    mv = Registry(_settings(args)).resolve(args.ref)
    if args.output == "json":
        emit_json(mv.to_json())
    else:
        data = mv.to_json()
        env = data.pop("environment") or {}
        for k, v in data.items():
            print(f"{k:15} {v}")
        print(f"{'environment':15} python {env.get('python')}, {len(env.get('packages') or {})} packages (--output json lists them)")
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from models.promotion import promote

    move = promote(_settings(args), args.name, args.version, args.alias, reason=args.reason, force=args.force)
    if args.output == "json":
        emit_json(move)
    else:
        before = f" (was version {move['previous_version']})" if move["previous_version"] else ""
        print(f"{args.name}@{args.alias} -> version {args.version}{before}")
        if move.get("forced"):
            print(f"  forced, reason recorded: {args.reason}; overridden: {move['overridden']}")
        for note in move["checks"]["notes"]:
            print(f"  {note}")
    return 0


def cmd_models_archive(args: argparse.Namespace) -> int:
    from models.pinning import archive

    record = archive(_settings(args), args.name, args.version, reason=args.reason)
    if args.output == "json":
        emit_json(record)
    elif record.get("already"):
        print(f"{args.name}:{args.version} was already archived")
    else:
        released = ", ".join(record["released"]) or "none"
        print(f"archived {args.name}:{args.version}; released pins: {released} (snapshot expiry may now remove that data)")
    return 0


def cmd_models_history(args: argparse.Namespace) -> int:
    from models import history
    from models.retrain import parse_time

    settings = _settings(args)
    if args.at:
        if not args.alias:
            from lakehouse.exceptions import TidemarkError

            raise TidemarkError("--at needs --alias, e.g. --alias production")
        rows = history.holder_at(settings, args.name, args.alias, parse_time(args.at))
        if args.output == "json":
            emit_json(rows)
        elif not rows:
            print(f"no version of {args.name} held {args.alias} at {args.at}")
        else:
            r = rows[0]
            print(f"{args.name}@{args.alias} at {args.at}: version {r['version']} (from {r['valid_from']} until {r['valid_to'] or 'now'}), run {r['run_id']}")
            for r in rows:
                print(f"  trained on {r['input_table']} at snapshot {r['snapshot_id']} ({r['rows']} rows)")
        return 0
    rows = history.history(settings, args.name, args.alias)
    if args.output == "json":
        emit_json(rows)
    else:
        shown = [{**r, "valid_to": r["valid_to"] or "(now)", "forced": "forced" if r["forced"] else ""} for r in rows]
        print(table(shown, ["alias", "version", "valid_from", "valid_to", "reason", "forced"], max_width=60))
    return 0


def cmd_models_renew(args: argparse.Namespace) -> int:
    from models.renewal import renew

    d = renew(_settings(args), args.ref, snapshots=_snapshot_ids(args.snapshot), trigger="manual", progress=progress)
    if args.output == "json":
        emit_json(d.to_json())
    else:
        verdict = f"promoted to {d.alias}" if d.promoted else "kept as a candidate"
        print(f"{d.model}:{d.candidate_version} {verdict} (holder was version {d.holder_version}): {d.reason}")
    return 0


def cmd_models_status(args: argparse.Namespace) -> int:
    from models.status import status

    st = status(_settings(args), args.name)
    if args.output == "json":
        emit_json(st)
        return 0
    print(f"model {st['model']} (latest version {st['latest_version']})")
    for alias, version in st["aliases"].items() or [("(none)", "-")]:
        print(f"  {alias:12} version {version}")
    drift = st["last_drift_check"]
    if drift is None:
        print("  last drift check: never")
    else:
        found = "; ".join(f"{t['table']}: {', '.join(t['drifted_features']) or 'no drift'}" for t in drift["tables"]) or "no tables"
        print(f"  last drift check: {drift['time']} (run {drift['run_id']}): {'DRIFT' if drift['drifted'] else 'no drift'} — {found}")
    if st["candidates"]:
        for c in st["candidates"]:
            metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(c["metrics"].items()))
            print(f"  candidate version {c['version']} ({c['created_at']}): {metrics}")
    else:
        print("  candidates: none")
    d = st["last_decision"]
    if d is None:
        print("  last automatic decision: none")
    else:
        verdict = "promoted" if d.get("promoted") else "not promoted"
        print(f"  last automatic decision: {d['time']}: version {d.get('candidate_version')} {verdict} to {d.get('alias')}: {d.get('reason')}")
    return 0


def cmd_models_drift(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lakehouse.exceptions import TidemarkError
    from models import drift

    settings = _settings(args)
    if args.snapshot and not args.check:
        raise TidemarkError("--snapshot chooses what a new check compares; add --check")
    if args.plot and not args.plot.lower().endswith(".svg"):
        raise TidemarkError(f"--plot {args.plot}: the chart is written as SVG; name the file FILE.svg")
    if args.check:
        check = drift.check_model(settings, args.ref, _snapshot_ids(args.snapshot))
        if args.output == "json":
            emit_json(check.to_json())
        else:
            verdict = "DRIFTED" if check.drifted else "no drift"
            print(f"{check.model}:{check.version}{'@' + check.alias if check.alias else ''} drift check (run {check.run_id}): {verdict}")
            for t in check.tables:
                change = f"{t.row_count_change:+.0%}" if t.row_count_change is not None else "n/a"
                print(f"  {t.table}: snapshot {t.baseline_snapshot_id} (trained on) -> {t.current_snapshot_id}, rows {t.rows_baseline} -> {t.rows_current} ({change})")
                for reason in t.reasons:
                    print(f"    drift: {reason}")
                rows = [
                    {
                        "column": f.column, "kind": f.kind, "psi": _num(f.psi), "ks": _num(f.ks_statistic), "ks_p": _num(f.ks_pvalue, "{:.2g}"),
                        "cat_shift": _num(f.category_shift), "missing": f"{f.missing_rate_baseline or 0:.1%} -> {f.missing_rate_current or 0:.1%}",
                        "drifted": "DRIFTED" if f.drifted else "",
                    }
                    for f in t.features
                ]
                print(table(rows, ["column", "kind", "psi", "ks", "ks_p", "cat_shift", "missing", "drifted"]))
    rows = drift.history(settings, args.ref) if (args.plot or not args.check) else []
    if args.plot:
        from models.drift_plot import write_svg
        from models.registry import ModelRef

        name = ModelRef.parse(args.ref).name
        path = write_svg(rows, Path(args.plot), drift.thresholds_for(settings, name).psi, args.ref)
        progress(f"wrote {path}")
    if args.check:
        return 0
    if args.output == "json":
        emit_json(rows)
    else:
        shown = [
            {
                "checked": r["event_time"].strftime("%Y-%m-%d %H:%M:%S"), "version": r["version"], "table": r["table_name"],
                "snapshot": r["current_snapshot_id"], "column": r["column_name"], "psi": _num(r["psi"]), "ks": _num(r["ks_statistic"]),
                "cat_shift": _num(r["category_shift"]), "drifted": "DRIFTED" if r["drifted"] else "",
            }
            for r in rows
        ]
        if not shown:
            print(f"no drift checks of {args.ref} stored yet; run `tidemark models drift {args.ref} --check`")
        else:
            print(table(shown, ["checked", "version", "table", "snapshot", "column", "psi", "ks", "cat_shift", "drifted"]))
    return 0


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "" if value is None else fmt.format(value)


def cmd_retrain(args: argparse.Namespace) -> int:
    from models.retrain import retrain

    report = retrain(_settings(args), args.ref, as_of=args.as_of, progress=progress)
    if args.output == "json":
        emit_json(report.to_json())
        return 0

    def yes(flag: bool) -> str:
        return "identical" if flag else "DIFFERENT"

    print(f"retrained {report.model}:{report.version} (run {report.run_id}, reproducing run {report.reproduces_run_id})")
    if report.as_of:
        print(f"  on the snapshots current at {report.as_of}")
    print(f"  data         {yes(report.data_identical)}")
    for i in report.inputs:
        same = "same" if i.identical else "differs"
        print(
            f"    {i.table} at snapshot {i.snapshot_id}: {i.rows} rows (recorded {i.recorded_rows}), "
            f"fingerprint {i.fingerprint[:16]}… {same} (recorded snapshot {i.recorded_snapshot_id})"
        )
    print(f"  code         {yes(report.code_identical)}  {report.entry_point}")
    for d in report.code_differences:
        print(f"    {d}")
    print(f"  environment  {yes(report.environment_identical)}")
    for d in report.environment_differences[:20]:
        print(f"    {d}")
    print(f"  metrics      {yes(report.metrics_identical)}")
    for name, m in report.metrics.items():
        delta = "n/a" if m["delta"] is None else f"{m['delta']:+.3g}"
        print(f"    {name:12} old {m['old']!r:>22}  new {m['new']!r:>22}  delta {delta}")
    print(f"  artifact     {yes(report.artifact_identical)}  sha256 {report.new_sha256} (recorded {report.old_sha256})")
    print(f"identical: {'yes' if report.identical else 'no'}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from models.trace import trace

    result = trace(_settings(args), args.ref)
    if args.output == "json":
        emit_json(result)
        return 0
    alias = f" (alias {result['alias']})" if result["alias"] else ""
    print(f"model {result['model']} version {result['version']}{alias}")
    print(f"  trained by run {result['run_id']} ({result['job']}, {result['entry_point']}) at {result['trained_at']}")
    if result.get("parent"):
        print(f"    {_parent_text(result['parent'])}")
    print(f"  parameters  {result['parameters']}")
    print("  metrics     " + " ".join(f"{k}={v:.4f}" for k, v in sorted(result["metrics"].items())))
    print(f"  artifact    {result['artifact_uri']}")
    print(f"              sha256 {result['sha256']}")
    for inp in result["inputs"]:
        print(f"  input {inp['table']} at snapshot {inp['snapshot_id']} ({inp['rows']} rows)")
        run = inp.get("ingest_run")
        if run:
            print(f"    made by run {run['run_id']} ({run.get('job')}) [{run['source']}]")
            if run.get("parent"):
                print(f"      {_parent_text(run['parent'])}")
        for f in inp.get("source_files", []):
            print(f"    from file {f['path']}")
            print(f"              sha256 {f['sha256']}")
        if inp.get("validation"):
            passed = sum(1 for a in inp["validation"] if a.get("success"))
            print(f"    validation {passed}/{len(inp['validation'])} expectations passed")
        if not inp["in_lineage_events"]:
            print("    (the training run's events are not in the lineage store yet: run `tidemark lineage consume --once`)")
    return 0


def _parent_text(parent: dict[str, Any]) -> str:
    airflow = parent.get("airflow")
    if airflow:
        return f"in Airflow DAG {airflow['dag_id']}, run {airflow['dag_run_id']}, task {airflow['task_id']} (try {airflow['try_number']})"
    return f"started by {parent['job']} (run {parent['run_id']})"


# -- lineage ----------------------------------------------------------------------------------------


def _partition_list(text: str) -> list[int]:
    from lakehouse.exceptions import TidemarkError

    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        parts = []
    if not parts or any(p < 0 for p in parts):
        raise TidemarkError(f"--partitions {text!r} is not a list of partition numbers; give them like --partitions 0,1")
    return parts


def cmd_lineage_consume(args: argparse.Namespace) -> int:
    from lineage.consumer import consume

    settings = _settings(args)

    def on_batch(r: Any) -> None:
        progress(f"committed: {r.stored_events} events stored, {r.duplicates} duplicates skipped, {r.dead_letters} dead letters")

    partitions = _partition_list(args.partitions) if args.partitions is not None else None
    report = consume(
        settings, once=args.once, group=False if args.all_partitions else None, partitions=partitions,
        batch_size=args.batch_size, interval_s=args.interval, on_batch=on_batch,
    )
    out = {
        "records": report.records,
        "stored_events": report.stored_events,
        "duplicates": report.duplicates,
        "dead_letters": report.dead_letters,
        "commits": report.commits,
        "offsets": {str(k): v for k, v in sorted(report.offsets.items())},
    }
    if args.output == "json":
        emit_json(out)
    else:
        print(
            f"read {report.records} records: stored {report.stored_events} events, skipped {report.duplicates} "
            f"duplicates, {report.dead_letters} dead letters"
        )
    return 0


def cmd_lineage_graph(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lineage.draw import draw
    from lineage.exceptions import NotFoundError
    from lineage.graph import Node, connect_for_walk, walk
    from lineage.query import parse_time

    settings = _settings(args)
    node = Node.parse(args.node)
    con = connect_for_walk(settings, parse_time(args.as_of) if args.as_of else None)
    rows: list[dict[str, Any]] = []
    for direction in ("upstream", "downstream"):
        try:
            rows += walk(con, node, direction, args.depth, settings.lineage.namespace)
        except NotFoundError:
            pass  # a node may have only one side
    if not rows:
        raise NotFoundError(f"nothing in the lineage store matches {args.node}; check the name, or run `tidemark lineage consume --once`")
    path = draw(con, rows, Path(args.out), title=f"lineage of {args.node}", ns=settings.lineage.namespace)
    if args.output == "json":
        emit_json({"path": str(path), "runs": len({r["run_id"] for r in rows})})
    else:
        print(f"wrote {path}")
    return 0


def cmd_lineage_emit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lineage.emit import emit_file

    report = emit_file(_settings(args), Path(args.file), strict=args.strict)
    if args.output == "json":
        emit_json({"sent": report.sent, "pending": report.pending, "rejected": report.rejected})
    else:
        for line in report.rejected:
            print(f"skipped {line}", file=sys.stderr)
        print(f"queued {report.sent} events; {report.pending} still waiting in the outbox")
    return 0


def cmd_lineage_watch(args: argparse.Namespace) -> int:
    from lineage.watch import watch

    try:
        watch(_settings(args), out=lambda line: print(line, flush=True), from_beginning=args.from_beginning, limit=args.limit, as_json=args.output == "json")
    except KeyboardInterrupt:
        pass
    return 0


def cmd_lineage_flush(args: argparse.Namespace) -> int:
    from lineage.outbox import flush

    report = flush(_settings(args))
    if args.output == "json":
        emit_json({"delivered": report.delivered, "pending": report.pending, "error": report.error})
    else:
        print(f"delivered {report.delivered} events; {report.pending} pending")
    if report.pending:
        from lineage.exceptions import BrokerUnavailableError

        raise BrokerUnavailableError(f"{report.pending} events still in the outbox: {report.error}")
    return 0


def cmd_lineage_walk(args: argparse.Namespace) -> int:
    from lineage.graph import Node, connect_for_walk, walk
    from lineage.query import parse_time

    settings = _settings(args)
    as_of = parse_time(args.as_of) if args.as_of else None
    rows = walk(connect_for_walk(settings, as_of), Node.parse(args.node), args.lineage_command, args.depth, settings.lineage.namespace)
    if args.output == "json":
        emit_json(rows)
        return 0
    current = None
    for r in rows:
        if r["run_id"] != current:
            current = r["run_id"]
            print(f"[{r['depth']}] run {r['run_id']} ({r['job_name']})")
        at = f" @ {r['version']}" if r["version"] else ""
        print(f"      {'<-' if r['direction'] == 'input' else '->'} {r['dataset']}{at}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from lineage.query import parse_time, run_sql

    result = run_sql(_settings(args), args.query, as_of=parse_time(args.as_of) if args.as_of else None)
    rows = result.to_pylist()
    if args.output == "json":
        emit_json(rows)
    else:
        print(table(rows, result.column_names))
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    """Run the Airflow CLI in Tidemark's Airflow environment (AIRFLOW_HOME under TIDEMARK_HOME, dags/)."""
    import subprocess

    from lakehouse.exceptions import ConfigError
    from tidemark import airflow_env

    env = airflow_env.environ(_settings(args))
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


def cmd_maintenance_remove_orphans(args: argparse.Namespace) -> int:
    from lakehouse.catalog import load_catalog
    from lakehouse.maintenance import DEFAULT_GRACE, parse_age, remove_orphan_files
    from lakehouse.tables import load_table

    older_than = parse_age(args.older_than) if args.older_than else DEFAULT_GRACE
    table = load_table(load_catalog(_settings(args)), args.table)
    report = remove_orphan_files(table, older_than=older_than, dry_run=args.dry_run)
    if args.output == "json":
        emit_json(report.to_json())
        return 0
    for orphan in report.orphans:
        print(f"{'would delete' if args.dry_run else 'deleted'} {orphan.location}")
    print(
        f"{args.table}: {len(report.orphans)} orphan files ({report.bytes:,} bytes) {'found' if args.dry_run else 'deleted'} "
        f"of {report.scanned} under {report.location}; {report.too_young} unreferenced but newer than {report.cutoff.isoformat()} kept"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tidemark.demo import run_demo, write_landing_files

    if args.landing_files:
        for path in write_landing_files(_settings(args).home):
            print(path)
        return 0

    return run_demo(main)


# -- parser -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--output", choices=("text", "json"), default="text", help="result format (default: text)")

    p = argparse.ArgumentParser(
        prog="tidemark",
        description="Know which data, code and parameters produced a model, and produce it again.",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(parent: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, parents=[out], help=help_text, description=help_text)
        sp.set_defaults(handler=handler)
        return sp

    add(sub, "up", cmd_up, "start the embedded stack (local broker, topic, lineage tables)")
    add(sub, "init", cmd_init, "create the lineage topic and tables on configured Kafka and catalog (idempotent)")
    add(sub, "down", cmd_down, "stop the local broker")
    add(sub, "status", cmd_status, "show catalog, warehouse, Kafka and topic in use")

    sp = add(sub, "ingest", cmd_ingest, "land source files into an Iceberg table through its validation gate")
    sp.add_argument(
        "source", nargs="+", metavar="SOURCE",
        help="CSV, Parquet or JSON Lines file: a path, a glob or a URI (s3://...); each file is its own landing. "
        "Or: `quarantine list [NS.TABLE]`, `quarantine show NS.TABLE BRANCH`, `quarantine drop NS.TABLE BRANCH`",
    )
    sp.add_argument("--table", help="target table as namespace.table, e.g. raw.wine (required to land)")
    sp.add_argument("--suite", help="validation suite, YAML or Python (default: <suites>/<namespace>.<table>.yaml)")
    sp.add_argument("--format", choices=("csv", "parquet", "jsonl"), help="source format (default: from the extension)")
    sp.add_argument("--force", action="store_true", help="land again even if this file's sha256 is already in the table")
    sp.add_argument("--strict", action="store_true", help="refuse to land into a table with no suite")

    sp = add(sub, "train", cmd_train, "run a training job on pinned snapshots and register the model")
    sp.add_argument("job", help="a job name (wine_classifier, diabetes_regressor) or your own module:function")
    sp.add_argument("--param", action="append", metavar="KEY=VALUE", help="override a job parameter (repeatable)")
    sp.add_argument("--snapshot", action="append", metavar="TABLE=ID", help="pin an input table to a snapshot id")
    sp.add_argument("--model", help="model name to register (required for a module:function job)")
    sp.add_argument("--input", action="append", metavar="NS.TABLE", help="input table (repeatable; required for a module:function job)")
    sp.add_argument("--primary-metric", help="the metric promotion compares (default: the job's)")
    sp.add_argument("--metric-goal", choices=("max", "min"), help="max: higher is better; min: lower is better")

    sp = add(sub, "retrain", cmd_retrain, "retrain a model version from its recorded snapshots and report what is identical")
    sp.add_argument("ref", help="NAME@ALIAS, NAME:VERSION or NAME")
    sp.add_argument("--as-of", metavar="TIME", help="train on the snapshots that were current at this time (ISO-8601)")

    sp = add(sub, "trace", cmd_trace, "trace a model version to its run, input snapshots, ingest runs and files")
    sp.add_argument("ref", help="NAME@ALIAS, NAME:VERSION or NAME")

    sp = add(sub, "sql", cmd_sql, "run a DuckDB query; every table is a view named namespace.table")
    sp.add_argument("query", help='SQL text, e.g. "SELECT job_name, count(*) FROM lineage.events GROUP BY 1"')
    sp.add_argument("--as-of", metavar="TIME", help="read every table as it stood at this ISO-8601 time")

    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    sp = add(models, "list", cmd_models_list, "list registered model versions")
    sp.add_argument("name", nargs="?", help="only this model")
    sp = add(models, "show", cmd_models_show, "show one model version")
    sp.add_argument("ref", help="NAME@ALIAS, NAME:VERSION or NAME")
    sp = add(models, "promote", cmd_models_promote, "point an alias (e.g. production) at a model version")
    sp.add_argument("name")
    sp.add_argument("version", type=int)
    sp.add_argument("--alias", required=True)
    sp.add_argument("--reason", help="why; recorded in the alias history")
    sp.add_argument("--force", action="store_true", help="promote although the gate refuses (needs --reason)")
    sp = add(models, "archive", cmd_models_archive, "archive a version and release its snapshot pins")
    sp.add_argument("name")
    sp.add_argument("version", type=int)
    sp.add_argument("--reason", help="why; recorded in the alias history")
    sp = add(models, "status", cmd_models_status, "alias holders, last drift check, candidates, last automatic decision")
    sp.add_argument("name")
    sp = add(models, "renew", cmd_models_renew, "train a candidate on new snapshots, compare with the alias holder on one holdout, promote if better")
    sp.add_argument("ref", help="NAME@ALIAS, e.g. wine@production")
    sp.add_argument("--snapshot", action="append", metavar="TABLE=ID", help="new snapshot of an input (default: current main)")
    sp = add(models, "history", cmd_models_history, "which version held which alias, from when to when")
    sp.add_argument("name")
    sp.add_argument("--alias", help="only this alias")
    sp.add_argument("--at", metavar="TIME", help="with --alias: the version that held it at TIME and the snapshots that trained it")

    sp = add(models, "drift", cmd_models_drift, "drift of a model's input data: per feature, over time (or check now with --check)")
    sp.add_argument("ref", metavar="NAME[@ALIAS]", help="NAME, NAME@ALIAS or NAME:VERSION")
    sp.add_argument("--check", action="store_true", help="compare each input table's current snapshot with the one the version was trained on, now")
    sp.add_argument("--snapshot", action="append", metavar="TABLE=ID", help="with --check: compare this snapshot instead of the current one (repeatable)")
    sp.add_argument("--plot", metavar="FILE.svg", help="write an SVG of each feature's PSI across the checked snapshots, with the threshold")

    lineage = sub.add_parser("lineage", help="the lineage store").add_subparsers(dest="lineage_command", required=True, metavar="COMMAND")
    sp = add(lineage, "consume", cmd_lineage_consume, "store lineage events from Kafka into the Iceberg lineage tables")
    sp.add_argument("--once", action="store_true", help="drain the topic to its end, then exit")
    sp.add_argument("--batch-size", type=_positive_int, help="records per Iceberg commit at most (default: lineage.batch_size, 20,000; at lower rates --interval decides)")
    sp.add_argument("--interval", type=float, default=2.0, help="seconds between commits of a partial batch (default 2)")
    sp.add_argument("--all-partitions", action="store_true", help="read every partition without joining the consumer group (a single consumer that restarts fast; the default on the local broker)")
    sp.add_argument("--partitions", metavar="P,P", help="read exactly these partitions without joining the consumer group: scale out by starting one consumer per share of the partitions (all on the same lineage tables); restart a dead one with the same list")

    for direction in ("upstream", "downstream"):
        sp = add(lineage, direction, cmd_lineage_walk, f"what is {direction} of a node, run by run")
        sp.add_argument("node", help="NS.TABLE[@SNAPSHOT], dataset:NS:NAME[@VERSION], model:NAME[:VERSION], job:NAME or run:ID")
        sp.add_argument("--depth", type=int, default=5, help="how many runs to walk (default 5)")
        sp.add_argument("--as-of", metavar="TIME", help="answer as the lineage store stood at this ISO-8601 time")
    sp = add(lineage, "graph", cmd_lineage_graph, "draw the up- and downstream graph of a node as SVG or HTML")
    sp.add_argument("node", help="NS.TABLE[@SNAPSHOT], dataset:NS:NAME[@VERSION], model:NAME[:VERSION], job:NAME or run:ID")
    sp.add_argument("-o", "--out", required=True, metavar="FILE", help="FILE.svg or FILE.html")
    sp.add_argument("--depth", type=int, default=5)
    sp.add_argument("--as-of", metavar="TIME")
    sp = add(lineage, "emit", cmd_lineage_emit, "send OpenLineage JSON Lines from another producer to the lineage topic")
    sp.add_argument("file", help="a .jsonl file, one RunEvent per line")
    sp.add_argument("--strict", action="store_true", help="send nothing if any line is bad (default: skip bad lines, naming them)")
    sp = add(lineage, "watch", cmd_lineage_watch, "follow the lineage topic live, one readable line per event")
    sp.add_argument("--from-beginning", action="store_true", help="start at the oldest event, not the newest")
    sp.add_argument("--limit", type=int, help="stop after this many events")
    add(lineage, "flush", cmd_lineage_flush, "deliver the lineage events waiting in the local outbox now")

    maintenance = sub.add_parser("maintenance", help="table maintenance").add_subparsers(dest="maintenance_command", required=True, metavar="COMMAND")
    sp = add(maintenance, "remove-orphans", cmd_maintenance_remove_orphans, "delete files under a table's location that no snapshot or metadata references")
    sp.add_argument("table", help="namespace.table, e.g. raw.wine")
    sp.add_argument("--older-than", metavar="AGE", help="only files older than this, e.g. 90s, 30m, 6h, 3d (default 3d: younger files may belong to a commit in flight)")
    sp.add_argument("--dry-run", action="store_true", help="list the orphan files, delete nothing")

    sp = add(sub, "demo", cmd_demo, "run the walking-skeleton scenario end to end on the embedded stack")
    sp.add_argument("--landing-files", action="store_true", help="only write the demo's data files where the ingest DAGs look (dags/sources.yaml)")

    sp = add(sub, "airflow", cmd_airflow, "run an Airflow command with Tidemark's DAGs and AIRFLOW_HOME under TIDEMARK_HOME")
    sp.add_argument("airflow_args", nargs=argparse.REMAINDER, metavar="ARGS", help="e.g. standalone, dags list, dags test ingest_wine")
    return p


def _no_deprecations(record: logging.LogRecord) -> bool:
    return "DeprecationWarning: " not in record.getMessage()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from lakehouse.redact import RedactingFilter, redact

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no credential reaches a log line
    # Warnings become log lines (Great Expectations turns this on at import anyway), and libraries'
    # deprecation notices are for their developers, not our users: kafka-python's, raised while
    # another library had turned every warning on, once broke an error that must be one line.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").addFilter(_no_deprecations)
    if not args.verbose:
        # kafka-python logs every refused connection as an ERROR; our own error names the address once.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    from lakehouse.exceptions import TidemarkError

    try:
        return int(args.handler(args))
    except TidemarkError as exc:
        print(f"tidemark: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tidemark: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # An unexpected error keeps its traceback, minus any credential a library put in it.
        import traceback

        print(redact(traceback.format_exc()), end="", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
