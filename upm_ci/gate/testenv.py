"""The project's test environment: a fresh venv with the project and its test dependencies.

upm-ci runs from its own isolated venv, which has neither the project nor pytest, and must
never lend the project its own packages (a test would run against upm-ci's copy of a
dependency). So the gate makes the environment the project declares: the project installed
from its source, plus its test extra (``test`` or ``tests``), else its PEP 735 dependency group
(``test`` or ``tests``), else pytest alone. ``test-install`` (config, ``--test-install``) says
it explicitly as pip arguments (``".[test]"``, ``". -r requirements-test.txt"``);
``--test-python`` brings an interpreter of your own and skips all of this.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

_NAMES = ("test", "tests")
_TAIL_LINES = 20


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


def create_test_environment(project: Project, venv: Path) -> TestEnvironment:
    """A new venv at ``venv`` with the project (from source) and its test dependencies."""
    args, source = install_arguments(project)
    base = base_python()
    env = project_env()
    log.info("gate: creating the test environment (%s): pip install %s", source, " ".join(args))
    _run([base, "-m", "venv", str(venv)], project.root, env, "create a venv")
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    _run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args],
        project.root,
        env,
        f"pip install {' '.join(args)}",
    )
    return TestEnvironment(str(python), f"a new venv with {' '.join(args)} ({source})")


def _run(command: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
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
