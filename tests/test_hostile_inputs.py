"""Every input is hostile: bad input is exit 2 with one line, and nothing on disk changes.

Each case runs the real CLI (``main``) on a real project and asserts the exit code, that the
message is one line without a traceback, and that the files are as they were before (or, for
build, that nothing but build output was ever removed). These are the regression tests of the
adversarial review: a project that signs the job's secrets through a symlink, a build that
empties a directory it did not make, a pyproject that is a directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_sign import cli as sign_cli
from tests.test_sign import make_release, snapshot
from upm_ci.cli import main
from upm_ci.errors import InputError
from upm_ci.layout import check_plain_name, confined_file, plain_name_problem
from upm_ci.standins.oidc import mint_github_token
from upm_ci.standins.sigstore_server import SigstoreStandIn


def one_line_error(err: str) -> str:
    """The error line of a failed run; asserts it is one line without a traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("upm-ci: error")]
    assert len(lines) == 1, err
    return lines[0]


# --- sign-files and plugins: confined to the project -----------------------------------------

OUTSIDE = "outside-secret.txt"


def _hostile_sign_files(release: Path, case: str) -> str:
    """Arrange ``case`` in the project; return the sign-files entry that names it."""
    outside = release.parent / OUTSIDE
    outside.write_text("SENTINEL-outside-the-project\n")
    if case == "absolute":
        return str(outside)
    if case == "dotdot":
        return f"../{OUTSIDE}"
    if case == "dotdot-inside":
        return f"dist/../../{OUTSIDE}"
    if case == "symlink-environ":
        (release / "unipkg.yaml").unlink()
        (release / "unipkg.yaml").symlink_to("/proc/self/environ")
        return "unipkg.yaml"
    if case == "symlink-outside":
        (release / "unipkg.yaml").unlink()
        (release / "unipkg.yaml").symlink_to(outside)
        return "unipkg.yaml"
    if case == "symlink-dir-outside":
        (release / "conf").symlink_to(release.parent)
        return f"conf/{OUTSIDE}"
    if case == "directory":
        (release / "confdir").mkdir()
        return "confdir"
    if case == "control-char":
        return "unipkg.yaml\n::error::injected"
    if case == "windows-drive":
        return "C:\\Windows\\win.ini"
    if case == "leading-dash-name":
        (release / "-rf").write_text("x\n")
        return "-rf"
    raise AssertionError(case)


SIGN_CASES = [
    "absolute",
    "dotdot",
    "dotdot-inside",
    "symlink-environ",
    "symlink-outside",
    "symlink-dir-outside",
    "directory",
    "control-char",
    "windows-drive",
    "leading-dash-name",
]


@pytest.mark.parametrize("case", SIGN_CASES)
def test_sign_files_outside_the_project_are_refused_before_anything_is_signed(
    tmp_path: Path,
    sigstore_standin: SigstoreStandIn,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    release = make_release(tmp_path)
    entry = _hostile_sign_files(release, case)
    pyproject = release / "pyproject.toml"
    escaped = entry.replace("\\", "\\\\").replace("\n", "\\n")
    pyproject.write_text(pyproject.read_text() + f'sign-files = ["{escaped}"]\n')
    before = snapshot(release)
    code = sign_cli(release, sigstore_standin, "--identity-token", mint_github_token())
    out, err = capsys.readouterr()
    assert code == 2, err
    line = one_line_error(err)
    assert "sign-files" in line
    assert "SENTINEL" not in out + err
    assert snapshot(release) == before, "nothing signed, nothing written"
    assert not list((release / "dist").glob("*.sigstore.json"))


def test_a_plugin_symlinked_outside_is_refused_with_sign_plugins(
    tmp_path: Path, sigstore_standin: SigstoreStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    release = make_release(tmp_path)
    plugins = release / "src" / "upm_sample" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "evil.py").symlink_to("/proc/self/environ")
    pyproject = release / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "sign-plugins = true\n")
    before = snapshot(release)
    code = sign_cli(release, sigstore_standin, "--identity-token", mint_github_token())
    err = capsys.readouterr().err
    assert code == 2
    assert "plugins" in one_line_error(err) and "outside the project" in err
    assert snapshot(release) == before


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        (".", "empty"),
        ("..", "empty"),
        ("a/b", "separator"),
        ("a\\b", "separator"),
        ("evil\n::error::x", "control"),
        ("nul\x00byte", "control"),
        ("tab\tname", "control"),
        ("\x1b[31mred", "control"),
        (".hidden", "dot"),
        ("-rf", "dash"),
        ("x" * 256, "longer"),
        ("é" * 128, "longer"),
    ],
)
def test_release_file_names_must_be_plain(name: str, problem: str) -> None:
    found = plain_name_problem(name)
    assert found is not None and problem in found
    with pytest.raises(InputError) as raised:
        check_plain_name(name, where="test")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "name", ["upm_sample-1.2.0-py3-none-any.whl", "SHA256SUMS", "a+b~c_1.tar.gz", "x" * 255]
)
def test_plain_names_pass(name: str) -> None:
    assert check_plain_name(name, where="test") == name


def test_confined_file_allows_symlinks_that_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_text("x\n")
    (tmp_path / "link.yaml").symlink_to("real.yaml")
    assert confined_file(tmp_path, "link.yaml", where="t") == tmp_path / "link.yaml"
    assert confined_file(tmp_path, "missing.yaml", where="t") is None


# --- build: only build output is ever removed ------------------------------------------------


def _build(project: Path, dist: Path) -> int:
    return main(
        [
            "build",
            "--project",
            str(project),
            "--dist-dir",
            str(dist),
            "--manifest",
            str(project.parent / "m.json"),
        ]
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize(
    "where",
    ["project", ".git", ".git/objects", "parent", "src", "dist-with-notes"],
)
def test_build_refuses_a_dist_dir_it_would_have_to_empty_of_other_things(
    sample_copy: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    dist = {
        "project": sample_copy,
        ".git": sample_copy / ".git",
        ".git/objects": sample_copy / ".git" / "objects",
        "parent": sample_copy.parent,
        "src": sample_copy / "src",
        "dist-with-notes": sample_copy / "dist",
    }[where]
    if where == "dist-with-notes":
        dist.mkdir()
        (dist / "upm_sample-1.1.0.tar.gz").write_bytes(b"old build output")
        (dist / "NOTES.txt").write_text("my own notes, not build output\n")
    before = _tree(sample_copy.parent)
    assert _build(sample_copy, dist) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "dist directory" in line
    assert _tree(sample_copy.parent) == before


# --- the project's pyproject.toml ------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["directory", "not-utf8", "nul-bytes", "empty", "huge-nesting", "project-not-table"]
)
@pytest.mark.parametrize("phase", ["gate", "build", "check-config"])
def test_a_hostile_pyproject_is_one_line_of_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, phase: str
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    pyproject = project / "pyproject.toml"
    if case == "directory":
        pyproject.mkdir()
    elif case == "not-utf8":
        pyproject.write_bytes(b'[project]\nname = "caf\xe9"\nversion = "1.0"\n')
    elif case == "nul-bytes":
        pyproject.write_bytes(b'[project]\nname = "a\x00"\n')
    elif case == "empty":
        pyproject.write_text("")
    elif case == "huge-nesting":
        pyproject.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    elif case == "project-not-table":
        pyproject.write_text('project = "x"\n')
    before = sorted(os.listdir(project))
    args = [phase, "--project", str(project)]
    if phase != "check-config":
        args += ["--manifest", str(tmp_path / "m.json")]
    assert main(args) == 2
    one_line_error(capsys.readouterr().err)
    assert sorted(os.listdir(project)) == before
    assert not (tmp_path / "m.json").exists()


# --- what reaches the log: no workflow commands, no credentials ------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "asset\n::error::pwned",
        "::add-mask::x",
        "  ::stop-commands::token",
        "a\r\n::set-output name=x::y",
        "ok\n\t::warning file=a::b",
    ],
)
def test_data_never_becomes_a_workflow_command(
    data: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from upm_ci.cli_common import echo

    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    echo(f"downloaded {data}")
    echo(f"downloaded {data}", err=True)
    out, err = capsys.readouterr()
    for line in (out + err).splitlines():
        assert not line.lstrip().startswith("::"), line


@pytest.mark.parametrize(
    "url",
    [
        "https://__token__:pypi-SENTINEL0123@upload.example/legacy/",
        "http://SENTINEL0123@127.0.0.1:9/v1/query",
        "https://user:SENTINEL0123@ghe.example/api/v3",
    ],
)
def test_credentials_in_urls_never_reach_output_or_files(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from upm_ci import gha
    from upm_ci.cli_common import echo
    from upm_ci.manifest import write_json_atomic

    echo(f"uploading to {url}")
    write_json_atomic(tmp_path / "r.json", {"url": url})
    assert "SENTINEL" not in capsys.readouterr().out
    assert "SENTINEL" not in (tmp_path / "r.json").read_text()
    assert "SENTINEL" not in gha.safe_text(url)


def test_an_unreachable_osv_url_with_credentials_is_not_printed(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample_copy / "upm-provenance.json").unlink()  # that row fails without asking an index
    report = tmp_path / "gate.json"
    code = main(
        [
            "gate",
            "--project",
            str(sample_copy),
            "--manifest",
            str(tmp_path / "m.json"),
            "--osv-url",
            "http://user:SENTINEL0123@127.0.0.1:9/v1/query",
            "--report-json",
            str(report),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "SENTINEL" not in out + err + report.read_text()


@pytest.mark.parametrize("secret", ["null", "true", 'pa"ss', "}{,:", "1234"])
def test_a_secret_that_looks_like_json_never_corrupts_a_report(
    secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from upm_ci import gha
    from upm_ci.manifest import write_json_atomic

    monkeypatch.setattr(gha, "_secrets", set())  # this test's secret only
    gha.remember_secret(secret)
    write_json_atomic(tmp_path / "r.json", {"a": None, "b": True, "c": f"x{secret}y", "d": [1]})
    data = json.loads((tmp_path / "r.json").read_text())
    assert data == {"a": None, "b": True, "c": "x***y", "d": [1]}


@pytest.mark.parametrize("approvals", ["", ".", "/proc/self"])
def test_trust_approvals_that_are_not_a_file_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], approvals: str
) -> None:
    """Found by the fuzz suite: ``--approvals ''`` was an internal IsADirectoryError."""
    (tmp_path / "f.whl").write_bytes(b"x")
    code = main(
        ["trust", "--project", str(tmp_path), str(tmp_path / "f.whl"), "--approvals", approvals]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert "approvals" in err


BAD_URLS = [
    "notaurl",
    "ftp://host/x",
    "http://",
    "http://host:99999/",
    "http://a b/",
    "https://h/\n::x",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize(
    "argv",
    [
        ["gate", "--osv-url"],
        ["sbom", "--osv-url"],
        ["gate", "--github-api-url"],
        ["publish", "--pypi-upload-url"],
        ["publish", "--pypi-index-url"],
        ["verify", "--github-api-url"],
    ],
)
def test_a_url_option_that_is_not_an_http_url_is_exit_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], url: str
) -> None:
    code = main([*argv, url, "--manifest", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "URL" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_url_in_the_config_that_is_not_an_http_url_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    escaped = url.replace("\n", "\\n")
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nversion = "1.0"\n\n[tool.upm-release]\nosv-url = "{escaped}"\n'
    )
    assert main(["check-config", str(tmp_path)]) == 2
    assert "osv-url" in one_line_error(capsys.readouterr().err)
