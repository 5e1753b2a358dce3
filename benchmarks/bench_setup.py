"""Tool venv set-up: ``actions/setup/setup.sh`` beside a plain ``pip install`` of the same lock.

Every phase action starts by making sure upm-release's own venv exists. A user who did not
have the setup script would create a venv and ``pip install --require-hashes`` the lock (as
gh-action-sigstore-python does). Both run here with warm download caches, so the figures are
install work, not network. Two cases: a cold venv (first phase of a job) and a venv that is
already there (every later phase: setup.sh checks its lock key, pip re-resolves).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import BenchResult, timed

ROOT = Path(__file__).resolve().parent.parent
SETUP = ROOT / "actions" / "setup"
LOCK = SETUP / "requirements.txt"
BASE_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")
#: uv sits in this venv's bin when installed there; setup.sh uses it when it is on PATH.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def _setup_sh(venv: Path) -> None:
    subprocess.run(
        ["bash", str(SETUP / "setup.sh")],
        env={**ENV, "UPM_BASE_PYTHON": BASE_PYTHON, "UPM_TOOL_VENV": str(venv)},
        check=True,
        capture_output=True,
    )


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
    uv = shutil.which("uv", path=ENV["PATH"])
    with tempfile.TemporaryDirectory(prefix="upm-bench-setup-") as tmp:
        work = Path(tmp)
        _setup_sh(work / "warm-ours")  # fill the download caches first
        _pip_install(work / "warm-theirs", create=True)

        def ours_cold() -> None:
            shutil.rmtree(work / "ours", ignore_errors=True)
            _setup_sh(work / "ours")

        def theirs_cold() -> None:
            shutil.rmtree(work / "theirs", ignore_errors=True)
            _pip_install(work / "theirs", create=True)

        cold_ours = timed(ours_cold)
        cold_theirs = timed(theirs_cold)
        reuse_ours = timed(lambda: _setup_sh(work / "ours"), repeat=3)
        reuse_theirs = timed(lambda: _pip_install(work / "theirs", create=False), repeat=3)
    installer = "uv (on PATH)" if uv else "pip (no uv on PATH)"
    return [
        BenchResult(
            name="setup: new tool venv",
            ours=cold_ours,
            theirs=cold_theirs,
            baseline="python -m venv + pip install --require-hashes",
            target=1.0,
            note=f"setup.sh installs with {installer}; warm caches, one run each",
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
