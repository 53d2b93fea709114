"""The names Tidemark accepts for namespaces, tables, models and aliases: one rule each, checked once.

A name ends up in places that each have their own rules: a directory of the warehouse
(`raw/wine/`, `models/wine/3/card.json`), an Iceberg ref (`model/wine/3`), a DuckDB identifier,
a SQL literal, a Kafka record, an Airflow param, a terminal. Rather than escape it correctly in
each, Tidemark accepts only names that need no escaping anywhere: ASCII letters, digits and a few
separators, bounded in length. Every entry point (ingest, train, promote, archive, trace, retrain,
the CLI, the DAG params) checks here, so a quote, a `../`, a newline or 5,000 characters is refused
with one line naming the thing and the rule, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lakehouse.exceptions import InvalidNameError, InvalidTableNameError

Kind = Literal["namespace", "table", "model", "alias", "owner"]

# Long enough for any real name; short enough for a path segment, a ref and a line of output.
MAX_LENGTH = 64


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    text: str  # the rule, as the error says it


_IDENTIFIER = re.compile(rf"[A-Za-z_][A-Za-z0-9_]{{0,{MAX_LENGTH - 1}}}")
# Models and aliases may also hold '-' and '.', but never start with them (no '..', no '.hidden', no '-flag').
_LABEL = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_LENGTH - 1}}}")
_IDENTIFIER_TEXT = f"1 to {MAX_LENGTH} ASCII letters, digits and underscores, not starting with a digit"
_LABEL_TEXT = f"1 to {MAX_LENGTH} ASCII letters, digits, '_', '-' and '.', starting with a letter or digit"

# Owners and actors: a person, team or service, optionally as the URN OpenLineage recommends
# (`team:data`, `user:jdoe`) or an e-mail address; never whitespace or a leading '-' or ':'.
_OWNER = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.@:+-]{{0,{MAX_LENGTH - 1}}}")
_OWNER_TEXT = f"1 to {MAX_LENGTH} ASCII letters, digits, '_', '-', '.', '@', '+' and ':', starting with a letter or digit (e.g. team:data)"

RULES: dict[str, Rule] = {
    "namespace": Rule(_IDENTIFIER, _IDENTIFIER_TEXT),
    "table": Rule(_IDENTIFIER, _IDENTIFIER_TEXT),
    "model": Rule(_LABEL, _LABEL_TEXT),
    "alias": Rule(_LABEL, _LABEL_TEXT),
    "owner": Rule(_OWNER, _OWNER_TEXT),
}


def json_pattern(kind: Kind, optional: bool = False) -> str:
    """The rule as a JSON-schema `pattern` (what an Airflow Param checks in the trigger form);
    `optional`: the empty string passes too (a form field left empty)."""
    return f"^({RULES[kind].pattern.pattern}){'?' if optional else ''}$"


def shown(value: object) -> str:
    """`value` as an error shows it: quoted, and cut short when long (a 5,000-character name is not echoed)."""
    text = str(value)
    if len(text) > 40:
        return f"{text[:40]!r}... ({len(text)} characters)"
    return repr(text)


def is_valid(kind: Kind, value: object) -> bool:
    return isinstance(value, str) and RULES[kind].pattern.fullmatch(value) is not None


def check(kind: Kind, value: object, parameter: str | None = None) -> str:
    """`value` if it is an allowed `kind` name; else InvalidNameError naming the thing and the rule."""
    if is_valid(kind, value):
        return str(value)
    what = "empty" if value in (None, "") else shown(value)
    raise InvalidNameError(f"{kind} name {what} is not allowed: {RULES[kind].text}", parameter=parameter or kind)


def is_table(text: object) -> bool:
    """Is `text` an allowed `namespace.table` name?"""
    parts = text.split(".") if isinstance(text, str) else []
    return len(parts) == 2 and all(is_valid("table", p) for p in parts)


def check_table(text: object, parameter: str | None = None) -> tuple[str, str]:
    """(namespace, table) of a `namespace.table` name; InvalidTableNameError (an InvalidNameError) otherwise."""
    if not is_table(text):
        raise InvalidTableNameError(
            f"table name {shown(text)} is not of the form namespace.table: each part {_IDENTIFIER_TEXT}, e.g. raw.wine",
            parameter=parameter or "table",
        )
    namespace, table = str(text).split(".")
    return namespace, table
