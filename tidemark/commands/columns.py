"""`tidemark lineage columns NODE`: column-level lineage, from a table column or a model's features
up to the source file columns, or down to the features and columns made from a column."""

from __future__ import annotations

import argparse
from typing import Any

from tidemark.commands.arguments import Subcommands, add_command, current_settings, positive_int
from tidemark.output import emit_json

_HELP = "NS.TABLE.COLUMN[@SNAPSHOT], model:NAME[:VERSION[#FEATURE]] or dataset:NAMESPACE:NAME#FIELD[@VERSION]"


def register(lineage: Subcommands) -> None:
    """Adds `columns` to the `tidemark lineage` group (called by tidemark.commands.lineage)."""
    sp = add_command(lineage, "columns", cmd_lineage_columns, "which columns feed a column or a model's features (or what they feed)")
    sp.add_argument("node", help=_HELP)
    side = sp.add_mutually_exclusive_group()
    side.add_argument("--upstream", dest="direction", action="store_const", const="upstream", help="the columns it comes from (default)")
    side.add_argument("--downstream", dest="direction", action="store_const", const="downstream", help="the columns and features made from it")
    sp.set_defaults(direction="upstream")
    sp.add_argument("--depth", type=positive_int, default=5, help="how many column edges to walk (default 5)")
    sp.add_argument("--as-of", metavar="TIME", help="answer as the lineage store stood at this ISO-8601 time")


def _column(dataset: str, field: str | None, version: str | None) -> str:
    return f"{dataset}.{field if field is not None else '*'}{' @ ' + version if version else ''}"


def edge_text(r: dict[str, Any], direction: str) -> str:
    """One edge as a line: `[depth] out <- in  TYPE/SUBTYPE (description)  run (job)`."""
    out = _column(r["output_dataset"], r["output_field"], r["output_version"])
    inp = _column(r["input_dataset"], r["input_field"], r["input_version"])
    how = "/".join(x for x in (r["transformation_type"], r["transformation_subtype"]) if x) or "unspecified"
    if r.get("transformation_description"):
        how += f" ({r['transformation_description']})"
    arrow = f"{out} <- {inp}" if direction == "upstream" else f"{inp} -> {out}"
    return f"[{r['depth']}] {arrow}  {how}  run {r['run_id']} ({r['job_name']})"


def cmd_lineage_columns(args: argparse.Namespace) -> int:
    from lineage.column_graph import ColumnNode, connect_for_walk, walk

    settings = current_settings()
    node = ColumnNode.parse(args.node)
    rows = walk(connect_for_walk(settings, args.as_of), node, args.direction, args.depth, settings.lineage.namespace)
    if args.output == "json":
        emit_json(rows)
        return 0
    for r in rows:
        print(edge_text(r, args.direction))
    return 0


def features_text(features: list[dict[str, Any]]) -> list[str]:
    """`tidemark trace`'s lines for the model's features: which column of which snapshot fed each,
    and the file column behind it."""
    if not features:
        return []
    lines = [f"  features ({len(features)}), from column-level lineage:"]
    for f in features:
        for c in f["columns"]:
            at = f" @ {c['version']}" if c["version"] else ""
            lines.append(f"    {f['feature']} <- {c['dataset']}.{c['column']}{at}")
            for s in c["from"]:
                t = s["transformation"]
                how = "/".join(x for x in (t["type"], t["subtype"]) if x)
                desc = f", {t['description']}" if t.get("description") else ""
                lines.append(f"        <- {s['dataset']}.{s['column']} ({how}{desc}; run {s['run_id']})")
    indirect = sorted({(c["dataset"], c["column"], c["version"] or "", "/".join(x for x in (c["transformation"]["type"], c["transformation"]["subtype"]) if x))
                       for f in features for c in f.get("indirect", [])})
    for dataset, column, version, how in indirect:
        lines.append(f"    every feature also depends on {dataset}.{column}{' @ ' + version if version else ''} ({how})")
    return lines
