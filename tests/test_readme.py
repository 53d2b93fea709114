"""The README renders as GitHub renders it (CommonMark plus tables, with markdown-it-py): every table
line is inside a table, every row has its header's cells, and the command and DAG tables list every
command and every DAG once. A blank line inside a table, or a row with an unescaped `|`, fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py (the dev extra) renders the README")

README = ROOT / "README.md"


def _tables(text: str) -> list[tuple[range, list[list[str]]]]:
    """Each rendered table: its source lines and its rows of cell texts (header first)."""
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(text)
    tables, rows, row, lines = [], [], [], range(0)
    for i, tok in enumerate(tokens):
        if tok.type == "table_open":
            rows, lines = [], range(*tok.map)
        elif tok.type == "tr_open":
            row = []
        elif tok.type in ("th_open", "td_open"):
            row.append(tokens[i + 1].content if tokens[i + 1].type == "inline" else "")
        elif tok.type == "tr_close":
            rows.append(row)
        elif tok.type == "table_close":
            tables.append((lines, rows))
    return tables


def _fenced(lines: list[str]) -> set[int]:
    inside, out = False, set()
    for n, line in enumerate(lines):
        if line.startswith("```"):
            inside = not inside
        if inside:
            out.add(n)
    return out


def _cells(line: str) -> int:
    """Cells of a table row as GitHub counts them: split on `|` not escaped by a backslash."""
    return len(re.split(r"(?<!\\)\|", line.strip().strip("|")))


def test_every_table_line_renders_inside_a_table_with_its_headers_cells() -> None:
    text = README.read_text()
    lines = text.splitlines()
    tables = _tables(text)
    covered = {n for span, _ in tables for n in span}
    fenced = _fenced(lines)
    stray = [f"line {n + 1}: {line[:60]}" for n, line in enumerate(lines) if line.startswith("|") and n not in covered and n not in fenced]
    assert not stray, f"table rows outside any table (a blank line or a bad separator breaks a table): {stray}"
    for span, rows in tables:
        header = _cells(lines[span[0]])
        for n in span:
            assert _cells(lines[n]) == header, f"README line {n + 1} has {_cells(lines[n])} cells, its header {header}: {lines[n][:80]}"


def _first_column(title: str) -> list[str]:
    for _, rows in _tables(README.read_text()):
        if rows and rows[0][0] == title:
            return [r[0] for r in rows[1:]]
    raise AssertionError(f"no table with a first column {title!r} in the README")


def test_the_command_table_lists_every_command_once() -> None:
    from tidemark.cli import build_parser

    rows = _first_column("command")
    assert len(rows) == len(set(rows)), f"duplicated rows: {sorted(r for r in rows if rows.count(r) > 1)}"
    sub = next(a for a in build_parser()._actions if a.dest == "command")  # argparse keeps no public list
    words = " ".join(rows)
    missing = [name for name in sub.choices if not re.search(rf"`tidemark {name}\b|/ `{name}`", words)]
    assert not missing, f"commands not in the README's command table: {missing}"
    # One row per command form: `ingest` and `train` each once (they were listed twice).
    assert sum(r.startswith("`tidemark ingest SOURCE") or r.startswith("`tidemark ingest FILE") for r in rows) == 1
    assert sum(r.startswith("`tidemark train ") for r in rows) == 1


def test_the_dag_table_lists_every_dag_once() -> None:
    rows = _first_column("DAG")
    assert len(rows) == len(set(rows))
    expected = {"`ingest_<source>`", "`train_<job>`", "`retrain_model`", "`lakehouse_maintenance`", "`lineage_consumer_health`", "`monitor_<model>`", "`monitor_traffic_<model>`", "`renew_<model>`"}
    assert expected <= set(rows), expected - set(rows)


def test_a_broken_table_is_caught() -> None:
    """The check above can fail: a blank line inside a table leaves its later rows outside it."""
    broken = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n"
    tables = _tables(broken)
    covered = {n for span, _ in tables for n in span}
    assert 4 not in covered and len(tables) == 1
