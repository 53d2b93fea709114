"""Reproduce-environment benchmark (issue 19): rebuilding a model's recorded environment.

The reference wine model is trained; the pinned list of the distributions its job imports
(`models.environments.requirements`, 11 wheels: scikit-learn, numpy, scipy, pandas, pyarrow, ...)
is downloaded once into a local wheel directory (`.bench/reproduce_env/wheels`, kept between
runs: the warm local cache). Then, in turns, from that same directory and offline (`--no-index`):

- plain: `python -m venv` + `pip install -r pinned.txt` (what MLflow's virtualenv environment
  manager does underneath);
- Tidemark: `models.environments.ensure` (the first rebuild `retrain --environment recorded` pays),
  followed by the retrain in it;
- Tidemark cached: `ensure` again, as a second `retrain --environment recorded` finds it
  (marker + installed-distribution and RECORD check), followed by the retrain.

Targets: first rebuild <= 1.0x the plain install; a cached rerun (the environment check) <= 0.1x.
The retrain times (child interpreter, reading the snapshot, fit) are reported beside them. Quick:
one round; full: three, medians.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import result, scratch_home

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench" / "reproduce_env"


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True, capture_output=True)


def run(quick: bool = False) -> None:
    from benchmarks.common import env_var
    from lakehouse.config import load_settings
    from lineage.transport import InMemoryTransport
    from models import environments
    from models.jobs import get_job
    from models.retrain import retrain
    from models.train import train
    from ingest.land import land
    from tidemark.demo import write_wine_csv

    rounds = 1 if quick else 3
    with scratch_home("reproduce-env") as home, env_var("GX_ANALYTICS_ENABLED", "false"):
        settings = load_settings()
        transport = InMemoryTransport()
        land(settings, str(write_wine_csv(home / "wine.csv")), "raw.wine", transport=transport)
        mv = train(settings, get_job("wine_classifier"), transport=transport).version
        pins = environments.requirements(mv.environment)
        wheels = WORK / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        pinned = home / "pinned.txt"
        pinned.write_text("\n".join(pins) + "\n")
        started = time.perf_counter()
        try:  # the warm cache already holds every pin: no registry round trips
            _pip("download", "--no-index", "--find-links", str(wheels), "-d", str(wheels), "-r", str(pinned))
        except subprocess.CalledProcessError:
            _pip("download", "-d", str(wheels), "-r", str(pinned))
        print(f"wheel directory {wheels}: {len(list(wheels.glob('*.whl')))} wheels ({time.perf_counter() - started:.1f} s to fill/check)")
        source = ["--no-index", "--find-links", str(wheels)]

        plain_s, first_s, cached_s, retrain_first_s, retrain_cached_s = [], [], [], [], []
        for i in range(rounds):
            plain = home / f"plain-{i}"
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", str(plain)], check=True, capture_output=True)
            subprocess.run([str(plain / "bin" / "pip"), "--disable-pip-version-check", "-q", "install", *source, "-r", str(pinned)],
                           check=True, capture_output=True)
            plain_s.append(time.perf_counter() - t)
            shutil.rmtree(plain, ignore_errors=True)

            shutil.rmtree(settings.home / "environments", ignore_errors=True)
            t = time.perf_counter()
            built = environments.ensure(settings, mv.environment, find_links=[str(wheels)], no_index=True)
            first_s.append(time.perf_counter() - t)
            assert not built.reused
            t = time.perf_counter()
            report = retrain(settings, "wine:1", transport=transport, environment="recorded", find_links=[str(wheels)], no_index=True)
            retrain_first_s.append(time.perf_counter() - t)
            assert report.verdict == "reproduced", report.causes

            t = time.perf_counter()
            again = environments.ensure(settings, mv.environment, find_links=[str(wheels)], no_index=True)
            cached_s.append(time.perf_counter() - t)
            assert again.reused
            t = time.perf_counter()
            report = retrain(settings, "wine:1", transport=transport, environment="recorded", find_links=[str(wheels)], no_index=True)
            retrain_cached_s.append(time.perf_counter() - t)
            assert report.verdict == "reproduced" and report.environment_ran["reused"]
            print(f"round {i + 1}: plain {plain_s[-1]:.2f} s, rebuild {first_s[-1]:.2f} s (+ retrain {retrain_first_s[-1]:.2f} s), "
                  f"cached {cached_s[-1]:.3f} s (+ retrain {retrain_cached_s[-1]:.2f} s)", flush=True)

        plain, first, cached = statistics.median(plain_s), statistics.median(first_s), statistics.median(cached_s)
        result(
            "reproduce_env",
            packages=len(pins),
            rounds=rounds,
            plain_install_s=plain,
            first_rebuild_s=first,
            first_vs_plain=first / plain,
            cached_check_s=cached,
            cached_vs_plain=cached / plain,
            retrain_after_rebuild_s=statistics.median(retrain_first_s),
            retrain_cached_s=statistics.median(retrain_cached_s),
            verdict="reproduced",
            first_ok=first / plain <= 1.0,
            cached_ok=cached / plain <= 0.1,
        )
