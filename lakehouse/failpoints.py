"""Named steps of Tidemark's jobs, and failpoints that kill the process at one of them.

A job marks each step it reaches with `step("ingest.published")`. With the environment variable
`TIDEMARK_FAILPOINT` unset (always, outside fault tests) that is one dictionary lookup. Set to a
comma-separated list of step names, the process SIGKILLs itself on reaching a listed step: a
crash at exactly that instant, with no `finally`, no atexit handler and no flush, which is what
the kill suite (tests/faults/test_kills.py) needs to show that every step is recoverable.

A listed name matches the full step (`ingest.published`) or its last part (`published`, any job).
`NAME@N` fires on the N-th time the step is reached in this process (steps inside loops).

`armed(name)` asks, without killing anything, whether a fault is wanted at `name`: for faults a
process cannot inject by dying, such as a Spark job whose tasks fail mid-write (`ingest.sparkland`).
"""

from __future__ import annotations

import os
import signal

ENV = "TIDEMARK_FAILPOINT"

# Every step the jobs mark, in order per job: the kill suite kills at each of them.
STEPS: dict[str, tuple[str, ...]] = {
    "ingest": ("start", "written", "audited", "published", "emitted"),
    # `--engine spark`: "written" is the rows read and gated (Spark writes after it), "spark-written"
    # Spark's audit-branch commit, made while a schema evolved for the file is current.
    "ingest-spark": ("start", "written", "spark-written", "audited", "published", "emitted"),
    "train": ("start", "written", "registered", "pinned", "emitted"),
    "promote": ("start", "registered", "emitted"),
    # `models approve`: the approval decided, the alias move committed, the approve row, the event.
    "approve": ("decided", "moved", "recorded", "emitted"),
    "consume": ("consumed-committed", "acknowledged"),
    "predlog": ("start", "committed", "emitted"),
}

_hits: dict[str, int] = {}


def _listed(name: str) -> list[str]:
    """The `@N` parts of the items of `TIDEMARK_FAILPOINT` naming step `name` ('' for no `@N`)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return []
    short = name.rpartition(".")[2]
    out = []
    for item in wanted.split(","):
        point, _, nth = item.strip().partition("@")
        if point in (name, short):
            out.append(nth)
    return out


def armed(name: str) -> bool:
    """True when `TIDEMARK_FAILPOINT` names `name` (the caller injects its own fault there)."""
    return bool(_listed(name))


def step(name: str) -> None:
    """Mark that the job reached step `name` (`job.step`); dies here if `TIDEMARK_FAILPOINT` names it."""
    if not os.environ.get(ENV):
        return
    _hits[name] = _hits.get(name, 0) + 1
    if any(not nth or int(nth) == _hits[name] for nth in _listed(name)):
        os.kill(os.getpid(), signal.SIGKILL)
