"""`make bench` runs every benchmark module here (`bench_*.py`), each printing a final RESULT line.

`--quick` runs them at small sizes for everyday use; without it, at the sizes their issues name.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("names", nargs="*", help="only these benchmarks (module names without bench_)")
    args = parser.parse_args()
    here = Path(__file__).parent
    mods = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.names:
        mods = [m for m in mods if m.removeprefix("bench_") in args.names]
    if not mods:
        print("no benchmarks found", file=sys.stderr)
        return 1
    failed = 0
    for name in mods:
        start = time.monotonic()
        print(f"== {name} ({'quick' if args.quick else 'full'})", flush=True)
        try:
            importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            failed += 1
            print(f"FAILED {name}: {exc.__class__.__name__}: {exc}", flush=True)
        print(f"== {name} took {time.monotonic() - start:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
