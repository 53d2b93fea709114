"""`tidemark sql`: a DuckDB query over every table, now or as it stood at a time."""

from __future__ import annotations

import argparse

from tidemark.commands.arguments import Subcommands, add_command, current_settings
from tidemark.output import emit_json, table


def register(sub: Subcommands) -> None:
    sp = add_command(sub, "sql", cmd_sql, "run a DuckDB query; every table is a view named namespace.table")
    sp.add_argument("query", help='SQL text, e.g. "SELECT job_name, count(*) FROM lineage.events GROUP BY 1"')
    sp.add_argument("--as-of", metavar="TIME", help="read every table as it stood at this ISO-8601 time")
    sp.add_argument(
        "--unsafe",
        action="store_true",
        help="lift the read-only default: any statement, any file, extension installs (for the owner of this machine)",
    )


def cmd_sql(args: argparse.Namespace) -> int:
    from lineage.query import run_sql

    # Read-only unless the owner says otherwise: a query typed or pasted here must not write files,
    # read outside the warehouse, install extensions or print the S3 keys.
    result = run_sql(current_settings(), args.query, as_of=args.as_of, read_only=not args.unsafe)
    rows = result.to_pylist()
    if args.output == "json":
        emit_json(rows)
    else:
        print(table(rows, result.column_names))
    return 0
