"""Start-up: ``upm-ci --help`` beside ``sigstore --help``, both as fresh processes.

Every action step starts ``upm-ci`` anew, so start-up is paid once per step. The CLI keeps
sigstore, PyGithub and pip-audit out of ``--help`` (they are imported by the command that
needs them); sigstore's own CLI is the yardstick a user already knows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks._harness import BenchResult, timed

REPEAT = 15
BIN = Path(sys.executable).parent


def _help_time(program: str) -> float:
    argv = [str(BIN / program), "--help"]

    def call() -> None:
        subprocess.run(argv, check=True, capture_output=True)

    call()  # warm the page cache and any .pyc files first
    return timed(call, repeat=REPEAT)


def _imports_sigstore() -> bool:
    """Whether ``upm-ci --help`` pulls in sigstore (it must not); a failed probe raises."""
    probe = (
        "import sys; from upm_ci.cli import main; main(['--help']); "
        "print('SIGSTORE' if 'sigstore' in sys.modules else 'CLEAN', file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    verdict = proc.stderr.strip().splitlines()[-1:] if proc.returncode == 0 else []
    if verdict not in (["SIGSTORE"], ["CLEAN"]):
        raise RuntimeError(f"the import probe failed: {proc.stderr.strip()[-300:]}")
    return verdict == ["SIGSTORE"]


def run() -> list[BenchResult]:
    ours = _help_time("upm-ci")
    theirs = _help_time("sigstore")
    loaded = "imports sigstore (it should not)" if _imports_sigstore() else "no sigstore import"
    return [
        BenchResult(
            name="startup: --help",
            ours=ours,
            theirs=theirs,
            baseline="sigstore --help",
            target=0.5,
            note=(
                f"best of {REPEAT} fresh processes each; `upm-ci --help`: {loaded}. "
                "Both are Python console scripts of the same venv."
            ),
        )
    ]
