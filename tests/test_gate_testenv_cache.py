"""The rehearsal's cache of test venvs: reused while nothing that decides them changed.

The slow test makes real venvs with pip/uv and runs them; the key tests read real projects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from upm_ci.gate.testenv import create_test_environment, environment_key, install_arguments
from upm_ci.project import load_project
from upm_ci.rehearse import gate_venv_cache


def project_at(root: Path, deps: str = '"six"', code: str = "VALUE = 1\n") -> Path:
    (root / "minipkg").mkdir(parents=True, exist_ok=True)
    (root / "minipkg" / "__init__.py").write_text(code)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "minipkg"
            version = "0.3.0"
            dependencies = [{deps}]

            [project.optional-dependencies]
            test = ["pytest>=8"]
            """
        )
    )
    return root


def key_of(root: Path, base: str = "/usr/bin/python3") -> str:
    project = load_project(root)
    args, _ = install_arguments(project)
    return environment_key(project, args, base)


def test_the_key_changes_with_a_dependency_and_the_interpreter_not_with_the_code(
    tmp_path: Path,
) -> None:
    root = project_at(tmp_path / "p")
    first = key_of(root)
    project_at(root, code="VALUE = 2\n")  # the code changes: same venv, reinstalled
    assert key_of(root) == first
    project_at(root, deps='"six", "idna"')  # a new dependency: a new venv
    assert key_of(root) != first
    project_at(root)
    assert key_of(root) == first
    other = tmp_path / "python3"  # another interpreter: a new venv
    other.write_text("#!/bin/sh\n")
    assert key_of(root, str(other)) != first


def test_the_key_follows_the_interpreter_a_shim_runs_not_the_shim(tmp_path: Path) -> None:
    """A pyenv/asdf shim is one file whatever interpreter it runs: the key is the one it runs
    (asked of it in the project's directory, where ``.python-version`` chooses)."""
    import sys

    root = project_at(tmp_path / "p")
    other = tmp_path / "python-other"  # another interpreter (a copy: another file)
    shutil.copy2(os.path.realpath(sys.executable), other)
    shim = tmp_path / "shims" / "python3"
    shim.parent.mkdir()
    shim.write_text(
        "#!/bin/sh\n"
        'if [ -f .python-version ]; then exec "$(cat .python-version)" "$@"; fi\n'
        f'exec "{os.path.realpath(sys.executable)}" "$@"\n'
    )
    shim.chmod(0o755)
    first = key_of(root, str(shim))
    assert key_of(root, str(shim)) == first  # asked again: the same
    assert key_of(root, os.path.realpath(sys.executable)) == first  # what the shim runs
    (root / ".python-version").write_text(f"{other}\n")  # `pyenv local`: the shim runs another
    assert key_of(root, str(shim)) != first


def test_a_requirements_file_named_in_test_install_is_part_of_the_key(tmp_path: Path) -> None:
    root = project_at(tmp_path / "p")
    with (root / "pyproject.toml").open("a") as f:
        f.write('\n[tool.upm-release]\ntest-install = ". -r requirements-test.txt"\n')
    (root / "requirements-test.txt").write_text("pytest\n")
    first = key_of(root)
    (root / "requirements-test.txt").write_text("pytest\nhypothesis\n")
    assert key_of(root) != first


@pytest.mark.parametrize("variable", ["CI", "GITHUB_ACTIONS"])
def test_ci_never_reuses_a_test_venv(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv(variable, "true")
    cache, why = gate_venv_cache(fresh=False)
    assert cache is None and "CI" in why


def test_fresh_never_reuses_and_a_local_run_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("UPM_CACHE_DIR", str(tmp_path))
    assert gate_venv_cache(fresh=True)[0] is None
    cache, why = gate_venv_cache(fresh=False)
    assert cache == tmp_path / "test-venvs" and "reused" in why


def run(python: str, code: str) -> str:
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.slow
def test_a_reused_venv_runs_the_current_code_and_a_new_dependency_makes_a_new_one(
    tmp_path: Path,
) -> None:
    root = project_at(tmp_path / "p")
    cache = tmp_path / "cache"
    first = create_test_environment(load_project(root), tmp_path / "unused", cache)
    assert "new cached venv" in first.description
    assert run(first.python, "import minipkg; print(minipkg.VALUE)") == "1"

    project_at(root, code="VALUE = 2\n")
    again = create_test_environment(load_project(root), tmp_path / "unused", cache)
    assert "reused venv" in again.description and again.python == first.python
    assert run(again.python, "import minipkg; print(minipkg.VALUE)") == "2"

    project_at(root, deps='"six", "idna"', code="VALUE = 3\n")
    changed = create_test_environment(load_project(root), tmp_path / "unused", cache)
    assert "new cached venv" in changed.description and changed.python != first.python
    assert run(changed.python, "import idna, minipkg; print(minipkg.VALUE)") == "3"
    assert not (tmp_path / "unused").exists()
