"""Events from every producer (issue 17): stored exactly once or dead-lettered with a reason, and
walks that equal the graph computed here, independently, from the raw events.

Two corpora:
- real events captured in OpenLineage's own repositories (Spark, dbt, Flink, Airflow, the Python
  client, the proxy; origin and license of each file in its SOURCES.tsv). Those files are
  third-party data, so they are not committed here: the corpus lives beside the project in
  `../shared/openlineage-producers/` (as the spec does in `../shared/openlineage-spec/`), or
  wherever `TIDEMARK_OPENLINEAGE_CORPUS` points; without it these tests skip, saying so.
  Many of those files are the integrations' test templates ("{{ any(result) }}",
  "${json-unit.any-string}", no eventTime): they are the bad input the consumer must dead-letter.
- a corpus generated here in the shapes those producers emit (no version on most datasets,
  Spark-style symlinks, repeated daily writes, a JobEvent, arrival out of order), always run.
"""

from __future__ import annotations

import json
import random
from datetime import datetime
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from lineage import events as ev
from lineage.consumer import consume
from lineage.graph import Node, connect_for_walk, walk
from lineage.kafka import ensure_topic, producer
from lineage.query import run_sql

from tests.lineage.corpus import MISSING, corpus_root

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def corpus_dir() -> Path | None:
    path = corpus_root()
    return path if (path / "SOURCES.tsv").is_file() else None


def corpus_events(root: Path) -> list[tuple[str, bytes]]:
    """(file#index, the event's bytes) for every event of every file listed in SOURCES.tsv."""
    out = []
    for line in (root / "SOURCES.tsv").read_text().splitlines()[1:]:
        name = line.split("\t")[0]
        data = json.loads((root / name).read_text())
        for i, event in enumerate(data if isinstance(data, list) else [data]):
            out.append((f"{name}#{i}", json.dumps(event).encode()))
    return out


def _schema_valid(event: dict[str, Any]) -> bool:
    """Valid against OpenLineage 2-0-2 (the kind's $def, with date-time and uuid formats checked)."""
    import jsonschema
    from referencing import Registry, Resource

    spec = json.loads((ROOT.parent / "shared" / "openlineage-spec" / "OpenLineage.json").read_text())
    kind = "RunEvent" if "run" in event else "DatasetEvent" if "dataset" in event else "JobEvent"
    registry = Registry().with_resource(spec["$id"], Resource.from_contents(spec))
    validator = jsonschema.Draft202012Validator({"$ref": f"{spec['$id']}#/$defs/{kind}"}, registry=registry,
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(event)


def _send(settings: Any, values: list[bytes]) -> None:
    ensure_topic(settings)
    p = producer(settings)
    for i, v in enumerate(values):
        p.send(settings.kafka.topic, key=str(i % 7).encode(), value=v)
    p.flush()
    p.close()


# -- the graph, computed from the raw events with the rules of docs/events.md -----------------------

class Graph:
    """Runs and the datasets they read and wrote, from raw events, walked as docs/events.md says:
    versioned reads match that version; unversioned reads the latest write done before the
    reading run started; symlink names resolve to the dataset declaring them."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.rows: dict[tuple[str, str, str, str, str | None], list[float]] = {}
        self.symlink: dict[tuple[str, str, str, str, str | None], tuple[str, str]] = {}
        alias: dict[tuple[str, str], tuple[str, str]] = {}
        for e in events:
            if "run" in e:
                if e.get("eventType") not in ("START", "RUNNING", "COMPLETE"):
                    continue
                run_id = e["run"]["runId"]
            elif "job" in e and "dataset" not in e:
                run_id = f"job:{e['job'].get('namespace') or ''}:{e['job']['name']}"
            else:
                continue
            t = datetime.fromisoformat(e["eventTime"]).timestamp()
            for direction, key in (("input", "inputs"), ("output", "outputs")):
                for d in e.get(key) or []:
                    facets = d.get("facets") if isinstance(d.get("facets"), dict) else {}
                    vf = facets.get("version")
                    version = vf.get("datasetVersion") if isinstance(vf, dict) else None
                    row = (run_id, direction, d["namespace"], d["name"], None if version is None else str(version))
                    self.rows.setdefault(row, []).append(t)
                    sf = facets.get("symlinks")
                    links = [i for i in (sf.get("identifiers") or []) if i.get("name")] if isinstance(sf, dict) else []
                    for link in sorted(links, key=lambda i: i.get("type") != "TABLE")[:1]:
                        s = (link["namespace"], link["name"])
                        self.symlink.setdefault(row, s)
                        alias[s] = min(alias.get(s, (d["namespace"], d["name"])), (d["namespace"], d["name"]))
        self.started: dict[str, float] = {}
        for (run, *_), times in self.rows.items():
            self.started[run] = min(self.started.get(run, min(times)), min(times))
        self.key = {r: alias.get((r[2], r[3]), (r[2], r[3])) for r in self.rows}
        self.writes: dict[tuple[str, str], list[tuple[float, str, str]]] = defaultdict(list)
        for r, times in self.rows.items():
            if r[1] == "output":
                self.writes[self.key[r]].append((max(times), r[0], r[4] or ""))
        self.next_at: dict[tuple[Any, str, str], float | None] = {}
        for k, ws in self.writes.items():
            ws.sort()
            for i, (_, run, version) in enumerate(ws):
                self.next_at[(k, run, version)] = ws[i + 1][0] if i + 1 < len(ws) else None

    def _saw(self, read: tuple[Any, ...], at: float, run: str, version: str) -> bool:
        if read[4] is not None:
            return version == read[4]
        after = self.next_at[(self.key[read], run, version)]
        return at < self.started[read[0]] and (after is None or after >= self.started[read[0]])

    def seeds(self, ns: str, name: str, direction: str) -> set[str]:
        keys = {self.key[r] for r in self.rows if (r[2], r[3]) == (ns, name) or self.symlink.get(r) == (ns, name)}
        side = "output" if direction == "upstream" else "input"
        return {r[0] for r in self.rows if r[1] == side and self.key[r] in keys}

    def walk(self, seeds: set[str], direction: str, depth: int) -> dict[str, int]:
        found = {s: 1 for s in seeds}
        frontier = set(seeds)
        for d in range(2, depth + 1):
            new = set()
            for r in self.rows:
                if r[0] not in frontier:
                    continue
                k = self.key[r]
                if direction == "upstream" and r[1] == "input":
                    new |= {run for at, run, v in self.writes.get(k, []) if self._saw(r, at, run, v)}
                if direction == "downstream" and r[1] == "output":
                    at = max(self.rows[r])
                    new |= {q[0] for q in self.rows if q[1] == "input" and self.key[q] == k and self._saw(q, at, r[0], r[4] or "")}
            frontier = {n for n in new if n not in found}
            found.update({n: d for n in frontier})
        return found


def check_walks(settings: Any, stored: list[dict[str, Any]], datasets: list[tuple[str, str]], depth: int = 5) -> int:
    """Walk up and down from every dataset; each answer equals the independent graph. Returns the
    number of seeds that had a non-trivial answer."""
    con = connect_for_walk(settings)
    graph = Graph(stored)
    nontrivial = 0
    for ns, name in datasets:
        for direction in ("upstream", "downstream"):
            want = graph.walk(graph.seeds(ns, name, direction), direction, depth)
            try:
                got_rows = walk(con, Node("dataset", name, namespace=ns), direction, depth, settings.lineage.namespace)  # type: ignore[arg-type]
            except Exception as exc:  # NotFoundError: nothing there
                assert not want, (ns, name, direction, exc)
                continue
            got = {r["run_id"]: r["depth"] for r in got_rows}
            assert got == want, (ns, name, direction)
            nontrivial += len(want) > 1
    return nontrivial


# -- a generated corpus in the producers' shapes -------------------------------------------------------

def generated_events(seed: int = 17) -> list[dict[str, Any]]:
    """Daily runs of a few pipelines over shared datasets: 80% of references carry no version,
    some Spark outputs carry a TABLE symlink that other readers use as the dataset's name, some
    Iceberg-style reads pin a snapshot, one dbt JobEvent declares edges."""
    rnd = random.Random(seed)
    datasets = [("bigquery", f"proj.raw.t{i}") for i in range(6)] + [("file", f"/warehouse/s{i}") for i in range(6)] + \
               [("s3://lake", f"/w/m{i}") for i in range(4)]
    symlink = {("file", f"/warehouse/s{i}"): ("file:/warehouse", f"default.s{i}") for i in range(6)}
    out: list[dict[str, Any]] = []
    n = 0
    for day in range(1, 5):
        for pipe in range(8):
            chain = rnd.sample(datasets, 4)
            for step in range(3):
                n += 1
                run_id = f"0193{day:04d}-{pipe:04d}-7000-8000-{n:012d}"
                minute = pipe * 6 + step * 2
                src, dst = chain[step], chain[step + 1]

                def ds(d: tuple[str, str], out_side: bool, n: int = n) -> dict[str, Any]:
                    facets: dict[str, Any] = {}
                    name_ns, name = d
                    if d in symlink and out_side:
                        facets["symlinks"] = {"identifiers": [{"namespace": symlink[d][0], "name": symlink[d][1], "type": "TABLE"}]}
                    elif d in symlink and rnd.random() < 0.5:
                        name_ns, name = symlink[d]  # a reader that names it by its symlink (Hive-style)
                    if d[0] == "s3://lake":  # Iceberg-style: versioned writes; reads pin one sometimes
                        if out_side:
                            facets["version"] = {"datasetVersion": f"{d[1]}@{n}"}
                    return {"namespace": name_ns, "name": name, "facets": facets}

                for kind, second in (("START", 0), ("COMPLETE", 50)):
                    out.append({"eventType": kind, "eventTime": f"2026-11-{day:02d}T{minute // 60 + 10:02d}:{minute % 60:02d}:{second:02d}Z",
                                "producer": "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/integration/spark",
                                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
                                "run": {"runId": run_id}, "job": {"namespace": f"pipe{pipe}", "name": f"step{step}"},
                                "inputs": [ds(src, False)], "outputs": [ds(dst, True)]})
    # Reads that pin an Iceberg snapshot written earlier.
    writes = [(e, d) for e in out if e["eventType"] == "COMPLETE" for d in e["outputs"] if "version" in d["facets"]]
    for i, (e, d) in enumerate(rnd.sample(writes, min(6, len(writes)))):
        out.append({"eventType": "COMPLETE", "eventTime": "2026-11-05T12:00:00Z", "producer": "p", "schemaURL": "s",
                    "run": {"runId": f"01930000-0000-7000-9000-{i:012d}"}, "job": {"namespace": "pinned", "name": f"read{i}"},
                    "inputs": [{"namespace": d["namespace"], "name": d["name"], "facets": {"version": dict(d["facets"]["version"])}}],
                    "outputs": [{"namespace": "bigquery", "name": f"proj.pinned.p{i}", "facets": {}}]})
    out.append({"eventTime": "2026-11-02T09:00:00Z", "producer": "p", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
                "job": {"namespace": "dbt", "name": "mart"}, "inputs": [{"namespace": "bigquery", "name": "proj.raw.t0"}],
                "outputs": [{"namespace": "bigquery", "name": "proj.raw.t1"}]})
    rnd.shuffle(out)  # arrival order is not event order
    return out


def test_generated_producer_events_walk_as_the_independent_graph(settings: Any) -> None:
    events = generated_events()
    values = [json.dumps(e).encode() for e in events]
    _send(settings, values + values[:20])  # some sent twice
    report = consume(settings, once=True)
    assert (report.stored_events, report.dead_letters, report.duplicates) == (len(events), 0, 20)
    datasets = sorted({(d["namespace"], d["name"]) for e in events for k in ("inputs", "outputs") for d in e.get(k) or []})
    assert len(datasets) >= 12
    assert check_walks(settings, events, datasets) >= 12


# Read when the tests are collected: the autouse fixture isolates the environment of each test.
CORPUS = corpus_dir()


@pytest.mark.skipif(CORPUS is None, reason=MISSING)
def test_real_producers_events_stored_once_or_dead_lettered_and_walked(settings: Any) -> None:
    from lineage import decode

    root = CORPUS
    assert root is not None
    items = corpus_events(root)
    producers = {name.split("/")[0] for name, _ in items}
    assert len(producers) >= 3
    values = [v for _, v in items]
    # Everything twice, plus a copy serialised another way (sorted keys, spaces): one row each.
    resorted = [json.dumps(json.loads(v), sort_keys=True, indent=1).encode() for v in values]
    _send(settings, values + values + resorted)
    report = consume(settings, once=True)
    ns = settings.lineage.namespace
    stored_ids = [r["event_id"] for r in run_sql(settings, f"SELECT event_id FROM {ns}.events").to_pylist()]
    assert len(stored_ids) == len(set(stored_ids))  # nothing twice
    dead = run_sql(settings, f"SELECT raw, reason FROM {ns}.dead_letters").to_pylist()
    dead_reason = {bytes(r["raw"]): r["reason"] for r in dead}
    assert len(dead) == len(dead_reason)  # the same bytes: one dead letter
    stored_events, valid = [], 0
    for (name, raw), again in zip(items, resorted):
        event = json.loads(raw)
        eid = ev.event_id(raw)
        good = decode.check_event(event) is None
        if _schema_valid(event):
            valid += 1
            assert good and eid in stored_ids, f"{name}: schema-valid but not stored"
        if good:
            assert eid in stored_ids, name
            stored_events.append(event)
        else:
            assert raw in dead_reason and again in dead_reason, f"{name}: neither stored nor dead-lettered"
            assert dead_reason[raw] == decode.check_event(event) and dead_reason[raw], name
    assert valid >= 8 and len(stored_events) >= 12
    assert report.dead_letters >= len(dead)
    # Placeholders, naive times and missing fields all reached the dead letters, with reasons.
    reasons = " | ".join(dead_reason.values())
    for expected in ("placeholder", "no time zone", "missing required field(s) of a RunEvent: eventTime"):
        assert expected in reasons, expected
    datasets = sorted({(d["namespace"], d["name"]) for e in stored_events for k in ("inputs", "outputs") for d in e.get(k) or []
                       if isinstance(d, dict)})
    nontrivial = check_walks(settings, stored_events, datasets)
    print(f"real corpus: {len(datasets)} seeds, {nontrivial} walks reaching more than one run")
    assert len(datasets) >= 12


def test_bad_input_is_dead_lettered_once_and_facets_are_kept_faithfully(settings: Any) -> None:
    """Placeholders, naive times, unknown kinds, facets of the wrong type (issue 17, "Bad input"):
    what can be trusted is stored, the rest dead-lettered once per distinct bytes, the consumer
    goes on; job facets keep their latest value by event time."""

    def run_event(when: str, **extra: Any) -> dict[str, Any]:
        return {"eventType": "COMPLETE", "eventTime": when, "producer": "p", "schemaURL": "s",
                "run": {"runId": "01930000-0000-7000-8000-0000000000aa"}, "job": {"namespace": "n", "name": "j"}, **extra}

    bad = [
        json.dumps(run_event("2026-11-20T10:00:00Z", run={"runId": "{{ any(result) }}"})).encode(),
        json.dumps(run_event("2026-11-20T10:00:00")).encode(),               # no time zone
        json.dumps({"eventTime": "2026-11-20T10:00:00Z", "whatever": 1}).encode(),  # no run, job or dataset
        b"{not json",
    ]
    good = [
        # a later event arrives first: its sql facet stays the latest
        run_event("2026-11-20T10:05:00Z", job={"namespace": "n", "name": "j", "facets": {"sql": {"query": "v2"}, "ownership": {"owners": []}}}),
        run_event("2026-11-20T10:01:00Z", eventType="START", job={"namespace": "n", "name": "j", "facets": {"sql": {"query": "v1"}}}),
        # unknown event kind, a facet group that is a string, a dataset facet that is a list: all stored
        run_event("2026-11-20T10:06:00Z", eventType="SOMETHING_NEW", run={"runId": "01930000-0000-7000-8000-0000000000bb", "facets": "odd"},
                  outputs=[{"namespace": "n", "name": "out", "facets": {"schema": [1, 2], "version": {"datasetVersion": "7"}},
                            "outputFacets": "not an object"}]),
    ]
    values = [json.dumps(e).encode() for e in good]
    _send(settings, bad + values + bad)
    report = consume(settings, once=True)
    assert (report.stored_events, report.dead_letters) == (3, 8)
    ns = settings.lineage.namespace
    dead = run_sql(settings, f"SELECT reason, dead_letter_id FROM {ns}.dead_letters ORDER BY reason").to_pylist()
    assert len(dead) == 4  # eight received, four distinct
    assert [d["reason"].split(" ")[0] for d in dead] == ["eventTime", "invalid", "not", "run.runId"]
    latest = run_sql(settings, f"SELECT facet_name, arg_max(facet_value, facet_time) AS v FROM {ns}.jobs "
                               "WHERE facet_name IS NOT NULL GROUP BY ALL ORDER BY 1").to_pylist()
    assert [(r["facet_name"], json.loads(r["v"])) for r in latest] == [("ownership", {"owners": []}), ("sql", {"query": "v2"})]
    (odd,) = run_sql(settings, f"SELECT event_type, version, facets, output_facets FROM {ns}.run_datasets").to_pylist()
    assert (odd["event_type"], odd["version"], json.loads(odd["facets"])["schema"], json.loads(odd["output_facets"])) == (
        "SOMETHING_NEW", "7", [1, 2], "not an object")
