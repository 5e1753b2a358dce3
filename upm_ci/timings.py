"""Where a rehearsal's time goes: named steps and their seconds, across phase processes.

Each phase is a process of its own, so a step's time is appended as one JSON line to the file
``upm-ci rehearse`` names in ``UPM_TIMINGS_FILE``; without it, :func:`timed` only logs at
debug level. ``rehearse --timings`` reads the file back with the stand-ins' start-up times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TIMINGS_ENV = "UPM_TIMINGS_FILE"


@dataclass(frozen=True)
class Timing:
    """One step (``gate: tests``, ``build: python -m build``) and how long it took."""

    step: str
    seconds: float


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    """Time the block as ``step`` (recorded even when it raises: a failed step took time too)."""
    start = time.monotonic()
    try:
        yield
    finally:
        record(step, time.monotonic() - start)


def record(step: str, seconds: float) -> None:
    """Append ``step`` to the timings file, if a rehearsal asked for one."""
    log.debug("timing: %s %.2f s", step, seconds)
    path = os.environ.get(TIMINGS_ENV, "")
    if not path:
        return
    line = json.dumps({"step": step, "seconds": round(seconds, 3)}) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as handle:  # one short write: atomic per line
            handle.write(line)
    except OSError as e:  # timings are a diagnostic; never fail a phase for them
        log.debug("timing: could not write %s: %s", path, e)


def read(path: Path) -> list[Timing]:
    """The steps recorded in ``path``, in order; unreadable lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out: list[Timing] = []
    for line in lines:
        try:
            data = json.loads(line)
            out.append(Timing(str(data["step"]), float(data["seconds"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out
