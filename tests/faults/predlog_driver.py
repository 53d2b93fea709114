"""A process that logs predictions, for the kill tests of the prediction log (test_predlog_kills.py).

`main(env, ROWS.json, ACKS, MODE, LIMIT)`, in a child process forked from a forkserver that imported
this module once (so the child starts warm), or `python -m tests.faults.predlog_driver ROWS.json
ACKS MODE LIMIT` by hand: appends rows made from ROWS.json
(feature dicts; ids `k-0`, `k-1`, ...) ten at a time to the wine prediction log, writing after each
append *returned* the number of rows acknowledged so far to ACKS (one line each). MODE:
- `stream`: keeps appending until LIMIT rows or SIGTERM; on SIGTERM it stops appending, closes the
  log (the service's shutdown path: everything buffered is committed) and exits 0;
- `flush`: appends LIMIT rows, then flushes once (a failpoint in TIDEMARK_FAILPOINT kills it there).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone


# Imported here so the forkserver loads them once and every child starts warm.
from lakehouse.config import load_settings
from models.registry import Registry
from serving.predlog import PredictionLog


def main(env: dict[str, str] | None, rows_path: str, acks_path: str, mode: str, limit: int) -> int:
    if env is not None:
        for key in [k for k in os.environ if k.startswith("TIDEMARK")]:
            del os.environ[key]  # the forkserver's environment is the first test's
        os.environ.update(env)
    logging.disable(logging.WARNING)
    settings = load_settings()
    version = Registry(settings).resolve("wine@production").version
    features = json.loads(open(rows_path).read())
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: term.set())
    log = PredictionLog(settings, "wine", start=mode == "stream")
    acked = 0
    with open(acks_path, "a") as acks:
        while acked < limit and not term.is_set():
            now = datetime.now(timezone.utc)
            chunk = [
                {"prediction_id": f"k-{i}", "model": "wine", "version": version, "time": now,
                 "features": features[i % len(features)], "prediction": i % 3}
                for i in range(acked, min(acked + 10, limit))
            ]
            log.append(chunk)
            acked += len(chunk)
            acks.write(f"{acked}\n")
            acks.flush()
        if mode == "flush":
            log.flush()
            return 0
        while not term.is_set():  # appended everything: wait to be stopped, as a server does
            time.sleep(0.05)
        log.close()
        acks.write("closed\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(None, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
