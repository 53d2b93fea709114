"""The public packages are mypy-clean (DESIGN.md: a typed public API), as `[tool.mypy]` in
pyproject.toml configures it: the same command a developer runs, `python -m mypy`."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_public_packages_are_mypy_clean() -> None:
    if importlib.util.find_spec("mypy") is None:
        # CI builds .venv with the dev extra, so there a missing mypy is a broken install, not a skip.
        if os.environ.get("CI"):
            pytest.fail("mypy is not installed: `make venv` installs the dev extra, which pins it")
        pytest.skip("mypy is not installed in this environment: `make venv` installs the dev extra, which pins it")
    # The cache under the work tree (.gitignore'd) makes a rerun take seconds; a cold run ~35 s of CPU.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache")], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout
