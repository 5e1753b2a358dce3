"""The gate runner, the report, and ``upm-ci gate`` end to end on copies of the example."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from tests.fixtures.github import SAMPLE_NAME, SAMPLE_OWNER
from upm_ci.cli import main
from upm_ci.dependency_provenance import shipped_files
from upm_ci.errors import InputError
from upm_ci.gate import checklist as gate_pkg
from upm_ci.gate.checklist import run_gate
from upm_ci.gate.model import CheckResult, Finding
from upm_ci.gate.report import CHECKLIST, GateReport, render_markdown, render_text
from upm_ci.project import load_project
from upm_ci.standins.faults import FaultRule
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.integrity import DEMO_PUBLISHERS
from upm_ci.standins.osv import OsvStandIn
from upm_ci.standins.pypi import PypiStandIn
from upm_ci.standins.sigstore_server import SigstoreStandIn

IDS = [
    "tests",
    "plugin-sandbox",
    "plugin-entrypoint",
    "code-review",
    "docs",
    "dependency-audit",
    "dependency-provenance",
    "version-bump",
]
SECRET = "ghp_" + "Zq8vS3cr3tT0k3n" * 3


@pytest.fixture
def audit_passes(mocker: MockerFixture) -> None:
    """The dependency audit and provenance rows (other modules' subjects) pass without a
    network."""
    mocker.patch(
        "upm_ci.gate.dependency_audit.check_dependency_audit",
        autospec=True,
        side_effect=lambda ctx: CheckResult(
            "dependency-audit", "Dependency/SBOM audit", "pass", "2 ok"
        ),
    )
    mocker.patch(
        "upm_ci.gate.provenance.check_dependency_provenance",
        autospec=True,
        side_effect=lambda ctx: CheckResult(
            "dependency-provenance", "Dependency provenance (PEP 740)", "pass", "2 ok"
        ),
    )


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the CLI from an empty directory (the default manifest lands here)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def actions_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """GITHUB_ACTIONS=true with the step summary and outputs in files."""
    files = {"summary": tmp_path / "summary.md", "output": tmp_path / "output.txt"}
    for file in files.values():
        file.touch()
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    return files


def break_plugin(root: Path) -> None:
    path = root / "src/upm_sample/plugins/checksum.py"
    path.write_text(path.read_text().replace("    run_sandboxed(main)\n", "    main({})\n"))


# --- the runner --------------------------------------------------------------------------


def test_run_gate_runs_the_eight_rows_in_order(
    sample_copy: Path, tmp_path: Path, sample_junit: Path, audit_passes: None
) -> None:
    report = run_gate(
        load_project(sample_copy),
        tag=None,
        junit_xml=sample_junit,
        github=None,
        osv_url="",
        work_dir=tmp_path / "work",
    )
    assert [c.id for c in report.checks] == IDS == [row.id for row in CHECKLIST]
    assert [c.task for c in report.checks] == [row.task for row in CHECKLIST]
    statuses = {c.id: c.status for c in report.checks}
    assert statuses.pop("code-review") == "skipped"  # no token: not this module's subject
    assert set(statuses.values()) == {"pass"}
    assert report.passed and report.tag == "v1.2.0"


def test_a_crashing_check_fails_closed_and_the_rest_still_run(
    sample_copy: Path, tmp_path: Path, sample_junit: Path, audit_passes: None, mocker: MockerFixture
) -> None:
    mocker.patch(
        "upm_ci.gate.docs.check_docs", autospec=True, side_effect=RuntimeError("disk on fire")
    )
    report = run_gate(
        load_project(sample_copy),
        tag=None,
        junit_xml=sample_junit,
        github=None,
        osv_url="",
        work_dir=tmp_path,
    )
    docs = next(c for c in report.checks if c.id == "docs")
    assert (docs.status, docs.reason) == ("fail", "check could not run: RuntimeError: disk on fire")
    assert not report.passed and len(report.checks) == 8


def test_an_input_error_in_a_check_stops_the_gate(
    sample_copy: Path, tmp_path: Path, sample_junit: Path, mocker: MockerFixture
) -> None:
    mocker.patch(
        "upm_ci.gate.version.check_version_bump", autospec=True, side_effect=InputError("bad x")
    )
    mocker.patch("upm_ci.gate.dependency_audit.check_dependency_audit", autospec=True)
    mocker.patch("upm_ci.gate.provenance.check_dependency_provenance", autospec=True)
    with pytest.raises(InputError, match="bad x"):
        run_gate(
            load_project(sample_copy),
            tag=None,
            junit_xml=sample_junit,
            github=None,
            osv_url="",
            work_dir=tmp_path,
        )


def test_test_results_are_read_once_per_run(
    sample_copy: Path, tmp_path: Path, sample_junit: Path, audit_passes: None, mocker: MockerFixture
) -> None:
    import upm_ci.gate.tests as tests_check

    spy = mocker.spy(tests_check, "parse_junit")
    run_gate(
        load_project(sample_copy),
        tag=None,
        junit_xml=sample_junit,
        github=None,
        osv_url="",
        work_dir=tmp_path,
    )
    assert spy.call_count == 1


def test_unreadable_test_results_fail_both_test_rows(
    sample_copy: Path, tmp_path: Path, sample_junit: Path, audit_passes: None, mocker: MockerFixture
) -> None:
    mocker.patch("upm_ci.gate.tests.parse_junit", autospec=True, side_effect=MemoryError("huge"))
    report = run_gate(
        load_project(sample_copy),
        tag=None,
        junit_xml=sample_junit,
        github=None,
        osv_url="",
        work_dir=tmp_path,
    )
    failed = {c.id: c.reason for c in report.failed}
    assert failed == {
        "tests": "no test results: MemoryError: huge",
        "plugin-sandbox": "no test results: MemoryError: huge",
    }


def test_a_missing_review_module_fails_that_row(
    sample_copy: Path,
    tmp_path: Path,
    sample_junit: Path,
    audit_passes: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(gate_pkg.CHECKS, "code-review", ("upm_ci.gate.no_such_module", "check"))
    report = run_gate(
        load_project(sample_copy),
        tag=None,
        junit_xml=sample_junit,
        github=None,
        osv_url="",
        work_dir=tmp_path,
    )
    review = next(c for c in report.checks if c.id == "code-review")
    assert review.status == "fail" and "ModuleNotFoundError" in review.reason


# --- the report --------------------------------------------------------------------------


def small_report() -> GateReport:
    return GateReport(
        "upm-sample",
        "1.2.0",
        "v1.2.0",
        [
            CheckResult("tests", "All tests (unit/integration/sec)", "pass", "16 passed"),
            CheckResult(
                "docs",
                "Docs updated",
                "fail",
                "API.md: broken | link",
                [Finding("broken link to X.md", "API.md", 3), Finding("tail:\nline a\nline b")],
            ),
            CheckResult("code-review", "Code review (security, style)", "skipped", "no token"),
        ],
    )


def test_report_json_shape() -> None:
    data = small_report().to_json()
    assert data == {
        "schema": "upm-release/gate-report/v1",
        "passed": False,
        "project": "upm-sample",
        "version": "1.2.0",
        "tag": "v1.2.0",
        "checks": [
            {
                "id": "tests",
                "task": "All tests (unit/integration/sec)",
                "status": "pass",
                "reason": "16 passed",
                "findings": [],
            },
            {
                "id": "docs",
                "task": "Docs updated",
                "status": "fail",
                "reason": "API.md: broken | link",
                "findings": [
                    {"message": "broken link to X.md", "file": "API.md", "line": 3},
                    {"message": "tail:\nline a\nline b", "file": None, "line": None},
                ],
            },
            {
                "id": "code-review",
                "task": "Code review (security, style)",
                "status": "skipped",
                "reason": "no token",
                "findings": [],
            },
        ],
    }
    assert not GateReport("p", "1", "v1", []).passed  # nothing checked is not a pass


def test_text_and_markdown_rendering() -> None:
    text = render_text(small_report())
    assert text.splitlines()[0] == "Release gate for upm-sample 1.2.0 (v1.2.0): BLOCKED (1 failed)"
    assert "Docs updated" in text and "fail: API.md: broken | link" in text
    assert "skipped: no token" in text and "Developer, Reviewer" in text
    md = render_markdown(small_report())
    assert "| Task | Who | Tool/Doc Reference | Status |" in md
    assert (
        "| Docs updated | Developer, Reviewer | See docs below | fail: API.md: broken \\| link |"
        in md
    )
    assert "- `API.md:3`: broken link to X.md" in md
    assert "  line b" in md


def test_a_long_status_is_shown_whole_below_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    report = small_report()
    reason = "1 of 3 plugin files: " + ", ".join(
        f"src/upm_sample/plugins/p{i}.py" for i in range(9)
    )
    report.checks[1] = CheckResult("docs", "Docs updated", "fail", reason)
    text = render_text(report)
    for line in text.splitlines():
        assert len(line) <= 100 and line == line.rstrip(), line
    assert reason in " ".join(line.strip() for line in text.splitlines())  # nothing cut off
    assert re.search(r"^Docs updated\s+Developer, Reviewer", text, re.M), text


# --- upm-ci gate -------------------------------------------------------------------------


@pytest.fixture
def provenance_index(
    sample_copy: Path, local_index: Callable[..., Path], sigstore_standin: SigstoreStandIn
) -> Iterator[tuple[PypiStandIn, list[str]]]:
    """The example's dependencies as local wheels, and an index whose Integrity API serves
    their provenance from the publishers the example's lock records; yields the index and the
    gate arguments that point at it."""
    local_index("packaging", "24.2")
    local_index("idna", "3.10")
    with PypiStandIn(integrity=True) as pypi:
        pypi.integrity.trust_config = sigstore_standin.trust_config()
        for file in shipped_files(load_project(sample_copy)):
            publisher = DEMO_PUBLISHERS[file.name]
            pypi.integrity.publish(file.name, file.version, file.filename, file.sha256, publisher)
        yield (
            pypi,
            [
                "--pypi-index-url",
                pypi.simple_url,
                "--trust-config",
                str(sigstore_standin.trust_config_path),
            ],
        )


def test_cli_passes_end_to_end_with_real_audit(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    osv_standin: OsvStandIn,
    provenance_index: tuple[PypiStandIn, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "gate",
            "--project",
            str(sample_copy),
            "--junit-xml",
            str(sample_junit),
            "--osv-url",
            osv_standin.query_url,
            "--report-json",
            "gate.json",
            *provenance_index[1],
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "Release gate for upm-sample 1.2.0 (v1.2.0): passed" in out
    report = json.loads((in_tmp / "gate.json").read_text())
    assert report["passed"] is True
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["dependency-audit"]["status"] == "pass"
    assert checks["dependency-provenance"]["status"] == "pass"
    assert "idna 3.10: GitHub kjd/idna deploy.yml" in checks["dependency-provenance"]["reason"]
    assert "packaging 24.2: GitHub pypa/packaging" in checks["dependency-provenance"]["reason"]
    manifest = json.loads((in_tmp / "release-manifest.json").read_text())
    assert manifest["project"]["tag"] == "v1.2.0"
    assert len(manifest["project"]["commit"]) == 40
    assert manifest["phases"]["gate"]["status"] == "pass"
    assert manifest["phases"]["gate"]["checks"]["version-bump"] == "pass"
    recorded = {d["name"]: d for d in manifest["phases"]["gate"]["dependencies"]}
    assert recorded["idna"]["publisher"]["repository"] == "kjd/idna"
    assert recorded["idna"]["file"] == "idna-3.10-py3-none-any.whl"
    assert recorded["idna"]["provenance"].startswith(provenance_index[0].integrity_url)


def test_cli_blocks_with_summary_annotations_and_outputs(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    audit_passes: None,
    actions_env: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    break_plugin(sample_copy)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(sample_copy.parent))  # annotation paths
    code = main(["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "upm-ci: release blocked by the gate: plugin-entrypoint" in err
    line = next(
        i
        for i, text in enumerate(
            (sample_copy / "src/upm_sample/plugins/checksum.py").read_text().splitlines(), 1
        )
        if text.startswith("if __name__")
    )
    assert (
        f"::error file=upm-sample/src/upm_sample/plugins/checksum.py,line={line},"
        "title=All plugins%3A entrypoint present::entrypoint block differs" in out
    )
    assert "::warning" not in out
    summary = actions_env["summary"].read_text()
    assert "## Release gate: upm-sample 1.2.0 (`v1.2.0`) blocked" in summary
    assert "| All plugins: entrypoint present | Developer | `PLUGINS.md` | fail: 1 of 3" in summary
    outputs = actions_env["output"].read_text()
    assert "passed=false\n" in outputs
    report_line = next(x for x in outputs.splitlines() if x.startswith("report="))
    assert json.loads(report_line.removeprefix("report="))["passed"] is False
    manifest = json.loads((in_tmp / "release-manifest.json").read_text())
    assert manifest["phases"]["gate"]["status"] == "fail"


def test_cli_tag_defaults_to_github_ref(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    audit_passes: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GITHUB_REF", "refs/tags/v1.3.0")
    monkeypatch.setenv("UPM_REPORT_JSON", "r.json")
    assert main(["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit)]) == 1
    report = json.loads((in_tmp / "r.json").read_text())
    assert report["tag"] == "v1.3.0"
    assert [c["id"] for c in report["checks"] if c["status"] == "fail"] == ["version-bump"]
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    monkeypatch.setenv("UPM_TAG", "refs/tags/v1.2.0")
    assert main(["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit)]) == 0


def test_the_token_never_appears_in_any_output(
    sample_copy: Path,
    in_tmp: Path,
    audit_passes: None,
    actions_env: dict[str, Path],
    github_standin: GitHubStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A failing test that prints the token puts it into the output tail the gate reports.
    (sample_copy / "tests/unit/test_leak.py").write_text(
        f"def test_leak():\n    assert '{SECRET}' == ''\n"
    )
    monkeypatch.setenv("UPM_GITHUB_TOKEN", SECRET)
    code = main(
        [
            "gate",
            "--project",
            str(sample_copy),
            "--report-json",
            "gate.json",
            "--github-api-url",
            github_standin.api_url,
            "--repository",
            f"{SAMPLE_OWNER}/{SAMPLE_NAME}",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    report = (in_tmp / "gate.json").read_text()
    assert "***" in report  # the leaked token was there, and is redacted
    masks = [line for line in out.splitlines() if line.startswith("::add-mask::")]
    assert masks and all(line == f"::add-mask::{SECRET}" for line in masks)  # how Actions masks
    shown = "\n".join(line for line in out.splitlines() if line not in masks)
    texts = [shown, err, report, (in_tmp / "release-manifest.json").read_text()]
    texts += [actions_env["summary"].read_text(), actions_env["output"].read_text()]
    for text in texts:
        assert SECRET not in text
    review = next(c for c in json.loads(report)["checks"] if c["id"] == "code-review")
    assert review["status"] == "fail"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (("pyproject.toml", "[project]\n", "[project\n"), "pyproject.toml: invalid TOML"),
        (
            ("pyproject.toml", "[tool.upm-release]\n", "[tool.upm-release]\nplugin = 1\n"),
            "unknown key 'plugin'",
        ),
        (  # an unreadable changelog heading is a docs finding now (tests/test_gate_docs.py)
            (
                "pyproject.toml",
                "[tool.upm-release]\n",
                '[tool.upm-release]\ntest-suites = { u = "x" }\n',
            ),
            "is not 'path:DIR' or 'marker:NAME'",
        ),
        (
            ("pyproject.toml", "run_sandboxed(main)\n'''", "run_sandboxed(main\n'''"),
            "entrypoint-block is not valid Python",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    audit_passes: None,
    capsys: pytest.CaptureFixture[str],
    breakage: tuple[str, str, str],
    message: str,
) -> None:
    name, old, new = breakage
    path = sample_copy / name
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    code = main(
        [
            "gate",
            "--project",
            str(sample_copy),
            "--junit-xml",
            str(sample_junit),
            "--report-json",
            "gate.json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert message in err
    errors = [line for line in err.splitlines() if not line.startswith("upm-ci: gate: ")]
    assert len(errors) == 1 and errors[0].startswith("upm-ci: error: ")  # progress aside
    assert "Traceback" not in err
    assert sorted(p.name for p in in_tmp.iterdir()) == []


def test_malformed_or_missing_junit_exits_2(
    sample_copy: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = in_tmp.parent / "bad.xml"
    bad.write_text("<testsuites><testcase name='x'>")
    assert main(["gate", "--project", str(sample_copy), "--junit-xml", str(bad)]) == 2
    assert f"{bad}: malformed JUnit XML" in capsys.readouterr().err
    assert main(["gate", "--project", str(sample_copy), "--junit-xml", "nope.xml"]) == 2
    assert "nope.xml: JUnit XML not found" in capsys.readouterr().err
    assert list(in_tmp.iterdir()) == []


def test_a_manifest_of_another_release_is_refused_before_anything_runs(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    mocker: MockerFixture,
) -> None:
    other = {
        "schema": "upm-release/manifest/v1",
        "project": {"name": "x", "version": "9", "tag": "v9"},
    }
    (in_tmp / "release-manifest.json").write_text(json.dumps(other))
    spy = mocker.patch("upm_ci.gate.checklist.run_gate", autospec=True)
    code = main(
        [
            "gate",
            "--project",
            str(sample_copy),
            "--junit-xml",
            str(sample_junit),
            "--report-json",
            "gate.json",
        ]
    )
    assert code == 2 and not spy.called
    assert "manifest is for x 9, not upm-sample 1.2.0" in capsys.readouterr().err
    assert not (in_tmp / "gate.json").exists()


# --- dependency-provenance on a copy of the example ------------------------------------------
@pytest.fixture
def only_audit_passes(mocker: MockerFixture) -> None:
    mocker.patch(
        "upm_ci.gate.dependency_audit.check_dependency_audit",
        autospec=True,
        side_effect=lambda ctx: CheckResult(
            "dependency-audit", "Dependency/SBOM audit", "pass", ""
        ),
    )


def _gate_provenance(
    sample_copy: Path, sample_junit: Path, args: list[str]
) -> tuple[int, dict[str, Any]]:
    code = main(
        ["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit)]
        + ["--report-json", "gate.json", *args]
    )
    report = json.loads(Path("gate.json").read_text())
    return code, {c["id"]: c for c in report["checks"]}["dependency-provenance"]


def _edit_lock(sample_copy: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = sample_copy / "upm-provenance.json"
    data = json.loads(path.read_text())
    edit(data["packages"])
    path.write_text(json.dumps(data))


def test_gate_blocks_a_publisher_repository_changed_in_the_lock(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    provenance_index: tuple[PypiStandIn, list[str]],
    only_audit_passes: None,
) -> None:
    _edit_lock(sample_copy, lambda p: p["idna"]["publisher"].update(repository="kjd/idna-old"))
    code, row = _gate_provenance(sample_copy, sample_junit, provenance_index[1])
    assert code == 1 and row["status"] == "fail"
    assert "idna 3.10" in row["reason"] and "kjd/idna-old" in row["reason"]
    assert "packaging" not in row["reason"]  # only the blocked package is named
    assert [f["file"] for f in row["findings"]] == ["upm-provenance.json"]


def test_gate_blocks_an_unsigned_package_unless_approved(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    provenance_index: tuple[PypiStandIn, list[str]],
    only_audit_passes: None,
) -> None:
    pypi, args = provenance_index
    pypi.integrity.drop("idna-3.10-py3-none-any.whl")
    _edit_lock(sample_copy, lambda p: p.update(idna={"unsigned": True}))
    code, row = _gate_provenance(sample_copy, sample_junit, args)
    assert code == 1 and "idna 3.10: unsigned (no provenance) and not approved" in row["reason"]
    approval = {"by": "dana", "reason": "checked by hand", "expires": "2099-12-31"}
    _edit_lock(sample_copy, lambda p: p["idna"].update(approval=approval))
    code, row = _gate_provenance(sample_copy, sample_junit, args)
    assert code == 0 and row["status"] == "pass"
    assert "idna 3.10: unsigned, approved by dana until 2099-12-31" in row["reason"]


def test_gate_with_a_hand_broken_lock_is_exit_2(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    provenance_index: tuple[PypiStandIn, list[str]],
    only_audit_passes: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _edit_lock(sample_copy, lambda p: p["idna"]["publisher"].pop("workflow"))
    code = main(
        ["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit)]
        + provenance_index[1]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "upm-provenance.json: packages.idna.publisher.workflow" in err
    assert "Traceback" not in err


def test_gate_exits_3_when_the_index_keeps_failing(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    provenance_index: tuple[PypiStandIn, list[str]],
    only_audit_passes: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0")
    pypi, args = provenance_index
    pypi.faults.add_rule(FaultRule("503", path_regex="^/integrity/", count=100))
    code = main(["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit), *args])
    assert code == 3
    assert "still failing after 2 attempts" in capsys.readouterr().err


# --- rows side by side (issue 26) ------------------------------------------------------------
def _spans(mocker: MockerFixture) -> dict[str, tuple[float, float]]:
    """Record when the slow part of each concurrent row ran (the real functions still run)."""
    import time

    import upm_ci.gate.dependency_audit as audit_row
    import upm_ci.gate.provenance as provenance_row
    import upm_ci.gate.tests as tests_row

    spans: dict[str, tuple[float, float]] = {}

    def timed_real(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return real(*args, **kwargs)
            finally:
                spans[name] = (start, time.monotonic())

        return run

    for module, function, name in (
        (tests_row, "load_test_results", "tests"),
        (audit_row, "check_dependency_audit", "dependency-audit"),
        (provenance_row, "check_dependency_provenance", "dependency-provenance"),
    ):
        real = getattr(module, function)
        mocker.patch.object(module, function, autospec=True, side_effect=timed_real(name, real))
    return spans


def _vulnerable_packaging(osv: OsvStandIn) -> None:
    osv.add(
        {
            "id": "GHSA-2099-upm-0026",
            "summary": "seeded advisory for the side-by-side gate test",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "packaging"},
                    "versions": ["24.2"],
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99"}]}
                    ],
                }
            ],
        }
    )


def test_slow_rows_run_side_by_side_with_the_order_results_and_log_of_one_at_a_time(
    sample_copy: Path,
    tmp_path: Path,
    in_tmp: Path,
    osv_standin: OsvStandIn,
    provenance_index: tuple[PypiStandIn, list[str]],
    mocker: MockerFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import upm_ci.vulnerability_audit as vulnerability_audit

    break_plugin(sample_copy)  # the tests fail, and plugin-entrypoint (a row run in order)
    _vulnerable_packaging(osv_standin)  # dependency-audit fails
    args = ["--osv-url", osv_standin.query_url, "--test-python", sys.executable]
    args += provenance_index[1]
    spans = _spans(mocker)
    resolutions = mocker.spy(vulnerability_audit, "resolve_files")
    code = main(["gate", "--project", str(sample_copy), "--report-json", "gate.json", *args])
    out, err = capsys.readouterr()
    assert code == 1, err
    together = json.loads((in_tmp / "gate.json").read_text())["checks"]
    assert [c["id"] for c in together] == IDS
    # The test run, the audit and the provenance fetches overlapped in time ...
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values()), spans
    # ... and the audit and provenance rows shared one pip resolution.
    assert resolutions.call_count == 1
    assert out.startswith("Release gate for upm-sample 1.2.0 (v1.2.0): BLOCKED ("), out
    assert "upm-ci:" not in out  # the log is on stderr, the report alone on stdout
    # Each row's log lines come out together, in the checklist's order.
    headers = [f"upm-ci: gate: {row.task}" for row in CHECKLIST]
    lines = err.splitlines()
    at = [lines.index(h) for h in headers]
    assert at == sorted(at), err
    own = {
        "tests": "upm-ci: gate: running the tests:",
        "dependency-audit": "upm-ci: auditing 2 resolved runtime dependencies",
        "dependency-provenance": "upm-ci: checking the provenance of 2 dependency files",
    }
    for row_id, prefix in own.items():
        i = IDS.index(row_id)
        found = [n for n, line in enumerate(lines) if line.startswith(prefix)]
        assert len(found) == 1 and at[i] < found[0] < at[i + 1], (row_id, err)

    # One row at a time gives the same results.
    alone = []
    for row_id in IDS:
        report = tmp_path / f"alone-{row_id}.json"
        assert main(
            ["gate", "--project", str(sample_copy), "--only", row_id]
            + ["--report-json", str(report), "--manifest", str(tmp_path / f"{row_id}.json"), *args]
        ) in (0, 1)
        alone += json.loads(report.read_text())["checks"]
    capsys.readouterr()

    def shown(checks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        # pytest's own last lines hold its run time: the only thing that differs between runs
        timeless = "last lines of the test output"
        return [
            (c["id"], c["status"], c["reason"])
            + tuple(f for f in c["findings"] if not f["message"].startswith(timeless))
            for c in checks
        ]

    assert shown(together) == shown(alone)
    failed = {c["id"] for c in together if c["status"] == "fail"}
    assert failed == {"tests", "plugin-sandbox", "plugin-entrypoint", "dependency-audit"}


def test_a_service_error_row_still_stops_the_gate_beside_a_failing_row(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    osv_standin: OsvStandIn,
    provenance_index: tuple[PypiStandIn, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0")
    break_plugin(sample_copy)
    _vulnerable_packaging(osv_standin)
    pypi, args = provenance_index
    pypi.faults.add_rule(FaultRule("503", path_regex="^/integrity/", count=100))
    code = main(
        ["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit)]
        + ["--osv-url", osv_standin.query_url, "--report-json", "gate.json", *args]
    )
    out, err = capsys.readouterr()
    assert code == 3, err
    assert "still failing after 2 attempts" in err
    assert not (in_tmp / "gate.json").exists() and "Release gate for" not in out
    # The rows before it were taken in order; the one after it never ran, as one at a time.
    shown = [line for line in err.splitlines() if line.startswith("upm-ci: gate: ")]
    tasks = [row.task for row in CHECKLIST]
    assert [line.removeprefix("upm-ci: gate: ") for line in shown] == tasks[:-1]
