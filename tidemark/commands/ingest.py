"""`tidemark ingest FILE...` lands files through their gate; `tidemark ingest quarantine ...` looks
at and drops the landings a gate refused."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lakehouse.exceptions import TidemarkError
from tidemark.commands.arguments import Subcommands, add_command, current_settings
from tidemark.output import emit_json, progress, table

QUARANTINE_ACTIONS = ("list", "show", "drop")


def register(sub: Subcommands) -> None:
    sp = add_command(
        sub, "ingest", cmd_ingest, "land source files into an Iceberg table through its validation gate",
        parameters={"suite_file": "--suite", "fmt": "--format"},
    )
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
    sp.add_argument(
        "--owner", metavar="NAME",
        help="record NAME (a person or team, e.g. team:data) as the table's owner; emitted as the OpenLineage ownership facet",
    )
    sp.add_argument(
        "--rename", action="append", metavar="SOURCE_COLUMN=TABLE_COLUMN",
        help="store a file's column under another name (repeatable); lineage reports it as a rename",
    )
    sp.add_argument(
        "--engine", choices=("pyarrow", "spark"), default="pyarrow",
        help="pyarrow: stream the file in this process (default); spark: land it with Spark (`make spark`), "
        "for files larger than this process's memory (see README, Spark)",
    )
    sp.add_argument(
        "--keep-going", action="store_true",
        help="with several files: try every file even after one fails, report each file's outcome, exit 1 if any failed "
        "(default: stop at the first failure; the files after it are reported as not tried)",
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    # `tidemark ingest quarantine list|show|drop ...` shares the word `ingest` with
    # `tidemark ingest FILE...`: a first positional `quarantine` followed by an action selects it
    # (a file literally named `quarantine` lands as ./quarantine).
    if len(args.source) >= 2 and args.source[0] == "quarantine" and args.source[1] in QUARANTINE_ACTIONS:
        return _cmd_quarantine(args, args.source[1], args.source[2:])
    from ingest.exceptions import GateFailedError
    from ingest.land import land
    from ingest.several import land_each, raise_failures
    from ingest.sources import expand
    from lakehouse.tables import TableName
    from tidemark.progressbar import Bar

    if not args.table:
        raise TidemarkError("tidemark ingest: --table NS.TABLE is required to land a file")
    TableName.parse(args.table)
    from ingest.columns import parse_renames

    rename = parse_renames(args.rename)
    settings = current_settings()
    # Each file of a glob is its own landing.
    locations = [loc for source in args.source for loc in expand(source, settings.catalog.properties)]

    def land_one(location: str) -> Any:
        bar = Bar(f"landing {location}")

        def say(message: str) -> None:
            bar.close()  # end the bar's line before a progress line
            progress(message)

        try:
            if args.engine == "spark":
                from ingest.sparkland import land_spark

                return land_spark(
                    settings, location, args.table, suite_file=args.suite, fmt=args.format, force=args.force,
                    strict=args.strict, progress=say, rename=rename, owner=args.owner,
                )
            return land(
                settings, location, args.table, suite_file=args.suite, fmt=args.format, force=args.force,
                strict=args.strict, progress=say, advance=bar, rename=rename, owner=args.owner,
            )
        except GateFailedError as exc:
            bar.close()
            # The error is one line; above it, per failing expectation, the first few failing
            # rows as their key and the failing column only (a whole row of a wide table is
            # ~900 characters); `ingest quarantine show` and `--output json` keep the full rows.
            for o in (exc.result.failures() if exc.result else []):
                for row in o.rows[:3]:
                    print(f"  failing row ({o.expectation}{' on ' + o.column if o.column else ''}): {_row_gist(row, o.column)}", file=sys.stderr)
            raise
        finally:
            bar.close()

    outcomes = land_each(locations, land_one, keep_going=args.keep_going)
    # Files landed before a failure stay landed: say so (every file's outcome), then the error follows.
    several = len(locations) > 1 or len(args.source) > 1 or any(set("*?[") & set(src) for src in args.source)
    _print_outcomes(args, outcomes, several)
    raise_failures(outcomes, args.table)
    return 0


def _row_gist(row: Any, column: str | None, width: int = 120) -> str:
    """A failing row in one short line: its `id` and the failing column (every column if the
    expectation names none), cut at `width` characters."""
    if not isinstance(row, dict):
        text = str(row)
    else:
        keep = [k for k in row if k == "id" or k == column] if column else list(row)
        text = " ".join(f"{k}={row[k]!r}" for k in keep)
        if column and len(keep) < len(row):
            text += f" (+{len(row) - len(keep)} more columns: `tidemark ingest quarantine show`)"
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_outcomes(args: argparse.Namespace, outcomes: list[Any], several: bool) -> None:
    from ingest.land import FAILED, NOT_TRIED

    if args.output == "json":
        if several:  # a list whenever the command names several files (a glob, several SOURCEs), whatever landed
            emit_json([o.to_json() for o in outcomes])
        elif outcomes and outcomes[0].result is not None:
            emit_json(outcomes[0].result.to_json())
    for o in outcomes:
        if args.output == "text":
            if o.result is not None:
                print(_landing_text(o.result))
            elif several and o.outcome == FAILED:
                print(f"failed: {o.error}")
            elif o.outcome == NOT_TRIED:
                print(f"not tried: {o.source}")
        for w in o.result.warnings if o.result is not None else []:
            print(f"warning: {w}", file=sys.stderr)


def _landing_text(result: Any) -> str:
    if result.skipped:
        return f"{result.source} is already in {result.table} (snapshot {result.snapshot_id}); nothing landed (--force lands it again)"
    gate = f", gate {result.gate.suite} passed ({len(result.gate.outcomes)} expectations)" if result.gate else ", no gate"
    text = f"landed {result.rows:,} rows into {result.table}: snapshot {result.snapshot_id}, run {result.run_id}{gate}"
    return text + (f"\n  validation report: {result.data_docs}" if result.data_docs else "")


def _cmd_quarantine(args: argparse.Namespace, action: str, rest: list[str]) -> int:
    from ingest import quarantine

    settings = current_settings()
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
            _print_quarantined(q)
        return 0
    q = quarantine.drop(settings, rest[0], rest[1])
    if args.output == "json":
        emit_json({"dropped": q.branch, "table": q.table})
    else:
        print(f"dropped {q.branch} of {q.table}")
    return 0


def _print_quarantined(q: Any) -> None:
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
