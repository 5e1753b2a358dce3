"""``upm-ci check-config``: the project as PATH, warnings for what is missing, and a version
that cannot be computed reported after the rest; and the README's configuration defaults are
TOML a user can copy."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from upm_ci.cli import main
from upm_ci.config import Config, reference_markdown

PYPROJECT = """\
[project]
name = "demo-pkg"
version = "1.2.0"

[tool.upm-release]
required-docs = ["README.md"]
plugins = []
"""

#: An in-tree build backend that cannot say its version (as setuptools-scm without tags).
FAILING_BACKEND = """\
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    raise RuntimeError("no version: this checkout has no tags")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("no version: this checkout has no tags")


def get_requires_for_build_wheel(config_settings=None):
    return []
"""


def project(root: Path, pyproject: str = PYPROJECT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(pyproject)
    (root / "README.md").write_text("# demo\n")
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## 1.2.0\n\n- x\n")
    for suite in ("unit", "integration", "security"):
        (root / "tests" / suite).mkdir(parents=True)
    return root


def test_the_project_is_a_path_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p")
    assert main(["check-config", str(root)]) == 0
    out, err = capsys.readouterr()
    assert f"{root / 'pyproject.toml'}: [tool.upm-release] is valid" in out
    assert "project demo-pkg 1.2.0, tag v1.2.0" in out
    assert err == ""


def test_project_option_and_environment_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p")
    assert main(["check-config", "--project", str(root)]) == 0
    assert "demo-pkg 1.2.0" in capsys.readouterr().out
    monkeypatch.setenv("UPM_PROJECT", str(root))
    assert main(["check-config"]) == 0
    assert "demo-pkg 1.2.0" in capsys.readouterr().out
    # PATH is more explicit than the environment
    other = project(tmp_path / "q", PYPROJECT.replace("demo-pkg", "other-pkg"))
    assert main(["check-config", str(other)]) == 0
    assert "other-pkg 1.2.0" in capsys.readouterr().out


def test_two_different_projects_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = project(tmp_path / "a"), project(tmp_path / "b")
    assert main(["check-config", str(a), "--project", str(b)]) == 2
    assert "two projects given" in capsys.readouterr().err


def test_a_path_suite_without_its_directory_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p")
    (root / "tests" / "security").rmdir()
    assert main(["check-config", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "is valid" in out
    assert err.splitlines() == [
        "  warning: test-suites.security: directory tests/security does not exist, so the "
        "suite will run no test and the gate's tests row fails"
    ]


def test_marker_suites_need_no_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path / "p",
        PYPROJECT + '\n[tool.upm-release.test-suites]\nsecurity = "marker:security"\n',
    )
    assert main(["check-config", str(root)]) == 0
    assert capsys.readouterr().err == ""


def test_a_malformed_suite_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(
        tmp_path / "p", PYPROJECT + '\n[tool.upm-release.test-suites]\nunit = "tests/unit"\n'
    )
    assert main(["check-config", str(root)]) == 2
    err = capsys.readouterr().err
    assert "test-suites.unit = 'tests/unit' is not 'path:DIR' or 'marker:NAME'" in err
    assert len(err.strip().splitlines()) == 1


def test_a_version_the_backend_cannot_compute_is_one_line_after_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(
        tmp_path / "p",
        PYPROJECT.replace('version = "1.2.0"', 'dynamic = ["version"]')
        + '\n[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
    )
    (root / "backend.py").write_text(FAILING_BACKEND)
    (root / "tests" / "unit").rmdir()
    assert main(["check-config", str(root)]) == 2
    out, err = capsys.readouterr()
    assert "[tool.upm-release] is valid" in out  # the rest was checked first
    assert "project demo-pkg, version not known (see below)" in out
    lines = err.rstrip().splitlines()
    assert lines[0].startswith("  warning: test-suites.unit: directory tests/unit")
    assert len(lines) == 2 and lines[1].startswith("upm-ci: error: ")
    assert "could not compute the dynamic version" in lines[1]
    assert "Traceback" not in err


# --- the README's configuration reference ----------------------------------------------------
def test_every_default_in_the_reference_is_valid_toml_for_the_real_default() -> None:
    rows = reference_markdown().splitlines()[2:]
    fields = {f.name.replace("_", "-"): f for f in dataclasses.fields(Config)}
    assert len(rows) == len(fields)
    for row in rows:
        m = re.match(r"^\| `(?P<key>[a-z-]+)` \| `(?P<cell>.*?)` \| ", row)
        assert m, row
        field = fields[m["key"]]
        default = (
            field.default_factory()
            if field.default_factory is not dataclasses.MISSING
            else field.default
        )
        parsed = tomllib.loads(f"{m['key']} = {m['cell']}\n")
        assert parsed[m["key"]] == default, m["key"]
        assert "|" not in m["cell"]  # would end the table cell


def test_the_entrypoint_block_default_reads_back_exactly() -> None:
    row = next(r for r in reference_markdown().splitlines() if r.startswith("| `entrypoint-block`"))
    cell = row.split(" | ")[1].strip("`")
    assert cell.startswith('"if __name__ == \\"__main__\\":\\n')


# --- every error at once, a suggestion for a typo, no table ----------------------------------
def test_two_errors_are_both_reported_with_the_nearest_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", PYPROJECT + 'tag-prefx = "v"\ncheck-reproducible = "yes"\n')
    assert main(["check-config", str(root)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert "unknown key 'tag-prefx' (did you mean 'tag-prefix'?)" in lines[0]
    assert "check-reproducible: expected true or false, got 'yes'" in lines[1]
    assert "is valid" not in out and "Traceback" not in err
    # a phase refuses the same table in one line that says there is more
    assert main(["build", "--project", str(root)]) == 2
    err = capsys.readouterr().err
    assert "tag-prefx" in err and "(and 1 more: upm-ci check-config lists them)" in err


def test_a_key_far_from_every_valid_one_lists_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path / "p", PYPROJECT + 'zzzz = "v"\n')
    assert main(["check-config", str(root)]) == 2
    assert "valid keys: audit-allow, " in capsys.readouterr().err


def test_no_table_says_defaults_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path / "p", '[project]\nname = "demo-pkg"\nversion = "1.2.0"\n')
    assert main(["check-config", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{root / 'pyproject.toml'}: no [tool.upm-release] table: defaults apply" in out
    assert "is valid" not in out


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    root = project(tmp_path / "p", PYPROJECT + 'tag-prefx = "v"\nosv-url = "ftp://x"\n')
    assert main(["check-config", str(root), "--format", "json"]) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["schema"] == "upm-release/check-config/v1" and data["valid"] is False
    assert len(data["errors"]) == 2 and "did you mean 'tag-prefix'?" in data["errors"][0]
    assert "osv-url" in data["errors"][1]
    assert err == ""
    good = project(tmp_path / "q")
    assert main(["check-config", str(good), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is True and data["table"] is True
    assert (data["project"], data["version"], data["tag"]) == ("demo-pkg", "1.2.0", "v1.2.0")
