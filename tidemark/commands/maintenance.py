"""`tidemark maintenance ...`: housekeeping of a table's files."""

from __future__ import annotations

import argparse

from tidemark.commands.arguments import Subcommands, add_command, add_group, current_settings
from tidemark.output import emit_json


def register(sub: Subcommands) -> None:
    maintenance = add_group(sub, "maintenance", "table maintenance")
    sp = add_command(
        maintenance, "remove-orphans", cmd_maintenance_remove_orphans,
        "delete files under a table's location that no snapshot or metadata references",
    )
    sp.add_argument("table", help="namespace.table, e.g. raw.wine")
    sp.add_argument("--older-than", metavar="AGE", help="only files older than this, e.g. 90s, 30m, 6h, 3d (default 3d: younger files may belong to a commit in flight)")
    sp.add_argument("--dry-run", action="store_true", help="list the orphan files, delete nothing")


def cmd_maintenance_remove_orphans(args: argparse.Namespace) -> int:
    from lakehouse.catalog import load_catalog
    from lakehouse.maintenance import DEFAULT_GRACE, parse_age, remove_orphan_files
    from lakehouse.tables import load_table

    older_than = parse_age(args.older_than) if args.older_than else DEFAULT_GRACE
    table = load_table(load_catalog(current_settings()), args.table)
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
