"""A rehearsal's snapshot of the project is dated by its files, not the clock: rehearsing the
same code again builds the same wheel (so the cached wheel venv and the image's build cache are
used as they are), and a changed file makes a new date."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import EXAMPLE
from upm_ci.project import git, load_project
from upm_ci.rehearse import prepare_out_dir, prepare_source


def snapshot(project_dir: Path, out: Path) -> Path:
    source, _tag = prepare_source(load_project(project_dir), prepare_out_dir(out), "")
    return source


def commit_time(source: Path) -> int:
    return int(git(source, "log", "-1", "--format=%ct"))


def test_the_same_code_gets_the_same_snapshot_date_and_a_change_a_new_one(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("dist", "*.egg-info"))
    old = 1_700_000_000
    for path in project.rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)
    first = snapshot(project, tmp_path / "r1")
    second = snapshot(project, tmp_path / "r2")
    assert commit_time(first) == commit_time(second) == old
    assert git(first, "rev-parse", "HEAD") == git(second, "rev-parse", "HEAD")

    (project / "README.md").write_text("changed\n", encoding="utf-8")
    third = snapshot(project, tmp_path / "r3")
    assert commit_time(third) > old
