"""OpenLineage 2-0-2 RunEvents and the dataset identities Tidemark uses (DESIGN.md, "Event format").

Events are plain dicts shaped exactly like the spec, so any OpenLineage consumer can read them and
events from other producers (the official client included) need no translation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

from lakehouse.config import Settings

SPEC_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACETS = "https://openlineage.io/spec/facets"
ICEBERG_FACETS = "https://openlineage.io/spec/facets"
# Our own facets' schemas ship in this repository under docs/facets/.
TIDEMARK_FACETS = "https://github.com/tidemark/tidemark/blob/main/docs/facets"

EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
Event = dict[str, Any]


def new_run_id() -> str:
    """A UUIDv7 (time-ordered), as OpenLineage recommends for run ids."""
    return new_run_ids(1)[0]


def new_run_ids(n: int) -> list[str]:
    """`n` UUIDv7s from one clock read and one read of the random source (a served batch's
    per-record ids: a system call per id cost a third of a millisecond per 100 records)."""
    import os
    import time

    stamp = (int(time.time() * 1000) & ((1 << 48) - 1)) << 80 | (0x7 << 76) | (0b10 << 62)
    pool = os.urandom(10 * n)
    ids = []
    for i in range(0, 10 * n, 10):
        rand = int.from_bytes(pool[i : i + 10], "big")
        h = f"{stamp | ((rand >> 62) & 0xFFF) << 64 | (rand & ((1 << 62) - 1)):032x}"  # uuid.UUID's str, without the object
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def facet(producer: str, schema: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": producer, "_schemaURL": schema, **fields}


def serialize(event: Mapping[str, Any]) -> bytes:
    """The bytes an event travels as (compact JSON, UTF-8)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_id(event: Mapping[str, Any] | bytes) -> str:
    """A stable id for an event: the sha256 of its canonical form (`canonical`), hex.

    The same event re-sent (outbox retry, producer retry, replay of a backfill file) gets the same
    id however it was serialised on the way (the official client's `sort_keys` and `", "`
    separators, Tidemark's compact JSON, a pretty-printed file), so the store refuses the duplicate.
    Bytes are parsed first.
    """
    import orjson

    return hashlib.sha256(canonical(orjson.loads(event) if isinstance(event, bytes) else event)).hexdigest()


def canonical(event: Any) -> bytes:
    """The RFC 8785 (JSON Canonicalization Scheme) form of a parsed event.

    The `rfc8785` package is the reference, but pure Python takes ~450 us for a 1.4 KB event,
    several times everything else the consumer does per event. orjson with sorted keys writes
    exactly what RFC 8785 does for strings and integers (same escapes, UTF-8 kept as is); it
    differs only for floats (RFC 8785 writes ECMAScript number text: `1` for `1.0`, `1e+21`,
    `0.000001`) and for keys outside ASCII (RFC 8785 sorts by UTF-16 code units). So: floats are
    rewritten by `es6_number` in orjson's output (`_float_spans`; by a walk of the event when a
    string holds a backslash), and only events with non-ASCII text go to `rfc8785` (tests/lineage/test_identity.py checks both paths against
    it). One deliberate difference: integers beyond +-2**53 (Iceberg snapshot ids are 64-bit) are
    kept exact; RFC 8785 refuses them (not exact as IEEE doubles), so in an event that needs the
    `rfc8785` path they are written as their decimal text.
    """
    import orjson

    fast = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    if fast.isascii():
        if type(event) is float:
            return es6_number(event).encode()
        spans = _float_spans(fast)
        if spans == []:
            return fast
        if spans is not None:
            return _es6_tokens(fast, spans)
        return orjson.dumps(_es6_floats(event), option=orjson.OPT_SORT_KEYS)
    import rfc8785

    try:
        return rfc8785.dumps(event)
    except rfc8785.IntegerDomainError:
        return rfc8785.dumps(_big_ints_as_text(event))


def es6_number(x: float) -> str:
    """A float as ECMAScript's Number::toString writes it (RFC 8785, section 3.2.2.3): the
    shortest digits that round-trip (Python's repr gives them), placed by the ES6 rules."""
    if x == 0:
        return "0"
    text = repr(abs(x))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac.rstrip("0") if frac != "0" else whole).lstrip("0") or "0"
    # value = 0.DIGITS x 10**n: n counts the integer digits of the mantissa plus its exponent;
    # for a mantissa below 1 (0.00d...), minus the zeros after the point.
    n = len(whole.lstrip("0")) + int(exp or 0) if whole.strip("0") else int(exp or 0) - (len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * -n + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return ("-" if x < 0 else "") + out


# Where a float may start in orjson's compact output: after `:`, `,` or `[`, digits then a fraction
# or an exponent (cheap to search for; times inside strings match it too) ...
_MAYBE_FLOAT = re.compile(rb"[:,\[]-?[0-9]+[.e]")
# ... and the whole token, checked where the cheap search stopped: a float as orjson writes it
# (shortest round-trip digits), followed by `,`, `]` or `}`.
_FLOAT_TOKEN = re.compile(rb"-?[0-9]+(?:\.[0-9]+(?:e[+-]?[0-9]+)?|e[+-]?[0-9]+)(?=[,\]}])")


def _float_spans(text: bytes) -> list[tuple[int, int]] | None:
    """Where the floats are in orjson's output, or None if that cannot be told from the bytes.

    A token is a number, not text inside a string, when an even number of quotes precede it:
    exact only when no string holds an escaped quote, so text with a backslash is not judged."""
    spans = []
    for m in _MAYBE_FLOAT.finditer(text):
        token = _FLOAT_TOKEN.match(text, m.start() + 1)
        if token is None:
            continue
        if b"\\" in text:
            return None
        if text.count(b'"', 0, token.start()) % 2 == 0:
            spans.append(token.span())
    return spans


def _es6_tokens(text: bytes, spans: list[tuple[int, int]]) -> bytes:
    """orjson's output with the floats at these spans rewritten by `es6_number`."""
    out: list[bytes] = []
    last = 0
    for start, end in spans:
        out += (text[last:start], es6_number(float(text[start:end])).encode())
        last = end
    out.append(text[last:])
    return b"".join(out)


def _es6_floats(value: Any) -> Any:
    import orjson

    if isinstance(value, dict):
        return {k: _es6_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_es6_floats(v) for v in value]
    if isinstance(value, float):
        return orjson.Fragment(es6_number(value))
    return value


def _big_ints_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _big_ints_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_big_ints_as_text(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return str(value)
    return value


def warehouse_namespace(location: str) -> str:
    """Dataset namespace of an Iceberg table: its location's scheme and authority (`s3://bucket`, `file`)."""
    parts = urlsplit(location)
    if parts.scheme in ("", "file"):
        return "file"
    return f"{parts.scheme}://{parts.netloc}"


def location_path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path if parts.scheme else location


def iceberg_dataset(
    *,
    producer: str,
    catalog_name: str,
    catalog_type: str,
    table: str,
    location: str,
    snapshot_id: int | None,
    direction: Literal["input", "output"],
    schema_id: int | None = None,
    sequence_number: int | None = None,
    operation: str | None = None,
    row_count: int | None = None,
    extra_facets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An Iceberg table as an OpenLineage dataset; the same table always gets the same identity."""
    facets: dict[str, Any] = {
        "symlinks": facet(
            producer,
            f"{FACETS}/1-0-1/SymlinksDatasetFacet.json#/$defs/SymlinksDatasetFacet",
            identifiers=[{"namespace": catalog_name, "name": f"{catalog_name}.{table}", "type": "TABLE"}],
        ),
        "catalog": facet(
            producer,
            f"{FACETS}/1-1-0/CatalogDatasetFacet.json#/$defs/CatalogDatasetFacet",
            framework="iceberg",
            type=catalog_type,
            name=catalog_name,
            source="pyiceberg",
        ),
        "datasetType": facet(
            producer, f"{FACETS}/1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet", datasetType="TABLE"
        ),
    }
    if snapshot_id is not None:
        facets["version"] = facet(
            producer,
            f"{FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
            datasetVersion=str(snapshot_id),
        )
    facets.update(extra_facets or {})
    dataset: dict[str, Any] = {
        "namespace": warehouse_namespace(location),
        "name": location_path(location),
        "facets": facets,
    }
    if direction == "input" and snapshot_id is not None:
        report: dict[str, Any] = {"snapshotId": snapshot_id}
        if schema_id is not None:
            report["schemaId"] = schema_id
        dataset["inputFacets"] = {
            "icebergScanReport": facet(
                producer,
                f"{ICEBERG_FACETS}/1-0-1/IcebergScanReportInputDatasetFacet.json#/$defs/IcebergScanReportInputDatasetFacet",
                **report,
            )
        }
    if direction == "output":
        out: dict[str, Any] = {}
        if snapshot_id is not None:
            commit: dict[str, Any] = {"snapshotId": snapshot_id}
            if sequence_number is not None:
                commit["sequenceNumber"] = sequence_number
            if operation is not None:
                commit["operation"] = operation
            out["icebergCommitReport"] = facet(
                producer,
                f"{ICEBERG_FACETS}/1-0-2/IcebergCommitReportOutputDatasetFacet.json#/$defs/IcebergCommitReportOutputDatasetFacet",
                **commit,
            )
        if row_count is not None:
            out["outputStatistics"] = facet(
                producer,
                f"{FACETS}/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
                rowCount=row_count,
            )
        if out:
            dataset["outputFacets"] = out
    return dataset


def ownership_facet(producer: str, owner: str, level: Literal["dataset", "job"]) -> dict[str, Any]:
    """The standard `ownership` facet (dataset or job) naming one owner."""
    kind = "Dataset" if level == "dataset" else "Job"
    return facet(producer, f"{FACETS}/1-0-1/Ownership{kind}Facet.json#/$defs/Ownership{kind}Facet", owners=[{"name": owner}])


def table_dataset(
    settings: Settings, name: str, table: Any, snapshot_id: int | None, direction: Literal["input", "output"], **details: Any
) -> dict[str, Any]:
    """`iceberg_dataset` for a pyiceberg table under this configuration: the one place where a
    table's identity (catalog, location) is derived, so every emitter names it the same way.
    A table with an owner (`lakehouse.tables.OWNER`) carries the `ownership` facet."""
    from lakehouse.tables import OWNER

    owner = (getattr(table, "properties", None) or {}).get(OWNER)
    if owner:
        own = {"ownership": ownership_facet(settings.lineage.producer, owner, "dataset")}
        details["extra_facets"] = {**own, **(details.get("extra_facets") or {})}
    return iceberg_dataset(
        producer=settings.lineage.producer,
        catalog_name=settings.catalog.name,
        catalog_type=settings.catalog.properties.get("type", "sql"),
        table=name,
        location=table.location(),
        snapshot_id=snapshot_id,
        direction=direction,
        **details,
    )


def file_dataset(*, producer: str, path: str, sha256: str, size: int, fmt: str) -> dict[str, Any]:
    """A source file; its version is its content checksum, so the same bytes always match."""
    return {
        "namespace": "file",
        "name": path,
        "facets": {
            "version": facet(
                producer,
                f"{FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
                datasetVersion=sha256,
            ),
            "datasetType": facet(
                producer, f"{FACETS}/1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet", datasetType="FILE"
            ),
            "tidemark_sourceFile": facet(
                producer, f"{TIDEMARK_FACETS}/SourceFileDatasetFacet.json", sha256=sha256, sizeBytes=size, format=fmt
            ),
        },
    }


def model_dataset(
    *,
    producer: str,
    namespace: str,
    name: str,
    version: str,
    artifact_uri: str | None = None,
    sha256: str | None = None,
    metrics: Mapping[str, float] | None = None,
    extra_facets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A model version as a dataset of type MODEL (namespace: the registry, name: the model)."""
    facets: dict[str, Any] = {
        "datasetType": facet(
            producer, f"{FACETS}/1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet", datasetType="MODEL"
        ),
        "version": facet(
            producer,
            f"{FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
            datasetVersion=version,
        ),
    }
    if artifact_uri is not None:
        facets["tidemark_model"] = facet(
            producer,
            f"{TIDEMARK_FACETS}/ModelDatasetFacet.json",
            artifactUri=artifact_uri,
            sha256=sha256,
            metrics=dict(metrics or {}),
        )
    facets.update(extra_facets or {})
    return {"namespace": namespace, "name": name, "facets": facets}


def run_event(
    *,
    producer: str,
    event_type: EventType,
    run_id: str,
    job_namespace: str,
    job_name: str,
    inputs: Sequence[Mapping[str, Any]] = (),
    outputs: Sequence[Mapping[str, Any]] = (),
    run_facets: Mapping[str, Any] | None = None,
    job_facets: Mapping[str, Any] | None = None,
    event_time: str | None = None,
) -> Event:
    return {
        "eventTime": event_time or now_iso(),
        "producer": producer,
        "schemaURL": SPEC_URL,
        "eventType": event_type,
        "run": {"runId": run_id, "facets": dict(run_facets or {})},
        "job": {"namespace": job_namespace, "name": job_name, "facets": dict(job_facets or {})},
        "inputs": [dict(d) for d in inputs],
        "outputs": [dict(d) for d in outputs],
    }


def error_facet(producer: str, exc: BaseException) -> dict[str, Any]:
    import traceback

    from lakehouse.redact import redact

    # An error may quote a URI or a library's config: events are shared, credentials are not.
    return facet(
        producer,
        f"{FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
        message=redact(f"{exc.__class__.__name__}: {exc}"),
        programmingLanguage="python",
        stackTrace=redact("".join(traceback.format_exception(exc))),
    )


def dataset_version(dataset: Mapping[str, Any]) -> str | None:
    return version_in(dataset.get("facets") or {})


def dataset_table(dataset: Mapping[str, Any]) -> str | None:
    """`namespace.table` from the symlinks facet of an Iceberg dataset, if it has one."""
    return table_in(dataset.get("facets") or {})


def dataset_type(dataset: Mapping[str, Any]) -> str | None:
    return type_in(dataset.get("facets") or {})


# The same, given a dataset's `facets` (the consumer has them at hand already).


def version_in(facets: Mapping[str, Any]) -> str | None:
    value = (facets.get("version") or {}).get("datasetVersion")
    return str(value) if value is not None else None


def table_in(facets: Mapping[str, Any]) -> str | None:
    for ident in (facets.get("symlinks") or {}).get("identifiers") or []:
        if ident.get("type") == "TABLE":
            name = str(ident.get("name", ""))
            prefix = f"{ident.get('namespace')}."
            return name[len(prefix) :] if name.startswith(prefix) else name
    return None


def type_in(facets: Mapping[str, Any]) -> str | None:
    value = (facets.get("datasetType") or {}).get("datasetType")
    return str(value) if value else None
