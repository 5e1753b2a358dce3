"""Check ``version-bump``: tag, pyproject, CHANGELOG, ``__version__``, previous release."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git
from upm_ci.errors import InputError
from upm_ci.gate.model import GateContext
from upm_ci.gate.version import check_version_bump
from upm_ci.project import load_project


def ctx_for(root: Path, tmp_path: Path, tag: str = "v1.2.0") -> GateContext:
    return GateContext(project=load_project(root), tag=tag, work_dir=tmp_path / "work")


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_the_sample_passes_against_its_previous_tag(sample_copy: Path, tmp_path: Path) -> None:
    result = check_version_bump(ctx_for(sample_copy, tmp_path))
    assert (result.status, result.reason) == ("pass", "1.2.0 > v1.1.0")


@pytest.mark.parametrize("tag", ["v1.2.0", "1.2.0", "v1.2", "refs/tags/v1.2.0", "v1.2.0.0"])
def test_tags_compare_as_pep440_with_optional_prefix(
    sample_copy: Path, tmp_path: Path, tag: str
) -> None:
    assert check_version_bump(ctx_for(sample_copy, tmp_path, tag)).status == "pass"


def test_tag_mismatch_points_at_each_place(sample_copy: Path, tmp_path: Path) -> None:
    result = check_version_bump(ctx_for(sample_copy, tmp_path, "v1.3.0"))
    assert result.status == "fail"
    places = {(f.file, f.line) for f in result.findings}
    assert places == {
        ("pyproject.toml", line_of(sample_copy / "pyproject.toml", 'version = "1.2.0"')),
        ("CHANGELOG.md", line_of(sample_copy / "CHANGELOG.md", "## [1.2.0]")),
        ("src/upm_sample/__init__.py", 3),
    }


def test_pyproject_alone_differs(sample_copy: Path, tmp_path: Path) -> None:
    rewrite(sample_copy / "pyproject.toml", 'version = "1.2.0"', 'version = "1.2.1"')
    (finding,) = check_version_bump(ctx_for(sample_copy, tmp_path)).findings
    assert (
        finding.message
        == "pyproject.toml [project] version is 1.2.1, but the tag v1.2.0 says 1.2.0"
    )


def test_changelog_alone_differs(sample_copy: Path, tmp_path: Path) -> None:
    rewrite(sample_copy / "CHANGELOG.md", "## [1.2.0]", "## [1.1.5]")
    (finding,) = check_version_bump(ctx_for(sample_copy, tmp_path)).findings
    assert finding.file == "CHANGELOG.md" and "1.1.5" in finding.message


def test_unreleased_section_above_is_fine_but_not_released(
    sample_copy: Path, tmp_path: Path
) -> None:
    changelog = sample_copy / "CHANGELOG.md"
    rewrite(changelog, "## [Unreleased]\n", "## [Unreleased]\n\n- work in progress\n")
    assert check_version_bump(ctx_for(sample_copy, tmp_path)).status == "pass"


def test_dunder_version_alone_differs(sample_copy: Path, tmp_path: Path) -> None:
    rewrite(sample_copy / "src/upm_sample/__init__.py", '"1.2.0"', '"1.1.0"')
    (finding,) = check_version_bump(ctx_for(sample_copy, tmp_path)).findings
    assert (finding.file, finding.line) == ("src/upm_sample/__init__.py", 3)


def test_configured_version_module(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / "src/upm_sample/_version.py").write_text('__version__: str = "9.9.9"\n')
    rewrite(
        sample_copy / "pyproject.toml",
        "[tool.upm-release]\n",
        '[tool.upm-release]\nversion-module = "src/upm_sample/_version.py"\n',
    )
    (finding,) = check_version_bump(ctx_for(sample_copy, tmp_path)).findings
    assert (finding.file, finding.line) == ("src/upm_sample/_version.py", 1)
    rewrite(sample_copy / "pyproject.toml", "_version.py", "_nope.py")
    with pytest.raises(InputError, match="version-module 'src/upm_sample/_nope.py' does not exist"):
        check_version_bump(ctx_for(sample_copy, tmp_path))


def test_not_greater_than_previous_tag_fails(sample_copy: Path, tmp_path: Path) -> None:
    git(sample_copy, "tag", "v1.2.0-rc.1")  # a lower pre-release is fine
    assert check_version_bump(ctx_for(sample_copy, tmp_path)).reason == "1.2.0 > v1.2.0-rc.1"
    rewrite(
        sample_copy / "pyproject.toml",
        "[tool.upm-release]\n",
        '[tool.upm-release]\nprevious-tag = "v1.2.0"\n',
    )
    result = check_version_bump(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    assert "not greater than the previous release v1.2.0" in result.reason


def test_a_tag_of_this_version_on_another_commit_fails(sample_copy: Path, tmp_path: Path) -> None:
    git(sample_copy, "tag", "v1.2.0", "HEAD~1")
    result = check_version_bump(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    assert "tag v1.2.0 already exists on another commit" in result.reason
    git(sample_copy, "tag", "-f", "v1.2.0", "HEAD")  # a re-run on the release tag is fine
    assert check_version_bump(ctx_for(sample_copy, tmp_path)).status == "pass"


def test_no_earlier_tag_is_a_first_release(sample_copy: Path, tmp_path: Path) -> None:
    git(sample_copy, "tag", "-d", "v1.1.0")
    git(sample_copy, "tag", "not-a-version")
    result = check_version_bump(ctx_for(sample_copy, tmp_path))
    assert (result.status, result.reason) == ("pass", "1.2.0, first release")
    # A higher tag is not "previous", but this version is not greater than that release.
    git(sample_copy, "tag", "v2.0.0")
    result = check_version_bump(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    assert "version 1.2.0 is not greater than the previous release v2.0.0" in result.reason


def test_a_version_below_an_existing_release_names_the_highest_tag(
    sample_copy: Path, tmp_path: Path
) -> None:
    for tag in ("v1.3.0", "v2.0.0rc1", "v2.0.0", "v1.10.0"):
        git(sample_copy, "tag", tag, "HEAD~1")
    (finding,) = check_version_bump(ctx_for(sample_copy, tmp_path)).findings
    assert finding.message == (
        "version 1.2.0 is not greater than the previous release v2.0.0, the highest release "
        "tag (for a maintenance release of an older line, set previous-tag)"
    )
    assert (finding.file, finding.line) == (
        "pyproject.toml",
        line_of(sample_copy / "pyproject.toml", 'version = "1.2.0"'),
    )


def test_previous_tag_allows_a_maintenance_release_below_a_newer_line(
    sample_copy: Path, tmp_path: Path
) -> None:
    git(sample_copy, "tag", "v2.0.0", "HEAD~1")
    rewrite(
        sample_copy / "pyproject.toml",
        "[tool.upm-release]\n",
        '[tool.upm-release]\nprevious-tag = "v1.1.0"\n',
    )
    result = check_version_bump(ctx_for(sample_copy, tmp_path))
    assert (result.status, result.reason) == ("pass", "1.2.0 > v1.1.0")


def test_a_shallow_clone_without_tags_fails_closed(sample_copy: Path, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", "--no-tags", f"file://{sample_copy}", str(clone))
    result = check_version_bump(ctx_for(clone, tmp_path))
    assert result.status == "fail"
    assert "shallow clone without release tags" in result.reason


def test_outside_git_needs_previous_tag(sample_copy: Path, tmp_path: Path) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(sample_copy, plain, ignore=shutil.ignore_patterns(".git"))
    with pytest.raises(InputError, match="not a git repository"):
        check_version_bump(ctx_for(plain, tmp_path))
    rewrite(
        plain / "pyproject.toml",
        "[tool.upm-release]\n",
        '[tool.upm-release]\nprevious-tag = "v1.1.0"\n',
    )
    assert check_version_bump(ctx_for(plain, tmp_path)).status == "pass"


@pytest.mark.parametrize(
    ("tag", "config", "message"),
    [
        ("release-one", "", "tag 'release-one'"),
        ("v1.2.0", 'previous-tag = "last"', "previous-tag 'last' is not a PEP 440"),
    ],
)
def test_bad_versions_are_input_errors(
    sample_copy: Path, tmp_path: Path, tag: str, config: str, message: str
) -> None:
    rewrite(
        sample_copy / "pyproject.toml", "[tool.upm-release]\n", f"[tool.upm-release]\n{config}\n"
    )
    with pytest.raises(InputError, match=message):
        check_version_bump(ctx_for(sample_copy, tmp_path, tag))
