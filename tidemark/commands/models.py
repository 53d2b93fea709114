"""`tidemark models ...`: the model registry, its aliases, renewal and drift."""

from __future__ import annotations

import argparse
from typing import Any

from lakehouse.exceptions import TidemarkError
from tidemark.commands.arguments import Subcommands, add_command, add_group, current_settings, snapshot_ids
from tidemark.output import actor_text, emit_json, metrics_text, pins_text, progress, table


def register(sub: Subcommands) -> None:
    models = add_group(sub, "models", "the model registry")
    sp = add_command(models, "list", cmd_models_list, "list registered model versions")
    sp.add_argument("name", nargs="?", help="only this model")
    sp = add_command(models, "show", cmd_models_show, "show one model version")
    sp.add_argument("ref", help="NAME@ALIAS, NAME:VERSION or NAME")
    sp = add_command(models, "promote", cmd_models_promote, "point an alias (e.g. production) at a model version")
    sp.add_argument("name")
    sp.add_argument("version", type=int)
    sp.add_argument("--alias", required=True)
    sp.add_argument("--reason", help="why; recorded in the alias history")
    sp.add_argument("--force", action="store_true", help="promote although the gate refuses (needs --reason)")
    sp = add_command(models, "approve", cmd_models_approve, "apply a pending request to move a protected alias (another actor than its requester)")
    sp.add_argument("name")
    sp.add_argument("request", help="the request id `models promote` printed (see `models requests`)")
    sp.add_argument("--reason", help="why; recorded with the approval")
    sp = add_command(models, "reject", cmd_models_reject, "close a pending request to move a protected alias, moving nothing")
    sp.add_argument("name")
    sp.add_argument("request")
    sp.add_argument("--reason", required=True, help="why; recorded with the rejection")
    sp = add_command(models, "requests", cmd_models_requests, "pending requests to move protected aliases")
    sp.add_argument("name", nargs="?", help="only this model")
    sp.add_argument("--all", action="store_true", help="approved and rejected ones too")
    sp = add_command(models, "archive", cmd_models_archive, "archive a version and release its snapshot pins")
    sp.add_argument("name")
    sp.add_argument("version", type=int)
    sp.add_argument("--reason", help="why; recorded in the alias history")
    sp = add_command(models, "status", cmd_models_status, "alias holders, last drift check, candidates, last automatic decision")
    sp.add_argument("name")
    sp = add_command(
        models, "renew", cmd_models_renew,
        "train a candidate on new snapshots, compare with the alias holder on one holdout, promote if better",
        parameters={"snapshots": "--snapshot"},
    )
    sp.add_argument("ref", help="NAME@ALIAS, e.g. wine@production")
    sp.add_argument("--snapshot", action="append", metavar="TABLE=ID", help="new snapshot of an input (default: current main)")
    sp = add_command(
        models, "reproducibility", cmd_models_reproducibility,
        "per version: the last retrain's verdict and causes, and what would block reproducing it now",
    )
    sp.add_argument("name")
    sp.add_argument("--check-install", action="store_true", help="ask pip (a dry run) whether each recorded environment can still be installed")
    sp.add_argument("--find-links", action="append", metavar="DIR", help="with --check-install: a directory of wheels (repeatable)")
    sp.add_argument("--no-index", action="store_true", help="with --check-install: only the --find-links directories")
    sp = add_command(models, "requirements", cmd_models_requirements, "the pinned packages a version's job imports, for pip download")
    sp.add_argument("ref", help="NAME@ALIAS, NAME:VERSION or NAME")
    sp = add_command(models, "history", cmd_models_history, "which version held which alias, from when to when")
    sp.add_argument("name")
    sp.add_argument("--alias", help="only this alias")
    sp.add_argument("--at", metavar="TIME", help="with --alias: the version that held it at TIME and the snapshots that trained it")

    sp = add_command(
        models, "drift", cmd_models_drift, "drift of a model's input data or production traffic: per feature, over time (or check now with --check)",
        parameters={"snapshots": "--snapshot", "snapshot_id": "--snapshot", "window": "--window"},
    )
    sp.add_argument("ref", metavar="NAME[@ALIAS]", help="NAME, NAME@ALIAS or NAME:VERSION")
    sp.add_argument("--check", action="store_true", help="compare each input table's current snapshot with the one the version was trained on, now")
    sp.add_argument("--snapshot", action="append", metavar="TABLE=ID", help="with --check: compare this snapshot instead of the current one (repeatable); with --against serving: the prediction log's snapshot ID")
    sp.add_argument(
        "--against", choices=("data", "serving"),
        help="with --check: data (default) compares the input tables' new snapshots, serving the prediction log's recent traffic; "
        "without: list (or --plot) only those checks (default: all)",
    )
    sp.add_argument("--window", metavar="DURATION", help="with --against serving: the traffic of this span up to now (30m, 1h, 7d; default 1h without --snapshot)")
    sp.add_argument("--plot", metavar="FILE.svg|FILE.png", help="draw one panel per feature (drifted first): PSI and KS across the checks, with their thresholds")
    sp.add_argument(
        "--engine", choices=("duckdb", "spark"), default="duckdb",
        help="with --check: who reads the snapshots, DuckDB in this process or Spark (spark.master; same statistics)",
    )


def cmd_models_reproducibility(args: argparse.Namespace) -> int:
    from models.reproducibility import status

    found = status(current_settings(), args.name, check_install=args.check_install, find_links=args.find_links or (), no_index=args.no_index)
    if args.output == "json":
        emit_json([v.to_json() for v in found])
        return 0
    rows = []
    for v in found:
        last = v.last_retrain
        verdict = "never retrained" if last is None else f"{last['verdict']} ({str(last['at'])[:19]}, {last['environment']} environment)"
        causes = "" if last is None else ", ".join(c["cause"] for c in last.get("causes") or []) or "-"
        rows.append({"version": v.version, "reproducible": "yes" if v.reproducible else "NO", "last retrain": verdict,
                     "causes": causes, "code": v.code, "environment": v.environment})
    print(table(rows, max_width=70))
    for v in found:
        for b in v.blockers:
            print(f"  {v.model}:{v.version} blocked: {b}")
    return 0


def cmd_models_requirements(args: argparse.Namespace) -> int:
    from models.environments import requirements
    from models.registry import Registry

    mv = Registry(current_settings()).resolve(args.ref)
    pins = requirements(mv.environment, f"{mv.model}:{mv.version}")
    if args.output == "json":
        emit_json({"model": mv.model, "version": mv.version, "python": (mv.environment or {}).get("python"), "requirements": pins})
    else:
        print("\n".join(pins))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from models.registry import Registry

    versions = Registry(current_settings()).versions(args.name)
    if args.output == "json":
        emit_json([v.to_json() for v in versions])
    else:
        rows = [
            {
                "model": v.model,
                "version": v.version,
                "aliases": ",".join(v.aliases) or ("(archived)" if v.archived else ""),
                "metrics": metrics_text(v.metrics),
                "inputs": pins_text(v.inputs),
                "created": v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "by": v.actor.describe() if v.actor else "",
                "owner": v.owner or "",
            }
            for v in versions
        ]
        print(table(rows, ["model", "version", "aliases", "metrics", "inputs", "created", "by", "owner"], max_width=80))
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    from models.registry import Registry

    from models.approvals import listing

    settings = current_settings()
    mv = Registry(settings).resolve(args.ref)
    # Requests to move a protected alias to this version (pending and closed): who asked, who decided.
    requests = [r for r in listing(settings, mv.model, include_closed=True) if r["version"] == mv.version]
    if args.output == "json":
        emit_json({**mv.to_json(), **({"requests": requests} if requests else {})})
    else:
        data = mv.to_json()
        env = data.pop("environment") or {}
        data["actor"] = mv.actor.describe() if mv.actor else "(not recorded)"
        for k, v in data.items():
            print(f"{k:15} {v}")
        print(f"{'environment':15} python {env.get('python')}, {len(env.get('packages') or {})} packages (--output json lists them)")
        for r in requests:
            decided = f", {r['status']} by {r['closed_by']['actor']}" if r["closed_by"] else ", pending"
            print(f"{'request':15} {r['request_id']}: {r['alias']} asked by {r['actor']} at {r['event_time'][:19]}{decided}")
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from models.promotion import promote

    move = promote(current_settings(), args.name, args.version, args.alias, reason=args.reason, force=args.force)
    if args.output == "json":
        emit_json(move)
    elif "request_id" in move:
        forced = " (forced: the approver sees what the gate refused)" if move["forced"] else ""
        print(f"{args.name}@{args.alias} is protected: request {move['request_id']} for version {args.version} is pending{forced}")
        print(f"  another actor approves it with: {move['approve_with']}")
        print(f"  or rejects it with: tidemark models reject {args.name} {move['request_id']} --reason TEXT")
    else:
        before = f" (was version {move['previous_version']})" if move["previous_version"] else ""
        print(f"{args.name}@{args.alias} -> version {args.version}{before}")
        if move.get("forced"):
            print(f"  forced, reason recorded: {args.reason}; overridden: {move['overridden']}")
        for note in move["checks"]["notes"]:
            print(f"  {note}")
    return 0


def cmd_models_approve(args: argparse.Namespace) -> int:
    from models.approvals import approve

    done = approve(current_settings(), args.name, args.request, reason=args.reason)
    if args.output == "json":
        emit_json(done)
    else:
        move = done["move"]
        before = f" (was version {move['previous_version']})" if move["previous_version"] else ""
        print(f"approved request {args.request}: {args.name}@{done['alias']} -> version {done['version']}{before}")
    return 0


def cmd_models_reject(args: argparse.Namespace) -> int:
    from models.approvals import reject

    done = reject(current_settings(), args.name, args.request, reason=args.reason)
    if args.output == "json":
        emit_json(done)
    else:
        print(f"rejected request {args.request} ({args.name}@{done['alias']} -> version {done['version']}); nothing moved")
    return 0


def cmd_models_requests(args: argparse.Namespace) -> int:
    from models.approvals import listing

    found = listing(current_settings(), args.name, include_closed=args.all)
    if args.output == "json":
        emit_json(found)
        return 0
    if not found:
        print("no pending requests" if not args.all else "no requests")
        return 0
    rows = [
        {
            "request": r["request_id"], "model": r["model"], "alias": r["alias"], "version": r["version"],
            "holder": r["holder_version"] or "", "requested by": r["actor"], "at": r["event_time"][:19],
            "status": r["status"] + (f" by {r['closed_by']['actor']}" if r["closed_by"] else ""),
            "gate": "forced: " + "; ".join(r["gate_problems"]) if r["forced"] else "passed",
        }
        for r in found
    ]
    print(table(rows, ["request", "model", "alias", "version", "holder", "requested by", "at", "status", "gate"], max_width=60))
    return 0


def cmd_models_archive(args: argparse.Namespace) -> int:
    from models.pinning import archive

    record = archive(current_settings(), args.name, args.version, reason=args.reason)
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

    settings = current_settings()
    if args.at:
        if not args.alias:
            raise TidemarkError("--at needs --alias, e.g. --alias production")
        rows = history.holder_at(settings, args.name, args.alias, args.at)
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
    rows = history.alias_tenures(settings, args.name, args.alias)
    if args.output == "json":
        emit_json(rows)
    else:
        shown = [
            {**r, "valid_to": r["valid_to"] or "(now)", "forced": "forced" if r["forced"] else "", "by": actor_text(r),
             "approved": f"asked by {r['requested_by']}, approved by {r['approved_by']}" if r.get("approval") else ""}
            for r in rows
        ]
        columns = ["alias", "version", "valid_from", "valid_to", "by", "reason", "forced"]
        print(table(shown, columns + (["approved"] if any(r["approved"] for r in shown) else []), max_width=60))
    return 0


def cmd_models_renew(args: argparse.Namespace) -> int:
    from models.renewal import renew

    d = renew(current_settings(), args.ref, snapshots=snapshot_ids(args.snapshot), trigger="manual", progress=progress)
    if args.output == "json":
        emit_json(d.to_json())
    else:
        if d.nothing_new:
            print(f"{d.model}@{d.alias}: nothing to renew; {d.reason}")
        else:
            verdict = f"promoted to {d.alias}" if d.promoted else "kept as a candidate"
            print(f"{d.model}:{d.candidate_version} {verdict} (holder was version {d.holder_version}): {d.reason}")
    return 0


def cmd_models_status(args: argparse.Namespace) -> int:
    from models.status import status

    st = status(current_settings(), args.name)
    if args.output == "json":
        emit_json(st)
        return 0
    print(f"model {st['model']} (latest version {st['latest_version']}, owner {st['owner'] or '(none recorded)'})")
    for alias, version in st["aliases"].items() or [("(none)", "-")]:
        move = st["alias_moves"].get(alias) or {}
        by = f" (moved by {actor_text(move['actor'])} at {move['time']})" if move.get("actor") else ""
        print(f"  {alias:12} version {version}{by}")
    for key, what in (("last_drift_check", "drift check"), ("last_traffic_drift_check", "traffic drift check")):
        drift = st[key]
        if drift is None:
            print(f"  last {what}: never")
            continue
        print(f"  last {what}: {drift['time']} (run {drift['run_id']}): {'DRIFT' if drift['drifted'] else 'no drift'}")
        for t in drift["tables"]:
            rows = f"rows {t['rows_baseline']} -> {t['rows_current']}"
            print(f"    {t['table']}: snapshot {t['baseline_snapshot_id']} -> {t['snapshot_id']}, {rows}: {'; '.join(t['reasons']) or 'no drift'}")
    if st["candidates"]:
        for c in st["candidates"]:
            print(f"  candidate version {c['version']} ({c['created_at']}): {metrics_text(c['metrics'])}")
    else:
        print("  candidates: none")
    if st["unverified_versions"]:
        versions = ", ".join(str(v) for v in st["unverified_versions"])
        print(f"  UNVERIFIED versions (registered by unsigned events; not candidates, the gate refuses them): {versions}")
    d = st["last_decision"]
    if d is None:
        print("  last automatic decision: none")
    else:
        verdict = "promoted" if d.get("promoted") else "not promoted"
        print(f"  last automatic decision: {d['time']}: version {d.get('candidate_version')} {verdict} to {d.get('alias')}: {d.get('reason')}")
    for r in st["pending_requests"]:
        print(f"  PENDING request {r['request_id']}: {r['alias']} -> version {r['version']}, asked by {r['actor']} at {r['event_time'][:19]}"
              f" (approve: tidemark models approve {st['model']} {r['request_id']})")
    rejected = st["rejected_moves"]
    if rejected:
        print(f"  REJECTED moves from events ({len(rejected)}, never applied):")
        for r in rejected:
            what = {"archive": f"archive version {r['version']}", "set": f"{r['alias']} -> version {r['version']}"}.get(
                r["action"], f"{r['action']} of a request for {r['alias']} -> version {r['version']}"
            )
            forced = " (claims forced)" if r["forced"] else ""
            print(f"    {r['time']} {what}{forced} run {r['run_id']}: {r['rejected_because']}")
    return 0


def _log_snapshot(given: list[str] | None) -> int | None:
    """`--snapshot ID` (or TABLE=ID) of the prediction log, for --against serving: one at most."""
    if not given:
        return None
    if len(given) > 1:
        raise TidemarkError("--against serving compares one prediction log snapshot; give --snapshot once")
    value = given[0].rpartition("=")[2]
    if not value.isdigit():
        raise TidemarkError(f"--snapshot {given[0]}: a snapshot id is a number (`tidemark tables` lists the prediction log's)")
    return int(value)


def cmd_models_drift(args: argparse.Namespace) -> int:
    from pathlib import Path

    from models import drift

    settings = current_settings()
    if args.snapshot and not args.check:
        raise TidemarkError("--snapshot chooses what a new check compares; add --check")
    if args.engine != "duckdb" and not args.check:
        raise TidemarkError("--engine chooses who reads the snapshots of a new check; add --check")
    if args.plot and not args.plot.lower().endswith((".svg", ".png")):
        raise TidemarkError(f"--plot {args.plot}: the chart is written as SVG or PNG; name the file FILE.svg or FILE.png")
    if args.window and not args.check:
        raise TidemarkError("--window is the span of production traffic a new check compares; add --check --against serving")
    if args.window and args.against != "serving":
        raise TidemarkError("--window is the span of production traffic to check; add --against serving")
    if args.engine == "spark" and args.against == "serving":
        raise TidemarkError("--engine spark reads input tables' snapshots; a traffic check (--against serving) runs in DuckDB: drop --engine")
    if args.check and args.against == "serving":
        check = drift.check_traffic(settings, args.ref, window=args.window, snapshot_id=_log_snapshot(args.snapshot))
        if args.output == "json":
            emit_json(check.to_json())
        else:
            _print_check(check)
    elif args.check:
        check = drift.check_model(settings, args.ref, snapshot_ids(args.snapshot), engine=args.engine)
        if args.output == "json":
            emit_json(check.to_json())
        else:
            _print_check(check)
    rows = drift.stored_checks(settings, args.ref) if (args.plot or not args.check) else []
    if args.against is not None:  # the prediction log's checks, or the input tables'
        from models.registry import ModelRef
        from models.signature import prediction_table

        log_table = prediction_table(ModelRef.parse(args.ref).name)
        rows = [r for r in rows if (r["table_name"] == log_table) == (args.against == "serving")]
    if args.plot:
        from models.drift_plot import write_plot
        from models.registry import ModelRef

        name = ModelRef.parse(args.ref).name
        path = write_plot(rows, Path(args.plot), drift.thresholds_for(settings, name), args.ref)
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


def _print_check(check: Any) -> None:
    verdict = "DRIFTED" if check.drifted else "no drift"
    print(f"{check.model}:{check.version}{'@' + check.alias if check.alias else ''} drift check (run {check.run_id}): {verdict}")
    for t in check.tables:
        if t.baseline_table and t.baseline_table != t.table:  # traffic: the prediction log against the training table
            print(f"  {t.baseline_table} snapshot {t.baseline_snapshot_id} (trained on, {t.rows_baseline} rows) -> "
                  f"{t.table} snapshot {t.current_snapshot_id} ({t.rows_current} predictions)")
        else:
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


def _num(value: float | None, fmt: str = "{:.3f}") -> str:
    return "" if value is None else fmt.format(value)
