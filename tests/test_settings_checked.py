"""Every path, repository, tag and number setting is checked when a command starts, by the
phases and by ``check-config`` alike, before anything is written (issue 20, issue 25).

Each bad value is tried through ``check-config`` and through ``build``: exit 2, one line on
stderr naming the setting, and not one file written anywhere (the project, the manifest's
directory and the path the setting points at are compared before and after).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from upm_ci.cli import main


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` (files with their bytes; directories and links as None)."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return out


def _configure(project: Path, lines: str) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.upm-release]\n" in text
    pyproject.write_text(text.replace("[tool.upm-release]\n", f"[tool.upm-release]\n{lines}\n", 1))


def _one_error_line(err: str, *names: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("upm-ci: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def _outside(tmp_path: Path) -> Path:
    return tmp_path / "elsewhere"


#: (key, TOML value; OUTSIDE is replaced by a path outside the project, not yet existing)
BAD_SETTINGS = [
    ("dist-dir", json.dumps("OUTSIDE")),
    ("dist-dir", json.dumps("../../elsewhere")),
    ("dist-dir", json.dumps("dist\nx")),
    ("dist-dir", json.dumps("dist\u0000x")),
    ("dist-dir", json.dumps("")),
    ("changelog", json.dumps("OUTSIDE/CHANGELOG.md")),
    ("changelog", json.dumps("../CHANGELOG.md")),
    ("sign-files", json.dumps(["/proc/self/environ"])),
    ("sign-files", json.dumps(["unipkg.yaml", "../../etc/passwd"])),
    ("dockerfile", json.dumps("../Dockerfile")),
    ("trust-approvals", json.dumps("OUTSIDE/approvals.json")),
    ("version-module", json.dumps("../version.py")),
    ("junit-xml", json.dumps("OUTSIDE/junit.xml")),
    ("plugins", json.dumps(["/etc/*.py"])),
    ("plugins", json.dumps(["../*/plugins/*.py"])),
    ("release-workflow", json.dumps("../../.github/workflows/release.yml")),
    ("test-suites", '{ unit = "path:OUTSIDE" }'),
    ("test-suites", '{ unit = "path:../tests" }'),
    ("test-suites", json.dumps({"unit": "marker:unit\nx"}).replace('":', '" =')),
    ("repository", json.dumps("owner/name/extra")),
    ("repository", json.dumps("owner")),
    ("repository", json.dumps("owner/name\n")),
    ("repository", json.dumps("-owner/name")),
    ("tag-prefix", json.dumps("-v")),
    ("tag-prefix", json.dumps("v\n")),
    ("previous-tag", json.dumps("--upload-pack=touch x")),
    ("previous-tag", json.dumps("v1.1.0\u0000")),
]


@pytest.mark.parametrize("command", ["check-config", "build"])
@pytest.mark.parametrize(("key", "value"), BAD_SETTINGS)
def test_a_bad_setting_is_exit_2_naming_it_and_nothing_is_written(
    sample_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    key: str,
    value: str,
) -> None:
    outside = _outside(tmp_path)
    value = value.replace("OUTSIDE", outside.as_posix())
    _configure(sample_copy, f"{key} = {value}")
    before = _snapshot(tmp_path)
    out_dir = tmp_path / "out"
    args = (
        ["check-config", str(sample_copy)]
        if command == "check-config"
        else ["build", "--project", str(sample_copy), "--manifest", str(out_dir / "m.json")]
    )
    assert main(args) == 2
    _one_error_line(capsys.readouterr().err, key)
    assert _snapshot(tmp_path) == before
    assert not outside.exists() and not out_dir.exists()
    assert not (sample_copy / "dist").exists()


@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("sign-files", "/proc/self/environ"),
        ("changelog", "OUTSIDE"),
        ("trust-approvals", "OUTSIDE"),
        ("dist-dir", "OUTSIDE"),
    ],
)
def test_a_setting_that_resolves_outside_through_a_symlink_is_exit_2(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, target: str
) -> None:
    outside = _outside(tmp_path)
    outside.mkdir()
    (outside / "secret").write_text("not the project's\n")
    link = sample_copy / "link"
    link.symlink_to(target.replace("OUTSIDE", str(outside / "secret")))
    value = json.dumps(["link"]) if key == "sign-files" else json.dumps("link")
    _configure(sample_copy, f"{key} = {value}")
    before = _snapshot(tmp_path)
    assert main(["check-config", str(sample_copy)]) == 2
    line = _one_error_line(capsys.readouterr().err, key)
    assert "outside the project" in line
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "given",
    [
        "OUTSIDE",  # absolute, outside the manifest's directory
        "../../elsewhere",  # relative to the working directory, outside it too
        "dist\nx",
        "dist\u0000x",
    ],
)
def test_dist_dir_option_is_checked_before_anything_is_written(
    sample_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given: str,
) -> None:
    outside = _outside(tmp_path)
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    before = _snapshot(tmp_path)
    given = given.replace("OUTSIDE", str(outside))
    args = ["build", "--project", str(sample_copy), "--manifest", str(work / "m.json")]
    assert main([*args, "--skip-image", "--dist-dir", given]) == 2
    _one_error_line(capsys.readouterr().err, "--dist-dir")
    assert _snapshot(tmp_path) == before
    assert not outside.exists() and not (work / "m.json").exists()


def test_dist_dir_from_the_environment_is_checked_the_same_way(
    sample_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outside = _outside(tmp_path)
    manifest = tmp_path / "release" / "m.json"
    manifest.parent.mkdir()
    monkeypatch.setenv("UPM_DIST_DIR", str(outside))
    before = _snapshot(tmp_path)
    for command in ("build", "sbom", "sign"):
        assert main([command, "--project", str(sample_copy), "--manifest", str(manifest)]) == 2
        _one_error_line(capsys.readouterr().err, "UPM_DIST_DIR", "outside the manifest's")
    assert _snapshot(tmp_path) == before


def test_the_project_dist_dir_outside_the_manifest_directory_is_refused_at_start(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default dist-dir (the project's dist/) with a manifest elsewhere: recorded paths
    would leave the manifest's directory, so nothing is built."""
    manifest = tmp_path / "release" / "m.json"
    manifest.parent.mkdir()
    before = _snapshot(tmp_path)
    assert main(["build", "--project", str(sample_copy), "--manifest", str(manifest)]) == 2
    _one_error_line(capsys.readouterr().err, "dist-dir", "outside the manifest's")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("UPM_RETRY_ATTEMPTS", "nan"),
        ("UPM_RETRY_ATTEMPTS", "three"),
        ("UPM_RETRY_BASE_DELAY", "inf"),
        ("UPM_RETRY_MAX_DELAY", "-1"),
        ("UPM_GITHUB_FAULT_RATE", "nan"),
        ("UPM_REHEARSAL_FAULT_RATE", "nan"),
        ("UPM_REQUEST_TIMEOUT", "nan"),
        ("UPM_PROCESSES", "nan"),
        ("UPM_MAX_DOWNLOAD_BYTES", "1e3"),
    ],
)
def test_a_non_number_in_a_numeric_setting_is_exit_2_at_start_used_or_not(
    sample_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    """check-config never retries and rehearse's fault rates are read only by rehearse; a bad
    number is still bad input, for every command."""
    monkeypatch.setenv(name, value)
    before = _snapshot(tmp_path)
    command = {
        "UPM_GITHUB_FAULT_RATE": ["rehearse", str(sample_copy)],
        "UPM_REHEARSAL_FAULT_RATE": ["rehearse", str(sample_copy)],
        "UPM_REQUEST_TIMEOUT": ["verify", str(tmp_path)],
        "UPM_PROCESSES": ["verify", str(tmp_path)],
        "UPM_MAX_DOWNLOAD_BYTES": ["verify", str(tmp_path)],
    }.get(name, ["check-config", str(sample_copy)])
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert (
        name.removeprefix("UPM_").removeprefix("REHEARSAL_").lower().replace("_", "-")
        in (err.lower())
        or name in err
    ), err
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "command",
    [
        ["gate"],
        ["publish", "--dry-run"],
        ["verify", "--ref", "v1.2.0"],
        ["trust", "x.whl"],
    ],
)
@pytest.mark.parametrize("repository", ["a/b/c", "owner", "owner/", "/name", "o/n\n", "-o/n"])
def test_repository_that_is_not_exactly_owner_name_is_exit_2(
    sample_copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    repository: str,
) -> None:
    before = _snapshot(tmp_path)
    args = [*command, "--project", str(sample_copy), "--repository", repository]
    assert main(args) == 2
    _one_error_line(capsys.readouterr().err, "--repository")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("tag", ["-v1.2.0", "v1.2.0\n", "v1.2.0\u0000"])
def test_a_tag_option_that_git_would_misread_is_exit_2(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tag: str
) -> None:
    before = _snapshot(tmp_path)
    args = ["build", "--project", str(sample_copy), "--manifest", str(tmp_path / "m.json")]
    assert main([*args, "--tag", tag]) == 2
    _one_error_line(capsys.readouterr().err, "--tag")
    assert _snapshot(tmp_path) == before


def test_good_settings_still_pass_check_config(
    sample_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule refuses only what leaves the project or is no one word: these all pass."""
    _configure(
        sample_copy,
        "\n".join(
            [
                'dist-dir = "build-output/dist"',
                'repository = "octo-org/octo.repo_1"',
                'tag-prefix = "release-"',
                'previous-tag = "release-1.1.0"',
                'sign-files = ["unipkg.yaml", "config/.unipkg.lock"]',
                'plugins = ["src/*/plugins/**/*.py"]',
                'test-suites = { unit = "path:tests/unit", slow = "marker:slow" }',
            ]
        ),
    )
    assert main(["check-config", str(sample_copy)]) == 0, capsys.readouterr().err
