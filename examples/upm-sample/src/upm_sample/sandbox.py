"""Process isolation for plugins: each plugin runs in its own interpreter process.

The child gets a minimal environment (no inherited secrets), a fresh temporary working
directory, resource limits and a timeout; data crosses the boundary only as JSON on
stdin/stdout. A plugin module run directly, outside this sandbox, refuses to start.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

SANDBOX_FLAG = "UPM_SANDBOX"
EXIT_UNSANDBOXED = 3
_PLUGIN_NAME = re.compile(r"[a-z][a-z0-9_]*")
_MEMORY_BYTES = 1 << 30
_CPU_SECONDS = 10
_MAX_FILE_BYTES = 1 << 20


class SandboxError(RuntimeError):
    """The plugin could not run, crashed, or answered with something other than JSON."""


@dataclass(frozen=True)
class SandboxRun:
    """A plugin's result and what the child process saw of its surroundings."""

    result: Any
    pid: int
    cwd: str
    env_keys: list[str]


def run_plugin(name: str, payload: Any, *, timeout: float = 10.0) -> SandboxRun:
    """Run plugin ``name`` on ``payload`` in a separate, restricted process."""
    if not _PLUGIN_NAME.fullmatch(name):
        raise SandboxError(f"invalid plugin name {name!r}")
    env = {
        SANDBOX_FLAG: "1",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LC_ALL": "C.UTF-8",
    }
    with tempfile.TemporaryDirectory(prefix="upm-sandbox-") as workdir:
        try:
            proc = subprocess.run(
                [sys.executable, "-s", "-m", f"upm_sample.plugins.{name}"],
                input=json.dumps(payload),
                env=env,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=_limit_resources if os.name == "posix" else None,
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(f"plugin {name} timed out after {timeout} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SandboxError(f"plugin {name} exited with {proc.returncode}: {tail[0]}")
    try:
        answer = json.loads(proc.stdout)
        return SandboxRun(
            result=answer["result"],
            pid=answer["sandbox"]["pid"],
            cwd=answer["sandbox"]["cwd"],
            env_keys=answer["sandbox"]["env_keys"],
        )
    except (ValueError, KeyError, TypeError):
        raise SandboxError(f"plugin {name} answered with malformed output") from None


def run_sandboxed(main: Callable[[Any], Any]) -> NoReturn:
    """A plugin's ``__main__`` entry: read JSON, call ``main``, write JSON; never unsandboxed."""
    if os.environ.get(SANDBOX_FLAG) != "1":
        sys.stderr.write("refusing to run unsandboxed: use upm_sample.sandbox.run_plugin\n")
        sys.exit(EXIT_UNSANDBOXED)
    result = main(json.load(sys.stdin))
    report = {"pid": os.getpid(), "cwd": os.getcwd(), "env_keys": sorted(os.environ)}
    json.dump({"result": result, "sandbox": report}, sys.stdout)
    sys.exit(0)


def _limit_resources() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_BYTES, _MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (_CPU_SECONDS, _CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE_BYTES, _MAX_FILE_BYTES))
