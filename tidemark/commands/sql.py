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
    sp = add_command(sub, "tables", cmd_tables, "list the catalog's tables: current snapshot id, snapshots kept, metadata file")
    sp.add_argument("namespace", nargs="?", help="only this namespace, e.g. raw")


def cmd_sql(args: argparse.Namespace) -> int:
    from lakehouse import sql
    from lakehouse.catalog import load_catalog
    from lakehouse.exceptions import TidemarkError
    from lakehouse.tables import load_table
    from lineage.query import connect
    from tidemark.commands.arguments import snapshot_ids

    settings = current_settings()
    con = connect(settings, args.as_of)
    catalog = load_catalog(settings)
    for name, sid in snapshot_ids(args.snapshot).items():
        t = load_table(catalog, name)
        if t.snapshot_by_id(sid) is None:
            raise TidemarkError(f"--snapshot {name}={sid}: {name} has no snapshot {sid}; `tidemark tables` and `tidemark sql \"SELECT ...\"` show the ids")
        ns, _, short = name.rpartition(".")
        body = sql.snapshot_sql(con, t, sid)
        target = f"{sql.quote_ident(ns)}.{sql.quote_ident(short)}"
        con.execute(f"DROP VIEW IF EXISTS {target}")
        con.execute(f"DROP TABLE IF EXISTS {target}")
        if body:
            con.execute(f"CREATE VIEW {target} AS {body}")
        else:  # a snapshot without data files: an empty table of its schema
            con.register("__tidemark_empty", t.schema().as_arrow().empty_table())
            con.execute(f"CREATE TABLE {target} AS SELECT * FROM __tidemark_empty")
            con.unregister("__tidemark_empty")
    result = sql.query(con, args.query)
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
