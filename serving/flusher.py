"""The prediction log's flusher process: one per service, beside its workers.

A serving worker only appends to the log's durable buffer (`PredictionLog(..., commit=False)`: an
fsynced SQLite transaction, so an acknowledged row is durable); the commits to Iceberg (tens of ms
of CPU each, measured) run here, in a process of their own, so they never hold a worker's GIL while
its event loop has requests to answer.

`FlusherProcess(settings, model)` is started by whoever owns the service (`tidemark serve`: the app
when it runs alone, the parent of `--workers N` otherwise). Its child holds the flusher lock
(`alive_lock_path`) for its whole life, so any worker can ask the kernel whether a flusher lives
(`flusher_pid`, `/readyz`'s `prediction_log` detail). A child that dies is restarted after a pause
that doubles (at most `MAX_RESTART_PAUSE_S`), each death a warning line. `stop()` (the SIGTERM path)
asks the child to commit everything and exit, then commits itself what arrived meanwhile, so a
stopped service leaves nothing buffered that the catalog could take.

The child stops on SIGTERM or when its parent is gone (never outliving a SIGKILLed service), and
ignores SIGINT: a Ctrl-C reaches the whole process group, and the workers finishing their requests
must still find a flusher.
"""

from __future__ import annotations

import copyreg
import fcntl
import io
import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
import types
from pathlib import Path
from typing import Any

from lakehouse.config import Settings
from serving.predlog import PredictionLog, buffer_path

log = logging.getLogger(__name__)

MAX_RESTART_PAUSE_S = 30.0
# A flusher that lived this long before it died starts again after the first pause, not a doubled one.
_STABLE_S = 60.0
# How often the child looks for its parent.
_PARENT_CHECK_S = 0.5


def alive_lock_path(settings: Settings, model: str) -> Path:
    return buffer_path(settings, model).with_suffix(".flusher.lock")


def flusher_pid(settings: Settings, model: str) -> int | None:
    """The pid of the flusher process that holds the model's flusher lock now, or None when none
    does (the kernel's word: a dead one's lock is released with its process)."""
    path = alive_lock_path(settings, model)
    if not path.exists():
        return None
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            text = fh.read().strip()
            return int(text) if text.isdigit() else 0  # 0: it holds the lock, its pid not written yet
        fcntl.flock(fh, fcntl.LOCK_UN)
        return None


def _proxy(items: dict[str, Any]) -> types.MappingProxyType[str, Any]:
    return types.MappingProxyType(items)


def _pickled(settings: Settings) -> bytes:
    """Settings as bytes for the child (they hold read-only mappings, which pickle cannot take as they are)."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf)
    pickler.dispatch_table = {**copyreg.dispatch_table, types.MappingProxyType: lambda m: (_proxy, (dict(m),))}
    pickler.dump(settings)
    return buf.getvalue()


class FlusherProcess:
    """Runs and supervises the flusher child of one model's log (module docstring)."""

    def __init__(self, settings: Settings, model: str) -> None:
        self.settings, self.model = settings, model
        self._ctx = mp.get_context("spawn")  # a fresh interpreter: no threads or sockets of the parent's
        self._proc: Any = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name=f"predlog-flusher-{self.model}", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        self._proc = self._ctx.Process(target=main, args=(_pickled(self.settings), self.model, os.getpid()), name=f"tidemark-flusher-{self.model}")
        self._proc.start()

    def _watch(self) -> None:
        pause = 1.0
        while not self._stopping.is_set():
            started = time.monotonic()
            self._proc.join()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > _STABLE_S:
                pause = 1.0
            code = self._proc.exitcode
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with {code}"
            log.warning(
                "the prediction log flusher of %s (pid %s) %s; answered predictions stay buffered, restarting it in %g s",
                self.model, self._proc.pid, how, pause,
            )
            if self._stopping.wait(pause):
                return
            pause = min(MAX_RESTART_PAUSE_S, pause * 2)
            self.restarts += 1
            self._spawn()

    def stop(self, timeout_s: float = 120.0) -> None:
        """Let the child commit everything and exit; then commit what reached the buffer after it
        (a worker's request finishing late). Rows the catalog cannot take stay buffered (a warning)."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(timeout_s)
            if proc.is_alive():
                log.warning("the prediction log flusher of %s did not stop within %g s; killed (its rows stay buffered)", self.model, timeout_s)
                proc.kill()
                proc.join()
        if self._watcher is not None:
            self._watcher.join(5)
        final = PredictionLog(self.settings, self.model, start=False)
        if final.pending():
            final.close()
        else:
            final.buffer.close()


def main(settings_bytes: bytes, model: str, parent: int) -> None:
    """The child: hold the flusher lock, commit on the log's schedule until SIGTERM or the parent's death."""
    from serving.server import configure_logging

    configure_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings: Settings = pickle.loads(settings_bytes)
    path = alive_lock_path(settings, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        while True:  # another service's flusher of the same home: it flushes, this one waits (stoppable)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stop.wait(_PARENT_CHECK_S) or os.getppid() != parent:
                    return
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        plog = PredictionLog(settings, model, start=False)

        def orphaned() -> None:
            while not stop.wait(_PARENT_CHECK_S):
                if os.getppid() != parent:
                    stop.set()

        threading.Thread(target=orphaned, daemon=True).start()
        plog.prepare()
        plog.run(stop)
        plog.close()
