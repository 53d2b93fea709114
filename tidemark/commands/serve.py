"""`tidemark serve NAME@ALIAS`: answer predictions over HTTP with the alias holder, following the alias."""

from __future__ import annotations

import argparse
import sys

from tidemark.commands.arguments import Subcommands, add_command, current_settings
from tidemark.output import emit_json


def register(sub: Subcommands) -> None:
    sp = add_command(
        sub, "serve", cmd_serve,
        "serve NAME@ALIAS over HTTP (POST /predict, GET /metadata, /healthz, /readyz, /metrics, /docs); follows the alias",
    )
    sp.add_argument("ref", help="NAME@ALIAS, e.g. wine@production")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    sp.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    sp.add_argument("--workers", type=int, default=1, help="worker processes, each with its own copy of the model (default: 1)")
    sp.add_argument("--check", action="store_true", help="load and check the holder (sha256, input schema), report it and exit")


def cmd_serve(args: argparse.Namespace) -> int:
    from serving import server
    from serving.loader import Served

    settings = current_settings()
    ref = server.parse_ref(args.ref)
    if args.check:
        served = server.check(settings, ref)
        info = {**served.identity(), "alias": served.alias, "features": [f.name for f in served.schema.fields]}
        if args.output == "json":
            emit_json(info)
        else:
            print(f"{ref} is version {info['version']} (sha256 {info['artifact_sha256'][:12]}…, {len(info['features'])} features): ready to serve")
        return 0
    def loaded(served: Served) -> None:
        print(f"serving {ref} (version {served.version.version}) on http://{args.host}:{args.port} (docs: /docs); Ctrl-C stops",
              file=sys.stderr, flush=True)

    server.serve(settings, ref, host=args.host, port=args.port, workers=args.workers, on_loaded=loaded)
    return 0
