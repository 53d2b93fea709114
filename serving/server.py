"""`tidemark serve NAME@ALIAS`: load and check the alias holder, then run uvicorn.

The holder is loaded and its sha256 checked before the port opens: a missing or altered artifact, or
a version without a recorded input schema, stops the start with one line. With `--workers N` uvicorn
starts N processes from `serving.server:worker_app`; each loads the version itself (the check in the
parent has already said it loads) and follows the alias on its own; the parent runs the prediction
log's one flusher process (`serving.flusher`) and gives the workers one Prometheus directory
(prometheus_client's multiprocess mode), so a scrape of any worker sums them all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

from lakehouse.config import Settings, load_settings
from models.registry import ModelRef
from serving.exceptions import ServingError
from serving.follow import Follower
from serving.loader import Served, load
from serving.metrics import MULTIPROC_ENV

# How a worker process learns what to serve (uvicorn starts workers by import string).
_REF_ENV = "TIDEMARK_SERVE_REF"


def parse_ref(text: str) -> ModelRef:
    ref = ModelRef.parse(text, parameter="ref")
    if ref.alias is None:
        raise ServingError(f"serve follows an alias: write NAME@ALIAS (e.g. {ref.name}@production), not {text!r}", parameter="ref")
    return ref


def check(settings: Settings, ref: ModelRef) -> Served:
    """Load the holder as the service would (lineage run included); raises what stops a start."""
    return Follower(settings, ref).start_serving()


def serve(
    settings: Settings,
    ref: ModelRef,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    on_loaded: Callable[[Served], None] = lambda _s: None,
) -> None:
    """Serve `ref` until interrupted (SIGINT/SIGTERM: uvicorn finishes requests in flight, then the
    app stops its follower and flushes the prediction log). `on_loaded` runs once the holder is
    loaded and checked, before the port opens."""
    import uvicorn

    from serving.app import create_app

    if workers < 1:
        raise ServingError(f"workers must be at least 1, got {workers}", parameter="workers")
    follower = Follower(settings, ref)
    if workers == 1:
        on_loaded(follower.start_serving())
        uvicorn.run(create_app(settings, follower), host=host, port=port, log_level="warning", access_log=False)
        return
    # Checked here so a bad version stops the start with one line; each worker then loads (and
    # records its deployment run) itself.
    on_loaded(load(settings, follower.holder(), follower.alias))
    os.environ[_REF_ENV] = str(ref)
    # The workers' metrics, one directory per service (prometheus_client reads the variable when a
    # worker imports it): removed afterwards, so a restart counts from zero as one process would.
    metrics_dir = tempfile.mkdtemp(prefix=f"tidemark-serve-{ref.name}-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    flusher = None
    if settings.serving.log_predictions:
        from serving.flusher import FlusherProcess

        flusher = FlusherProcess(settings, ref.name)
        flusher.start()
    try:
        uvicorn.run(
            "serving.server:worker_app", factory=True, host=host, port=port, workers=workers, log_level="warning", access_log=False
        )
    finally:
        if flusher is not None:
            flusher.stop()  # after the workers: their last rows are committed too
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def configure_logging() -> None:
    """A process started by the service (a worker, the flusher) starts without the CLI's logging:
    the same format and credential masking."""
    import logging

    from lakehouse.redact import RedactingFilter

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def worker_app():  # type: ignore[no-untyped-def]
    """The app of one `--workers N` process (settings from the same config and environment; the
    parent runs the flusher)."""
    from serving.app import create_app

    configure_logging()
    settings = load_settings()
    return create_app(settings, Follower(settings, parse_ref(os.environ[_REF_ENV])), flusher=False)
