"""What the serving benchmarks share: the wine reference model trained in a scratch home, the Tidemark
service and the BentoML service started as processes of their own, request bodies, ports.

The wine model is trained as the other benchmarks train it (`ingest.land.land` of the embedded wine
CSV, then `models.train.train` of the `wine_classifier` job) on the embedded default stack (SQLite
catalog, local Kafka-protocol broker) in a scratch TIDEMARK_HOME; `wine@production` is the alias served.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENTOML_VERSION = "1.4.40"
BENTOML_VENV = ROOT / ".bench" / "bentoml-venv"
BENTOML_CONSTRAINTS = Path(__file__).resolve().parent / "bentoml-constraints.txt"
MODEL, ALIAS = "wine", "production"
HOST = "127.0.0.1"


def log(msg: str) -> None:
    print(f"  {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def train_wine(settings: Any, home: Path, versions: int = 1) -> list[int]:
    """Land the wine CSV and train `versions` versions of the wine model (C differs, so each is its own
    artifact); the first is promoted to production. Returns the version numbers."""
    from ingest.land import land
    from models.jobs import get_job
    from models.promotion import promote
    from models.train import train
    from tidemark.demo import write_wine_csv

    land(settings, str(write_wine_csv(home / "wine.csv")), "raw.wine")
    job = get_job("wine_classifier")
    made = []
    for i in range(versions):
        params = {**job.params, "C": float(job.params["C"]) / (1 + i)}
        made.append(train(settings, job, params=params).version.version)
    # Forced: no lineage consumer runs here, so the gate cannot see the landing's validation result.
    promote(settings, MODEL, made[0], ALIAS, force=True, reason="benchmark setup")
    return made


def records(home: Path, n: int) -> list[dict[str, float]]:
    """`n` feature records from the wine CSV (cycled), as a client sends them."""
    import pandas as pd

    from models.jobs import WINE_FEATURES

    df = pd.read_csv(home / "wine.csv")
    rows = df[list(WINE_FEATURES)].to_dict("records")
    return [{k: float(v) for k, v in rows[i % len(rows)].items()} for i in range(n)]


def body(home: Path, n: int) -> str:
    """The same JSON body for every server: {"records": [...]} with `n` records."""
    return json.dumps({"records": records(home, n)})


def wait_ready(url: str, proc: subprocess.Popen[Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready; see its log {getattr(proc, 'log_path', '')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} was not ready at {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM to the server's process group (its workers too), SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _spawn(args: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[Any]:
    fh = log_path.open("w")
    proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(cwd) if cwd else None, start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def start_tidemark(home: Path, port: int, workers: int, env: dict[str, str] | None = None) -> subprocess.Popen[Any]:
    """`tidemark serve wine@production` (prediction logging as configured: on by default); not waited for."""
    full_env = {**os.environ, **(env or {})}
    args = [sys.executable, "-m", "tidemark", "serve", f"{MODEL}@{ALIAS}", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    return _spawn(args, home / f"tidemark-serve-{port}.log", full_env)


@contextmanager
def serving(*started: tuple[subprocess.Popen[Any], int, str]) -> Iterator[None]:
    """Wait until each started server (process, port, name) answers GET /readyz; stop them all afterwards.
    Started together, they load at the same time: the benchmark waits once, not once per server."""
    try:
        for proc, port, name in started:
            wait_ready(f"http://{HOST}:{port}/readyz", proc, 180, name)
        yield
    finally:
        for proc, _, _ in started:
            stop(proc)


@contextmanager
def tidemark_server(home: Path, port: int, workers: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[Any]]:
    proc = start_tidemark(home, port, workers, env)
    with serving((proc, port, "tidemark serve")):
        yield proc


# -- BentoML ------------------------------------------------------------------------------------------

# The BentoML service: the very artifact bytes Tidemark serves (exported from the registry), checked
# against the registry's sha256 and unpickled as the service does; records become the float64 matrix
# in the job's declared feature order and go to `estimator.predict`. Logging is off (no access log,
# no monitoring, no tracing), as the issue asks.
BENTO_SERVICE = r'''
import hashlib, json, os, pickle

import bentoml
import numpy as np

ARTIFACT = os.environ["BENCH_ARTIFACT"]
SHA256 = os.environ["BENCH_SHA256"]
FEATURES = json.loads(os.environ["BENCH_FEATURES"])
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))


@bentoml.service(workers=WORKERS, logging={"access": {"enabled": False}}, monitoring={"enabled": False}, metrics={"enabled": False})
class Wine:
    def __init__(self) -> None:
        data = open(ARTIFACT, "rb").read()
        if hashlib.sha256(data).hexdigest() != SHA256:
            raise RuntimeError(f"artifact {ARTIFACT} does not match its sha256")
        self.estimator = pickle.loads(data)

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> dict:
        X = np.array([[r[f] for f in FEATURES] for r in records], dtype="float64")
        return {"predictions": self.estimator.predict(X).tolist()}
'''


def bentoml_python() -> Path:
    """The benchmark's own BentoML venv, made on first use from bentoml-constraints.txt (the only time
    these benchmarks use the package registry); raises RuntimeError saying why when it cannot be made."""
    python = BENTOML_VENV / "bin" / "python"
    check = [str(python), "-c", "import bentoml; print(bentoml.__version__)"]
    if python.exists() and subprocess.run(check, capture_output=True, text=True).stdout.strip() == BENTOML_VERSION:
        return python
    log(f"creating {BENTOML_VENV} with bentoml {BENTOML_VERSION} (pinned in {BENTOML_CONSTRAINTS.name}); this takes a minute")
    try:
        subprocess.run(["python3", "-m", "venv", "--clear", str(BENTOML_VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(BENTOML_VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "-c", str(BENTOML_CONSTRAINTS),
             f"bentoml=={BENTOML_VERSION}", "numpy", "pandas", "scikit-learn", "httptools", "uvloop"],
            check=True, capture_output=True, text=True, timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = str(getattr(exc, "stderr", "") or exc).strip()
        raise RuntimeError(f"the BentoML venv could not be made: {detail.splitlines()[-1] if detail else exc}") from exc
    return python


def export_artifact(settings: Any, work: Path) -> tuple[Path, str]:
    """The production holder's artifact bytes (checked against the registry), written for BentoML."""
    from models import artifacts
    from models.registry import Registry

    mv = Registry(settings).resolve(f"{MODEL}@{ALIAS}")
    path = work / f"{MODEL}-{mv.version}.pkl"
    path.write_bytes(artifacts.get(settings, mv.artifact_uri, mv.sha256))
    return path, mv.sha256


def start_bentoml(settings: Any, work: Path, port: int, workers: int) -> subprocess.Popen[Any]:
    """`bentoml serve` of BENTO_SERVICE on the production holder's artifact; not waited for."""
    from models.jobs import WINE_FEATURES

    python = bentoml_python()
    artifact, sha = export_artifact(settings, work)
    service_dir = work / "bento"
    service_dir.mkdir(exist_ok=True)
    (service_dir / "service.py").write_text(BENTO_SERVICE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(
        BENCH_ARTIFACT=str(artifact), BENCH_SHA256=sha, BENCH_FEATURES=json.dumps(list(WINE_FEATURES)), BENCH_WORKERS=str(workers),
        BENTOML_HOME=str(work / "bentoml-home"), BENTOML_DO_NOT_TRACK="true", DO_NOT_TRACK="true",
    )
    args = [str(python), "-m", "bentoml", "serve", "service:Wine", "--host", HOST, "--port", str(port)]
    return _spawn(args, work / f"bentoml-{port}.log", env, cwd=service_dir)


def start_client(spec: dict[str, Any], out: Path) -> subprocess.Popen[Any]:
    """The load generator in the background, its report going to the file `out` (a pipe would fill
    up with the answers it keeps and stall it); `client_report` reads it once it has ended."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.loadgen"], stdin=subprocess.PIPE, stdout=out.open("w"), text=True, cwd=str(ROOT))
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec))
    proc.stdin.close()
    return proc


def client_report(proc: subprocess.Popen[Any], out: Path, timeout: float = 60) -> dict[str, Any]:
    """The report of a `start_client` run: waits for it to end (SIGTERM ends an open-ended one)."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the load generator did not end within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed (exit {proc.returncode})")
    return dict(json.loads(out.read_text()))


def cpu_of_tree(pid: int) -> float:
    """CPU seconds used so far by process `pid` and its descendants (a server's workers)."""
    from benchmarks.common import cpu_s

    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_s(p)
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except (OSError, IndexError):
            continue
        todo += [int(c) for c in children]
    return total
