"""Time to first paint of the plugin's heaviest pages, in headless Chromium against `airflow api-server`.

- The model-version page of a model with 5 inputs and 200 upstream (ingest) runs: 5 Iceberg tables
  of 40 landings each, their ingest runs' events in the lineage store, and registered versions
  trained on their latest snapshots. The page draws the whole trace (~600 boxes, laid out by dot).
- The lineage search walk (5 runs upstream) over the 1M-event store `bench_lineage_trace` builds.

Measured per load from navigation start to the graph drawn and interactive (graph.js's
`tm-graph-ready` mark; first contentful paint is reported too). Cold: a new browser context (no
HTTP cache) and a page no one asked for before (another version, another chain: the server's kept
answers and layouts miss). Warm: the same page again in the same context (the server's kept answer
hits while the tables are unchanged). Side by side: the page's JSON twin, warm (the server's share). Targets (issue 20):
p95 <= 1 s warm, <= 2 s cold. The stores are built once per size and kept under `.bench/ui/<sizes>/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import bench_lineage_trace as trace
from benchmarks.common import kept_home, percentile, result

INPUTS = 5
CHROMIUM = "/usr/bin/chromium"
MODEL = "bench_model"


def _sizes(quick: bool) -> dict[str, int]:
    return {"landings": 8 if quick else 40, "events": 50_000 if quick else 1_000_000, "repeats": 6 if quick else 20}


def _build_model(settings: Any, landings: int, versions: int) -> None:
    """5 tables x `landings` real Iceberg landings (with the summary properties a landing writes), each
    landing's ingest run in the lineage store, and `versions` registered versions on the latest snapshots."""
    import pyarrow as pa

    from lakehouse.catalog import load_catalog
    from lakehouse.tables import JOB_NAME, RUN_ID, SOURCE_PATH, SOURCE_SHA256, TableName, ensure_table
    from lineage import events as ev
    from lineage.consumer import ConsumeReport, LineageWriter
    from models.registry import InputSnapshot, Registry

    from pyiceberg.schema import Schema
    from pyiceberg.types import DoubleType, LongType, NestedField

    catalog = load_catalog(settings)
    catalog.create_namespace_if_not_exists("bench")
    schema = pa.schema([("id", pa.int64()), ("x", pa.float64())])
    raw: list[bytes] = []
    inputs = []
    for t in range(INPUTS):
        name = f"bench.input_{t}"
        table = ensure_table(catalog, TableName.parse(name), Schema(NestedField(1, "id", LongType()), NestedField(2, "x", DoubleType())))
        for i in range(landings):
            run_id = ev.new_run_id()
            path, sha = f"/landing/input_{t}/part-{i:03d}.csv", f"{t:02x}{i:062x}"
            table.append(pa.table({"id": [i * 10 + k for k in range(10)], "x": [float(k) for k in range(10)]}, schema=schema),
                         snapshot_properties={RUN_ID: run_id, JOB_NAME: f"ingest.{name}", SOURCE_PATH: path, SOURCE_SHA256: sha})
            sid = table.current_snapshot().snapshot_id
            gate = ev.facet("bench", f"{ev.FACETS}/1-0-1/DataQualityAssertionsDatasetFacet.json",
                            assertions=[{"assertion": "expect_column_values_to_not_be_null", "success": True, "column": "id"}])
            out = ev.table_dataset(settings, name, table, sid, "output", extra_facets={"dataQualityAssertions": gate})
            src = ev.file_dataset(producer="bench", path=path, sha256=sha, size=100, fmt="csv")
            for kind in ("START", "COMPLETE"):
                raw.append(ev.serialize(ev.run_event(producer="bench", event_type=kind, run_id=run_id, job_namespace="tidemark",
                                                     job_name=f"ingest.{name}", inputs=[src], outputs=[out] if kind == "COMPLETE" else [])))
        inputs.append((name, table, table.current_snapshot().snapshot_id))
    registry = Registry(settings, catalog)
    for _ in range(versions):
        run_id = ev.new_run_id()
        reads = [ev.table_dataset(settings, n, tbl, sid, "input") for n, tbl, sid in inputs]
        raw.append(ev.serialize(ev.run_event(producer="bench", event_type="COMPLETE", run_id=run_id, job_namespace="tidemark",
                                             job_name=f"train.{MODEL}", inputs=reads, outputs=[])))
        registry.register(model=MODEL, run_id=run_id, job_name=f"train.{MODEL}", entry_point="bench:train", artifact_uri="file:///bench",
                          sha256="0" * 64, metrics={"score": 1.0}, inputs=[InputSnapshot(n, sid, landings * 10, None) for n, _, sid in inputs],
                          parameters={})
    writer = LineageWriter(settings, catalog)
    # A partition of its own: the 1M-event store already holds offsets on partition 0.
    writer.write_columns([9] * len(raw), list(range(len(raw))), raw, ConsumeReport())


def _build(home: Path, sizes: dict[str, int]) -> None:
    """The model store of this size in `home`: the 1M-event lineage store and the 200-run model."""
    from benchmarks.bench_lineage_trace import build_store
    from lakehouse.config import load_settings

    settings = load_settings(environ={"TIDEMARK_HOME": str(home)})
    build_store(settings, sizes["events"], home / "events.jsonl")
    (home / "events.jsonl").unlink()
    _build_model(settings, sizes["landings"], versions=sizes["repeats"] + 2)


def _server(home: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    from lakehouse.config import load_settings
    from lineage.broker import free_port
    from tidemark import airflow_env

    env = airflow_env.environ(load_settings(environ={"TIDEMARK_HOME": str(home)}), {**os.environ, "TIDEMARK_HOME": str(home)})
    if not (Path(env["AIRFLOW_HOME"]) / "airflow.db").exists():
        subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    password = airflow_env.admin_password(env)
    port = free_port()
    log = (home / "api-server.log").open("w")
    proc = subprocess.Popen(["airflow", "api-server", "--port", str(port), "--workers", "1"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2):
                break
        except OSError:
            time.sleep(1)
    req = urllib.request.Request(f"{base}/auth/token", data=json.dumps({"username": airflow_env.ADMIN, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        token = json.load(r)["access_token"]
    return proc, base, token


def _api_ms(url: str, token: str) -> float:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()
    return (time.perf_counter() - start) * 1000


def _load(context: Any, url: str) -> tuple[float, float, int]:
    """(graph drawn ms, first contentful paint ms, boxes) of one page load, from navigation start."""
    page = context.new_page()
    page.goto(url, wait_until="commit", timeout=120_000)
    page.wait_for_selector(".tm-graph-view[data-tm-ready]", timeout=120_000)
    ready, fcp, boxes = page.evaluate(
        """() => [performance.getEntriesByName('tm-graph-ready')[0].startTime,
                  (performance.getEntriesByName('first-contentful-paint')[0] || {startTime: NaN}).startTime,
                  document.querySelectorAll('g.node').length]"""
    )
    page.close()
    return float(ready), float(fcp), int(boxes)


def run(quick: bool) -> None:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Debian's chromium is not installed: run `make sysdeps`")
    sizes = _sizes(quick)
    with kept_home("ui", sizes, lambda home: _build(home, sizes)) as (home, built_s, _):
        _measure(home, sizes, built_s)


def _measure(home: Path, sizes: dict[str, int], built_s: float) -> None:
    import signal

    from playwright.sync_api import sync_playwright

    repeats = sizes["repeats"]
    proc, base, token = _server(home)
    try:
        # The walk's seeds: the last dataset of chains spread over the store (bench_lineage_trace's
        # shape: EVENTS_PER_RUN events a run, CHAIN runs a day for DAYS days), named without a
        # version as 90% of its references are.
        chains = sizes["events"] // trace.EVENTS_PER_RUN // (trace.CHAIN * trace.DAYS)
        version_urls = [f"{base}/tidemark/models/{MODEL}/versions/{v}" for v in range(1, repeats + 2)]
        walk_urls = [f"{base}/tidemark/lineage?" + urllib.parse.urlencode(
            {"node": f"dataset:s3://lake:/w/chain{c}/d{trace.CHAIN}", "direction": "upstream", "depth": 5}) for c in range(0, chains, max(1, chains // (repeats + 1)))][: repeats + 1]
        out: dict[str, Any] = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])

            def context() -> Any:
                c = browser.new_context(viewport={"width": 1400, "height": 900})
                c.add_cookies([{"name": "_token", "value": token, "url": base}])
                return c

            # The first page after the server started (imports, catalog, DuckDB): reported apart.
            c = context()
            out["first_ms"], _, _ = _load(c, version_urls[0])
            c.close()
            for name, urls in (("version", version_urls[1:]), ("walk", walk_urls[1:])):
                cold, fcps, boxes = [], [], 0
                for url in urls[:repeats]:
                    c = context()
                    ready, fcp, boxes = _load(c, url)
                    cold.append(ready)
                    fcps.append(fcp)
                    c.close()
                c = context()
                _load(c, urls[0])
                warm = [_load(c, urls[0])[0] for _ in range(repeats)]
                c.close()
                api = [_api_ms(urls[0].replace("/tidemark/", "/tidemark/api/"), token) for _ in range(repeats)]
                out[name] = {"cold_p95_ms": percentile(cold, 95), "warm_p95_ms": percentile(warm, 95), "fcp_cold_p95_ms": percentile(fcps, 95),
                             "api_warm_p95_ms": percentile(api, 95), "boxes": boxes}
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    v, w = out["version"], out["walk"]
    print(f"model {MODEL}: {INPUTS} inputs x {sizes['landings']} landings = {INPUTS * sizes['landings']} upstream runs, {v['boxes']} boxes; "
          f"walk over {sizes['events']} events, {w['boxes']} boxes; store {'built in ' + format(built_s, '.0f') + ' s' if built_s else 'cached'}")
    for name, d in out.items():
        if isinstance(d, dict):
            print(f"  {name}: cold p95 {d['cold_p95_ms']:.0f} ms, warm p95 {d['warm_p95_ms']:.0f} ms (FCP cold p95 {d['fcp_cold_p95_ms']:.0f} ms; "
                  f"JSON twin warm p95 {d['api_warm_p95_ms']:.0f} ms)")
    result("ui", upstream_runs=INPUTS * sizes["landings"], events=sizes["events"], first_ms=out["first_ms"],
           version_cold_p95_ms=v["cold_p95_ms"], version_warm_p95_ms=v["warm_p95_ms"], version_api_p95_ms=v["api_warm_p95_ms"], version_boxes=v["boxes"],
           walk_cold_p95_ms=w["cold_p95_ms"], walk_warm_p95_ms=w["warm_p95_ms"], walk_api_p95_ms=w["api_warm_p95_ms"],
           target_warm_ms=1000, target_cold_ms=2000)

