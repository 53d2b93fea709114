"""The HTTP load generator the serving benchmarks point at every server alike (Tidemark, BentoML).

It runs in a process of its own (`python -m benchmarks.loadgen SPEC_JSON`, one JSON line out), on
uvloop, over keep-alive HTTP/1.1 connections: the request bytes are built once, responses are parsed
by httptools (uvicorn's C parser). A full client such as httpx spends several times more CPU per
request, and on this 2-core machine the client and the server share the cores: every CPU second the
client spends is one the server does not get, so the lightest honest client measures the servers best.

Two modes:
- `closed`: `concurrency` connections each send the next request as soon as the previous answer is
  in, for `seconds` (after `warmup` seconds not counted): throughput at saturation.
- `open`: requests start on a fixed schedule, `rate` per second, whatever the answers do (a new
  connection is opened when all are busy); each latency runs from the request's *scheduled* start,
  so a stalled server is not hidden by the client waiting for it (no coordinated omission). SIGTERM
  ends the run early (what is in flight is still awaited) and the report is printed as usual.

A request fails when the connection breaks or the status is not 2xx; each answer's body can be kept
(`keep_bodies`) for callers that read what answered (the swap benchmark).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httptools

IDLE_S = 3.0


@dataclass
class _Answer:
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    done: bool = False


class _Conn:
    """One keep-alive connection: send a request, read one whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        """Whether this idle connection can take a request: not closed by the server, and idle for
        less than IDLE_S (uvicorn, under both servers, closes a keep-alive connection after 5 s
        idle; a request written into that close would count as a failure of the server)."""
        return not self.reader.at_eof() and time.monotonic() - self.idle_since < IDLE_S

    @classmethod
    async def open(cls, host: str, port: int) -> _Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        answer = _Answer()

        class _Proto:
            def on_body(self, data: bytes) -> None:
                answer.body += data

            def on_message_complete(self) -> None:
                answer.done = True

        parser = httptools.HttpResponseParser(_Proto())
        self.writer.write(raw)
        while not answer.done:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            parser.feed_data(data)
        answer.status = parser.get_status_code()
        return answer.status, bytes(answer.body)

    def close(self) -> None:
        self.writer.close()


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _closed(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], int(spec["port"])
    raw = request_bytes(host, port, spec["path"], spec["body"].encode())
    warmup, seconds = float(spec.get("warmup", 1.0)), float(spec["seconds"])
    start = time.monotonic()
    count_from, stop = start + warmup, start + warmup + seconds
    ok = failed = 0
    latencies: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        nonlocal ok, failed
        conn: _Conn | None = None
        while time.monotonic() < stop:
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = await _Conn.open(host, port)
                status, _ = await conn.request(raw)
                good = 200 <= status < 300
                if not good and len(errors) < 5:
                    errors.append(f"HTTP {status}")
            except (OSError, ConnectionError, httptools.HttpParserError) as exc:
                good = False
                if conn is not None:
                    conn.close()
                conn = None
                if len(errors) < 5:
                    errors.append(f"{exc.__class__.__name__}: {exc}")
            t1 = time.monotonic()
            if count_from <= t0 and t1 <= stop:  # only requests wholly inside the measured window
                if good:
                    ok += 1
                    latencies.append(t1 - t0)
                else:
                    failed += 1
        if conn is not None:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(int(spec["concurrency"]))))
    return {"ok": ok, "failed": failed, "rps": ok / seconds, "latencies": latencies, "errors": errors}


async def _open(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], int(spec["port"])
    raw = request_bytes(host, port, spec["path"], spec["body"].encode())
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    keep = bool(spec.get("keep_bodies"))
    idle: list[_Conn] = []
    ok = failed = 0
    latencies: list[float] = []
    bodies: list[tuple[float, float, int, str]] = []  # (scheduled wall time, answered wall time, status, body)
    errors: list[str] = []
    pending: set[asyncio.Task[None]] = set()
    failures: list[float] = []  # wall times of the failed requests
    stopping = asyncio.Event()  # SIGTERM: stop sending, finish what is in flight, report
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)

    async def one(scheduled: float) -> None:
        nonlocal ok, failed
        conn = idle.pop() if idle else None
        while conn is not None and not conn.reusable():
            conn.close()
            conn = idle.pop() if idle else None
        status, body = 0, b""
        try:
            if conn is None:
                conn = await _Conn.open(host, port)
            status, body = await conn.request(raw)
            conn.idle_since = time.monotonic()
            idle.append(conn)
        except (OSError, ConnectionError, httptools.HttpParserError) as exc:
            if conn is not None:
                conn.close()
            if len(errors) < 5:
                errors.append(f"{exc.__class__.__name__}: {exc}")
        done = time.monotonic()
        if not 200 <= status < 300:
            failures.append(time.time())
        if 200 <= status < 300:
            ok += 1
            latencies.append(done - scheduled)
        else:
            failed += 1
            if status and len(errors) < 5:
                errors.append(f"HTTP {status}: {body[:200].decode(errors='replace')}")
        if keep:
            wall = time.time() - (time.monotonic() - scheduled)
            bodies.append((wall, time.time(), status, body.decode(errors="replace")))

    start = time.monotonic()
    n = int(rate * seconds)
    for i in range(n):
        if stopping.is_set():
            break
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=float(spec.get("drain", 30)))
    behind = max(0.0, time.monotonic() - start - seconds)
    for conn in idle:
        conn.close()
    out: dict[str, Any] = {"ok": ok, "failed": failed, "sent": ok + failed, "failures": failures, "latencies": latencies, "errors": errors, "drain_s": behind}
    if keep:
        out["bodies"] = bodies
    return out


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import uvloop

    cpu = time.process_time()
    out = uvloop.run(_closed(spec) if spec["mode"] == "closed" else _open(spec))
    out["cpu_s"] = time.process_time() - cpu  # the client's own CPU: what it took from the shared cores
    return out


def in_child(spec: dict[str, Any], python: str | None = None) -> dict[str, Any]:
    """`run(spec)` in a process of its own (the caller's own work never shares its event loop)."""
    import subprocess

    done = subprocess.run(
        [python or sys.executable, "-m", "benchmarks.loadgen"], input=json.dumps(spec), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return dict(json.loads(done.stdout))


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.stdin.read()))), flush=True)
