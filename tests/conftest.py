"""Shared fixtures. The local stand-ins' fixtures live in ``tests/fixtures/`` (one module each)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.github",
    "tests.fixtures.sigstore",
    "tests.fixtures.osv",
    "tests.fixtures.pypi",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "upm-sample"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests start first, so that ``make test`` (``-n 2 --dist loadfile``: a module
    at a time to each worker) ends with both workers busy: the modules with the most tests
    marked slow first; a module's tests stay together and in their order, and so do modules of
    equal weight."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    weight = {
        m: sum(i.get_closest_marker("slow") is not None for i in t) for m, t in modules.items()
    }
    ordered = sorted(modules, key=lambda m: -weight[m])
    items[:] = [item for module in ordered for item in modules[module]]


@pytest.fixture(autouse=True)
def _no_ambient_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start outside GitHub Actions unless they opt in (CI itself may set these)."""
    for name in (
        "GITHUB_ACTIONS",
        "CI",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_TOKEN",
        "GITHUB_REPOSITORY",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "UPM_MANIFEST",
        "UPM_PROJECT",
        "UPM_DIST_DIR",
        "UPM_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0.01")
    # Tables fit the terminal (tables.py); tests read whole cells, so give them a wide one.
    # The tests of the wrapping itself set COLUMNS of their own.
    monkeypatch.setenv("COLUMNS", "1000")
    # The example's tests need pytest: run them with this interpreter (see gate.tests).
    monkeypatch.setenv("UPM_TEST_PYTHON", sys.executable)


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity and dates (deterministic commits)."""
    env = {
        "GIT_AUTHOR_NAME": "Alice Developer",
        "GIT_AUTHOR_EMAIL": "alice@example.com",
        "GIT_COMMITTER_NAME": "Alice Developer",
        "GIT_COMMITTER_EMAIL": "alice@example.com",
        "GIT_AUTHOR_DATE": "2026-11-01T12:00:00Z",
        "GIT_COMMITTER_DATE": "2026-11-01T12:00:00Z",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": str(cwd),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_git_project(src: Path, dest: Path, *, image: bool = False) -> Path:
    """Copy ``src`` to ``dest`` as its own repository: a tagged previous release (v1.1.0),
    then one more commit, HEAD = the release candidate.

    ``image=False`` drops the example's ``image`` key: only the image tests (and
    ``make rehearse``) build its container image, which needs a Docker engine and a base
    image made here (python:3.11-slim cannot be pulled without internet)."""
    shutil.copytree(
        src,
        dest,
        ignore=shutil.ignore_patterns("dist", "build", "*.egg-info", "__pycache__", ".venv"),
    )
    pyproject = dest / "pyproject.toml"
    if not image and pyproject.is_file():
        text = pyproject.read_text()
        pyproject.write_text(re.sub(r'(?m)^image = ".*"\n', "", text))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "upm-sample 1.1.0")
    git(dest, "tag", "v1.1.0")
    (dest / ".release-candidate").write_text("1.2.0\n")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "Prepare 1.2.0")
    return dest


@pytest.fixture(scope="session")
def sample_junit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JUnit XML of one real run of the example's own test suite (read, never written, by
    the tests that take it)."""
    path = tmp_path_factory.mktemp("junit") / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", f"--junitxml={path}"],
        cwd=EXAMPLE,
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def sample_copy(tmp_path: Path) -> Iterator[Path]:
    """A writable copy of the example project in its own git repository (see make_git_project)."""
    yield make_git_project(EXAMPLE, tmp_path / "upm-sample")
