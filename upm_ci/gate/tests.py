"""Check ``tests``: the project's test suite ran, every test passed, every suite ran.

Results come from JUnit XML (pytest ``--junitxml``): a given file, or one produced by running
the configured ``test-command``. They are parsed once per gate run into :class:`TestRun` and
shared with the ``plugin-sandbox`` check.

Suites (config ``test-suites``) are ``path:DIR``, matched against a test's file or dotted
classname (``tests/unit`` matches ``tests.unit.test_x``), or ``marker:NAME``, matched against
a ``<property name="marker" value="NAME"/>`` of the test case. The gate loads its own pytest
plugin into the run (:mod:`upm_ci.gate.pytest_markers`), which writes those properties, so
the project needs no conftest for them.

The tests run in the project's own environment (:mod:`upm_ci.gate.testenv`: a new venv with
the project and its declared test dependencies, or ``--test-python``), with the allow-listed
environment of :mod:`upm_ci.child_env`: never a token or passphrase of the job.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from upm_ci.child_env import project_env
from upm_ci.config import display_path
from upm_ci.errors import InputError
from upm_ci.gate.model import CheckResult, Finding, GateContext
from upm_ci.gate.report import task_of
from upm_ci.gate.testenv import TestEnvironmentError, cache_from_env, create_test_environment

log = logging.getLogger(__name__)

Outcome = Literal["passed", "failed", "error", "skipped"]

_TAIL_LINES = 30
#: The module name the gate's pytest plugin is loaded as in the project's test run.
MARKERS_PLUGIN = "upm_release_markers"


@dataclass(frozen=True)
class JUnitCase:
    """One ``<testcase>``."""

    classname: str
    name: str
    file: str | None
    line: int | None
    outcome: Outcome
    message: str = ""
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def nodeid(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name

    @property
    def ran(self) -> bool:
        return self.outcome != "skipped"

    def property_values(self, name: str) -> list[str]:
        return [value for key, value in self.properties if key == name]


@dataclass
class TestRun:
    """The test results the gate judges, and how they were obtained."""

    __test__ = False  # not a pytest test class

    source: Path
    cases: list[JUnitCase]
    command: list[str] | None = None
    returncode: int | None = None
    output_tail: str = ""
    problems: list[str] = field(default_factory=list)


def load_test_results(ctx: GateContext) -> TestRun:
    """JUnit results from ``ctx.junit_xml``, config ``junit-xml``, or a run of ``test-command``."""
    config = ctx.project.config
    if ctx.junit_xml is not None:
        return TestRun(source=ctx.junit_xml, cases=parse_junit(ctx.junit_xml))
    if config.junit_xml:
        path = ctx.project.path(config.junit_xml)
        return TestRun(source=path, cases=parse_junit(path, field="junit-xml"))
    return run_test_command(ctx)


def explicit_test_python(explicit: str = "") -> str:
    """An interpreter the user brought (``--test-python``, ``$UPM_TEST_PYTHON``), or ``""``."""
    return explicit or os.environ.get("UPM_TEST_PYTHON", "")


def run_test_command(ctx: GateContext) -> TestRun:
    """Run ``test-command`` in the project root in the project's test environment."""
    config = ctx.project.config
    if not config.test_command:
        raise InputError(
            f"{ctx.project.root / 'pyproject.toml'}: [tool.upm-release] test-command is empty",
            hint="give a command, or junit-xml / --junit-xml",
        )
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    junit = (ctx.work_dir / "junit.xml").resolve()
    junit.unlink(missing_ok=True)
    command = [arg.replace("{junit}", str(junit)) for arg in config.test_command]
    python = explicit_test_python(ctx.test_python)
    if not python:
        try:
            venv = ctx.work_dir / "test-venv"
            python = create_test_environment(ctx.project, venv, cache_from_env()).python
        except TestEnvironmentError as e:
            return TestRun(source=junit, cases=[], problems=[str(e)], output_tail=e.output_tail)
    if command[0] in ("python", "python3"):
        command[0] = python
    plugin_dir = ctx.work_dir / "pytest-plugin"
    plugin_dir.mkdir(exist_ok=True)
    shutil.copyfile(
        Path(__file__).with_name("pytest_markers.py"), plugin_dir / f"{MARKERS_PLUGIN}.py"
    )
    env = project_env(
        {
            "PATH": os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")]),
            "PYTHONPATH": str(plugin_dir),
            "PYTEST_PLUGINS": MARKERS_PLUGIN,
        }
    )
    log.info("gate: running the tests: %s", " ".join(command))
    try:
        proc = subprocess.run(
            command,
            cwd=ctx.project.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as e:
        raise InputError(
            f"{ctx.project.root / 'pyproject.toml'}: [tool.upm-release] test-command "
            f"cannot start: {e}",
            hint="fix the command",
        ) from None
    tail = "\n".join(proc.stdout.rstrip().splitlines()[-_TAIL_LINES:])
    run = TestRun(
        source=junit, cases=[], command=command, returncode=proc.returncode, output_tail=tail
    )
    if not junit.is_file():
        run.problems.append(
            f"the test command exited with {proc.returncode} and wrote no JUnit XML "
            "(does it pass --junitxml={junit}?)"
        )
        return run
    run.cases = parse_junit(junit)
    if proc.returncode != 0:
        run.problems.append(f"the test command exited with {proc.returncode}")
    return run


def parse_junit(path: Path, *, field: str = "--junit-xml") -> list[JUnitCase]:
    """All test cases of a JUnit XML file; InputError if it is missing or malformed."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(
            f"{path}: cannot read JUnit XML ({e.strerror})", hint=f"check {field}"
        ) from None
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise InputError(f"{path}: JUnit XML with a DOCTYPE or entities is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise InputError(
            f"{path}: malformed JUnit XML: {e}", hint="pass the file pytest --junitxml wrote"
        ) from None
    if root.tag not in ("testsuites", "testsuite"):
        raise InputError(f"{path}: not JUnit XML (root element <{root.tag}>)")
    return [_case(element, path) for element in root.iter("testcase")]


def _case(element: ET.Element, path: Path) -> JUnitCase:
    outcome: Outcome = "passed"
    message = ""
    for tag in ("skipped", "failure", "error"):  # later ones win: an error outranks a failure
        child = element.find(tag)
        if child is not None:
            outcome = "failed" if tag == "failure" else tag  # type: ignore[assignment]
            message = child.get("message") or (child.text or "").strip()
    line = element.get("line")
    properties = tuple(
        (prop.get("name", ""), prop.get("value", "")) for prop in element.iter("property")
    )
    if not element.get("name"):
        raise InputError(f"{path}: a <testcase> has no name attribute")
    return JUnitCase(
        classname=element.get("classname", ""),
        name=element.get("name", ""),
        file=element.get("file"),
        line=int(line) if line and line.isascii() and line.isdigit() else None,  # not "²"
        outcome=outcome,
        message=message.splitlines()[0] if message else "",
        properties=properties,
    )


def in_suite(case: JUnitCase, spec: str) -> bool:
    """Whether a test case belongs to a suite ``path:DIR`` or ``marker:NAME``."""
    kind, _, value = spec.partition(":")
    if kind == "marker":
        return value in case.property_values("marker")
    directory = value.strip("/").replace("\\", "/")
    if case.file and (case.file + "/").startswith(directory + "/"):
        return True
    dotted = directory.replace("/", ".")
    return case.classname == dotted or case.classname.startswith(dotted + ".")


def check_tests(ctx: GateContext, run: TestRun | None = None) -> CheckResult:
    """Pass only if tests ran, none failed or errored, and every configured suite ran."""
    run = run if run is not None else load_test_results(ctx)
    suites = _suites(ctx)
    findings: list[Finding] = []
    root = ctx.project.root
    source = _project_file(run.source, root)
    bad = [case for case in run.cases if case.outcome in ("failed", "error")]
    if not bad:  # a failing test already explains a non-zero exit
        findings += [Finding(problem, file=source) for problem in run.problems]
    for case in bad:
        detail = f": {case.message}" if case.message else ""
        findings.append(
            Finding(
                f"{case.nodeid} {case.outcome}{detail}",
                file=_case_file(case, root),
                line=case.line,
            )
        )
    ran = [case for case in run.cases if case.ran]
    if not ran:
        findings.append(Finding("no test ran", file=source))
    missing = [name for name, spec in suites.items() if not any(in_suite(c, spec) for c in ran)]
    for name in missing:
        findings.append(Finding(f"suite {name!r} ({suites[name]}) ran no test"))
    if findings and run.output_tail and (bad or run.problems):
        findings.append(Finding(f"last lines of the test output:\n{run.output_tail}"))
    if not findings:
        reason = f"{len(ran)} passed" + (f", suites: {', '.join(suites)}" if suites else "")
        return CheckResult("tests", task_of("tests"), "pass", reason)
    parts = []
    if bad:
        parts.append(f"{len(bad)} of {len(run.cases)} failed")
    if not ran:
        parts.append("no test ran")
    if missing:
        parts.append(f"suite {', '.join(missing)} ran no test")
    parts += run.problems if not bad else []
    return CheckResult("tests", task_of("tests"), "fail", "; ".join(parts), findings)


def _suites(ctx: GateContext) -> dict[str, str]:
    suites = ctx.project.config.test_suites
    for name, spec in suites.items():
        kind, _, value = spec.partition(":")
        if kind not in ("path", "marker") or not value.strip():
            raise InputError(
                f"{ctx.project.root / 'pyproject.toml'}: [tool.upm-release] test-suites.{name} "
                f"= {spec!r} is not 'path:DIR' or 'marker:NAME'"
            )
    return suites


def _project_file(path: Path, root: Path) -> str | None:
    """``path`` relative to the project, or None for a file outside it (the gate's own)."""
    shown = display_path(path, root)
    return None if Path(shown).is_absolute() else shown


def _case_file(case: JUnitCase, root: Path) -> str | None:
    """The test's file: JUnit's ``file`` attribute, else the longest classname prefix on disk."""
    if case.file:
        return case.file
    parts = case.classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if (root / candidate).is_file():
            return candidate
    return None
