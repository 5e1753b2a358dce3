"""Side-by-side benchmarks: our figure beside the tool a user would otherwise use, same run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchResult:
    """One comparison. ``ratio`` = ours / theirs for times (lower is better)."""

    name: str
    ours: float
    theirs: float
    baseline: str
    target: float
    unit: str = "s"
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else float("inf")

    @property
    def meets_target(self) -> bool:
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target


def timed(fn: Callable[[], object], *, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)
