"""`tidemark trace` and `tidemark lineage ...`: the lineage events, from the topic into the store,
and the questions the store answers."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lakehouse.exceptions import TidemarkError
from tidemark.commands.arguments import Subcommands, add_command, add_group, current_settings, positive_int
from tidemark.output import actor_text, emit_json, metrics_text, progress

_NODE_HELP = "NS.TABLE[@SNAPSHOT], dataset:NS:NAME[@VERSION], model:NAME[:VERSION], job:NAME or run:ID"


def register(sub: Subcommands) -> None:
    sp = add_command(sub, "trace", cmd_trace, "trace a model version (or one served prediction) to its run, input snapshots, ingest runs and files")
    sp.add_argument("ref", help="NAME@ALIAS, NAME:VERSION, NAME, or prediction:ID (the prediction_id a served answer carries)")

    lineage = add_group(sub, "lineage", "the lineage store")
    sp = add_command(
        lineage, "consume", cmd_lineage_consume, "store lineage events from Kafka into the Iceberg lineage tables",
        parameters={"interval_s": "--interval"},
    )
    sp.add_argument("--once", action="store_true", help="drain the topic to its end, then exit")
    sp.add_argument("--batch-size", type=positive_int, help="records per Iceberg commit at most (default: lineage.batch_size, 20,000; at lower rates --interval decides)")
    sp.add_argument("--interval", type=float, default=2.0, help="seconds between commits of a partial batch (default 2)")
    sp.add_argument("--all-partitions", action="store_true", help="read every partition without joining the consumer group (a single consumer that restarts fast; the default on the local broker)")
    sp.add_argument("--partitions", metavar="P,P", help="read exactly these partitions without joining the consumer group: scale out by starting one consumer per share of the partitions (all on the same lineage tables); restart a dead one with the same list")

    for direction in ("upstream", "downstream"):
        sp = add_command(lineage, direction, cmd_lineage_walk, f"what is {direction} of a node, run by run")
        sp.add_argument("node", help=_NODE_HELP)
        sp.add_argument("--depth", type=int, default=5, help="how many runs to walk (default 5)")
        sp.add_argument("--as-of", metavar="TIME", help="answer as the lineage store stood at this ISO-8601 time")
    sp = add_command(lineage, "graph", cmd_lineage_graph, "draw the up- and downstream graph of a node as SVG or HTML")
    sp.add_argument("node", help=_NODE_HELP)
    sp.add_argument("-o", "--out", required=True, metavar="FILE", help="FILE.svg or FILE.html")
    sp.add_argument("--depth", type=int, default=5)
    sp.add_argument("--as-of", metavar="TIME")
    sp = add_command(lineage, "emit", cmd_lineage_emit, "send OpenLineage JSON Lines from another producer to the lineage topic")
    sp.add_argument("file", help="a .jsonl file, one RunEvent per line")
    sp.add_argument("--strict", action="store_true", help="send nothing if any line is bad (default: skip bad lines, naming them)")
    sp = add_command(lineage, "watch", cmd_lineage_watch, "follow the lineage topic live, one readable line per event")
    sp.add_argument("--from-beginning", action="store_true", help="start at the oldest event, not the newest")
    sp.add_argument("--limit", type=int, help="stop after this many events")
    add_command(lineage, "flush", cmd_lineage_flush, "deliver the lineage events waiting in the local outbox now")
    add_command(
        lineage, "recover", cmd_lineage_recover,
        "finish runs a killed process left without COMPLETE or FAIL, from what their commits left in the tables; "
        "acknowledge sent events the lineage store holds and send again the ones it lacks",
    )
    from tidemark.commands import columns

    columns.register(lineage)


def cmd_trace(args: argparse.Namespace) -> int:
    from models.trace import PREDICTION_PREFIX, trace, trace_prediction

    if args.ref.startswith(PREDICTION_PREFIX):
        result = trace_prediction(current_settings(), args.ref)
    else:
        result = trace(current_settings(), args.ref)
    if args.output == "json":
        emit_json(result)
        return 0
    p = result.get("prediction")
    if p is not None:
        print(f"prediction {p['prediction_id']} at {p['time']}: {p['prediction']!r}, answered by {p['model']} version {p['version']}")
        print(f"  features    {p['features']}")
        logged = p.get("logged_by") or {}
        print(f"  logged in   {p['table']} snapshot {p['snapshot_id']}" + (f" by run {logged['run_id']} ({logged['job']})" if logged else ""))
    alias = f" (alias {result['alias']})" if result["alias"] else ""
    print(f"model {result['model']} version {result['version']}{alias}")
    print(f"  trained by run {result['run_id']} ({result['job']}, {result['entry_point']}) at {result['trained_at']}{_who(result.get('actor'))}")
    if result.get("owner"):
        print(f"  owner       {result['owner']}")
    for move in result.get("alias_moves") or []:
        print(f"  {move['alias']} since {move['time']}{_who(move.get('actor'), 'moved by')}")
    if result.get("parent"):
        print(f"    {_parent_text(result['parent'])}")
    print(f"  parameters  {result['parameters']}")
    print(f"  metrics     {metrics_text(result['metrics'])}")
    print(f"  artifact    {result['artifact_uri']}")
    print(f"              sha256 {result['sha256']}")
    for inp in result["inputs"]:
        owner = f", owner {inp['owner']}" if inp.get("owner") else ""
        print(f"  input {inp['table']} at snapshot {inp['snapshot_id']} ({inp['rows']} rows{owner})")
        run = inp.get("ingest_run")
        if run:
            print(f"    made by run {run['run_id']} ({run.get('job')}) [{run['source']}]{_who(run.get('actor'))}")
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
    from tidemark.commands.columns import features_text

    for line in features_text(result.get("features") or []):
        print(line)
    return 0


def _who(actor: dict[str, Any] | None, verb: str = "by") -> str:
    """" by alice", " by airflow:team (triggered by bob)", or nothing when the actor is not recorded."""
    who = actor_text(actor)
    return f" {verb} {who}" if who else ""


def _parent_text(parent: dict[str, Any]) -> str:
    airflow = parent.get("airflow")
    if airflow:
        text = f"in Airflow DAG {airflow['dag_id']}, run {airflow['dag_run_id']}, task {airflow['task_id']} (try {airflow['try_number']})"
    else:
        text = f"started by {parent['job']} (run {parent['run_id']})"
    # The task and DAG runs' own events (Airflow's OpenLineage provider), when stored.
    for key, what in (("task_run", "task run"), ("dag_run", "DAG run")):
        run = parent.get(key)
        if run:
            text += f"; {what} {run['job_name']} {run['run_id']} {run['state']}"
    return text


def _partition_list(text: str) -> list[int]:
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        parts = []
    if not parts or any(p < 0 for p in parts):
        raise TidemarkError(f"--partitions {text!r} is not a list of partition numbers; give them like --partitions 0,1")
    return parts


def cmd_lineage_consume(args: argparse.Namespace) -> int:
    from lineage.consumer import consume

    settings = current_settings()

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


def cmd_lineage_walk(args: argparse.Namespace) -> int:
    from lineage.graph import Node, connect_for_walk, walk

    settings = current_settings()
    rows = walk(connect_for_walk(settings, args.as_of), Node.parse(args.node), args.lineage_command, args.depth, settings.lineage.namespace)
    parents = _parents(settings, args.as_of, {r["run_id"] for r in rows})
    for r in rows:
        r["parent"] = parents.get(r["run_id"])
    if args.output == "json":
        emit_json(rows)
        return 0
    current = None
    for r in rows:
        if r["run_id"] != current:
            current = r["run_id"]
            print(f"[{r['depth']}] run {r['run_id']} ({r['job_name']})")
            if r["parent"]:
                print(f"      {_parent_text(r['parent'])}")
        at = f" @ {r['version']}" if r["version"] else ""
        print(f"      {'<-' if r['direction'] == 'input' else '->'} {r['dataset']}{at}")
    return 0


def _parents(settings: Any, as_of: str | None, run_ids: set[str]) -> dict[str, Any]:
    """Who started each run (the Airflow task and DAG run, followed through the parent facets)."""
    from lineage import trace
    from lineage.query import connect

    ns = settings.lineage.namespace
    con = connect(settings, as_of, only=[f"{ns}.runs"], iceberg=False)
    found = {run_id: trace.run_parent(con, run_id, ns) for run_id in sorted(run_ids)}
    return {k: v for k, v in found.items() if v}


def cmd_lineage_graph(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lineage.draw import draw
    from lineage.exceptions import NotFoundError
    from lineage.graph import Node, connect_for_walk, walk

    settings = current_settings()
    node = Node.parse(args.node)
    con = connect_for_walk(settings, args.as_of)
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

    report = emit_file(current_settings(), Path(args.file), strict=args.strict)
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
        watch(current_settings(), out=lambda line: print(line, flush=True), from_beginning=args.from_beginning, limit=args.limit, as_json=args.output == "json")
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends: exit 0, unlike other commands (see tidemark.cli.main)
    return 0


def cmd_lineage_flush(args: argparse.Namespace) -> int:
    from lineage.exceptions import BrokerUnavailableError
    from lineage.outbox import flush

    report = flush(current_settings())
    if args.output == "json":
        emit_json({"delivered": report.delivered, "pending": report.pending, "error": report.error})
    else:
        print(f"delivered {report.delivered} events; {report.pending} pending")
    if report.pending:
        raise BrokerUnavailableError(f"{report.pending} events still in the outbox: {report.error}")
    return 0


def cmd_lineage_recover(args: argparse.Namespace) -> int:
    from lineage.recovery import recover

    report = recover(current_settings(), reconcile_store=True)
    if args.output == "json":
        emit_json(report.to_json())
    else:
        for entry in report.completed + report.failed:
            extra = f": {entry['reason']}" if entry.get("reason") else ""
            outputs = f" -> {', '.join(entry['outputs'])}" if entry["outputs"] else ""
            note = f" ({entry['note']})" if entry.get("note") else ""
            print(f"run {entry['run_id']} of {entry['job']}: {entry['event']}{extra}{outputs}{note}")
        for run_id in report.running:
            print(f"run {run_id}: still running in a live process; left alone")
        print(
            f"recovered {len(report.completed)} completed and {len(report.failed)} failed runs; "
            f"{report.acknowledged} sent events found in the lineage store, {report.resent} queued to be sent again"
        )
    report.raise_for_errors()
    return 0
