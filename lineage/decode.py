"""A batch of raw Kafka records -> Arrow tables for every lineage table, or dead letters with reasons.

One tight loop over the batch: parse (orjson), check, hash, and append each event's values to the
columns of every table (`store.Columns`); then each column becomes one Arrow array. Building row
dicts and `pa.Table.from_pylist` cost more than everything else together. (Parsing the batch with
DuckDB's JSON functions was measured too: on this machine it took more CPU than this loop, and it
needed a second, per-event path for whatever it could not prove well-formed.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson

from lakehouse.exceptions import InvalidTimeError
from lakehouse.times import parse_time
from lineage import store
from lineage.columns import FACET_BYTES as _COLUMN_LINEAGE
from lineage.events import canonical

if TYPE_CHECKING:
    import pyarrow as pa

MAX_EVENT_BYTES = 1_000_000
# Event ids are kept in memory as the first 16 bytes of their sha256: plenty to tell events apart.
KEY_BYTES = 16
_CHUNK = 4096  # events decoded into Python objects before they become Arrow
# Markers of the templates OpenLineage's integration tests compare events with ("{{ any(result) }}",
# "${json-unit.any-string}"): such a value is a test's expectation, not an emitted event.
_PLACEHOLDERS = (b"{{", b"${json-unit")
_PLACEHOLDER_TEXT = ("{{", "${json-unit")
ORIGINAL = "__tidemark_original"  # a normalised static event keeps the event as sent: its id is that one's


def check_event(event: Any) -> str | None:
    """Why an event (RunEvent, JobEvent or DatasetEvent) cannot be stored, or None. Full schema
    conformance is the producer's contract."""
    reason = _check(event)[0]
    if reason == "not a RunEvent":
        shaped, reason, _ = static_event(event)
        event = shaped
    return reason or _placeholder(event)


def _check(event: Any) -> tuple[str | None, datetime | None]:
    """`check_event`'s answer, and the event's time when it is good (parsed once, used twice)."""
    # The usual event, proven good in a few lookups; anything else gets the checks one by one.
    if type(event) is dict:
        run, job, when, inputs, outputs = event.get("run"), event.get("job"), event.get("eventTime"), event.get("inputs"), event.get("outputs")
        if (
            type(run) is dict and run.get("runId") and type(job) is dict and job.get("name") and type(when) is str
            and (inputs is None or (type(inputs) is list and all([type(d) is dict for d in inputs])))
            and (outputs is None or (type(outputs) is list and all([type(d) is dict for d in outputs])))
        ):
            try:
                return None, parse_time(when, parameter="eventTime")
            except InvalidTimeError:
                pass
    return _explain(event), None


def kind_of(event: Mapping[str, Any]) -> str:
    """RunEvent, JobEvent or DatasetEvent, by the fields the OpenLineage 2 schema requires of each."""
    if "run" in event or "eventType" in event:  # a run state without a run is a broken RunEvent
        return "RunEvent"
    if "dataset" in event and "job" not in event:
        return "DatasetEvent"
    return "JobEvent" if "job" in event else "RunEvent"


def _explain(event: Any) -> str:
    """Why this event is not good."""
    if not isinstance(event, dict):
        return "not a JSON object"
    if not {"run", "job", "dataset", "eventType"} & event.keys():
        return "not an OpenLineage event: it has no run (RunEvent), job (JobEvent) or dataset (DatasetEvent)"
    if kind_of(event) != "RunEvent":
        return "not a RunEvent"  # static events are checked by `static_event`
    missing = [k for k in ("eventTime", "run", "job") if k not in event]
    if missing:
        return f"missing required field(s) of a RunEvent: {', '.join(missing)}"
    if not isinstance(event["run"], dict) or not event["run"].get("runId"):
        return "run.runId is missing"
    if not isinstance(event["job"], dict) or not event["job"].get("name"):
        return "job.name is missing"
    return _time_and_datasets(event) or "not an OpenLineage RunEvent"


def _time_and_datasets(event: Mapping[str, Any]) -> str | None:
    if not isinstance(event.get("eventTime"), str):
        return "eventTime is missing or not a string"
    try:
        parse_time(event["eventTime"], parameter="eventTime")
    except InvalidTimeError as exc:
        return str(exc)
    for key in ("inputs", "outputs"):
        value = event.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(d, dict) for d in value)):
            return f"{key} is not a list of datasets"
    return None


def static_event(event: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, datetime | None]:
    """A JobEvent or DatasetEvent (OpenLineage 2 static lineage) in the shape the tables take, or
    why it cannot be stored.

    A JobEvent becomes the declared "run" `job:NAMESPACE:NAME` (event type JOB) whose inputs and
    outputs are the job's declared edges; a DatasetEvent becomes `dataset:NAMESPACE:NAME` (event
    type DATASET) with its dataset under direction "dataset" (described: neither read nor written).
    The stored payload stays the bytes as sent.
    """
    kind = kind_of(event)
    reason = _time_and_datasets(event)
    if kind == "JobEvent":
        job = event.get("job")
        if not isinstance(job, dict) or not job.get("name"):
            return None, "job.name is missing (JobEvent)", None
        reason = reason and f"{reason} (JobEvent)"
        shaped = {"eventType": "JOB", "run": {"runId": f"job:{job.get('namespace') or ''}:{job['name']}"},
                  "inputs": event.get("inputs"), "outputs": event.get("outputs"), "job": job}
    else:
        ds = event.get("dataset")
        if not isinstance(ds, dict) or not ds.get("name"):
            return None, "dataset.name is missing (DatasetEvent)", None
        reason = reason and f"{reason} (DatasetEvent)"
        shaped = {"eventType": "DATASET", "run": {"runId": f"dataset:{ds.get('namespace') or ''}:{ds['name']}"}, "datasets": [ds]}
    if reason:
        return None, reason, None
    shaped.update({"eventTime": event["eventTime"], "producer": event.get("producer"), store.KIND_KEY: kind, ORIGINAL: event})
    return shaped, None, parse_time(event["eventTime"], parameter="eventTime")


def _placeholder(event: Mapping[str, Any]) -> str | None:
    """The identity field of this event that holds a test template's placeholder, if any."""
    fields: list[tuple[str, Any]] = [("run.runId", (event.get("run") or {}).get("runId"))]
    job = event.get("job") or {}
    fields += [("job.namespace", job.get("namespace")), ("job.name", job.get("name"))]
    for key in ("inputs", "outputs", "datasets"):
        for i, ds in enumerate(event.get(key) or ()):
            fields += [(f"{key}[{i}].namespace", ds.get("namespace")), (f"{key}[{i}].name", ds.get("name"))]
    for name, value in fields:
        if isinstance(value, str) and any(p in value for p in _PLACEHOLDER_TEXT):
            return f"{name} is a test template's placeholder ({value[:60]!r}), not a value: send the event as the producer emitted it"
    return None


def load_event(value: bytes) -> tuple[dict[str, Any] | None, str | None, datetime | None]:
    """The event in these bytes and its time, or the reason they are a dead letter."""
    if len(value) > MAX_EVENT_BYTES:
        return None, f"event of {len(value)} bytes is over the {MAX_EVENT_BYTES}-byte limit", None
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return None, "not UTF-8 text", None
        return None, f"invalid JSON: {exc.msg} at char {exc.pos}", None
    reason, when = _check(event)
    if reason == "not a RunEvent":
        event, reason, when = static_event(event)
    if reason is None and (_PLACEHOLDERS[0] in value or _PLACEHOLDERS[1] in value):
        reason = _placeholder(event)  # the rare event holding such text: is it in its identity?
    return (None, reason, None) if reason else (event, None, when)


@dataclass
class Decoded:
    """The rows of one batch. `events`, `runs` and `jobs` have one row per good event, in the order
    of `keys`, `partitions` and `offsets`; each `run_datasets` row names its event in `dataset_event`.
    `jobs` holds every event's job row: the writer keeps those of jobs it has not stored yet."""

    keys: list[bytes] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    tables: dict[str, pa.Table] = field(default_factory=dict)
    dataset_event: list[int] = field(default_factory=list)
    job_keys: list[tuple[str, str]] = field(default_factory=list)
    # Events that may carry model registry or drift facets (the registry and drift sync read only these).
    registry_events: list[dict[str, Any]] = field(default_factory=list)
    # Events whose bytes name a `columnLineage` facet (the column-lineage sync reads only these).
    column_events: list[dict[str, Any]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)  # (record index, reason)
    # The full event id (hex) of each stored event, in `keys` order: what the outbox is acknowledged by.
    ids: list[str] = field(default_factory=list)
    # (event index, job, event time in microseconds, job facets) of the events that carry job facets.
    job_facets: list[tuple[int, tuple[str, str], int, dict[str, Any]]] = field(default_factory=list)

    @cached_property
    def keys_unique(self) -> bool:
        """No event id twice in this batch (asked once per table)."""
        return len(set(self.keys)) == len(self.keys)

    @cached_property
    def lowest(self) -> dict[int, int]:
        """The lowest offset of a good event, per partition."""
        out: dict[int, int] = {}
        for p, o in zip(self.partitions, self.offsets):
            if o < out.get(p, o + 1):
                out[p] = o
        return out


def decode(partitions: Sequence[int], offsets: Sequence[int], values: Sequence[bytes]) -> Decoded:
    """Decode one batch of records given as parallel lists."""
    import pyarrow as pa

    out = Decoded()
    chunks: list[dict[str, pa.Table]] = []
    columns = store.Columns()

    def to_arrow() -> None:
        # A few thousand events at a time become Arrow: their Python objects are freed (and their
        # memory reused) long before the batch ends, which keeps the consumer's peak RSS down.
        chunks.append(columns.tables())
        start = len(out.keys) - columns.count
        out.dataset_event += [start + j for j in columns.dataset_event]
        out.job_facets += [(start + j, key, when, facets) for j, key, when, facets in columns.job_facets]

    sha256 = hashlib.sha256
    for i, value in enumerate(values):
        event, reason, when = load_event(value)
        if event is None:
            out.dead.append((i, reason or "unreadable"))
            continue
        # The id of the event, not of its bytes: the same event serialised another way is a duplicate.
        digest = sha256(canonical(event.get(ORIGINAL, event))).digest()
        try:
            job_key, registry = columns.add(event, digest.hex(), partitions[i], offsets[i], value, when)
        except (TypeError, ValueError, AttributeError) as exc:
            # Passed the checks but too odd to store (a facet group that is not an object...).
            out.dead.append((i, f"event cannot be stored: {exc.__class__.__name__}: {exc}"))
            continue
        out.keys.append(digest[:KEY_BYTES])
        out.ids.append(digest.hex())
        out.partitions.append(partitions[i])
        out.offsets.append(offsets[i])
        out.job_keys.append(job_key)
        if registry:
            out.registry_events.append(event)
        if _COLUMN_LINEAGE in value:  # a substring search in C: costs the usual event nothing
            out.column_events.append(event)
        if columns.count >= _CHUNK:
            to_arrow()
            columns = store.Columns()
    to_arrow()
    out.tables = {short: pa.concat_tables([c[short] for c in chunks]) for short in chunks[0]}
    return out
