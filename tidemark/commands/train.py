"""`tidemark train` makes a model version on pinned snapshots; `tidemark retrain` makes it again
from the snapshots it recorded and reports what is identical."""

from __future__ import annotations

import argparse
from typing import Any

from tidemark.commands.arguments import Subcommands, add_command, current_settings, snapshot_ids
from tidemark.output import emit_json, metrics_text, pins_text, progress


def register(sub: Subcommands) -> None:
    # resolve_job(inputs=...), parse_params(job, pairs) and train(params=..., snapshots=...) take
    # what the repeatable --input, --param and --snapshot collect.
    sp = add_command(
        sub, "train", cmd_train, "run a training job on pinned snapshots and register the model",
        parameters={"inputs": "--input", "pairs": "--param", "params": "--param", "snapshots": "--snapshot", "holdout_entry_point": "--holdout"},
    )
    sp.add_argument("job", help="a job name (wine_classifier, diabetes_regressor) or your own module:function")
    sp.add_argument("--param", action="append", metavar="KEY=VALUE", help="override a job parameter (repeatable)")
    sp.add_argument("--snapshot", action="append", metavar="TABLE=ID", help="pin an input table to a snapshot id")
    sp.add_argument("--model", help="model name to register (required for a module:function job)")
    sp.add_argument("--input", action="append", metavar="NS.TABLE", help="input table (repeatable; required for a module:function job)")
    sp.add_argument("--primary-metric", help="the metric promotion compares (default: the job's)")
    sp.add_argument("--metric-goal", choices=("max", "min"), help="max: higher is better; min: lower is better")
    sp.add_argument(
        "--holdout", metavar="MODULE:FUNCTION",
        help="the job's holdout scorer, score(estimator, inputs, params) -> metrics: lets `models renew` compare versions",
    )

    sp = add_command(sub, "retrain", cmd_retrain, "retrain a model version from its recorded snapshots and report what is identical")
    sp.add_argument("ref", help="NAME@ALIAS, NAME:VERSION or NAME")
    sp.add_argument("--as-of", metavar="TIME", help="train on the snapshots that were current at this time (ISO-8601)")
    sp.add_argument(
        "--environment", choices=("current", "recorded"), default="current",
        help="recorded: run in a virtualenv with the recorded versions of the packages the job imports (built once, cached)",
    )
    sp.add_argument("--code", choices=("current", "recorded"), default="current", help="recorded: run the job's module from the recorded git commit")
    sp.add_argument("--nearest", action="store_true", help="with --environment recorded: install the nearest version of one that cannot be installed")
    sp.add_argument("--find-links", action="append", metavar="DIR", help="a directory of wheels for pip (repeatable; pre-fill it with pip download)")
    sp.add_argument("--no-index", action="store_true", help="with --find-links: install from those directories only (offline)")


def cmd_train(args: argparse.Namespace) -> int:
    from models.jobs import resolve_job
    from models.train import parse_params, train

    settings = current_settings()
    job = resolve_job(
        args.job, model=args.model, inputs=args.input or (), primary_metric=args.primary_metric, metric_goal=args.metric_goal,
        holdout_entry_point=args.holdout,
    )
    snapshots = snapshot_ids(args.snapshot)
    result = train(settings, job, params=parse_params(job, args.param or []), snapshots=snapshots, progress=progress)
    mv = result.version
    if args.output == "json":
        emit_json(result.to_json())
    else:
        print(f"trained {mv.model} version {mv.version} (run {mv.run_id}) on {pins_text(mv.inputs)}: {metrics_text(mv.metrics)}")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from models.retrain import retrain

    report = retrain(
        current_settings(), args.ref, as_of=args.as_of, progress=progress, environment=args.environment, code=args.code,
        nearest=args.nearest, find_links=args.find_links or (), no_index=args.no_index,
    )
    if args.output == "json":
        emit_json(report.to_json())
        return 0

    def yes(flag: bool) -> str:
        return "identical" if flag else "DIFFERENT"

    print(f"retrained {report.model}:{report.version} (run {report.run_id}, reproducing run {report.reproduces_run_id})")
    if report.as_of:
        print(f"  on the snapshots current at {report.as_of}")
    print(f"  ran in       {_ran_text(report.environment_ran, 'environment')}; {_ran_text(report.code_ran, 'code')}")
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
    imported = [c for c in report.package_changes if c.imported]
    others = [c for c in report.package_changes if not c.imported]
    print(f"  packages     {yes(report.imported_packages_identical)}  (the {len(report.imported)} the job imports)")
    if report.python_difference:
        print(f"    python {report.python_difference}")
    for c in imported:
        print(f"    {c}")
    if others:
        shown = ", ".join(str(c) for c in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        print(f"    not imported by the job (no cause): {shown}")
    print(f"  platform     {yes(not report.platform_differences)}")
    for d in report.platform_differences:
        print(f"    {d}")
    print(f"  metrics      {yes(report.metrics_identical)}")
    for name, m in report.metrics.items():
        delta = "n/a" if m["delta"] is None else f"{m['delta']:+.3g}"
        within = "within" if m["within_tolerance"] else "OUTSIDE"
        print(f"    {name:12} old {m['old']!r:>22}  new {m['new']!r:>22}  delta {delta} ({within} {m['tolerance']:.3g} relative)")
    print(f"  artifact     {yes(report.artifact_identical)}  sha256 {report.new_sha256} (recorded {report.old_sha256})")
    causes = report.causes
    print(f"verdict: {report.verdict}" + (f"; causes, most likely first: {', '.join(c['cause'] for c in causes)}" if causes else ""))
    print(f"identical: {'yes' if report.identical else 'no'}")
    return 0


def _ran_text(ran: dict[str, Any], what: str) -> str:
    if ran.get("kind") != "recorded":
        return f"the current {what}"
    detail = ran.get("path") or ran.get("commit") or ""
    return f"the recorded {what}" + (f" ({detail})" if detail else "")
