"""One rule that a manifest belongs to the release (upm_ci/release.py), for every phase."""

from __future__ import annotations

from pathlib import Path

import pytest

from upm_ci.errors import InputError
from upm_ci.manifest import Manifest, ProjectInfo
from upm_ci.project import git, load_project
from upm_ci.release import check_release, open_manifest, release_info


def _project(root: Path, version: str = 'version = "1.2.0"') -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "demo-pkg"\n{version}\n')
    return root


def _manifest(path: Path, tag: str = "v1.2.0", version: str = "1.2.0", repo: str = "") -> Path:
    Manifest(project=ProjectInfo("demo-pkg", version, tag, repository=repo)).save(path)
    return path


def test_release_info_records_the_checkout_head_not_the_tags_commit(tmp_path: Path) -> None:
    root = _project(tmp_path / "demo")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "one")
    git(root, "tag", "v1.2.0")
    (root / "README.md").write_text("two\n")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "two")
    info = release_info(load_project(root), None, "o/demo")
    assert info.commit == git(root, "rev-parse", "HEAD") != git(root, "rev-parse", "v1.2.0")
    assert (info.name, info.version, info.tag, info.repository) == (
        "demo-pkg",
        "1.2.0",
        "v1.2.0",
        "o/demo",
    )
    assert release_info(load_project(_project(tmp_path / "plain")), None).commit == ""


def test_a_later_phase_holds_the_manifest_to_name_version_and_tag(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path / "demo"))
    ok = _manifest(tmp_path / "ok.json")
    manifest, pinned = open_manifest(ok, project)
    assert manifest.project.tag == "v1.2.0" and pinned is project
    with pytest.raises(InputError, match=r"manifest is for demo-pkg 1\.1\.0, not demo-pkg 1\.2\.0"):
        open_manifest(_manifest(tmp_path / "old.json", "v1.1.0", "1.1.0"), project)
    with pytest.raises(InputError, match="at tag release-1.2.0, not tag v1.2.0"):
        open_manifest(_manifest(tmp_path / "tag.json", "release-1.2.0"), project)
    with pytest.raises(InputError, match="project.tag is empty; it cannot be held to tag v1.2.0"):
        open_manifest(_manifest(tmp_path / "none.json", ""), project)
    with pytest.raises(InputError, match="at tag v1.2.0, not tag v9"):
        open_manifest(ok, project, tag="refs/tags/v9")


def test_a_dynamic_version_is_the_builds_after_build(tmp_path: Path) -> None:
    """sbom, sign, publish and verify never ask the backend: the manifest's version is taken,
    and the tag (the project's at that version) still has to match."""
    project = load_project(_project(tmp_path / "demo", 'dynamic = ["version"]'))
    manifest, pinned = open_manifest(_manifest(tmp_path / "m.json", "v2.0.0", "2.0.0"), project)
    assert pinned.version == "2.0.0" and pinned.tag == "v2.0.0"
    with pytest.raises(InputError, match="at tag v2.0.1, not tag v2.0.0"):
        open_manifest(_manifest(tmp_path / "bad.json", "v2.0.1", "2.0.0"), project)


def test_a_pinned_repository_must_be_the_manifests(tmp_path: Path) -> None:
    path = _manifest(tmp_path / "m.json", repo="o/demo")
    assert open_manifest(path, None, repository="O/Demo")[0].project.repository == "o/demo"
    with pytest.raises(InputError, match="project.repository is 'o/demo', not the pinned 'm/x'"):
        open_manifest(path, None, repository="m/x")
    manifest = Manifest.load(path)
    assert check_release(manifest, None) is manifest  # nothing pinned: nothing compared


def test_gate_and_build_start_a_new_manifest_from_release_info(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path / "demo"))
    path = tmp_path / "new.json"
    manifest, _ = open_manifest(path, project, tag="v1.2.0", repository="o/demo", new=True)
    assert not path.exists() and manifest.path == path.resolve()
    assert manifest.project == ProjectInfo("demo-pkg", "1.2.0", "v1.2.0", "", "o/demo")
    gated = _manifest(tmp_path / "gated.json", "v1.1.9")
    restamped, _ = open_manifest(gated, project, new=True, restamp=True)
    assert restamped.project.tag == "v1.2.0"
    with pytest.raises(InputError, match="at tag v1.1.9, not tag v1.2.0"):
        open_manifest(gated, project, new=True)


def test_another_projects_manifest_is_named_without_a_version_the_project_never_had(
    tmp_path: Path,
) -> None:
    """A dynamic version is taken from the manifest only once it is this project's: the
    refusal of another project's manifest names the project, not that manifest's version."""
    project = load_project(_project(tmp_path / "demo", 'dynamic = ["version"]'))
    other = tmp_path / "other.json"
    Manifest(project=ProjectInfo("other-pkg", "9.1.0", "v9.1.0")).save(other)
    with pytest.raises(InputError) as caught:
        open_manifest(other, project)
    assert "manifest is for other-pkg 9.1.0, not demo-pkg (" in str(caught.value)
    assert "demo-pkg 9.1.0" not in str(caught.value)
