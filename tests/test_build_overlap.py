"""build doing no work twice: the reproducibility rebuild beside the first build where they share
no state, and build's isolated environments made with uv when a rehearsal asks for it.

The builds are real ``python -m build`` runs (pip and uv installers) of a small hatchling project.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import git
from tests.test_build import PYPROJECT, make_project
from upm_ci import timings
from upm_ci.build import build_release, builds_can_overlap
from upm_ci.manifest import Manifest
from upm_ci.project import load_project
from upm_ci.release import release_info
from upm_ci.venvs import INSTALLER_ENV, build_installer, rehearsal_installer_env


def test_only_a_backend_that_leaves_the_tree_alone_and_no_hook_overlap(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", in_git=False)
    assert builds_can_overlap(load_project(root))
    hooked = PYPROJECT + '\n[tool.hatch.build.targets.wheel.hooks.custom]\npath = "hb.py"\n'
    (root / "pyproject.toml").write_text(hooked)
    assert not builds_can_overlap(load_project(root))
    setuptools = PYPROJECT.replace('requires = ["hatchling>=1.25"]', 'requires = ["setuptools"]')
    setuptools = setuptools.replace("hatchling.build", "setuptools.build_meta")
    (root / "pyproject.toml").write_text(setuptools)
    assert not builds_can_overlap(load_project(root))  # writes *.egg-info into the tree


def test_uv_builds_only_when_a_rehearsal_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTALLER_ENV, raising=False)
    monkeypatch.delenv("UPM_NO_UV", raising=False)
    assert build_installer() == "pip"  # a release: build's default
    assert rehearsal_installer_env() == {INSTALLER_ENV: "uv"}  # the rehearse extra has uv
    monkeypatch.setenv(INSTALLER_ENV, "uv")
    assert build_installer() == "uv"
    monkeypatch.setenv("UPM_NO_UV", "true")
    assert build_installer() == "pip"


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_the_rebuild_runs_beside_the_first_and_both_are_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str
) -> None:
    root = make_project(tmp_path / "p")
    steps = tmp_path / "timings.jsonl"
    monkeypatch.setenv(timings.TIMINGS_ENV, str(steps))
    monkeypatch.setenv(INSTALLER_ENV, installer)
    project = load_project(root)
    manifest = Manifest.load_or_new(tmp_path / "m.json", release_info(project, None))
    start = time.monotonic()
    result = build_release(
        project,
        manifest,
        dist_dir=root / "dist",
        check_reproducible=True,
        tag=None,
        smoke=False,
    )
    assert result.reproducible_checked and result.wheel.name == "demo_pkg-1.2.0-py3-none-any.whl"
    assert git(root, "status", "--porcelain") == "?? dist/"  # the tree left alone but dist/
    elapsed = time.monotonic() - start
    builds = [t.seconds for t in timings.read(steps) if t.step == "build: python -m build"]
    assert len(builds) == 2
    assert elapsed < 0.85 * sum(builds), (elapsed, builds)  # side by side, not one by one
