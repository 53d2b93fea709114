"""Run a job in another interpreter: a recorded environment, recorded code, or both.

The parent (`models.retrain`) reads the inputs at their pinned snapshots and checks them, then
writes them as Arrow IPC files (exact: same schema, same values) beside a request, and runs
`python -m models.runner REQUEST.json` with the chosen interpreter. The child needs nothing but
the job's own packages and the standard library: it reads the Arrow files with pyarrow (which
every job imports), calls the entry point through `models.execution.run_job` (pinned BLAS
threads, import tracking, platform), and writes the pickled estimator and a result file back.

Recorded code: `code.root` is a checkout of the recorded commit; its directories go first on
`sys.path` and on the `__path__` of packages already imported (the runner's own), so the job's
modules come from the commit. `code.overlay` maps a module name to a source file loaded in its
place (the recorded source of a module whose tree was dirty or not in git).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from lineage.code import CodeIdentity
from models.exceptions import ReproduceError
from models.execution import Outcome

# The folder holding the `models` package this runner belongs to: on the child's PYTHONPATH.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_in(
    python: Path | str,
    entry_point: str,
    frames: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    code: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Outcome:
    """Run `entry_point(frames, params)` with the interpreter `python`; what it gave and ran under
    (the caller fills in which environment and code ran)."""
    import pyarrow as pa

    with tempfile.TemporaryDirectory(prefix="tidemark-run-") as tmp:
        work = Path(tmp)
        inputs = {}
        for i, (name, table) in enumerate(frames.items()):
            path = work / f"input-{i}.arrow"
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            inputs[name] = str(path)
        request = {"entry_point": entry_point, "params": dict(params), "inputs": inputs, "out": str(work), "code": dict(code or {})}
        (work / "request.json").write_text(json.dumps(request))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        env["PYTHONNOUSERSITE"] = "1"  # nothing from ~/.local: only what the environment holds
        progress(f"running {entry_point} with {python}")
        done = subprocess.run([str(python), "-m", "models.runner", str(work / "request.json")], cwd=work, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
            raise ReproduceError(f"the job failed in {python}: {' | '.join(lines[-3:]) or f'exit code {done.returncode}'}")
        result = json.loads((work / "result.json").read_text())
        blob = (work / "artifact.pkl").read_bytes()
    identity = CodeIdentity.read(result.pop("code"))
    return Outcome(blob=blob, code=replace(identity, entry_point=entry_point), **result)


def _use_recorded_code(code: Mapping[str, Any]) -> None:
    root = code.get("root")
    if root:
        sys.path.insert(0, str(root))
        # Packages already imported (the runner's own `models`, `lineage`) search the commit first.
        for name, module in list(sys.modules.items()):
            paths = getattr(module, "__path__", None)
            if paths is None or "." in name:
                continue
            recorded = Path(root, name)
            if recorded.is_dir():
                module.__path__ = [str(recorded), *[p for p in paths if p != str(recorded)]]
                for sub in [m for m in sys.modules if m.startswith(name + ".") and m not in _RUNNER_MODULES]:
                    del sys.modules[sub]
    for module_name, source in (code.get("overlay") or {}).items():
        spec = importlib.util.spec_from_file_location(module_name, source)
        if spec is None or spec.loader is None:
            raise ReproduceError(f"cannot load the recorded source of {module_name} from {source}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)


# The runner's own modules stay the current ones whatever the recorded code holds.
_RUNNER_MODULES = frozenset({"models.runner", "models.execution", "models.exceptions", "lineage.code", "lineage.events"})


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[0]).read_text())
    from lineage.code import code_identity, environment
    from models.execution import run_job

    _use_recorded_code(request.get("code") or {})
    import pyarrow as pa

    frames = {}
    for name, path in request["inputs"].items():
        with pa.memory_map(path) as source:
            frames[name] = pa.ipc.open_file(source).read_all()
    module_name, _, attr = request["entry_point"].partition(":")
    fn = getattr(importlib.import_module(module_name), attr)
    execution = run_job(fn, frames, dict(request["params"]))
    out = Path(request["out"])
    (out / "artifact.pkl").write_bytes(pickle.dumps(execution.trained.estimator, protocol=5))
    result = {
        "metrics": {k: float(v) for k, v in execution.trained.metrics.items()},
        "imported": execution.imported,
        "platform": execution.platform,
        "determinism": execution.determinism,
        "environment": environment(),
        "code": code_identity(fn).facet_fields(),
    }
    (out / "result.json").write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
