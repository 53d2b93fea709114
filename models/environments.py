"""Recorded environments: a virtualenv with exactly the package versions a model was trained with.

`retrain --environment recorded` needs the versions of the distributions the job imported (the
training run records them, with every installed distribution's version) and a Python of the
recorded version. The environment is built once per (Python, pins) under
`$TIDEMARK_HOME/environments/<hash>/` by pip, a real resolver, run as a subprocess: the job's
distributions pinned as requirements, every other recorded version as a constraint. Offline, pip
reads wheels from a local directory (`find_links`, `no_index`); pip's own configuration
(`pip config list`: extra index URLs, find-links) applies as for any pip call.

A cached environment is trusted only when its marker (written last, after pip succeeded) names
the same pins and every distribution the marker lists is installed with all the files its RECORD
names; otherwise it is deleted and built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.config import Settings
from lineage.code import canonicalize_name
from models.exceptions import EnvironmentBuildError

MARKER = "tidemark-environment.json"
# pip's words for "this exact version is not to be had here" (yanked and gone, no wheel for this platform).
_NOT_FOUND = re.compile(
    r"Could not find a version that satisfies the requirement (?P<req>[^\s]+)(?: \(from versions: (?P<versions>[^)]*)\))?"
)


@dataclass
class RecordedEnvironment:
    """A built (or reused) environment: where it is, its Python, and what differs from the record."""

    path: Path
    python: Path
    python_version: str
    key: str
    pins: list[str]
    # name -> (recorded, installed instead) when --nearest replaced a version that cannot be installed.
    substitutions: dict[str, tuple[str, str]] = field(default_factory=dict)
    reused: bool = False
    rebuilt_because: str | None = None
    build_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "recorded",
            "path": str(self.path),
            "python": str(self.python),
            "python_version": self.python_version,
            "key": self.key,
            "pins": self.pins,
            "substitutions": {k: {"recorded": a, "installed": b} for k, (a, b) in self.substitutions.items()},
            "reused": self.reused,
            "rebuilt_because": self.rebuilt_because,
            "build_seconds": round(self.build_seconds, 3),
        }


def requirements(recorded: Mapping[str, Any] | None, what: str = "this version") -> list[str]:
    """`name==version` for each distribution the job imported, at its recorded version: what
    `pip download -d DIR -r FILE` needs to pre-fill a wheel directory for offline rebuilds."""
    env = recorded or {}
    imported = env.get("imported")
    if not imported:
        raise EnvironmentBuildError(
            f"{what} recorded no list of the distributions its job imports (trained before Tidemark recorded it): "
            "its environment cannot be rebuilt; retrain it in the current environment"
        )
    packages = {canonicalize_name(k): v for k, v in (env.get("packages") or {}).items()}
    missing = [n for n in imported if n not in packages]
    if missing:
        raise EnvironmentBuildError(f"{what} recorded no version for {', '.join(missing)}; its environment cannot be rebuilt")
    return [f"{n}=={packages[n]}" for n in sorted(imported)]


def _constraints(recorded: Mapping[str, Any], pins: Sequence[str]) -> list[str]:
    # Every other recorded version as a constraint: if the resolver needs a distribution the job
    # did not import, it gets the version that was installed then.
    pinned = {p.partition("==")[0] for p in pins}
    return [
        f"{canonicalize_name(k)}=={v}"
        for k, v in sorted((recorded.get("packages") or {}).items())
        if canonicalize_name(k) not in pinned and v and not v.startswith("0.0.0")
    ]


def _python_version(exe: str) -> str | None:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys, platform; print(platform.python_version(), platform.python_implementation())"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return parts[0] if out.returncode == 0 and len(parts) == 2 and parts[1] == "CPython" else None


def find_python(recorded_version: str, path: str | None = None) -> tuple[Path, str]:
    """An interpreter of the recorded Python version: the running one, else `pythonX.Y` / `python3` /
    `python` on PATH. The same X.Y is required (bytecode and pickles follow it); the exact patch
    release is preferred. Raises naming the version needed."""
    want = recorded_version.split(".")
    if len(want) < 2:
        raise EnvironmentBuildError(f"recorded Python version {recorded_version!r} is not X.Y.Z; cannot choose an interpreter")
    major_minor = ".".join(want[:2])
    candidates: list[str] = [getattr(sys, "_base_executable", sys.executable) or sys.executable, sys.executable]
    for name in (f"python{recorded_version}", f"python{major_minor}", f"python{want[0]}", "python"):
        found = shutil.which(name, path=path)
        if found:
            candidates.append(found)
    close: tuple[Path, str] | None = None
    seen: set[str] = set()
    for exe in candidates:
        if exe in seen:
            continue
        seen.add(exe)
        version = _python_version(exe)
        if version == recorded_version:
            return Path(exe), version
        if version and version.split(".")[:2] == want[:2] and close is None:
            close = (Path(exe), version)
    if close is not None:
        return close
    raise EnvironmentBuildError(
        f"this model was trained with Python {recorded_version}; no python{major_minor} was found "
        f"(tried {', '.join(sorted(seen)) or 'nothing on PATH'}): install Python {major_minor} and put python{major_minor} on PATH"
    )


def environment_key(python_version: str, pins: Sequence[str], nearest: bool) -> str:
    text = json.dumps({"python": python_version, "pins": sorted(pins), "nearest": nearest, "machine": os.uname().machine}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python*/site-packages"))
    return found[0] if found else None


def _installed(venv: Path) -> dict[str, str]:
    """name -> version from the venv's dist-info folder names (what `pip freeze` reads)."""
    site = _site_packages(venv)
    out: dict[str, str] = {}
    if site is None:
        return out
    for item in site.iterdir():
        if item.name.endswith(".dist-info"):
            name, _, version = item.name[: -len(".dist-info")].partition("-")
            out[canonicalize_name(name)] = version
    return out


def _corruption(venv: Path, marker: Mapping[str, Any]) -> str | None:
    """Why a cached environment cannot be trusted, or None: its Python gone, a distribution
    missing or at another version than when it was built, or a file its RECORD names missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        return f"its interpreter {python} is gone"
    installed = _installed(venv)
    for name, version in (marker.get("installed") or {}).items():
        if installed.get(name) != version:
            return f"{name} {version} is {'at ' + installed[name] if name in installed else 'missing'}"
    site = _site_packages(venv)
    assert site is not None
    for record in site.glob("*.dist-info/RECORD"):
        for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
            rel = line.split(",", 1)[0]
            if rel and not rel.endswith(".pyc") and not (site / rel).exists():
                return f"{rel} (listed in {record.parent.name}/RECORD) is missing"
    return None


def _pip(args: Sequence[str], progress: Callable[[str], None]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    progress("pip " + " ".join(args))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as exc:
        raise EnvironmentBuildError(f"cannot run pip ({exc}); install pip into Tidemark's environment") from exc


def _nearest(recorded: str, available: Sequence[str]) -> str | None:
    """The available version closest to `recorded`: the highest of the same major.minor, else the
    lowest newer one, else the highest older one (pre-releases only if nothing else)."""
    from packaging.version import InvalidVersion, Version

    def parse(v: str) -> Version | None:
        try:
            return Version(v)
        except InvalidVersion:
            return None

    want = parse(recorded)
    versions = [v for v in (parse(a.strip()) for a in available) if v is not None]
    if want is None or not versions:
        return None
    finals = [v for v in versions if not v.is_prerelease] or versions
    same = [v for v in finals if v.release[:2] == want.release[:2]]
    newer = sorted(v for v in finals if v > want)
    older = sorted(v for v in finals if v < want)
    chosen = max(same) if same else newer[0] if newer else older[-1] if older else None
    return str(chosen) if chosen is not None else None


def ensure(
    settings: Settings,
    recorded: Mapping[str, Any] | None,
    *,
    what: str = "this version",
    find_links: Sequence[str] = (),
    no_index: bool = False,
    nearest: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
) -> RecordedEnvironment:
    """The recorded environment of a model version, built once and reused while it is intact.
    Two retrains needing the same environment at once: the second waits for the first's build."""
    import fcntl

    env = recorded or {}
    pins = requirements(env, what)
    python, python_version = find_python(str(env.get("python") or ""))
    key = environment_key(python_version, pins, nearest)
    venv = settings.home / "environments" / key[:24]
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{key[:24]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure(env, pins, python, python_version, key, venv, what=what, find_links=find_links, no_index=no_index,
                       nearest=nearest, progress=progress)


def _ensure(
    env: Mapping[str, Any],
    pins: list[str],
    python: Path,
    python_version: str,
    key: str,
    venv: Path,
    *,
    what: str,
    find_links: Sequence[str],
    no_index: bool,
    nearest: bool,
    progress: Callable[[str], None],
) -> RecordedEnvironment:
    """`ensure` under the environment's lock: reuse `venv` if intact, else (re)build it."""
    rebuilt_because = None
    marker_file = venv / MARKER
    if marker_file.exists():
        try:
            marker = json.loads(marker_file.read_text(encoding="utf-8"))
        except ValueError:
            marker = {}
        why = "its marker does not name these pins" if marker.get("key") != key else _corruption(venv, marker)
        if why is None:
            progress(f"reusing the recorded environment {venv}")
            return RecordedEnvironment(
                path=venv, python=venv / "bin" / "python", python_version=python_version, key=key, pins=pins,
                substitutions={k: (v[0], v[1]) for k, v in (marker.get("substitutions") or {}).items()}, reused=True,
            )
        rebuilt_because = f"the cached environment {venv} was not intact ({why})"
        progress(f"rebuilding: {rebuilt_because}")
    elif venv.exists():
        rebuilt_because = f"the cached environment {venv} has no marker (an interrupted build)"
        progress(f"rebuilding: {rebuilt_because}")
    started = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    progress(f"building the recorded environment in {venv} with {python} (Python {python_version})")
    made = subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        raise EnvironmentBuildError(f"python -m venv {venv} failed: {made.stderr.strip().splitlines()[-1:]}")
    substitutions: dict[str, tuple[str, str]] = {}
    wanted = list(pins)
    source = [a for d in find_links for a in ("--find-links", str(d))] + (["--no-index"] if no_index else [])
    for _attempt in range(len(pins) + 1):
        req, cons = venv / "requirements.txt", venv / "constraints.txt"
        req.write_text("\n".join(wanted) + "\n")
        names = {p.partition("==")[0] for p in wanted}
        cons.write_text("\n".join(c for c in _constraints(env, pins) if c.partition("==")[0] not in names) + "\n")
        done = _pip(["--python", str(venv / "bin" / "python"), "install", "--no-compile", *source, "-r", str(req), "-c", str(cons)], progress)
        if done.returncode == 0:
            break
        miss = _NOT_FOUND.search(done.stderr)
        if miss is None:
            shutil.rmtree(venv, ignore_errors=True)
            tail = " | ".join(ln for ln in done.stderr.strip().splitlines() if ln.startswith("ERROR"))[-800:]
            raise EnvironmentBuildError(f"pip could not build the recorded environment of {what}: {tail or done.stderr[-800:]}")
        name, _, version = miss["req"].partition("==")
        name = canonicalize_name(name)
        available = [v.strip() for v in (miss["versions"] or "").split(",") if v.strip() and v.strip() != "none"]
        if not nearest:
            shutil.rmtree(venv, ignore_errors=True)
            where = ", ".join(find_links) if find_links else "the configured indexes (pip config list)"
            raise EnvironmentBuildError(
                f"{name}=={version}, recorded by {what}, cannot be installed from {where}"
                + (f" (available: {', '.join(available[-8:])})" if available else " (no version available)")
                + ": add its wheel to a --find-links directory (pip download), or pass --nearest to use the nearest available version"
            )
        choice = _nearest(version, available)
        if choice is None:
            shutil.rmtree(venv, ignore_errors=True)
            raise EnvironmentBuildError(f"{name}=={version}, recorded by {what}, cannot be installed and no other version of {name} is available")
        progress(f"--nearest: {name} {version} cannot be installed; using {choice}")
        substitutions[name] = (version, choice)
        wanted = [f"{name}=={choice}" if p.partition("==")[0] == name else p for p in wanted]
    else:
        raise EnvironmentBuildError(f"pip could not build the recorded environment of {what}")
    marker = {"key": key, "python": python_version, "pins": pins, "installed": _installed(venv),
              "substitutions": {k: list(v) for k, v in substitutions.items()}}
    # Written last: an environment without it is an interrupted build and is never trusted.
    marker_file.write_text(json.dumps(marker, indent=2, sort_keys=True))
    return RecordedEnvironment(
        path=venv, python=venv / "bin" / "python", python_version=python_version, key=key, pins=pins,
        substitutions=substitutions, rebuilt_because=rebuilt_because, build_seconds=time.perf_counter() - started,
    )
