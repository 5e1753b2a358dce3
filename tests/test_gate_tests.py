"""Check ``tests``: JUnit parsing, the pass rule, suites, and a real run of test-command."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from upm_ci.errors import InputError
from upm_ci.gate.model import GateContext
from upm_ci.gate.tests import JUnitCase, check_tests, in_suite, load_test_results, parse_junit
from upm_ci.project import load_project


def junit(*cases: str) -> str:
    """A pytest-shaped JUnit XML document with the given ``<testcase>`` elements."""
    body = "".join(cases)
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        f"{body}</testsuite></testsuites>"
    )


def case(classname: str, name: str, inner: str = "") -> str:
    return f'<testcase classname="{classname}" name="{name}" time="0.01">{inner}</testcase>'


SUITE_DIRS = ("unit", "integration", "security")
ALL_SUITES = [
    case("tests.unit.test_a", "test_one"),
    case("tests.integration.test_b", "test_two"),
    case("tests.security.test_c", "test_three"),
]


def ctx_for(root: Path, tmp_path: Path, junit_xml: Path | None = None) -> GateContext:
    return GateContext(
        project=load_project(root), tag="v1.2.0", work_dir=tmp_path / "work", junit_xml=junit_xml
    )


def write(tmp_path: Path, text: str, name: str = "junit.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_all_suites_passing_pass(sample_copy: Path, tmp_path: Path) -> None:
    xml = write(tmp_path, junit(*ALL_SUITES))
    result = check_tests(ctx_for(sample_copy, tmp_path, xml))
    assert (result.status, result.reason) == (
        "pass",
        "3 passed, suites: unit, integration, security",
    )


@pytest.mark.parametrize(
    ("inner", "outcome"),
    [
        ('<failure message="assert 1 == 2">trace</failure>', "failed"),
        ('<error message="fixture broke">trace</error>', "error"),
    ],
)
def test_a_failing_or_erroring_test_fails_naming_it(
    sample_copy: Path, tmp_path: Path, inner: str, outcome: str
) -> None:
    bad = case("tests.unit.test_plugins", "test_broken", inner)
    result = check_tests(ctx_for(sample_copy, tmp_path, write(tmp_path, junit(*ALL_SUITES, bad))))
    assert result.status == "fail"
    assert result.reason == "1 of 4 failed"
    (finding,) = result.findings
    assert finding.message.startswith(f"tests.unit.test_plugins::test_broken {outcome}: ")
    assert finding.file == "tests/unit/test_plugins.py"  # found on disk from the classname


def test_zero_tests_fail(sample_copy: Path, tmp_path: Path) -> None:
    result = check_tests(ctx_for(sample_copy, tmp_path, write(tmp_path, junit())))
    assert result.status == "fail"
    assert "no test ran" in result.reason


def test_only_skipped_tests_count_as_none_ran(sample_copy: Path, tmp_path: Path) -> None:
    skipped = [c.replace('time="0.01">', 'time="0">' + "<skipped/>") for c in ALL_SUITES]
    result = check_tests(ctx_for(sample_copy, tmp_path, write(tmp_path, junit(*skipped))))
    assert result.status == "fail"
    assert "no test ran" in result.reason


def test_a_suite_that_ran_nothing_fails(sample_copy: Path, tmp_path: Path) -> None:
    xml = write(tmp_path, junit(*ALL_SUITES[:2]))
    result = check_tests(ctx_for(sample_copy, tmp_path, xml))
    assert result.status == "fail"
    assert result.reason == "suite security ran no test"
    assert result.findings[0].message == "suite 'security' (path:tests/security) ran no test"


def test_marker_suites_read_the_marker_property(sample_copy: Path, tmp_path: Path) -> None:
    pyproject = sample_copy / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + '\n[tool.upm-release.test-suites]\nsec = "marker:security"\n'
    )
    marked = case(
        "tests.x", "test_m", '<properties><property name="marker" value="security"/></properties>'
    )
    result = check_tests(ctx_for(sample_copy, tmp_path, write(tmp_path, junit(marked))))
    assert result.status == "pass"
    unmarked = write(tmp_path, junit(case("tests.x", "test_m")), "other.xml")
    assert check_tests(ctx_for(sample_copy, tmp_path, unmarked)).status == "fail"


def test_in_suite_matches_directories_not_name_prefixes() -> None:
    unit = JUnitCase("tests.unit.test_a.TestX", "test_y", None, None, "passed")
    unitx = JUnitCase("tests.unitx.test_a", "test_y", None, None, "passed")
    by_file = JUnitCase("whatever", "test_y", "tests/unit/test_a.py", None, "passed")
    assert in_suite(unit, "path:tests/unit/")
    assert not in_suite(unitx, "path:tests/unit")
    assert in_suite(by_file, "path:tests/unit")


def test_parse_junit_reads_outcomes_properties_and_single_testsuite_root(tmp_path: Path) -> None:
    xml = write(
        tmp_path,
        '<testsuite><testcase classname="a" name="t1" file="a.py" line="7">'
        '<properties><property name="sandbox" value="p"/></properties></testcase>'
        '<testcase classname="a" name="t2"><skipped message="later"/></testcase>'
        '<testcase classname="a" name="t3"><failure message="boom"/><error message="td"/>'
        "</testcase></testsuite>",
    )
    t1, t2, t3 = parse_junit(xml)
    assert (t1.outcome, t1.file, t1.line, t1.property_values("sandbox")) == (
        "passed",
        "a.py",
        7,
        ["p"],
    )
    assert (t2.outcome, t2.message, t2.ran) == ("skipped", "later", False)
    assert (t3.outcome, t3.message) == ("error", "td")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<testsuites><testcase", "malformed JUnit XML"),
        ("<html/>", "not JUnit XML (root element <html>)"),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><testsuites/>',
            "DOCTYPE or entities is refused",
        ),
        ('<testsuites><testcase classname="a"/></testsuites>', "has no name attribute"),
    ],
)
def test_bad_junit_is_an_input_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        parse_junit(path)
    assert str(path) in str(err.value)


def test_missing_configured_junit_is_an_input_error(sample_copy: Path, tmp_path: Path) -> None:
    pyproject = sample_copy / "pyproject.toml"
    text = pyproject.read_text().replace(
        "[tool.upm-release]\n", '[tool.upm-release]\njunit-xml = "reports/junit.xml"\n'
    )
    pyproject.write_text(text)
    with pytest.raises(InputError, match="reports/junit.xml: cannot read JUnit XML.*junit-xml"):
        load_test_results(ctx_for(sample_copy, tmp_path))


def test_bad_suite_spec_is_an_input_error(sample_copy: Path, tmp_path: Path) -> None:
    pyproject = sample_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[tool.upm-release.test-suites]\nx = "dir"\n')
    with pytest.raises(InputError, match=r"test-suites\.x = 'dir' is not"):
        check_tests(ctx_for(sample_copy, tmp_path, write(tmp_path, junit(*ALL_SUITES))))


# --- a real run of test-command ------------------------------------------------------------


def test_running_the_sample_suite_passes(sample_copy: Path, tmp_path: Path) -> None:
    ctx = ctx_for(sample_copy, tmp_path)
    run = load_test_results(ctx)
    assert run.returncode == 0
    assert run.command is not None and run.command[0] != "python"  # this interpreter
    result = check_tests(ctx, run)
    assert result.status == "pass", result.findings
    assert len([c for c in run.cases if c.ran]) >= 10


def test_a_failing_test_fails_and_shows_the_output_tail(sample_copy: Path, tmp_path: Path) -> None:
    (sample_copy / "tests" / "unit" / "test_broken.py").write_text(
        "def test_broken():\n    print('diagnostic line')\n    assert 1 == 2\n"
    )
    result = check_tests(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    assert result.reason.startswith("1 of ")
    assert result.findings[0].file == "tests/unit/test_broken.py"
    assert "assert 1 == 2" in result.findings[0].message
    tail = result.findings[-1].message
    assert tail.startswith("last lines of the test output:") and "1 failed" in tail


def test_a_command_that_writes_no_junit_fails_closed(sample_copy: Path, tmp_path: Path) -> None:
    pyproject = sample_copy / "pyproject.toml"
    text = pyproject.read_text().replace(
        "[tool.upm-release]\n",
        '[tool.upm-release]\ntest-command = ["python", "-c", "print(\'all good\')"]\n',
    )
    pyproject.write_text(text)
    result = check_tests(ctx_for(sample_copy, tmp_path))
    assert result.status == "fail"
    assert "wrote no JUnit XML" in result.reason
    assert "all good" in result.findings[-1].message


def test_a_command_that_cannot_start_is_an_input_error(sample_copy: Path, tmp_path: Path) -> None:
    pyproject = sample_copy / "pyproject.toml"
    text = pyproject.read_text().replace(
        "[tool.upm-release]\n", '[tool.upm-release]\ntest-command = ["no-such-tool-xyz"]\n'
    )
    pyproject.write_text(text)
    with pytest.raises(InputError, match="test-command cannot start"):
        load_test_results(ctx_for(sample_copy, tmp_path))


def test_the_gate_token_is_not_handed_to_the_tests(
    sample_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "ghp_" + "s3cr3t" * 6
    monkeypatch.setenv("GITHUB_TOKEN", secret)
    monkeypatch.setenv("UPM_GITHUB_TOKEN", secret)
    probe = tmp_path / "env.txt"
    script = tmp_path / "fake_tests.py"
    suites = "".join(f'<testcase classname="tests.{s}.a" name="t"/>' for s in SUITE_DIRS)
    script.write_text(
        "import os, sys\n"
        "open(sys.argv[1], 'w').write(repr(sorted(os.environ.items())))\n"
        f"open(sys.argv[2], 'w').write('<testsuites>{suites}</testsuites>')\n"
    )
    pyproject = sample_copy / "pyproject.toml"
    text = pyproject.read_text().replace(
        "[tool.upm-release]\n",
        f'[tool.upm-release]\ntest-command = ["python", "{script}", "{probe}", "{{junit}}"]\n',
    )
    pyproject.write_text(text)
    assert check_tests(ctx_for(sample_copy, tmp_path)).status == "pass"
    seen = probe.read_text()
    assert secret not in seen
    assert "PATH" in seen and os.environ["PATH"].split(os.pathsep)[0] in seen
