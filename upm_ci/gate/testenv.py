"""The project's test environment: a fresh venv with the project and its test dependencies.

upm-ci runs from its own isolated venv, which has neither the project nor pytest, and must
never lend the project its own packages (a test would run against upm-ci's copy of a
dependency). So the gate makes the environment the project declares: the project installed
from its source, plus its test extra (``test`` or ``tests``), else its PEP 735 dependency group
(``test`` or ``tests``), else pytest alone. ``test-install`` (config, ``--test-install``) says
it explicitly as pip arguments (``".[test]"``, ``". -r requirements-test.txt"``);
``--test-python`` brings an interpreter of your own and skips all of this.

A rehearsal runs again and again, so it may hand the gate a cache (``UPM_TEST_VENV_CACHE``):
a venv keyed on what decides its contents (the install arguments, the project's declared
dependencies and build system, the requirement files named, the interpreter) is made once and
then only has the project reinstalled from source (by uv where there is one, else pip), so each
run still tests the code as it is. uv, its view of pip's index settings, the cache's lock and its
pruning are :mod:`upm_ci.venvs`'s (``UPM_NO_UV=true`` leaves uv out here too).
A release in CI never gets a cache: ``upm-ci rehearse`` passes one only outside CI and without
``--fresh``, and nothing else sets it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from upm_ci.child_env import project_env
from upm_ci.errors import InputError
from upm_ci.project import Project
from upm_ci.timings import timed
from upm_ci.venvs import (
    READY,
    executable_facts,
    locked,
    prune,
    uv_binary,
    uv_env,
    venv_python,
)

log = logging.getLogger(__name__)

_NAMES = ("test", "tests")
_TAIL_LINES = 20
#: The variable through which ``upm-ci rehearse`` hands the gate its cache of test venvs.
CACHE_ENV = "UPM_TEST_VENV_CACHE"
_REQUIREMENT_FLAGS = ("-r", "--requirement", "-c", "--constraint")


@dataclass(frozen=True)
class TestEnvironment:
    """An interpreter to run the tests with, and how it came to be."""

    __test__ = False  # not a pytest test class

    python: str
    description: str


class TestEnvironmentError(Exception):
    """The project's test environment could not be installed (a ``tests`` failure)."""

    __test__ = False

    def __init__(self, message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


def install_arguments(project: Project) -> tuple[list[str], str]:
    """pip arguments that install the project for its tests, and where they came from."""
    configured = project.config.test_install.strip()
    if configured:
        try:
            return shlex.split(configured), "test-install"
        except ValueError as e:
            raise InputError(
                f"{project.root / 'pyproject.toml'}: [tool.upm-release] test-install "
                f"{configured!r} is not valid shell words: {e}"
            ) from None
    meta = project.pyproject.get("project", {})
    extras = meta.get("optional-dependencies", {}) if isinstance(meta, dict) else {}
    extras = extras if isinstance(extras, dict) else {}
    for name in _NAMES:
        if name in extras:
            args = [f".[{name}]"]
            if not _names_pytest(extras[name]):
                args.append("pytest")
            return args, f"extra [{name}]"
    groups = project.pyproject.get("dependency-groups", {})
    if isinstance(groups, dict):
        for name in _NAMES:
            if name in groups:
                requirements = dependency_group(groups, name, project.root)
                if not _names_pytest(requirements):
                    requirements.append("pytest")
                return [".", *requirements], f"dependency group {name!r}"
    return [".", "pytest"], "the project and pytest (no test extra or dependency group)"


def _names_pytest(requirements: Any) -> bool:
    if not isinstance(requirements, list):
        return False
    for text in requirements:
        try:
            if canonicalize_name(Requirement(str(text)).name) == "pytest":
                return True
        except InvalidRequirement:
            continue
    return False


def dependency_group(groups: dict[str, Any], name: str, root: Path) -> list[str]:
    """The requirement strings of PEP 735 group ``name``, includes expanded, cycles refused."""
    where = f"{root / 'pyproject.toml'}: [dependency-groups]"
    normalized = {canonicalize_name(key): value for key, value in groups.items()}

    def expand(group: str, seen: tuple[str, ...]) -> list[str]:
        key = canonicalize_name(group)
        if key in seen:
            raise InputError(f"{where} {group!r} includes itself")
        entries = normalized.get(key)
        if not isinstance(entries, list):
            raise InputError(f"{where} has no group {group!r}", hint="fix include-group")
        out: list[str] = []
        for entry in entries:
            if isinstance(entry, str):
                try:
                    Requirement(entry)
                except InvalidRequirement as e:
                    raise InputError(
                        f"{where} {group}: {entry!r} is not a requirement: {e}"
                    ) from None
                out.append(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
                out += expand(entry["include-group"], (*seen, key))
            else:
                raise InputError(
                    f"{where} {group}: {entry!r} is neither a requirement nor an include"
                )
        return out

    return expand(name, ())


def base_python() -> str:
    """The interpreter the test venv is made from: the job's Python, else this one."""
    return shutil.which("python3") or shutil.which("python") or sys.executable


def create_test_environment(
    project: Project, venv: Path, cache: Path | None = None
) -> TestEnvironment:
    """A venv with the project (from source) and its test dependencies.

    Without ``cache``, a new one at ``venv``. With it, the cached venv for this project's
    dependency set and interpreter (made on first use), with the project reinstalled.
    """
    args, source = install_arguments(project)
    base = base_python()
    env = project_env()
    if cache is None:
        log.info("gate: creating the test environment (%s): pip install %s", source, " ".join(args))
        python = _make_venv(base, venv, args, project.root, env)
        return TestEnvironment(str(python), f"a new venv with {' '.join(args)} ({source})")
    key = environment_key(project, args, base)
    cached = cache / key
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / f"{key}.lock"):
        python = venv_python(cached)
        if (cached / READY).is_file() and python.exists():
            log.info("gate: reusing the test environment %s; reinstalling the project", cached)
            _reinstall(python, args, project, env)
            os.utime(cached / READY)
            how = f"a reused venv ({key[:12]}) with {' '.join(args)} ({source})"
        else:
            log.info("gate: creating the cached test environment %s (%s)", cached, source)
            shutil.rmtree(cached, ignore_errors=True)
            _make_venv(base, cached, args, project.root, env)
            (cached / READY).write_text(key + "\n", encoding="utf-8")
            how = f"a new cached venv ({key[:12]}) with {' '.join(args)} ({source})"
    prune(cache, keep=key)
    return TestEnvironment(str(python), how)


def cache_from_env() -> Path | None:
    """The test-venv cache ``upm-ci rehearse`` handed over, if any."""
    value = os.environ.get(CACHE_ENV, "")
    return Path(value) if value else None


def environment_key(project: Project, args: list[str], base: str) -> str:
    """What decides a test venv's contents, hashed: changed dependencies or interpreter, new key."""
    pyproject = project.pyproject
    meta = pyproject.get("project", {}) if isinstance(pyproject.get("project"), dict) else {}
    declared = {
        "dependencies": meta.get("dependencies"),
        "optional-dependencies": meta.get("optional-dependencies"),
        "dynamic": meta.get("dynamic"),
        "dependency-groups": pyproject.get("dependency-groups"),
        "build-system": pyproject.get("build-system"),
    }
    files: dict[str, str] = {}
    named = [args[i + 1] for i, a in enumerate(args[:-1]) if a in _REQUIREMENT_FLAGS]
    for name in ("setup.py", "setup.cfg", *named):
        path = project.root / name
        if path.is_file():
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    blob = json.dumps(
        {
            "args": args,
            "declared": declared,
            "files": files,
            "interpreter": interpreter_identity(base, project.root),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def interpreter_identity(base: str, cwd: Path) -> list[object]:
    """Which interpreter ``base`` is, asked of it where the venv is made (a pyenv or asdf shim
    picks one at run time, by the project's ``.python-version``): the executable it runs, by
    real path, size and mtime, and its version. One that cannot be asked is ``base`` itself."""
    ask = "import sys; print(sys.executable); print(sys.version.replace(chr(10), ' '))"
    try:
        proc = subprocess.run(
            [base, "-I", "-c", ask], cwd=cwd, capture_output=True, text=True, timeout=60
        )
        answer = proc.stdout.splitlines() if proc.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        answer = []
    return [*executable_facts(answer[0] if answer and answer[0] else base), *answer[1:2]]


def _make_venv(base: str, venv: Path, args: list[str], root: Path, env: dict[str, str]) -> Path:
    _run([base, "-m", "venv", str(venv)], root, env, "create a venv")
    python = venv_python(venv)
    _install(python, args, root, env)
    return python


def _install(python: Path, args: list[str], root: Path, env: dict[str, str]) -> None:
    # pip always reinstalls a project given as a local directory, so a reused venv gets
    # the code as it is now while its dependencies, already satisfied, stay.
    _run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args],
        root,
        env,
        f"pip install {' '.join(args)}",
    )


def _reinstall(python: Path, args: list[str], project: Project, env: dict[str, str]) -> None:
    """Put the project's current code into a reused venv: uv where there is one (its
    dependencies are already there, so this is a second), else pip, which rebuilds it."""
    uv = uv_binary()
    if uv:
        command = [uv, "pip", "install", "--python", str(python)]
        command += ["--reinstall-package", project.normalized_name, *args]
        try:
            _run(command, project.root, uv_env(env), f"uv pip install {' '.join(args)}")
            return
        except TestEnvironmentError as e:  # uv reads no pip.conf: pip is the reference
            log.info("gate: uv could not reinstall the project (%s); using pip", e)
    _install(python, args, project.root, env)


def _run(command: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    with timed(f"gate: test venv: {what}"):
        _run_untimed(command, cwd, env, what)


def _run_untimed(command: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as e:
        raise TestEnvironmentError(f"could not {what}: {e.strerror or e}") from None
    if proc.returncode:
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if re.search(r"error", line, re.I)), "")
        tail = "\n".join(lines[-_TAIL_LINES:])
        raise TestEnvironmentError(
            f"could not install the test environment: {what} exited with {proc.returncode}"
            + (f": {last.strip()}" if last else ""),
            tail,
        )
