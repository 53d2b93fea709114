"""What each page shows, read through the same Python API the CLI uses (no query of its own).

Every function returns a JSON-ready dict (the page's JSON twin returns exactly it) and raises
`PageNotFoundError` naming what a URL asked for that does not exist, with the nearest thing that
does. Values from URLs reach the packages as arguments; the packages bind them as parameters.
"""

from __future__ import annotations

import difflib
import hashlib
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from lakehouse.config import Settings, load_settings
from lakehouse.exceptions import CatalogError, InvalidTableNameError, TableNotFoundError, TidemarkError
from tidemark.ui.exceptions import PageNotFoundError, StoreEmptyError, StoreUnavailableError

DIRECTIONS = ("upstream", "downstream", "both")
MAX_DEPTH = 20


def settings() -> Settings:
    """Tidemark's configuration as the API server's environment gives it (read per request: cheap)."""
    return load_settings()


def _nearest(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return close[0] if close else None


def _registry(s: Settings) -> Any:
    from models.registry import Registry

    try:
        return Registry(s)
    except CatalogError as exc:
        raise StoreUnavailableError(str(exc)) from exc


# -- answers kept while the tables they were read from do not change -----------------------------------
#
# Iceberg gives every committed table state a new metadata file, so "the table's metadata location is
# the same" means "nothing was committed since": an answer read from those tables is still the answer.
# Checking costs a catalog lookup per table; recomputing a trace or a walk over a big store costs far
# more. Each API server process keeps the last answers.

_ANSWERS: OrderedDict[tuple[Any, ...], tuple[tuple[str, ...], tuple[str | None, ...], Any]] = OrderedDict()
_ANSWERS_LOCK = threading.Lock()
_CATALOGS: dict[str, Any] = {}


def _catalog(s: Settings) -> Any:
    from lakehouse.catalog import load_catalog

    key = repr(sorted(s.catalog.properties.items())) + s.catalog.name
    if key not in _CATALOGS:
        try:
            _CATALOGS[key] = load_catalog(s)
        except CatalogError as exc:
            raise StoreUnavailableError(str(exc)) from exc
    return _CATALOGS[key]


def _locations(s: Settings, names: tuple[str, ...]) -> tuple[str | None, ...]:
    from lakehouse.tables import TableName, load_table

    catalog = _catalog(s)
    out: list[str | None] = []
    for name in names:
        try:
            out.append(load_table(catalog, TableName.parse(name)).metadata_location)
        except TidemarkError:
            out.append(None)  # gone (or not made yet): a later answer sees whether it came back
        except Exception as exc:  # the catalog's database went away after it was opened
            _CATALOGS.clear()
            raise StoreUnavailableError(f"the catalog stopped answering ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})") from exc
    return tuple(out)


def _kept(s: Settings, key: tuple[Any, ...], tables: tuple[str, ...], compute: Any, more_tables: Any = None) -> Any:
    """`compute()`, or the answer kept for `key` if none of `tables` (and `more_tables(answer)`) changed."""
    with _ANSWERS_LOCK:
        hit = _ANSWERS.get(key)
    if hit is not None and _locations(s, hit[0]) == hit[1]:
        return hit[2]
    before = _locations(s, tables)  # read first: a commit during compute makes the next check miss
    answer = compute()
    extra = tuple(more_tables(answer)) if more_tables else ()
    names, locations = tables + extra, before + (_locations(s, extra) if extra else ())
    with _ANSWERS_LOCK:
        _ANSWERS[key] = (names, locations, answer)
        while len(_ANSWERS) > 128:
            _ANSWERS.popitem(last=False)
    return answer


def _lineage_tables(s: Settings, *short: str) -> tuple[str, ...]:
    return tuple(f"{s.lineage.namespace}.{t}" for t in short)


# -- layout cache: `dot` is the slow part of a big graph, and a graph's SVG depends on its source only --

_SVG_CACHE: OrderedDict[str, str] = OrderedDict()
_SVG_LOCK = threading.Lock()


def graph_svg(graph: Any) -> str:
    from lineage.draw import dot_source, to_svg

    key = hashlib.sha256(dot_source(graph).source.encode()).hexdigest()
    with _SVG_LOCK:
        if key in _SVG_CACHE:
            _SVG_CACHE.move_to_end(key)
            return _SVG_CACHE[key]
    svg = to_svg(graph)
    with _SVG_LOCK:
        _SVG_CACHE[key] = svg
        while len(_SVG_CACHE) > 64:
            _SVG_CACHE.popitem(last=False)
    return svg


# -- models -------------------------------------------------------------------------------------------


def models(s: Settings) -> dict[str, Any]:
    """Every registered model: versions, latest, who holds which alias."""
    reg = _registry(s)
    versions = reg.versions()
    if not versions:
        raise StoreEmptyError(
            "no model is registered in the lineage store yet: run `tidemark demo`, or land data and "
            "`tidemark train JOB`, then `tidemark lineage consume --once`"
        )
    aliases = reg.current_aliases()
    out: dict[str, dict[str, Any]] = {}
    for mv in versions:
        m = out.setdefault(mv.model, {"model": mv.model, "versions": 0, "archived": 0, "aliases": {}, "latest_version": 0})
        m["versions"] += 1
        m["archived"] += 1 if mv.archived else 0
        if mv.version > m["latest_version"]:
            m.update(latest_version=mv.version, latest_created_at=mv.created_at.isoformat(), latest_metrics=mv.metrics,
                     primary_metric=mv.primary_metric, job=mv.job_name, owner=mv.owner)
    for (model, alias), version in sorted(aliases.items()):
        out[model]["aliases"][alias] = version
    # Alias moves and archives that events claimed and the consumer refused (`lineage.rejected_moves`):
    # someone tried to change the registry; newest first.
    rejected = [
        {"time": r["event_time"].isoformat(), "model": r["model"], "action": r["action"], "alias": r["alias"] or None,
         "version": r["version"], "run_id": r["run_id"], "producer": r["producer"], "forced": r["forced"],
         "rejected_because": r["rejected_because"]}
        for r in reversed(reg.rejected_moves())
    ]
    return {"models": sorted(out.values(), key=lambda m: m["model"]), "rejected_moves": rejected}


def _unknown_model(s: Settings, name: str) -> PageNotFoundError:
    known = sorted({mv.model for mv in _registry(s).versions()})
    near = _nearest(name, known)
    nearest = (f"model {near}", f"/models/{quote(near)}") if near else ("all models", "/models")
    return PageNotFoundError(f"model {name!r} is not registered", nearest)


def model(s: Settings, name: str) -> dict[str, Any]:
    """One model: versions with metrics and status, the alias timeline, candidates, the last decision,
    and the requests to move its protected aliases (pending first)."""
    from models import approvals, history, status

    reg = _registry(s)
    versions = reg.versions(name)
    if not versions:
        raise _unknown_model(s, name)
    st = status.status(s, name)
    candidates = {c["version"] for c in st["candidates"]}
    rows = []
    for mv in versions:
        state = ", ".join(mv.aliases) if mv.aliases else "archived" if mv.archived else "candidate" if mv.version in candidates else "superseded"
        row = mv.to_json()
        row.pop("environment", None)  # hundreds of packages: in the version's trace, not the list
        rows.append({**row, "status": state})
    return {
        "model": name,
        "owner": st["owner"],
        "versions": list(reversed(rows)),
        "alias_timeline": history.alias_tenures(s, name),
        "status": st,
        "requests": sorted(approvals.listing(s, name, include_closed=True), key=lambda r: (r["status"] != "pending", r["event_time"])),
    }


def _version_number(s: Settings, name: str, text: str) -> int:
    if not text.isdigit():
        raise _unknown_version(s, name, text)
    return int(text)


def _unknown_version(s: Settings, name: str, text: str) -> PageNotFoundError:
    versions = _registry(s).versions(name)
    if not versions:
        return _unknown_model(s, name)
    latest = versions[-1].version
    return PageNotFoundError(
        f"model {name} has no version {text!r} (versions: {', '.join(str(v.version) for v in versions)})",
        (f"{name} version {latest}", f"/models/{quote(name)}/versions/{latest}"),
    )


def version(s: Settings, name: str, version_text: str) -> tuple[dict[str, Any], Any]:
    """A version's trace (as `tidemark trace` gives it) and its graph; returns (JSON, Graph)."""
    from models.exceptions import ModelNotFoundError
    from models.trace import trace
    from models.trace_graph import trace_graph

    number = _version_number(s, name, version_text)
    tables = _lineage_tables(s, "model_versions", "model_alias_events", "run_datasets", "runs")
    try:
        tr = _kept(s, ("trace", name, number), tables, lambda: trace(s, f"{name}:{number}"),
                   lambda t: [i["table"] for i in t["inputs"]])
    except ModelNotFoundError as exc:
        raise _unknown_version(s, name, version_text) from exc
    except CatalogError as exc:
        raise StoreUnavailableError(str(exc)) from exc
    graph = trace_graph(tr)
    return {"trace": tr, "graph": graph.to_json()}, graph


def retrain(s: Settings, name: str, version_text: str) -> dict[str, Any]:
    """`tidemark retrain NAME:VERSION`: the identical/different report."""
    from models.retrain import retrain as _retrain

    number = _version_number(s, name, version_text)
    if number not in {mv.version for mv in _registry(s).versions(name)}:
        raise _unknown_version(s, name, version_text)
    return _retrain(s, f"{name}:{number}").to_json()


# -- drift --------------------------------------------------------------------------------------------


def drift(s: Settings, name: str) -> tuple[dict[str, Any], bytes | None]:
    """Stored drift checks of a model and the small-multiples picture (None: no check yet)."""
    from models import drift as _drift
    from models import drift_plot

    if not _registry(s).versions(name):
        raise _unknown_model(s, name)
    rows = _drift.stored_checks(s, name)
    thresholds = _drift.thresholds_for(s, name)
    features = drift_plot.series(rows)
    data = {
        "model": name,
        "thresholds": thresholds.to_json(),
        "checks": len({r["run_id"] for r in rows}),
        "features": [
            {"feature": f.name, "kind": f.kind, "drifted_now": f.drifted_now, "latest_reasons": f.reasons[-1] if f.reasons else [],
             "checks": [{"time": t.isoformat(), "psi": p, "ks_statistic": k, "ks_pvalue": kp, "category_shift": c, "drifted": d}
                        for t, p, k, kp, c, d in zip(f.times, f.psi, f.ks, f.ks_pvalue, f.shift, f.drifted)]}
            for f in features
        ],
    }
    svg = drift_plot.render(rows, thresholds, name, "svg") if rows else None
    return data, svg


# -- tables -------------------------------------------------------------------------------------------


def _kind(entry: dict[str, Any]) -> str:
    from ingest.land import AUDIT_PREFIX, QUARANTINE_PREFIX

    if any(b.startswith(QUARANTINE_PREFIX) for b in entry["branches"]):
        return "quarantine"
    if any(b.startswith(AUDIT_PREFIX) for b in entry["branches"]):
        return "audit"
    if entry["on_main"]:
        return "landing" if entry["source_sha256"] else "commit"
    return "off main"


def table(s: Settings, name: str, snapshot: str | None = None) -> dict[str, Any]:
    """A table's snapshots in time order: landings, quarantines, model pins, expiry horizon."""
    from ingest.quarantine import list_quarantined
    from lakehouse.catalog import load_catalog
    from lakehouse.tables import OWNER, TableName, load_table
    from lakehouse.timeline import timeline
    from models.pinning import PREFIX

    try:
        catalog = load_catalog(s)
    except CatalogError as exc:
        raise StoreUnavailableError(str(exc)) from exc
    try:
        tl = timeline(catalog, TableName.parse(name))
    except (InvalidTableNameError, TableNotFoundError) as exc:
        known = sorted(f"{ns[0]}.{t[1]}" for ns in catalog.list_namespaces() for t in catalog.list_tables(ns))
        near = _nearest(name, [k for k in known if not k.startswith(f"{s.lineage.namespace}.")]) or _nearest(name, known)
        raise PageNotFoundError(
            f"table {name!r} does not exist in the catalog",
            (f"table {near}", f"/tables/{quote(near)}") if near else ("all models", "/models"),
        ) from exc
    data = tl.to_json()
    data["owner"] = load_table(catalog, TableName.parse(name)).properties.get(OWNER)
    failures = {q.snapshot_id: q.failures for q in list_quarantined(s, name)}
    for e in data["snapshots"]:
        e["kind"] = _kind(e)
        e["time"] = datetime.fromtimestamp(e["timestamp_ms"] / 1000, tz=timezone.utc).isoformat()
        e["pinned_by"] = [
            {"model": t.split("/")[1], "version": int(t.split("/")[2])}
            for t in e["tags"] if t.startswith(f"{PREFIX}/") and t.count("/") == 2 and t.split("/")[2].isdigit()
        ]
        if e["snapshot_id"] in failures:
            e["failures"] = failures[e["snapshot_id"]]
    if snapshot is not None:
        if not snapshot.isdigit() or tl.snapshot(int(snapshot)) is None:
            raise PageNotFoundError(f"table {name} has no snapshot {snapshot!r} (expired, or never made)", (f"table {name}", f"/tables/{quote(name)}"))
        data["selected"] = int(snapshot)
    return data


# -- lineage ------------------------------------------------------------------------------------------


def _as_of(text: str | None) -> datetime | None:
    from lakehouse.times import parse_time

    if not text:
        return None
    try:
        return parse_time(text, parameter="as_of")
    except TidemarkError as exc:
        raise PageNotFoundError(str(exc), ("lineage search", "/lineage")) from exc


def lineage(
    s: Settings, q: str | None = None, node: str | None = None, direction: str = "both", depth: int = 3, as_of: str | None = None
) -> tuple[dict[str, Any], Any]:
    """Search hits for `q`, and the walk from `node` (up, down or both, `depth` runs, as of a time)."""
    from lineage.draw import from_walk
    from lineage.exceptions import NotFoundError
    from lineage.graph import Node, walk_tables

    if direction not in DIRECTIONS:
        raise PageNotFoundError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}", ("lineage search", "/lineage"))
    depth = max(1, min(int(depth), MAX_DEPTH))
    when = _as_of(as_of)
    parsed = None
    if node:
        try:
            parsed = Node.parse(node)
        except NotFoundError as exc:
            raise PageNotFoundError(str(exc), ("lineage search", "/lineage")) from exc
    data = _kept(s, ("lineage", q, node, direction, depth, when), _lineage_tables(s, *walk_tables()),
                 lambda: _lineage(s, q, parsed, node, direction, depth, when, as_of))
    graph = None
    if data["rows"] and parsed is not None:
        where = "up- and downstream" if direction == "both" else direction
        focus = parsed.name if parsed.kind in ("run", "table") else None
        graph = from_walk(data["rows"], data["checks"], f"{where} of {node}" + (f" as of {as_of}" if as_of else ""), focus=focus)
        data = {**data, "graph": graph.to_json()}
    data = {k: v for k, v in data.items() if k != "checks"}
    return data, graph


def _lineage(s: Settings, q: str | None, parsed: Any, node: str | None, direction: str, depth: int, when: datetime | None, as_of: str | None) -> dict[str, Any]:
    """The store reads of `lineage` (search hits, walk rows, gate results), kept by `_kept`."""
    from lakehouse.sql import query
    from lineage.draw import validation_status
    from lineage.exceptions import NotFoundError
    from lineage.graph import connect_for_walk, walk
    from lineage.search import find

    ns = s.lineage.namespace
    try:
        con = connect_for_walk(s, when)
    except CatalogError as exc:
        raise StoreUnavailableError(str(exc)) from exc
    data: dict[str, Any] = {"q": q, "node": node, "direction": direction, "depth": depth, "as_of": as_of, "hits": [], "rows": [], "checks": {}}
    if q:
        data["hits"] = find(con, q, ns=ns)
    if parsed is not None:
        rows: list[dict[str, Any]] = []
        for d in ("upstream", "downstream") if direction == "both" else (direction,):
            try:
                rows += walk(con, parsed, d, depth, ns)
            except NotFoundError:
                pass  # a node may have only one side
        if not rows:
            search = parsed.name.rsplit("/", 1)[-1]
            raise PageNotFoundError(
                f"nothing in the lineage store matches {node!r}" + (f" as of {as_of}" if as_of else ""),
                (f"search for {search!r}", "/lineage?" + urlencode({"q": search})),
            )
        data["rows"] = rows
        data["checks"] = validation_status(con, sorted({r["run_id"] for r in rows}), ns)
    if not data["hits"] and not data["rows"]:
        stored = query(con, f'SELECT count(*) AS n FROM "{ns}".run_datasets').to_pylist()[0]["n"]
        if not stored:
            raise StoreEmptyError(
                "the lineage store is empty: no run has been stored yet; run `tidemark demo`, or "
                "`tidemark lineage consume --once` to store the events waiting in Kafka"
            )
    return data
