"""Tool venv set-up: ``actions/setup/setup.sh`` beside a plain ``pip install`` of the same lock.

Every phase action starts by making sure upm-release's own venv exists. A user who did not
have the setup script would create a venv and ``pip install --require-hashes`` the lock (as
gh-action-sigstore-python does). Both run with **no uv on PATH** (GitHub's hosted runners have
none; ``UPM_NO_UV`` unset), so setup.sh bootstraps the uv pinned in ``actions/setup/uv.txt``
with ``pip download``; every cold run of ours gets a new ``RUNNER_TEMP``, so that bootstrap
(download from pip's cache, unzip the binary) is in its time. Download caches (pip's, uv's)
are warm on both sides, so the figures are install work, not network. Two cases: a cold venv
(first phase of a job) and a venv that is already there (every later phase: setup.sh checks its
lock key, pip re-resolves).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import BenchResult, timed

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "actions" / "setup"
LOCK = SETUP / "requirements.txt"
BASE_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")
#: Cold runs of each side, alternating; the median is reported.
COLD_RUNS = 3


def _without_uv(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with every PATH entry that holds a ``uv`` removed, and UPM_NO_UV unset."""
    env = {k: v for k, v in environ.items() if k != "UPM_NO_UV"}
    keep = [p for p in env.get("PATH", "").split(os.pathsep) if p and not (Path(p) / "uv").exists()]
    env["PATH"] = os.pathsep.join(keep)
    return env


ENV = _without_uv(dict(os.environ))


def _setup_sh(venv: Path, runner_temp: Path) -> str:
    proc = subprocess.run(
        ["bash", str(SETUP / "setup.sh")],
        env={
            **ENV,
            "UPM_BASE_PYTHON": BASE_PYTHON,
            "UPM_TOOL_VENV": str(venv),
            "RUNNER_TEMP": str(runner_temp),
        },
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout


def _pip_install(venv: Path, *, create: bool) -> None:
    if create:
        subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True, capture_output=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--require-hashes",
         "--no-deps", "-r", str(LOCK)],
        env=ENV,
        check=True,
        capture_output=True,
    )  # fmt: skip


def run() -> list[BenchResult]:
    if shutil.which("uv", path=ENV["PATH"]):
        raise RuntimeError("uv is still on PATH; the cold set-up must run without it")
    with tempfile.TemporaryDirectory(prefix="upm-bench-setup-") as tmp:
        work = Path(tmp)
        first = _setup_sh(work / "warm-ours", work / "temp-warm")  # fill the download caches
        if "installed with uv" not in first:
            raise RuntimeError(f"setup.sh did not install with the bootstrapped uv: {first!r}")
        _pip_install(work / "warm-theirs", create=True)

        ours: list[float] = []
        theirs: list[float] = []
        for i in range(COLD_RUNS):
            shutil.rmtree(work / "ours", ignore_errors=True)
            shutil.rmtree(work / "theirs", ignore_errors=True)
            start = time.perf_counter()
            _setup_sh(work / "ours", work / f"temp-{i}")  # a new RUNNER_TEMP: uv bootstrapped
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            _pip_install(work / "theirs", create=True)
            theirs.append(time.perf_counter() - start)
        reuse_ours = timed(lambda: _setup_sh(work / "ours", work / "temp-0"), repeat=3)
        reuse_theirs = timed(lambda: _pip_install(work / "theirs", create=False), repeat=3)
    spread = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(ours, theirs, strict=True))
    return [
        BenchResult(
            name="setup: new tool venv, no uv on PATH",
            ours=statistics.median(ours),
            theirs=statistics.median(theirs),
            baseline="python -m venv + pip install --require-hashes",
            target=0.3,
            note=(
                f"median of {COLD_RUNS} alternating runs (ours/theirs s: {spread}); setup.sh "
                "downloads uv.txt's uv with pip (new RUNNER_TEMP each run) and installs with "
                "it; warm download caches"
            ),
        ),
        BenchResult(
            name="setup: venv already there",
            ours=reuse_ours,
            theirs=reuse_theirs,
            baseline="pip install --require-hashes (all satisfied)",
            target=0.5,
            note="best of 3; setup.sh compares the lock key and re-copies upm_ci",
        ),
    ]
