"""The example notification subscriber, against the real local broker and a real HTTP server."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration


class Receiver:
    """A webhook on loopback that records what is posted, answering `status`."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.status == 200:
                    receiver.posted.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def forward_all(settings: Any, url: str) -> list[dict[str, Any]]:
    """Every notification on the topic, as the example subscriber posts them (stops when the topic is quiet)."""
    from lineage.webhook import forward

    posted: list[dict[str, Any]] = []
    forward(settings, url, idle_s=3.0, on_post=posted.append)
    return posted


def _emit_notifications(settings: Any) -> None:
    from lineage import events as ev
    from lineage import notifications
    from lineage.transport import KafkaTransport

    producer = settings.lineage.producer
    tr = KafkaTransport(settings)
    try:
        for i, kind in enumerate((notifications.ALIAS_REQUEST, notifications.DRIFT_ALARM)):
            facets = {notifications.FACET: notifications.facet(producer, kind, model="wine", alias="production", version=i + 1, summary=f"s{i}")}
            for event_type in ("START", "COMPLETE"):  # one notification per run: the COMPLETE's
                tr.emit(ev.run_event(producer=producer, event_type=event_type, run_id=f"0190f000-0000-7000-8000-00000000000{i}",
                                     job_namespace="tidemark", job_name=f"job{i}", run_facets=facets))
        tr.emit(ev.run_event(producer=producer, event_type="COMPLETE", run_id=ev.new_run_id(), job_namespace="tidemark", job_name="plain"))
    finally:
        tr.close()


def test_the_example_subscriber_posts_each_notification_once_and_keeps_what_a_failing_receiver_refused(
    settings: Any, receiver: Receiver, tmp_path: Path
) -> None:
    _emit_notifications(settings)
    script = [sys.executable, str(ROOT / "examples" / "webhook_subscriber.py")]
    import subprocess

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run([*script, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env})

    # A receiver that fails: one line naming the URL and what to do; nothing committed.
    receiver.status = 500
    proc = run("--url", receiver.url, "--idle", "3")
    assert proc.returncode == 1 and receiver.posted == []
    (line,) = proc.stderr.strip().splitlines()
    # (The two runs sit in different partitions: either may come first.)
    assert re.search(rf"the webhook {receiver.url} answered HTTP 500 for notification (alias_request|drift_alarm) of run ", line), line
    assert "start the subscriber again" in line

    proc = run("--url", "http://127.0.0.1:9/hook", "--idle", "3")  # nothing listens on the discard port
    assert proc.returncode == 1 and "the webhook http://127.0.0.1:9/hook could not be reached" in proc.stderr

    # The receiver is back: both notifications arrive, from the URL in the config this time.
    receiver.status = 200
    proc = run("--idle", "3", TIDEMARK__NOTIFICATIONS__WEBHOOK_URL=receiver.url)
    assert proc.returncode == 0, proc.stderr
    assert sorted((n["kind"], n["version"], n["summary"], n["job"]) for n in receiver.posted) == [
        ("alias_request", 1, "s0", "job0"), ("drift_alarm", 2, "s1", "job1"),
    ]
    assert "posted 2 notification(s)" in proc.stdout
    # Committed: a second start posts nothing again.
    assert run("--idle", "2", "--url", receiver.url).returncode == 0 and len(receiver.posted) == 2


def test_the_subscriber_without_a_url_says_which_setting_to_give(settings: Any) -> None:
    import subprocess
    import os

    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "webhook_subscriber.py"), "--idle", "1"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "webhook_subscriber: no webhook URL: set notifications.webhook_url (or TIDEMARK__NOTIFICATIONS__WEBHOOK_URL), or pass --url"
    )
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "webhook_subscriber.py"), "--url", "hooks.example.com"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and "webhook URL 'hooks.example.com' is not http:// or https://" in proc.stderr
    bad = run_cli("models", "list", check=False, env={"TIDEMARK__NOTIFICATIONS__WEBHOOK_URL": "ftp://x"})
    assert bad.returncode != 0 and "notifications.webhook_url must be an http:// or https:// URL" in bad.stderr
