"""Shared pieces of the benchmarks: a scratch or kept TIDEMARK_HOME, a local broker, timing, RSS."""

from __future__ import annotations

import hashlib
import inspect
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    """Set an environment variable (what a benchmark's workers inherit), restored afterwards."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextmanager
def scratch_home(name: str) -> Iterator[Path]:
    """A fresh TIDEMARK_HOME for one benchmark, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix=f"tidemark-bench-{name}-"))
    try:
        with env_var("TIDEMARK_HOME", str(home)):
            yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


BENCH_ROOT = Path(__file__).resolve().parent.parent / ".bench"


@contextmanager
def kept_home(name: str, spec: dict[str, Any], build: Callable[[Path], Any]) -> Iterator[tuple[Path, float, Any]]:
    """TIDEMARK_HOME set to a store kept under `.bench/<name>/<spec values>/` across runs: built by
    `build(home)` on first use, so a second run measures the same data without making it again.
    A marker holding `spec` and what `build` returned is written last, so a store cut short is
    built again. Yields (home, seconds spent building or 0.0 when kept, what `build` returned).

    A spec's `code` (see `code_key`) is in the directory name, so a code change builds a new
    store beside the old; once it is built, the stores of the same kind (the same spec but for
    `code`) are removed: this checkout's code never reads them again, and each is as large as
    the new one. Other sizes (`--quick` and full) are kept."""
    import json

    home = BENCH_ROOT / name / "-".join(str(v) for v in spec.values())
    mark = home / MARK
    built_s = 0.0
    kept = json.loads(mark.read_text()) if mark.exists() else {}
    if kept.get("spec") != spec:
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        started = time.perf_counter()
        kept = {"spec": spec, "built": build(home)}
        built_s = time.perf_counter() - started
        mark.write_text(json.dumps(kept))
        if "code" in spec:
            _remove_other_code(home, spec)
    with env_var("TIDEMARK_HOME", str(home)):
        yield home, built_s, kept["built"]


MARK = "built.json"


def _remove_other_code(home: Path, spec: dict[str, Any]) -> None:
    """Remove the kept stores beside `home` whose spec is `spec` with another `code`."""
    import json

    kind = {k: v for k, v in spec.items() if k != "code"}
    for sibling in home.parent.iterdir():
        if sibling == home:
            continue
        try:
            other = json.loads((sibling / MARK).read_text())["spec"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a kept store, or one cut short: the next build of its spec replaces it
        if isinstance(other, dict) and other.keys() == spec.keys() and {k: v for k, v in other.items() if k != "code"} == kind:
            shutil.rmtree(sibling, ignore_errors=True)


def code_key(*code: Any) -> str:
    """A short hash of the source of these functions and modules: in a kept store's spec, so a
    change to what shapes the stored rows (the generator, the writer, the tables) builds it again."""
    source = "\0".join(inspect.getsource(obj) for obj in code)
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def write_events(settings: Any, events: Iterable[dict[str, Any]], jsonl: Path, batch: int = 100_000) -> None:
    """Store events as the consumer does (`LineageWriter.write_columns`, one partition, `batch` at a
    time, then its compaction), and write them as JSON Lines beside it for the naive baselines."""
    from lakehouse.catalog import load_catalog
    from lineage import events as ev
    from lineage.consumer import ConsumeReport, LineageWriter

    writer = LineageWriter(settings, load_catalog(settings))
    report = ConsumeReport()
    offsets: list[int] = []
    values: list[bytes] = []

    def write() -> None:  # one partition, as the consumer hands a batch over: parallel lists
        writer.write_columns([0] * len(values), offsets, values, report)
        offsets.clear()
        values.clear()

    with jsonl.open("wb") as fh:
        for i, e in enumerate(events):
            raw = ev.serialize(e)
            fh.write(raw + b"\n")
            offsets.append(i)
            values.append(raw)
            if len(values) == batch:
                write()
        if values:
            write()
    writer.compact(min_files=2, keep_snapshots_s=0)


@contextmanager
def local_broker(settings: Any) -> Iterator[str]:
    from lineage import broker

    state = broker.start(settings)
    try:
        yield state.bootstrap_servers
    finally:
        broker.stop(settings)


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MiB.

    From /proc/self/status (VmHWM), not getrusage: Linux keeps ru_maxrss across exec, so a worker
    started by a benchmark that had already grown reported the parent's size (the throughput
    consumer showed 1.7 GB under `make bench`, 0.6 GB alone).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s(pid: int | None = None, children: bool = False) -> float:
    """CPU seconds (user + system, all threads) of this process, or of process `pid` (from /proc).
    `children`: with those of the child processes this one has waited for (`pid` None only)."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        own = r.ru_utime + r.ru_stime
        if not children:
            return own
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own + c.ru_utime + c.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds (this process, every thread: DuckDB's too) and the result of one
    call. The CPU beside the wall: on a loaded shared machine the wall is mostly waiting for a core."""
    wall, cpu = time.perf_counter(), cpu_s()
    out = fn()
    return time.perf_counter() - wall, cpu_s() - cpu, out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def result(name: str, **values: Any) -> None:
    """The one line each benchmark ends with."""
    parts = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    print(f"RESULT {name} {parts}", flush=True)


PG_SERVER = "127.0.0.1:5432"


@contextmanager
def postgres_database(prefix: str, server: str = PG_SERVER) -> Iterator[str]:
    """A fresh PostgreSQL database of its own (for an Iceberg SQL catalog), dropped afterwards; yields
    its SQLAlchemy URI. Tries the users `postgres` and `root` (trust auth); raises ConnectionError,
    naming the server, when neither answers."""
    import uuid

    import sqlalchemy

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    error: Exception | None = None
    for user in ("postgres", "root"):
        engine = sqlalchemy.create_engine(
            f"postgresql+psycopg2://{user}@{server}/test", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:
            engine.dispose()
            error = exc
            continue
        try:
            yield f"postgresql+psycopg2://{user}@{server}/{name}"
        finally:
            with engine.connect() as conn:  # FORCE: a child process's pool may still hold a connection
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()
        return
    raise ConnectionError(f"PostgreSQL at {server} does not answer ({error.__class__.__name__}: {error}); start it")


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # a child that just exited
            pass
    return total


def measure(cmd: list[str], env: dict[str, str], cwd: Path, limit_mb: int | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run `cmd` (under RLIMIT_AS of `limit_mb` MiB, what `ulimit -v` sets); its exit code, output, wall time and the peak RSS of its process tree (MiB)."""
    import psutil

    def limit() -> None:
        if limit_mb is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=str(cwd), preexec_fn=limit, text=True)
        watched, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, _tree_rss(watched))
            except psutil.Error:
                pass
            if time.perf_counter() - started > timeout:
                proc.kill()
                raise RuntimeError(f"{' '.join(cmd[:4])}... did not finish in {timeout:.0f} s")
            time.sleep(0.1)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return {"rc": proc.returncode, "stdout": out.read(), "stderr": err.read(), "wall": wall, "peak_rss_mb": peak / 2**20}
