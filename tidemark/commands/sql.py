"""`tidemark sql`: a DuckDB query over every table, now or as it stood at a time; `tidemark tables`:
every table with its current snapshot, how many it keeps, and its metadata file."""

from __future__ import annotations

import argparse

from tidemark.commands.arguments import Subcommands, add_command, current_settings
from tidemark.output import emit_json, table


def register(sub: Subcommands) -> None:
    sp = add_command(
        sub, "sql", cmd_sql, "run a DuckDB query; every table is a view named namespace.table", parameters={"snapshots": "--snapshot"}
    )
    sp.add_argument("query", help='SQL text, e.g. "SELECT job_name, count(*) FROM lineage.events GROUP BY 1"')
    sp.add_argument("--as-of", metavar="TIME", help="read every table as it stood at this ISO-8601 time")
    sp.add_argument(
        "--snapshot", action="append", metavar="NS.TABLE=ID",
        help="time travel on one table: its view reads this snapshot (ids from `tidemark tables`); repeatable",
    )
    sp.add_argument(
        "--unsafe",
        action="store_true",
        help="lift the read-only default: any statement, any file, extension installs (for the owner of this machine)",
    )
    sp = add_command(sub, "tables", cmd_tables, "list the catalog's tables: current snapshot id, snapshots kept, metadata file")
    sp.add_argument("namespace", nargs="?", help="only this namespace, e.g. raw")


def cmd_sql(args: argparse.Namespace) -> int:
    from lineage.query import run_sql
    from tidemark.commands.arguments import snapshot_ids

    # Read-only unless the owner says otherwise: a query typed or pasted here must not write files,
    # read outside the warehouse, install extensions or print the S3 keys.
    result = run_sql(current_settings(), args.query, as_of=args.as_of, read_only=not args.unsafe, snapshots=snapshot_ids(args.snapshot))
    rows = result.to_pylist()
    if args.output == "json":
        emit_json(rows)
    else:
        print(table(rows, result.column_names))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from lakehouse.catalog import load_catalog

    catalog = load_catalog(current_settings())
    namespaces = [(args.namespace,)] if args.namespace else sorted(catalog.list_namespaces())
    rows = []
    for ns in namespaces:
        for ident in sorted(catalog.list_tables(ns)):
            t = catalog.load_table(ident)
            snap = t.current_snapshot()
            rows.append(
                {
                    "table": ".".join(ident),
                    "snapshot_id": snap.snapshot_id if snap else None,
                    "snapshots": len(t.snapshots()),
                    "metadata_location": t.metadata_location,
                }
            )
    if args.output == "json":
        emit_json(rows)
    else:
        print(table(rows, ["table", "snapshot_id", "snapshots", "metadata_location"], max_width=200))
        with_data = [r for r in rows if r["snapshot_id"] is not None]
        if with_data:
            r = with_data[0]
            print(f'time travel: tidemark sql --snapshot {r["table"]}={r["snapshot_id"]} "SELECT count(*) FROM {r["table"]}"')
    return 0
