"""A text file's column types, settled over the whole file before a row is landed (CSV; JSON Lines'
whole numbers).

pyarrow infers a CSV column's type from the first block it parses (16 MB here) and then holds the
rest of the file to it. Two ways that loses data or depends on where in the file a value is:
- a whole number beyond int64 (`99999999999999999999999999`) is inferred as a float (1e26);
- a column whose values change kind further down (whole numbers, then `1.5` or `n/a`) is a
  string column if the change falls in the first block, and a conversion error after it.

So, for a file larger than one block (or with a float column), one more pass parses the whole
file with pyarrow's own converters in the types inferred so far, float columns as text (the
checksum pass already read every byte; this one is about as fast as the landing's own parse). A value a type cannot hold widens that column, by
the same rules pyarrow's inference applies to the first block, and the pass starts over:

    null -> int64 -> decimal(38,0) -> float64 -> string,   decimal(38,0) -> string,   any other -> string

Whole numbers beyond int64 become decimal(38,0) (exact), never a float; one beyond 38 digits is
refused, naming the column; a float column that also holds one becomes string (every value as
written). A column of numbers that holds text further down lands as string,
as pyarrow would have made it had the text been in the first block: the only type that keeps
every value exactly, and the same result wherever in the file the text is. It is never silent:
the landing warns, naming the column and the value, and a landing into an existing numeric
column is refused by the schema check (`ingest.schema.plan`). A gate expectation on the column's
type is the way to refuse such a file outright.

JSON Lines: pyarrow makes any number beyond int64 a float, in whatever block it is. A top-level
float field whose values in the whole file are all whole numbers is read as decimal(38,0) instead
(pyarrow's JSON reader converts to it exactly, and refuses a fraction), or refused beyond 38
digits. Other JSON type changes further down the file stay errors naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ingest.exceptions import SourceError

if TYPE_CHECKING:
    import pyarrow as pa

# Restarts of the settling pass before giving up: each widens one column by at least one step.
MAX_WIDENINGS = 64
DECIMAL_DIGITS = 38
_MISFIT = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]+: invalid value '(.*)'$", re.S)
_WHOLE_NUMBER = r"^\s*[+-]?\d+\s*$"

# Opens the file afresh as a pyarrow CSV reader with these column types (None: inferred), and whether
# a string column's null markers ("", NA, null, ...) read as nulls (as they do in typed columns).
OpenReader = Callable[["dict[str, pa.DataType] | None", bool], Any]


def whole_number_type() -> pa.DataType:
    import pyarrow as pa

    return pa.decimal128(DECIMAL_DIGITS, 0)


def settle(open_reader: OpenReader, label: str, size: int, block_bytes: int, warnings: list[str]) -> dict[str, pa.DataType]:
    """The type of each column over the whole file (see the module docstring); warnings for every widening."""
    import pyarrow as pa

    reader = open_reader(None, False)
    types = {f.name: f.type for f in reader.schema}
    names = list(types)
    floats = [n for n, t in types.items() if pa.types.is_floating(t)]
    if floats:
        _whole_numbers_beyond_int64(open_reader, types, floats, label)
    for _ in range(MAX_WIDENINGS):
        # Float columns are read as text: a whole number beyond int64 among fractions parses as a
        # float, rounded, and only its text shows it.
        as_text = [n for n, t in types.items() if pa.types.is_floating(t)]
        if size <= block_bytes and not as_text:
            return types  # one block: pyarrow's inference has seen every value already
        reader = open_reader({**types, **{n: pa.string() for n in as_text}}, True)
        try:
            widened = _widen_floats(reader, as_text, types, label, warnings)
            if not widened:
                return types
            continue
        except pa.ArrowInvalid as exc:
            found = _MISFIT.search(str(exc).strip())
            if found is None or int(found.group(1)) >= len(names):
                raise
            column, value = names[int(found.group(1))], found.group(2)
            old = types[column]
            types[column] = _widen(old, value, column, label)
            warnings.append(
                f"column {column} of {label} holds {value[:40]!r} further down the file, which {old} cannot hold: "
                f"it lands as {types[column]}"
            )
    raise SourceError(f"{label}: column types kept changing further down the file ({MAX_WIDENINGS} times); give the file consistent columns")


def _widen_floats(reader: Any, as_text: list[str], types: dict[str, pa.DataType], label: str, warnings: list[str]) -> bool:
    """Read every batch; a float column (read as text) holding text or a whole number beyond int64
    becomes string. True if one did (the caller reads the file again)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for batch in reader:
        for name in as_text:
            col = batch.column(batch.schema.get_field_index(name))
            try:
                try:
                    pc.cast(col, pa.float64())
                except pa.ArrowInvalid:
                    col = pc.utf8_trim_whitespace(col)  # pyarrow's CSV converter allows spaces around a number; a cast does not
                    pc.cast(col, pa.float64())
            except pa.ArrowInvalid as exc:
                value = re.search(r"string: '(.*)' as a scalar", str(exc), re.S)
                shown = repr(value.group(1)[:40]) if value else "text"
                warnings.append(f"column {name} of {label} holds {shown} further down the file, which double cannot hold: it lands as string")
                types[name] = pa.string()
                return True
            long = pc.filter(col, pc.greater_equal(pc.binary_length(col), 19))  # int64 has 19 digits at most
            long = pc.filter(long, pc.match_substring_regex(long, _WHOLE_NUMBER)) if len(long) else long
            if len(long):
                try:
                    pc.cast(pc.utf8_trim_whitespace(long), pa.int64())
                except pa.ArrowInvalid:
                    warnings.append(
                        f"column {name} of {label} holds fractions and whole numbers beyond 64 bits, which a float would "
                        "round: it lands as string, every value as written"
                    )
                    types[name] = pa.string()
                    return True
    return False


def _whole_numbers_beyond_int64(open_reader: OpenReader, types: dict[str, pa.DataType], floats: list[str], label: str) -> None:
    """Float columns of the first block whose values are all whole numbers: pyarrow made them floats
    because one is beyond int64. They are decimal(38,0), or refused beyond 38 digits."""
    import pyarrow as pa
    import pyarrow.compute as pc

    reader = open_reader({**types, **{n: pa.string() for n in floats}}, True)
    first = next(iter(reader), None)
    if first is None:
        return
    for name in floats:
        text = first.column(first.schema.get_field_index(name))
        present = pc.drop_null(text)
        if not len(present) or not pc.all(pc.match_substring_regex(present, _WHOLE_NUMBER)).as_py():
            continue  # fractions (or nothing): a float column; `settle` reads it as text for whole numbers a float rounds
        longest = max(len(v.strip().lstrip("+-")) for v in present.to_pylist())
        if longest > DECIMAL_DIGITS:
            raise _too_long(name, label)
        types[name] = whole_number_type()


def _widen(old: pa.DataType, value: str, column: str, label: str) -> pa.DataType:
    import pyarrow as pa

    if pa.types.is_null(old):
        ladder = [pa.int64(), whole_number_type(), pa.float64(), pa.string()]
    elif pa.types.is_integer(old):
        ladder = [whole_number_type(), pa.float64(), pa.string()]
    else:
        # decimal(38,0) with a fraction: a float would lose the large whole numbers; text keeps both.
        ladder = [pa.string()]
    for candidate in ladder:
        if _holds(candidate, value):
            return candidate
        if candidate == whole_number_type() and re.match(_WHOLE_NUMBER, value):
            raise _too_long(column, label)
    return pa.string()


def _holds(typ: pa.DataType, value: str) -> bool:
    """Whether pyarrow's CSV converter reads `value` as `typ` (the very converter the landing uses)."""
    import pyarrow as pa
    from pyarrow import csv

    cell = '"' + value.replace('"', '""') + '"'
    try:
        csv.read_csv(pa.BufferReader(f"v\n{cell}\n".encode()), convert_options=csv.ConvertOptions(column_types={"v": typ}))
        return True
    except pa.ArrowInvalid:
        return False


def _too_long(column: str, label: str) -> SourceError:
    return SourceError(
        f"{label}: column {column} holds a whole number of more than {DECIMAL_DIGITS} digits, which no exact number type "
        f"of Iceberg holds (decimal({DECIMAL_DIGITS},0) is the widest) and a float would round; drop or split the column"
    )


# Opens the JSON Lines file afresh as a pyarrow JSON reader with these top-level field types (None: inferred).
OpenJson = Callable[["dict[str, pa.DataType] | None"], Any]


def settle_json(open_reader: OpenJson, label: str) -> dict[str, pa.DataType]:
    """Top-level float fields holding only whole numbers, as decimal(38,0) (module docstring); {} if none."""
    import pyarrow as pa

    reader = open_reader(None)
    candidates = [f.name for f in reader.schema if pa.types.is_floating(f.type)]
    types = {f.name: f.type for f in reader.schema}
    fractional: list[str] = []
    exact: dict[str, pa.DataType] = {}
    while candidates:
        trial = {n: (whole_number_type() if n in candidates else t) for n, t in types.items()}
        try:
            for _batch in open_reader(trial):
                pass
            exact = {n: whole_number_type() for n in candidates}
            break
        except pa.ArrowInvalid as exc:
            text = str(exc)
            # "Failed to convert JSON to decimal128(38, 0): 1.5 requires scale 1" names the value, not the
            # field: find the field by trying each candidate alone (few float fields, a rare case).
            if "decimal" not in text:
                raise
            culprit = _json_culprit(open_reader, types, candidates)
            if culprit is not None and _json_whole_beyond(text):
                raise _too_long(culprit, label) from exc
            if culprit is None:
                break
            candidates.remove(culprit)
            fractional.append(culprit)
    if fractional:
        _no_rounded_whole_numbers(open_reader, fractional, label)
    return exact


def _no_rounded_whole_numbers(open_reader: OpenJson, fields: list[str], label: str) -> None:
    """Float fields with fractions must not also hold whole numbers beyond int64: a float rounds them."""
    import pyarrow.compute as pc

    for batch in open_reader(None):
        for name in fields:
            i = batch.schema.get_field_index(name)
            if i < 0:
                continue
            col = batch.column(i)
            big = pc.and_(pc.greater_equal(pc.abs(col), float(2**63)), pc.equal(pc.floor(col), col))
            if pc.any(big).as_py():
                raise SourceError(
                    f"{label}: field {name} holds fractions and whole numbers beyond 64 bits, which no one exact type "
                    "holds and a float would round; write the large numbers as strings, or split the field"
                )


def _json_culprit(open_reader: OpenJson, types: dict[str, pa.DataType], candidates: list[str]) -> str | None:
    import pyarrow as pa

    for name in candidates:
        try:
            for _batch in open_reader({**types, name: whole_number_type()}):
                pass
        except pa.ArrowInvalid:
            return name
    return None


def _json_whole_beyond(message: str) -> bool:
    """pyarrow's "...to decimal128(38, 0): 1999...9 requires precision 43": a whole number beyond 38 digits."""
    found = re.search(r":\s*[+-]?(\d+) requires precision (\d+)\s*$", message.strip())
    return found is not None and int(found.group(2)) > DECIMAL_DIGITS
