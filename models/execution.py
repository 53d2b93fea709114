"""Running a job's function the one way train, retrain and the recorded-environment runner all do.

The same inputs, the same parameters and the same code still give different bytes when a BLAS
splits its sums over a different number of threads: every job runs with its BLAS and OpenMP
pools pinned to `BLAS_THREADS` (threadpoolctl), and what it ran under is recorded with it:
the platform (CPU, BLAS vendor/version/threads, OS), the seeds it was given, the thread
limits, and which installed distributions the job imported (a changed version of a package
the job never imports cannot change its result).

Only the standard library, `lineage.code` and (lazily) threadpoolctl are imported here: the
runner (`models.runner`) imports this module inside a recorded environment that holds nothing
but the job's own packages.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lineage.code import CodeIdentity, distributions_of_modules, platform_identity, thread_controller

# One thread per BLAS/OpenMP pool: the order of floating-point sums then never depends on how many
# cores the machine has or how busy it is.
BLAS_THREADS = 1
# Distributions every job uses whether or not its code names them: its inputs arrive as Arrow tables.
ALWAYS_IMPORTED = ("pyarrow",)
# Read by OpenMP and the BLAS libraries when they load: one thread for those a job loads only later.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
# Loaded before the limits are applied (threadpoolctl limits only libraries already loaded): numpy's
# and scipy's BLAS, which nearly every job uses. Not counted as imported unless the job imports them.
PRELOAD = ("numpy", "scipy.linalg")


@dataclass
class Execution:
    """What a job returned and what it ran under."""

    trained: Any
    imported: list[str]
    platform: dict[str, Any]
    determinism: dict[str, Any]


@dataclass
class Outcome:
    """What one run of a job gave and where it ran, in this process or another: the artifact's
    bytes, metrics, imported distributions, platform, determinism settings, the environment
    (Python and packages) and code identity, and which environment and code ran it."""

    blob: bytes
    metrics: dict[str, float]
    imported: list[str]
    platform: dict[str, Any]
    determinism: dict[str, Any]
    environment: dict[str, Any]
    code: CodeIdentity
    environment_ran: dict[str, Any] = field(default_factory=lambda: {"kind": "current"})
    code_ran: dict[str, Any] = field(default_factory=lambda: {"kind": "current"})


def seeds(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that seed a random generator (`seed`, `random_state`, `*_seed`)."""
    return {k: v for k, v in params.items() if k in ("seed", "random_state") or k.endswith(("_seed", "_random_state"))}


@contextmanager
def _track_imports() -> Iterator[set[str]]:
    """Every module name imported while the block runs, including names already in `sys.modules`
    (a long-lived process imported scikit-learn for the previous job; this one still uses it)."""
    names: set[str] = set()
    lock = threading.Lock()
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def tracked_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        module = real_import(name, globals, locals, fromlist, level)
        if level == 0:
            with lock:
                names.add(name)
        else:  # a relative import: the package it resolved in
            pkg = (globals or {}).get("__package__") or ""
            with lock:
                names.add(pkg)
        return module

    def tracked_import_module(name: str, package: str | None = None) -> Any:
        module = real_import_module(name, package)
        with lock:
            names.add(module.__name__)
        return module

    before = set(sys.modules)
    builtins.__import__ = tracked_import
    importlib.import_module = tracked_import_module
    try:
        yield names
    finally:
        builtins.__import__ = real_import
        importlib.import_module = real_import_module
        names.update(set(sys.modules) - before)


def run_job(
    fn: Callable[[dict[str, Any], dict[str, Any]], Any], frames: dict[str, Any], params: dict[str, Any]
) -> Execution:
    """Call `fn(frames, params)` with pinned BLAS/OpenMP threads; record platform, seeds, threads
    and the distributions the job imported."""
    own = getattr(fn, "__module__", "") or ""
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(BLAS_THREADS))
    for name in PRELOAD:
        try:
            if importlib.util.find_spec(name.partition(".")[0]) is not None:
                importlib.import_module(name)
        except ImportError:
            pass
    # After the preloads, so their BLAS is among the libraries limited. None without threadpoolctl:
    # nothing can be pinned, and the record says so.
    controller = thread_controller()
    with _track_imports() as modules:
        if controller is not None:
            with controller.limit(limits=BLAS_THREADS):
                trained = fn(frames, params)
                # Inside the limits: the thread counts recorded are the ones the job ran with.
                plat = platform_identity()
        else:
            trained = fn(frames, params)
            plat = platform_identity()
    # The project's own code (the job's module, Tidemark's) is the code identity's business.
    imported = distributions_of_modules(sorted(modules) + list(ALWAYS_IMPORTED), exclude_modules=[own, __name__])
    determinism = {
        "seeds": seeds(params),
        "blas_threads": BLAS_THREADS if controller is not None else None,
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
        "thread_variables": {var: os.environ.get(var) for var in THREAD_VARIABLES},
    }
    return Execution(trained=trained, imported=imported, platform=plat, determinism=determinism)
