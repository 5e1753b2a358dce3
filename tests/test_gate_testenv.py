"""The project's own test environment, markers without a conftest, dynamic versions, no plugins.

The slow tests create real venvs with pip (from the package index this machine reaches) and
run the project's real tests in them; nothing of upm-ci's own venv is lent to the project.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import git
from upm_ci.child_env import allowed, project_env
from upm_ci.errors import InputError
from upm_ci.gate.checklist import run_gate
from upm_ci.gate.model import GateContext
from upm_ci.gate.plugins import check_plugin_entrypoint, check_plugin_sandbox
from upm_ci.gate.testenv import dependency_group, install_arguments
from upm_ci.gate.tests import load_test_results
from upm_ci.project import load_project

SENTINEL = "ghs_SENTINEL0123456789abcdefSENTINEL"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def pyproject(extra: str = "", *, version: str = 'version = "0.3.0"') -> str:
    return (
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "minipkg"\n{version}\nrequires-python = ">=3.10"\n{extra}\n'
    )


# --- which dependencies the test venv gets ---------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected", "source"),
    [
        (
            '[project.optional-dependencies]\ntest = ["pytest>=8", "six"]',
            [".[test]"],
            "extra",
        ),
        ('[project.optional-dependencies]\ntests = ["six"]', [".[tests]", "pytest"], "extra"),
        (
            '[dependency-groups]\nlint = ["ruff"]\ntest = ["pytest", {include-group = "lint"}]',
            [".", "pytest", "ruff"],
            "dependency group",
        ),
        ("", [".", "pytest"], "no test extra"),
        ('[tool.upm-release]\ntest-install = ". -r req-test.txt"', [".", "-r", "req-test.txt"], ""),
    ],
)
def test_install_arguments_follow_what_the_project_declares(
    tmp_path: Path, extra: str, expected: list[str], source: str
) -> None:
    write(tmp_path, {"pyproject.toml": pyproject(extra)})
    args, where = install_arguments(load_project(tmp_path))
    assert args == expected
    assert source in where


def test_dependency_group_cycles_and_unknown_includes_are_bad_input(tmp_path: Path) -> None:
    groups = {"test": [{"include-group": "a"}], "a": [{"include-group": "test"}]}
    with pytest.raises(InputError, match="includes itself"):
        dependency_group(groups, "test", tmp_path)
    with pytest.raises(InputError, match="no group 'missing'"):
        dependency_group({"test": [{"include-group": "missing"}]}, "test", tmp_path)


def test_test_install_that_is_not_shell_words_is_exit_2(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": pyproject('[tool.upm-release]\ntest-install = "\'."')})
    with pytest.raises(InputError, match="test-install"):
        install_arguments(load_project(tmp_path))


# --- the environment the project's code sees -------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "GITHUB_TOKEN",
        "UPM_GITHUB_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_RUNTIME_TOKEN",
        "UPM_PYPI_TOKEN",
        "UPM_GPG_PASSPHRASE",
        "PIP_PASSWORD",
        "TWINE_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "UV_PUBLISH_TOKEN",
        "HATCH_INDEX_AUTH",
        "SOME_API_KEY",
    ],
)
def test_credentials_never_reach_the_project(name: str) -> None:
    assert not allowed(name)
    assert name not in project_env(base={name: SENTINEL, "PATH": "/bin"})


def test_what_a_shell_and_pip_need_does_reach_it() -> None:
    base = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "PIP_INDEX_URL": "x", "CI": "true"}
    assert project_env({"EXTRA": "1"}, base=base) == {**base, "EXTRA": "1"}


# --- the whole gate in a new venv: extras, markers, secrets ----------------------------------

MARKED_PROJECT = {
    "pyproject.toml": pyproject(
        '[project.optional-dependencies]\ntest = ["pytest>=8", "six"]\n\n'
        '[tool.pytest.ini_options]\naddopts = "--strict-markers"\n'
        'markers = ["security: security tests"]\n\n'
        "[tool.upm-release]\n"
        'test-suites = { unit = "path:tests", security = "marker:security" }\n'
        'plugins = ["src/minipkg/plugins/*.py"]\n'
        "entrypoint-block = '''\nif __name__ == \"__main__\":\n    main()\n'''\n"
        'required-docs = ["CHANGELOG.md"]\n'
    ),
    "CHANGELOG.md": "# Changelog\n\n## [0.3.0] - 2026-11-01\n\n- first\n",
    "src/minipkg/__init__.py": '"""minipkg."""\n\n__version__ = "0.3.0"\n',
    "src/minipkg/plugins/__init__.py": "",
    "src/minipkg/plugins/echo.py": """
        def main() -> None:
            print("echo")


        if __name__ == "__main__":
            main()
        """,
    "tests/test_pkg.py": """
        import os
        import subprocess
        import sys

        import six  # only in the test extra
        import minipkg
        import pytest


        def test_version():
            assert minipkg.__version__ == "0.3.0"
            assert "site-packages" in minipkg.__file__  # installed from source, not src/


        def test_prints_its_environment():
            print(dict(os.environ))


        @pytest.mark.security
        def test_isolation():
            assert six


        @pytest.mark.sandbox("echo")
        def test_echo_runs_in_a_subprocess():
            out = subprocess.run(
                [sys.executable, "-m", "minipkg.plugins.echo"], capture_output=True, text=True
            )
            assert out.stdout == "echo\\n"
        """,
}


@pytest.mark.slow
def test_gate_makes_the_test_venv_and_sees_markers_without_a_conftest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(tmp_path / "minipkg", MARKED_PROJECT)
    monkeypatch.delenv("UPM_TEST_PYTHON")
    for name in ("GITHUB_TOKEN", "UPM_GITHUB_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        monkeypatch.setenv(name, SENTINEL)
    ctx = GateContext(project=load_project(root), tag="v0.3.0", work_dir=tmp_path / "work")
    run = load_test_results(ctx)
    assert run.command is not None and str(tmp_path / "work" / "test-venv") in run.command[0]
    assert {case.name: case.outcome for case in run.cases} == {
        "test_version": "passed",
        "test_prints_its_environment": "passed",
        "test_isolation": "passed",
        "test_echo_runs_in_a_subprocess": "passed",
    }
    by_name = {case.name: case for case in run.cases}
    assert "security" in by_name["test_isolation"].property_values("marker")
    assert by_name["test_echo_runs_in_a_subprocess"].property_values("sandbox") == ["echo"]
    assert SENTINEL not in (tmp_path / "work" / "junit.xml").read_text()
    assert check_plugin_sandbox(ctx, run).status == "pass"


@pytest.mark.slow
def test_tests_needing_a_missing_extra_fail_the_tests_row_not_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = dict(MARKED_PROJECT)
    files["pyproject.toml"] = files["pyproject.toml"].replace(', "six"', "")
    root = write(tmp_path / "minipkg", files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    monkeypatch.delenv("UPM_TEST_PYTHON")
    report = run_gate(
        load_project(root),
        tag="v0.3.0",
        junit_xml=None,
        github=None,
        osv_url="http://127.0.0.1:9/v1/query",
        work_dir=tmp_path / "work",
    )
    tests = next(check for check in report.checks if check.id == "tests")
    assert tests.status == "fail"
    assert "No module named 'six'" in "\n".join(f.message for f in tests.findings)


def test_an_uninstallable_project_fails_the_tests_row_with_pips_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = dict(MARKED_PROJECT)
    files["pyproject.toml"] = files["pyproject.toml"].replace(
        '"six"', '"no-such-package-upm-ci-test==0.0.0"'
    )
    root = write(tmp_path / "minipkg", files)
    monkeypatch.delenv("UPM_TEST_PYTHON")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # fails fast, offline
    run = load_test_results(
        GateContext(project=load_project(root), tag="v0.3.0", work_dir=tmp_path / "work")
    )
    assert run.cases == []
    assert run.problems and "could not install the test environment" in run.problems[0]
    assert "pip install" in run.problems[0]


# --- plugins = [] ------------------------------------------------------------------------------


def test_plugins_empty_list_is_not_applicable_and_says_so(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": pyproject("[tool.upm-release]\nplugins = []")})
    ctx = GateContext(project=load_project(tmp_path), tag="v0.3.0", work_dir=tmp_path / "w")
    for result in (check_plugin_entrypoint(ctx), check_plugin_sandbox(ctx)):
        assert result.status == "n/a"
        assert "no plugins" in result.reason
        assert not result.blocks


def test_configured_globs_that_match_nothing_still_fail(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": pyproject('[tool.upm-release]\nplugins = ["plug/*.py"]')})
    ctx = GateContext(project=load_project(tmp_path), tag="v0.3.0", work_dir=tmp_path / "w")
    assert check_plugin_entrypoint(ctx).status == "fail"


# --- the version the build will produce ----------------------------------------------------------


def test_static_version_needs_no_backend(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": pyproject()})
    project = load_project(tmp_path)
    assert (project.version, project.version_is_dynamic) == ("0.3.0", False)


def test_a_project_without_any_version_is_bad_input(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": pyproject(version="")})
    with pytest.raises(InputError, match=r"\[project\] has no version"):
        load_project(tmp_path)


@pytest.mark.slow
def test_hatch_vcs_version_comes_from_the_tag(tmp_path: Path) -> None:
    root = write(
        tmp_path / "vcs",
        {
            "pyproject.toml": (
                '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n'
                'build-backend = "hatchling.build"\n\n'
                '[project]\nname = "vcspkg"\ndynamic = ["version"]\n\n'
                '[tool.hatch.version]\nsource = "vcs"\n'
            ),
            "src/vcspkg/__init__.py": "",
        },
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    git(root, "tag", "v2.1.0")
    project = load_project(root)
    assert project.version_is_dynamic
    assert project.version == "2.1.0"
    assert project.tag == "v2.1.0"


@pytest.mark.slow
def test_a_backend_that_cannot_compute_the_version_is_one_line_of_bad_input(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": (
                '[build-system]\nrequires = ["flit_core>=3.9"]\n'
                'build-backend = "flit_core.buildapi"\n\n'
                '[project]\nname = "flitpkg"\ndynamic = ["version", "description"]\n'
            ),
            "flitpkg/__init__.py": '"""No version here."""\n',
        },
    )
    project = load_project(tmp_path)  # loading never needs the version
    with pytest.raises(InputError) as raised:
        _ = project.version
    message = str(raised.value)
    assert "could not compute the dynamic version" in message
    assert "\n" not in message and "Traceback" not in message
    assert sys.executable  # the error names the file, not upm-ci's interpreter
    assert str(tmp_path / "pyproject.toml") in message


SECRET_INPUTS = (
    "GITHUB_TOKEN",
    "UPM_GITHUB_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "UPM_PYPI_TOKEN",
    "UPM_GPG_PASSPHRASE",
    "UPM_GPG_KEY",
    "TWINE_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
)


@pytest.mark.slow
def test_a_test_that_prints_its_environment_leaks_no_secret_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 3: the project's tests saw the job's secrets, and a failing test's output
    carried them into the report, outputs, summary and annotations."""
    from upm_ci.cli import main

    files = dict(MARKED_PROJECT)
    files["tests/test_leak.py"] = (
        "import os\n\n\ndef test_leaks():\n"
        "    print(dict(os.environ))\n"
        "    assert False, repr(dict(os.environ))\n"
    )
    root = write(tmp_path / "minipkg", files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    monkeypatch.delenv("UPM_TEST_PYTHON")
    sentinels = {name: f"SENTINEL-{name}-{i:04d}-abcdefgh" for i, name in enumerate(SECRET_INPUTS)}
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    report = tmp_path / "gate-report.json"
    code = main(
        [
            "gate",
            "--project",
            str(root),
            "--manifest",
            str(tmp_path / "m.json"),
            "--report-json",
            str(report),
            "--osv-url",
            "http://127.0.0.1:9/v1/query",
            "--repository",
            "example/minipkg",
            "--github-api-url",
            "http://127.0.0.1:9",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1, err[-2000:]
    data = report.read_text()
    assert "test_leaks failed" in data  # the failing test's output did reach the report
    # ``::add-mask::`` lines are how the runner learns a secret; it never shows them.
    shown = "\n".join(line for line in out.splitlines() if not line.startswith("::add-mask::"))
    written = shown + err + data + (tmp_path / "output").read_text()
    written += (tmp_path / "summary").read_text() + (tmp_path / "m.json").read_text()
    for name, value in sentinels.items():
        assert value not in written, name


@pytest.mark.slow
def test_rehearse_tags_its_copy_with_the_backends_version_unless_it_comes_from_git(
    tmp_path: Path,
) -> None:
    from upm_ci.rehearse import _vcs_release_tag

    flit = write(
        tmp_path / "flit",
        {
            "pyproject.toml": (
                '[build-system]\nrequires = ["flit_core>=3.9"]\n'
                'build-backend = "flit_core.buildapi"\n\n'
                '[project]\nname = "flitpkg"\ndynamic = ["version", "description"]\n'
            ),
            "flitpkg/__init__.py": '"""Flit package."""\n\n__version__ = "0.9.1"\n',
            "CHANGELOG.md": "# Changes\n\n## 0.9.0 (2026-01-01)\n\n- first\n",
        },
    )
    assert _vcs_release_tag(load_project(flit)) == "v0.9.1"  # not the changelog's 0.9.0
    # HEAD already tagged v1.0.0 with a __version__ left at 0.9.1: the release is v1.0.0, and
    # the gate reports the disagreement (not "not greater than the previous release v1.0.0")
    git(flit, "init", "-q", "-b", "main")
    git(flit, "add", "-A")
    git(flit, "commit", "-q", "-m", "one")
    git(flit, "tag", "v1.0.0")
    git(flit, "tag", "not-a-version")
    assert _vcs_release_tag(load_project(flit)) == "v1.0.0"
    vcs = write(
        tmp_path / "vcs",
        {
            "pyproject.toml": (
                '[build-system]\nrequires = ["hatchling", "hatch-vcs"]\n'
                'build-backend = "hatchling.build"\n\n'
                '[project]\nname = "vcspkg"\ndynamic = ["version"]\n\n'
                '[tool.hatch.version]\nsource = "vcs"\n'
            ),
            "src/vcspkg/__init__.py": "",
            "CHANGELOG.md": "# Changes\n\n## [2.1.0] - 2026-01-01\n\n- next\n",
        },
    )
    git(vcs, "init", "-q", "-b", "main")
    git(vcs, "add", "-A")
    git(vcs, "commit", "-q", "-m", "one")
    git(vcs, "tag", "v2.0.0")
    (vcs / "README.md").write_text("more\n")
    git(vcs, "add", "-A")
    git(vcs, "commit", "-q", "-m", "two")
    assert _vcs_release_tag(load_project(vcs)) == "v2.1.0"  # HEAD gives 2.0.1.dev1+g...


@pytest.mark.slow
def test_rehearsing_a_tagged_head_with_a_stale_dunder_version_reports_the_disagreement(
    tmp_path: Path,
) -> None:
    import json

    from upm_ci.cli import main

    flit = write(
        tmp_path / "flit",
        {
            "pyproject.toml": (
                '[build-system]\nrequires = ["flit_core>=3.9"]\n'
                'build-backend = "flit_core.buildapi"\n\n'
                '[project]\nname = "flitpkg"\ndynamic = ["version", "description"]\n'
                '[tool.upm-release]\nrepository = "alice/flitpkg"\n'
            ),
            "flitpkg/__init__.py": '"""Flit package."""\n\n__version__ = "2.3.0"\n',
            "CHANGELOG.md": "# Changes\n\n## 2.4.0 (2026-01-02)\n\n- next\n\n"
            "## 2.3.0 (2026-01-01)\n\n- first\n",
        },
    )
    git(flit, "init", "-q", "-b", "main")
    git(flit, "add", "-A")
    git(flit, "commit", "-q", "-m", "one")
    git(flit, "tag", "v2.3.0")
    (flit / "README.md").write_text("more\n")
    git(flit, "add", "-A")
    git(flit, "commit", "-q", "-m", "two")
    git(flit, "tag", "v2.4.0")  # HEAD is the release; __version__ was not bumped
    out = tmp_path / "rehearsal"
    assert main(["rehearse", str(flit), "--out", str(out)]) == 1
    checks = {c["id"]: c for c in json.loads((out / "gate-report.json").read_text())["checks"]}
    summary = json.dumps(checks["version-bump"])
    assert "2.3.0" in summary and "v2.4.0" in summary, summary
    assert "not greater than" not in summary, summary
