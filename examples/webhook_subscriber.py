"""Post Tidemark's notifications (pending requests, approvals, drift alarms, renewal decisions) to a webhook.

    python examples/webhook_subscriber.py                   # notifications.webhook_url from tidemark.yaml
    python examples/webhook_subscriber.py --url https://chat.example.com/hooks/T0/B0

Each notification is one JSON object: kind, model, alias, version, actor, summary, details, runId,
job, eventTime (docs/events.md). Runs until interrupted; `--idle S` stops after S seconds without events.
"""

from __future__ import annotations

import argparse
import sys

from lakehouse.config import load_settings
from lakehouse.exceptions import TidemarkError
from lineage.webhook import forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the webhook (default: notifications.webhook_url)")
    parser.add_argument("--limit", type=int, help="stop after posting this many")
    parser.add_argument("--idle", type=float, metavar="S", help="stop after S seconds without events")
    args = parser.parse_args(argv)
    try:
        posted = forward(
            load_settings(), args.url, limit=args.limit, idle_s=args.idle,
            on_post=lambda n: print(f"posted {n['kind']}: {n['summary']}", flush=True),
        )
    except TidemarkError as exc:
        print(f"webhook_subscriber: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print(f"posted {posted} notification(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
