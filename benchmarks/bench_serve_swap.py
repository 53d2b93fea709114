"""Alias swaps under load: `tidemark serve wine@production` while `tidemark models promote` moves the alias.

Two versions of the wine model are trained (C differs, so two artifacts) in a scratch home on the
embedded stack; the service starts on version 1 and, once it is subscribed to the lineage topic,
a client (`benchmarks.loadgen`, open loop, a constant rate of 1-record requests) runs while this
process promotes the other version every PERIOD seconds, N times (quick: 2, full: 5), each with the
CLI a user types (`tidemark models promote wine V --alias production --force --reason ...`; forced
because no lineage consumer runs here to show the gate the landing's validation).

Measured per promotion: the time from the promote command's return to the first answer by the new
version (every answer names its version). Counted over the whole run: failed requests (connection
errors, non-2xx), and answers whose version and artifact_sha256 do not belong together (what a
half-swapped model would show). A promotion with no answer by the new version before the next one
counts as a swap of PERIOD seconds or more (`not_swapped`). Targets (issue 21): 0 failed requests,
swap p99 <= 5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

from benchmarks.common import local_broker, percentile, result, scratch_home
from benchmarks.serve_common import ALIAS, HOST, MODEL, ROOT, body, free_port, log, tidemark_server, train_wine

PERIOD = 8.0  # seconds between promotions: room for a swap of up to PERIOD, target 5


def _wait_subscribed(port: int, timeout: float) -> bool:
    """Whether the service says it follows the lineage topic (GET /readyz `events`) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2) as r:
                if json.loads(r.read()).get("events"):
                    return True
        except OSError:
            pass
        time.sleep(0.25)
    return False


def _promote(version: int) -> float:
    """Promote with the CLI; the wall time the command returned."""
    done = subprocess.run(
        [sys.executable, "-m", "tidemark", "models", "promote", MODEL, str(version), "--alias", ALIAS,
         "--force", "--reason", "serve_swap benchmark", "--output", "json"],
        capture_output=True, text=True, check=False,
    )
    returned = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"promote {MODEL}:{version} failed: {done.stderr.strip().splitlines()[-1:]}")
    return returned


def run(quick: bool) -> None:
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lineage.kafka import ensure_topic
    from lineage.store import ensure_tables
    from models.registry import Registry

    swaps, rate = (2, 50.0) if quick else (5, 100.0)
    workers = int(os.environ.get("BENCH_SERVE_WORKERS", "1"))
    with scratch_home("serve-swap") as home, local_broker(load_settings()):
        settings = load_settings()
        ensure_topic(settings)
        ensure_tables(load_catalog(settings), settings)
        versions = train_wine(settings, home, versions=2)
        sha = {v: Registry(settings).get(MODEL, v).sha256 for v in versions}
        port = free_port()
        with tidemark_server(home, port, workers) as server:
            if not _wait_subscribed(port, 60):
                log("the service did not report following the lineage topic within 60 s; swaps then rely on its registry poll")
            spec = {"mode": "open", "host": HOST, "port": port, "path": "/predict", "body": body(home, 1),
                    "seconds": 2.0 + swaps * PERIOD, "rate": rate, "keep_bodies": True}
            client = subprocess.Popen([sys.executable, "-m", "benchmarks.loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, cwd=str(ROOT))
            assert client.stdin is not None
            client.stdin.write(json.dumps(spec))
            client.stdin.close()
            promotions: list[tuple[float, int]] = []
            try:
                time.sleep(2.0)  # answers by version 1 first
                for i in range(swaps):
                    started = time.monotonic()
                    target = versions[(i + 1) % 2]
                    promotions.append((_promote(target), target))
                    log(f"promoted {MODEL}:{target} to {ALIAS} (the command took {time.monotonic() - started:.1f} s)")
                    time.sleep(max(0.0, PERIOD - (time.monotonic() - started)))
                out, _ = client.communicate(timeout=120)
            finally:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            if server.poll() is not None:
                raise RuntimeError(f"tidemark serve died during the run; see {home}")
    got = json.loads(out)
    answers = []  # (answered wall time, version) of each answered request
    mismatched = 0
    for _scheduled, answered, status, text in got["bodies"]:
        if 200 <= status < 300:
            a = json.loads(text)
            answers.append((answered, int(a["version"])))
            if sha.get(int(a["version"])) != a.get("artifact_sha256"):
                mismatched += 1
    answers.sort()
    swap_s: list[float] = []
    not_swapped = 0
    for k, (returned, version) in enumerate(promotions):
        until = promotions[k + 1][0] if k + 1 < len(promotions) else float("inf")
        first = next((t for t, v in answers if v == version and returned <= t < until), None)
        if first is None:
            not_swapped += 1
            swap_s.append(PERIOD)
            log(f"promotion {k + 1}: no answer by version {version} before the next promotion")
        else:
            swap_s.append(first - returned)
            log(f"promotion {k + 1}: first answer by version {version} {first - returned:.2f} s after the promote returned")
    if got["failed"]:
        log(f"failed requests: {got['failed']} ({got['errors']})")
    result(
        "serve_swap", failed=got["failed"], answered=got["ok"], swaps=swaps, not_swapped=not_swapped, mismatched=mismatched,
        swap_p50_s=percentile(swap_s, 50), swap_p99_s=percentile(swap_s, 99), swap_max_s=max(swap_s),
        rate_per_s=rate, workers=workers, target_failed=0, target_swap_p99_s=5.0, mode="quick" if quick else "full",
    )


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
