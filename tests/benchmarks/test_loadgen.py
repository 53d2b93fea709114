"""The serving benchmarks' load generator against a real uvicorn server on loopback: it counts what
was answered and what failed, and a keep-alive connection the server closed is never counted as a
server failure (the race that made the first swap benchmark report 21 failed requests)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from benchmarks import loadgen


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/ok answers 200 with the body it got, /fail answers 500."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status = 200 if scope["path"] == "/ok" else 500
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server() -> Iterator[int]:
    """uvicorn on loopback, closing keep-alive connections after 1 s idle (its default is 5 s)."""
    port = _port()
    srv = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=1))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(10)


def _spec(port: int, path: str, **kw: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "path": path, "body": json.dumps({"records": [{"x": 1.0}]}), **kw}


def test_closed_loop_counts_answers(server: int) -> None:
    got = loadgen.run(_spec(server, "/ok", mode="closed", seconds=1.0, concurrency=4, warmup=0.2))
    assert got["failed"] == 0 and got["ok"] > 10
    assert got["rps"] == pytest.approx(got["ok"] / 1.0)
    assert len(got["latencies"]) == got["ok"] and min(got["latencies"]) > 0


def test_non_2xx_answers_are_failures_with_their_status(server: int) -> None:
    got = loadgen.run(_spec(server, "/fail", mode="closed", seconds=0.5, concurrency=2, warmup=0.1))
    assert got["ok"] == 0 and got["failed"] > 0
    assert got["errors"][0] == "HTTP 500"


def test_open_loop_sends_on_schedule_and_keeps_the_answers(server: int) -> None:
    got = loadgen.run(_spec(server, "/ok", mode="open", seconds=1.0, rate=20, keep_bodies=True))
    assert (got["ok"], got["failed"], got["sent"]) == (20, 0, 20)
    scheduled, answered, status, body = got["bodies"][0]
    assert status == 200 and json.loads(body) == {"records": [{"x": 1.0}]} and answered >= scheduled


def test_a_connection_the_server_closed_while_idle_is_not_a_failure(server: int) -> None:
    # One request every 1.5 s: each finds its pooled connection closed by uvicorn (1 s keep-alive).
    got = loadgen.run(_spec(server, "/ok", mode="open", seconds=4.5, rate=1 / 1.5))
    assert (got["ok"], got["failed"]) == (3, 0), got["errors"]


def test_a_server_that_is_not_there_fails_every_request() -> None:
    got = loadgen.run(_spec(_port(), "/ok", mode="open", seconds=0.5, rate=10))
    assert got["ok"] == 0 and got["failed"] == 5
    assert got["errors"][0].startswith("ConnectionRefusedError")
