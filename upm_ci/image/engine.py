"""The Docker engine: where it is, whether it answers, and the runner every image step uses.

The engine is ``$DOCKER_HOST`` or the default socket ``unix:///var/run/docker.sock``. Image
steps talk to it through the ``docker`` CLI (what Debian's ``docker.io`` ships next to the
engine): one subprocess per step, the project-style allow-listed environment plus the
engine's address, and the classic builder (``DOCKER_BUILDKIT=0``; buildx is not packaged
everywhere). Nothing here prints: callers turn results into rows and errors into exit codes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from upm_ci.child_env import project_env
from upm_ci.errors import ServiceError

DEFAULT_HOST = "unix:///var/run/docker.sock"
#: How long ``engine_problem`` waits for the engine to answer.
PING_TIMEOUT = 20.0
#: Lines of a failing command's output shown in its error.
TAIL_LINES = 15


def engine_host(env: Mapping[str, str] | None = None) -> str:
    """The engine's address: ``$DOCKER_HOST`` when set, else the default socket."""
    source = os.environ if env is None else env
    return source.get("DOCKER_HOST", "").strip() or DEFAULT_HOST


def engine_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``docker`` command: allow-listed, the engine's address, no BuildKit.

    ``DOCKER_CONFIG`` (where the CLI keeps its settings) passes when set; registry
    credentials stay in the files it names and never travel through the environment.
    """
    env = project_env(
        {
            "DOCKER_HOST": engine_host(),
            "DOCKER_BUILDKIT": "0",
            "DOCKER_CLI_HINTS": "false",
            "DOCKER_SCAN_SUGGEST": "false",
        }
    )
    if os.environ.get("DOCKER_CONFIG"):
        env["DOCKER_CONFIG"] = os.environ["DOCKER_CONFIG"]
    env.update(extra or {})
    return env


def docker_cli() -> str | None:
    """Path of the ``docker`` CLI, or None."""
    return shutil.which("docker")


def tail(text: str | bytes, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a command's output, joined with `` | ``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def engine_problem() -> str | None:
    """None when an engine answers at :func:`engine_host`, else a one-line reason.

    The reason always names the address, e.g. ``no Docker engine at unix:///var/run/docker.sock``.
    """
    host = engine_host()
    if host.startswith("unix://") and not Path(host[len("unix://") :]).exists():
        return f"no Docker engine at {host}"
    cli = docker_cli()
    if cli is None:
        return f"no docker CLI on PATH (engine expected at {host})"
    try:
        done = subprocess.run(
            [cli, "version", "--format", "{{.Server.Version}}"],
            env=engine_env(),
            capture_output=True,
            timeout=PING_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no Docker engine at {host} (no answer in {PING_TIMEOUT:.0f} s)"
    except OSError as e:
        return f"no Docker engine at {host} ({e.strerror or e})"
    if done.returncode != 0 or not done.stdout.strip():
        last = tail(done.stderr, 1)
        return f"no Docker engine at {host}" + (f" ({last})" if last else "")
    return None


def docker(
    args: Sequence[str],
    *,
    check: bool = True,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | int | None = subprocess.PIPE,
    cwd: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``docker ARGS`` against the engine; output captured as bytes.

    With ``check`` a non-zero exit is a :class:`ServiceError` (exit 3) naming the command and
    its last lines; callers that judge the outcome themselves (a failing build is the
    project's fault, not the engine's) pass ``check=False``.
    """
    cli = docker_cli()
    if cli is None:
        raise ServiceError(
            f"docker {' '.join(args[:1])}: no docker CLI on PATH",
            hint="install docker.io (Debian) or Docker Engine",
        )
    try:
        done = subprocess.run(
            [cli, *args],
            env=engine_env(extra_env),
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise ServiceError(f"docker {' '.join(args[:2])}: no answer in {timeout} s") from e
    if check and done.returncode != 0:
        out = (done.stderr or b"") + (done.stdout if isinstance(done.stdout, bytes) else b"")
        raise ServiceError(
            f"docker {' '.join(args[:2])} failed (exit {done.returncode}) at {engine_host()}: "
            f"{tail(out) or 'no output'}"
        )
    return done


def image_exists(ref: str) -> bool:
    """Whether the engine holds an image named ``ref`` (or with that ID)."""
    return docker(["image", "inspect", "--format", "{{.Id}}", ref], check=False).returncode == 0
