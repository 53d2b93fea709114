"""`make bench` runs every benchmark module here (`bench_*.py`), each printing a final RESULT line.

`--quick` runs them at small sizes for everyday use; without it, at the sizes their issues name.
Each benchmark's elapsed time is printed as it ends (with the CPU seconds of this process and the
children it waited for: a figure the machine's load moves far less, though it misses the JVMs
pyspark starts, which no one waits for), and a summary with the total. The
full run has a budget (`--budget-min`, default 45 minutes: issue 23); a total over it prints a
warning line with the measured time. It does not fail the run: the numbers are still the truth
about this machine at this load, and the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks.common import cpu_s

FULL_BUDGET_MIN = 45.0


def budget_lines(elapsed: list[tuple[str, float, float]], budget_min: float | None) -> list[str]:
    """The summary printed after the last benchmark: each one's wall time (and CPU seconds), the
    total, and a warning line when the total is over `budget_min` minutes (None: no budget)."""
    total = sum(s for _, s, _ in elapsed)
    lines = [f"== {name}: {s / 60:.1f} min ({s:.0f} s, {cpu:.0f} CPU s)" for name, s, cpu in elapsed]
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    lines.append(f"== total: {total / 60:.1f} min ({total:.0f} s) for {len(elapsed)} benchmarks; load average now {load}")
    if budget_min is not None and total > budget_min * 60:
        lines.append(f"WARNING: the benchmarks took {total / 60:.1f} min, over the budget of {budget_min:g} min")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument(
        "--budget-min", type=float, default=None,
        help=f"warn when the total exceeds this many minutes (default: {FULL_BUDGET_MIN:g} for the full run, none for --quick)",
    )
    parser.add_argument("names", nargs="*", help="only these benchmarks (module names without bench_)")
    args = parser.parse_args(argv)
    budget = args.budget_min if args.budget_min is not None else (None if args.quick else FULL_BUDGET_MIN)
    here = Path(__file__).parent
    mods = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.names:
        unknown = sorted(set(args.names) - {m.removeprefix("bench_") for m in mods})
        if unknown:
            print(f"no benchmark named {', '.join(unknown)}; choose from {', '.join(m.removeprefix('bench_') for m in mods)}", file=sys.stderr)
            return 2
        mods = [m for m in mods if m.removeprefix("bench_") in args.names]
    failed = 0
    elapsed: list[tuple[str, float, float]] = []
    for name in mods:
        # With the children it waited for (benchmarks run their sides in child processes): how
        # much work a benchmark was, which the machine's load moves far less than its wall time.
        start, cpu = time.monotonic(), cpu_s(children=True)
        print(f"== {name} ({'quick' if args.quick else 'full'})", flush=True)
        try:
            importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            failed += 1
            print(f"FAILED {name}: {exc.__class__.__name__}: {exc}", flush=True)
        elapsed.append((name, time.monotonic() - start, cpu_s(children=True) - cpu))
        print(f"== {name} took {elapsed[-1][1]:.1f} s ({elapsed[-1][2]:.0f} CPU s)", flush=True)
    for line in budget_lines(elapsed, budget):
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
