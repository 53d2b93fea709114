"""A CSV file's column types, settled over the whole file before a row is landed.

pyarrow infers a CSV column's type from the first block it parses (16 MB here) and then holds the
rest of the file to it. Two ways that loses data or depends on where in the file a value is:
- a whole number beyond int64 (`99999999999999999999999999`) is inferred as a float (1e26);
- a column whose values change kind further down (whole numbers, then `1.5` or `n/a`) is a
  string column if the change falls in the first block, and a conversion error after it.

So, for a file larger than one block, one more pass parses the whole file with pyarrow's own
converters in the types inferred so far (the checksum pass already read every byte; this one
is about as fast as the landing's own parse). A value a type cannot hold widens that column, by
the same rules pyarrow's inference applies to the first block, and the pass starts over:

    null -> int64 -> decimal(38,0) -> float64 -> string,   decimal(38,0) -> string,   any other -> string

Whole numbers beyond int64 become decimal(38,0) (exact), never a float; one beyond 38 digits is
refused, naming the column. A column of numbers that holds text further down lands as string,
as pyarrow would have made it had the text been in the first block: the only type that keeps
every value exactly, and the same result wherever in the file the text is. It is never silent:
the landing warns, naming the column and the value, and a landing into an existing numeric
column is refused by the schema check (`ingest.schema.plan`). A gate expectation on the column's
type is the way to refuse such a file outright.
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

# Opens the file afresh as a pyarrow CSV reader with these column types (None: inferred).
OpenReader = Callable[["dict[str, pa.DataType] | None"], Any]


def whole_number_type() -> pa.DataType:
    import pyarrow as pa

    return pa.decimal128(DECIMAL_DIGITS, 0)


def settle(open_reader: OpenReader, label: str, size: int, block_bytes: int, warnings: list[str]) -> dict[str, pa.DataType]:
    """The type of each column over the whole file (see the module docstring); warnings for every widening."""
    import pyarrow as pa

    reader = open_reader(None)
    types = {f.name: f.type for f in reader.schema}
    names = list(types)
    floats = [n for n, t in types.items() if pa.types.is_floating(t)]
    if floats:
        _whole_numbers_beyond_int64(open_reader, types, floats, label)
    if size <= block_bytes:
        return types  # one block: pyarrow's inference has seen every value already
    for _ in range(MAX_WIDENINGS):
        reader = open_reader(types)
        try:
            for _batch in reader:
                pass
            return types
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


def _whole_numbers_beyond_int64(open_reader: OpenReader, types: dict[str, pa.DataType], floats: list[str], label: str) -> None:
    """Float columns of the first block whose values are all whole numbers: pyarrow made them floats
    because one is beyond int64. They are decimal(38,0), or refused beyond 38 digits."""
    import pyarrow as pa
    import pyarrow.compute as pc

    reader = open_reader({**types, **{n: pa.string() for n in floats}})
    first = next(iter(reader), None)
    if first is None:
        return
    for name in floats:
        text = first.column(first.schema.get_field_index(name))
        present = pc.drop_null(text)
        if not len(present) or not pc.all(pc.match_substring_regex(present, _WHOLE_NUMBER)).as_py():
            continue  # fractions (or nothing): a float column
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
