"""`tidemark catalog ...`: the Iceberg catalog itself, and getting it back when it was lost."""

from __future__ import annotations

import argparse

from tidemark.commands.arguments import Subcommands, add_command, add_group, current_settings
from tidemark.output import emit_json


def register(sub: Subcommands) -> None:
    catalog = add_group(sub, "catalog", "the Iceberg catalog: identity and recovery")
    sp = add_command(
        catalog, "recover", cmd_catalog_recover,
        "re-register every table of the warehouse from its latest metadata file (after the catalog was lost or replaced)",
    )
    sp.add_argument("--dry-run", action="store_true", help="list what would be registered, change nothing")


def cmd_catalog_recover(args: argparse.Namespace) -> int:
    from lakehouse.catalog import load_catalog
    from lakehouse.identity import recover

    # Without the identity check: a catalog that fails it is exactly what this command repairs.
    report = recover(load_catalog(current_settings(), verify=False), dry_run=args.dry_run)
    if args.output == "json":
        emit_json(report.to_json())
        return 1 if report.count("failed") else 0
    for t in report.tables:
        note = f" ({t.note})" if t.note else ""
        print(f"{t.action:<18} {t.table}  {t.metadata_location}{note}")
    done, fixed = ("would register", "would repair") if args.dry_run else ("registered", "repaired")
    print(
        f"catalog {report.catalog!r} at {report.uri}: {report.count(done)} table(s) {done}, {report.count(fixed)} {fixed}, "
        f"{report.count('already registered') + report.count('kept')} already there, {report.count('failed')} failed, "
        f"from warehouse {report.warehouse}; identity {report.catalog_id[:12]}{' (unchanged: dry run)' if args.dry_run else ''}"
    )
    return 1 if report.count("failed") else 0
