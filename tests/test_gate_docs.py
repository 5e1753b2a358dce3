"""Check ``docs``: required documents, the changelog section, relative links."""

from __future__ import annotations

from pathlib import Path

import pytest

from upm_ci.errors import InputError
from upm_ci.gate.docs import check_docs
from upm_ci.gate.model import GateContext
from upm_ci.project import load_project


def ctx_for(root: Path, tmp_path: Path) -> GateContext:
    return GateContext(project=load_project(root), tag="v1.2.0", work_dir=tmp_path / "work")


def test_the_sample_docs_pass(sample_copy: Path, tmp_path: Path) -> None:
    result = check_docs(ctx_for(sample_copy, tmp_path))
    assert (result.status, result.reason) == ("pass", "8 documents, changelog 1.2.0")


def test_a_missing_document_fails(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / "LOGGING.md").unlink()
    result = check_docs(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    assert result.reason.startswith("LOGGING.md: required document is missing")
    assert (result.findings[0].file, result.findings[0].line) == ("LOGGING.md", None)


def test_a_whitespace_only_document_is_empty(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / "API.md").write_text("  \n\t\n")
    (finding,) = check_docs(ctx_for(sample_copy, tmp_path)).findings
    assert (finding.message, finding.file, finding.line) == (
        "required document is empty",
        "API.md",
        1,
    )


def test_a_broken_link_fails_with_file_and_line(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / "SECURITY.md").unlink()
    result = check_docs(ctx_for(sample_copy, tmp_path))
    broken = [f for f in result.findings if f.message.startswith("broken link")]
    assert broken, result.findings
    for finding in broken:
        assert finding.message == "broken link to SECURITY.md (no such file)"
        assert finding.file is not None and finding.line is not None
        line = (sample_copy / finding.file).read_text().splitlines()[finding.line - 1]
        assert "(SECURITY.md" in line


def test_links_with_anchors_code_and_urls(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / "API.md").write_text(
        "# API\n"
        "[ok](PLUGINS.md#sandbox-tests) [web](https://example.com/X.md) [top](#api)\n"
        "`[not a link](NOPE.md)`\n"
        "```\n[in a fence](GONE.md)\n```\n"
        "[bad](MISSING.md#x)\n"
    )
    (finding,) = check_docs(ctx_for(sample_copy, tmp_path)).findings
    assert (finding.message, finding.file, finding.line) == (
        "broken link to MISSING.md#x (no such file)",
        "API.md",
        7,
    )


def test_no_changelog_section_for_this_version_fails(sample_copy: Path, tmp_path: Path) -> None:
    changelog = sample_copy / "CHANGELOG.md"
    changelog.write_text(changelog.read_text().replace("## [1.2.0] - 2026-11-26", "## [1.1.9]"))
    (finding,) = check_docs(ctx_for(sample_copy, tmp_path)).findings
    assert (finding.message, finding.file) == ("no section for version 1.2.0", "CHANGELOG.md")


def test_an_empty_changelog_section_fails_at_its_heading(sample_copy: Path, tmp_path: Path) -> None:
    changelog = sample_copy / "CHANGELOG.md"
    text = changelog.read_text()
    start = text.index("## [1.2.0]")
    end = text.index("## [1.1.0]")
    changelog.write_text(text[:start] + "## [1.2.0] - 2026-11-26\n\n" + text[end:])
    (finding,) = check_docs(ctx_for(sample_copy, tmp_path)).findings
    assert finding.message == "section 1.2.0 is empty"
    assert changelog.read_text().splitlines()[finding.line - 1].startswith("## [1.2.0]")  # type: ignore[operator]


def test_an_unreadable_version_heading_is_a_finding_at_its_line(
    sample_copy: Path, tmp_path: Path
) -> None:
    # It used to end the gate with exit 2; now it is one finding of the docs check.
    changelog = sample_copy / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## [1.1.0] - 2026-10-01", "## 1.1.0 of Oct")
    )
    result = check_docs(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    (finding,) = result.findings
    assert finding.file == "CHANGELOG.md"
    assert finding.message.startswith("cannot read a version in heading '1.1.0 of Oct'")
    line = changelog.read_text().splitlines()[finding.line - 1]  # type: ignore[operator]
    assert line == "## 1.1.0 of Oct"
    assert result.reason.startswith("CHANGELOG.md: cannot read a version in heading")


def test_a_changelog_without_any_version_is_still_bad_input(
    sample_copy: Path, tmp_path: Path
) -> None:
    (sample_copy / "CHANGELOG.md").write_text("# Changelog\n\n## Next\n\n- things\n")
    with pytest.raises(InputError, match=r"CHANGELOG.md:3: cannot read version heading 'Next'"):
        check_docs(ctx_for(sample_copy, tmp_path))


def test_required_docs_are_configurable(sample_copy: Path, tmp_path: Path) -> None:
    pyproject = sample_copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.upm-release]\n",
            '[tool.upm-release]\nrequired-docs = ["README.md", "docs/X.md"]\n',
        )
    )
    result = check_docs(ctx_for(sample_copy, tmp_path))
    assert [f.file for f in result.findings] == ["docs/X.md"]


OLD_HISTORY = (
    "\n## [1.0.0] - 2026-09-01\n\n## Fixed\n\n- a stray heading of long ago\n\n"
    "## [1.0.0] - 2026-09-01\n\n- written twice\n"
)


def test_problems_in_old_sections_warn_and_do_not_block(sample_copy: Path, tmp_path: Path) -> None:
    changelog = sample_copy / "CHANGELOG.md"
    changelog.write_text(changelog.read_text() + OLD_HISTORY)
    result = check_docs(ctx_for(sample_copy, tmp_path))
    assert result.status == "warn" and not result.blocks
    assert [f.message.split(":")[0] for f in result.findings] == [
        "in an older section, does not block",
        "in an older section, does not block",
    ]
    assert all(f.file == "CHANGELOG.md" and f.line for f in result.findings)


def test_the_releases_version_written_twice_still_blocks(sample_copy: Path, tmp_path: Path) -> None:
    changelog = sample_copy / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text() + OLD_HISTORY + "\n## [1.2.0] - 2026-11-26\n\n- once more\n"
    )
    result = check_docs(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail" and result.blocks
    assert result.reason.startswith("CHANGELOG.md: a second section for 1.2.0 (the first is at")
    # The old history is still reported, as what it is.
    assert sum(f.message.startswith("in an older section") for f in result.findings) == 2
