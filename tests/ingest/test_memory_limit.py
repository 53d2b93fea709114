"""The pyarrow path under a memory limit (`ulimit -v`): one line pointing at `--engine spark`, nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.faults.report import FaultReport

# Everything a landing imports first, so the limit bounds what the landing itself needs.
LIMITED = """
import resource, runpy, sys
import great_expectations, pandas, pyarrow.parquet, pyiceberg.catalog.sql, pyiceberg.io.pyarrow
import ingest.land, tidemark.commands.ingest
size = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:')][0]
resource.setrlimit(resource.RLIMIT_AS, (size + (150 << 20),) * 2)
sys.argv = ['tidemark', 'ingest', sys.argv[1], '--table', 'raw.big']
runpy.run_module('tidemark', run_name='__main__')
"""


def test_landing_out_of_memory_is_one_line_and_leaves_nothing(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from benchmarks.bench_ingest import generate
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings

    source = tmp_path / "big.parquet"
    generate(source, 2_000_000)  # ~190 MB in Arrow: more than the 150 MB left to the landing
    # glibc's per-thread arenas and Arrow's jemalloc reserve address space they never use, which
    # RLIMIT_AS counts: without them the limit measures memory, not reservations.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    # Where the limit bites varies from run to run; seen once in CI: a native library (not Python)
    # failing an allocation dies by SIGSEGV, which no Python code can turn into a message. Such a
    # run is tried again (at most twice more); a Python failure, a traceback or a second line fails at once.
    crashes = 0
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-c", LIMITED, str(source)], capture_output=True, text=True, timeout=600, env=env)
        if proc.returncode >= 0:
            break
        crashes += 1
        # No Python cleanup ran in the dead child: recovery (what the next command runs first) must
        # delete the files it wrote and the table it created, from what the landing recorded before writing.
        left = _recovered_leftovers()
        assert left == [], f"died by signal {-proc.returncode}; after recovery left {left}"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("tidemark: error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
    assert "ran out of memory landing it into raw.big" in lines[0] and "--engine spark" in lines[0] and "nothing was published" in lines[0]
    settings = load_settings()
    assert not load_catalog(settings).table_exists("raw.big")
    assert list((settings.home / "warehouse").rglob("*.parquet")) == []
    FaultReport(request.node.nodeid).record(
        "ingest", "out of memory mid-landing (RLIMIT_AS: 150 MB above the imports, 2M rows)", trials=1, held=True,
        before={"tables": 0}, after={"tables": 0, "data files": 0}, note=f"one line naming --engine spark ({crashes} native crashes under the limit before it)",
    )


def _recovered_leftovers() -> list[str]:
    """`tidemark lineage recover`, then what is left of the landing: its table, its data files."""
    from lakehouse.catalog import load_catalog
    from lakehouse.config import load_settings
    from lineage.recovery import recover

    settings = load_settings()
    recover(settings).raise_for_errors()
    left = [str(p) for p in (settings.home / "warehouse").rglob("*.parquet")]
    return left + (["table raw.big"] if load_catalog(settings).table_exists("raw.big") else [])
