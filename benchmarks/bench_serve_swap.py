"""Alias swaps under load: `tidemark serve wine@production` while `tidemark models promote` moves the alias.

Two versions of the wine model are trained (C differs, so two artifacts) in a scratch home on the
embedded stack; the service starts on version 1 and, once it is subscribed to the lineage topic,
a client (`benchmarks.loadgen`, open loop, a constant rate of 1-record requests) runs while this
process promotes the other version N times (quick: 2, full: 5), each PERIOD seconds after the
previous one returned, each with the
CLI a user types (`tidemark models promote wine V --alias production --force --reason ...`; forced
because no lineage consumer runs here to show the gate the landing's validation).

Measured per promotion: the time from the promote command's return to the first answer by the new
version (every answer names its version); below 0 when the service swapped before the command had
exited (the CLI takes seconds to start and finish on this loaded machine, and the lineage event goes
out as soon as the move is recorded). So the time from the move's record in the registry (its alias
event time) to that first answer is reported beside (`swap_from_record_*`): what a user sees when
the promotion comes from elsewhere (a DAG, another machine). Counted over the whole run: failed requests (connection
errors, non-2xx), and answers whose version and artifact_sha256 do not belong together (what a
half-swapped model would show). A promotion with no answer by the new version before the next one
counts as a swap of at least the time to the next (`not_swapped`). Targets (issue 21): 0 failed requests,
swap p99 <= 5 s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from benchmarks.common import local_broker, percentile, result, scratch_home
from benchmarks.serve_common import ALIAS, HOST, MODEL, body, client_report, free_port, log, start_client, tidemark_server, train_wine

PERIOD = 6.0  # seconds after a promote returns before the next: room for a swap of up to PERIOD, target 5


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


def _promote(version: int) -> tuple[float, float]:
    """Promote with the CLI; the wall times the command started and returned."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "tidemark", "models", "promote", MODEL, str(version), "--alias", ALIAS,
         "--force", "--reason", "serve_swap benchmark", "--output", "json"],
        capture_output=True, text=True, check=False,
    )
    returned = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"promote {MODEL}:{version} failed: {done.stderr.strip().splitlines()[-1:]}")
    return started, returned


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
                    "seconds": 3600, "rate": rate, "keep_bodies": True}  # until SIGTERM
            report = home / "client.json"
            client = start_client(spec, report)
            promotions: list[tuple[float, float, int]] = []  # (command started, returned, version)
            try:
                time.sleep(2.0)  # answers by version 1 first
                for i in range(swaps):
                    target = versions[(i + 1) % 2]
                    began, returned = _promote(target)
                    promotions.append((began, returned, target))
                    log(f"promoted {MODEL}:{target} to {ALIAS} (the command took {returned - began:.1f} s)")
                    time.sleep(PERIOD)
                client.send_signal(signal.SIGTERM)
                got = client_report(client, report)
            finally:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            if server.poll() is not None:
                raise RuntimeError(f"tidemark serve died during the run; see {home}")
        # When each move was recorded (the alias event's time, set as the promote writes it).
        moves = [r for r in Registry(settings).alias_history(MODEL) if r.get("alias") == ALIAS and r.get("action", "set") == "set"]
        recorded = [(r["event_time"].timestamp(), int(r["version"])) for r in moves][-swaps:]
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
    from_record_s: list[float] = []
    not_swapped = 0
    for k, (began, returned, version) in enumerate(promotions):
        until = promotions[k + 1][0] if k + 1 < len(promotions) else float("inf")
        # From the command's start: the service may swap before the CLI has exited (the event is
        # out as soon as the move is recorded), which counts as a swap time below 0.
        first = next((t for t, v in answers if v == version and began <= t < until), None)
        if first is None:
            not_swapped += 1
            swap_s.append(until - returned if until != float("inf") else PERIOD)
            log(f"promotion {k + 1}: no answer by version {version} before the next promotion")
        else:
            swap_s.append(first - returned)
            at, recorded_version = recorded[k] if k < len(recorded) else (float("nan"), version)
            if recorded_version == version:
                from_record_s.append(first - at)
            log(f"promotion {k + 1}: first answer by version {version} {first - returned:+.2f} s after the promote returned, "
                f"{first - at:.2f} s after the move was recorded (the command took {returned - began:.1f} s)")
    if got["failed"]:
        when = ", ".join(f"{min((t - r for _b, r, _v in promotions), key=abs):+.1f} s" for t in got["failures"][:20])
        log(f"failed requests: {got['failed']} ({got['errors']}); relative to the nearest promote's return: {when}")
    result(
        "serve_swap", failed=got["failed"], answered=got["ok"], swaps=swaps, not_swapped=not_swapped, mismatched=mismatched,
        swap_p50_s=percentile(swap_s, 50), swap_p99_s=percentile(swap_s, 99), swap_max_s=max(swap_s),
        swap_from_record_p50_s=percentile(from_record_s, 50), swap_from_record_p99_s=percentile(from_record_s, 99),
        rate_per_s=rate, workers=workers, target_failed=0, target_swap_p99_s=5.0, mode="quick" if quick else "full",
    )


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
