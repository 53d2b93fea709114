"""The example notification subscriber: post each notification on the lineage topic to a webhook.

It reads the topic with a consumer group of its own (`notifications.consumer_group`), keeps the
events that carry a notification (`lineage.notifications.from_event`), and POSTs each one as JSON to
`notifications.webhook_url`. Offsets are committed only after the receiver answered 2xx, so a
receiver that is down loses nothing: the subscriber stops with the error, and the next start posts
again from the first notification not delivered (at least once, like the topic itself; the body's
`runId` tells repeats apart). examples/webhook_subscriber.py runs it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from lakehouse.config import Settings
from lineage import notifications
from lineage.exceptions import WebhookError

RETRIES = 3


def post(url: str, notification: Mapping[str, Any], timeout_s: float) -> int:
    """POST `notification` as JSON; the HTTP status. Retries a failed delivery a few times, then raises."""
    body = json.dumps(notification, default=str).encode()
    last = ""
    for attempt in range(RETRIES):
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (an http(s) URL checked by the config)
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            last = f"answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = f"could not be reached ({getattr(exc, 'reason', exc)})"
        time.sleep(0.2 * 2**attempt)
    raise WebhookError(
        f"the webhook {url} {last} for notification {notification.get('kind')} of run {notification.get('runId')}; "
        "nothing was committed past it: fix the receiver (or notifications.webhook_url) and start the subscriber again"
    )


def forward(
    settings: Settings,
    url: str | None = None,
    *,
    stop: threading.Event | None = None,
    limit: int | None = None,
    idle_s: float | None = None,
    on_post: Callable[[dict[str, Any]], None] = lambda _n: None,
) -> int:
    """Post notifications until `stop` is set, `limit` were posted, or nothing arrived for `idle_s`; how many were posted."""
    from lineage.kafka import consumer, ensure_topic

    url = url or settings.notifications.webhook_url
    if not url:
        raise WebhookError("no webhook URL: set notifications.webhook_url (or TIDEMARK__NOTIFICATIONS__WEBHOOK_URL), or pass --url")
    if not url.startswith(("http://", "https://")):
        raise WebhookError(f"webhook URL {url!r} is not http:// or https://; give the receiver's URL")
    ensure_topic(settings)
    kc = consumer(settings, settings.notifications.consumer_group)
    stop = stop or threading.Event()
    posted = 0
    quiet_since = time.monotonic()
    try:
        kc.subscribe([settings.kafka.topic])
        while not stop.is_set() and (limit is None or posted < limit):
            batch = kc.poll(timeout_ms=200)
            if not batch:
                if not kc.assignment():
                    quiet_since = time.monotonic()  # still joining the group: quiet only counts once partitions are ours
                elif idle_s is not None and time.monotonic() - quiet_since > idle_s:
                    break
                continue
            quiet_since = time.monotonic()
            for records in batch.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except (ValueError, UnicodeDecodeError):
                        continue  # not JSON: not ours to notify about (the lineage store dead-letters it)
                    found = notifications.from_event(event) if isinstance(event, dict) else None
                    if found is not None:
                        post(url, found, settings.notifications.timeout_s)
                        posted += 1
                        on_post(found)
            kc.commit()
    finally:
        kc.close()
    return posted
