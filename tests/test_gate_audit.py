"""The ``dependency-audit`` gate check: resolved runtime pins, audited against the OSV stand-in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.gate import report_rows, run_gate_cli
from upm_ci.errors import InputError
from upm_ci.gate.dependency_audit import check_dependency_audit
from upm_ci.gate.model import GateContext
from upm_ci.project import load_project
from upm_ci.standins.osv import OsvStandIn

TODAY = dt.date(2026, 11, 26)
LocalIndex = Callable[..., Path]


def make_project(root: Path, dependencies: list[str], upm_release: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    deps = "".join(f'    "{d}",\n' for d in dependencies)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "demo"\nversion = "1.2.0"\ndependencies = [\n{deps}]\n\n'
        f"[tool.upm-release]\n{upm_release}"
    )
    return root


def context(root: Path, osv: OsvStandIn | None) -> GateContext:
    return GateContext(
        project=load_project(root),
        tag="v1.2.0",
        work_dir=root,
        osv_url=osv.query_url if osv else "",
        today=TODAY,
    )


@pytest.fixture
def index(local_index: LocalIndex) -> LocalIndex:
    """requests 2.32.3 -> idna (3.6 vulnerable, 3.7 fixed) and certifi."""
    local_index("requests", "2.32.3", ["idna<4,>=2.5", "certifi>=2017.4.17"])
    local_index("certifi", "2024.8.30")
    local_index("idna", "3.6")
    local_index("idna", "3.7")
    return local_index


def test_clean_dependencies_pass(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn
) -> None:
    root = make_project(tmp_path / "p", ["requests>=2.32"])
    result = check_dependency_audit(context(root, osv_standin))
    assert (result.id, result.task) == ("dependency-audit", "Dependency/SBOM audit")
    assert result.status == "pass", result
    assert result.reason == "no known vulnerabilities in 3 packages"
    assert {q.name for q in osv_standin.queries} == {"requests", "certifi", "idna"}


def test_vulnerable_direct_dependency_fails_pointing_at_its_line(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn
) -> None:
    root = make_project(tmp_path / "p", ["requests>=2.32", "idna==3.6"])
    result = check_dependency_audit(context(root, osv_standin))
    assert result.status == "fail"
    (finding,) = result.findings
    assert "GHSA-jjg7-2v4v-x38h" in finding.message and "idna 3.6" in finding.message
    assert "fixed in 3.7" in finding.message
    assert (finding.file, finding.line) == ("pyproject.toml", 6)


def test_vulnerable_transitive_dependency_points_at_pyproject(
    tmp_path: Path, local_index: LocalIndex, osv_standin: OsvStandIn
) -> None:
    local_index("requests", "2.32.3", ["idna<4,>=2.5"])
    local_index("idna", "3.6")
    root = make_project(tmp_path / "p", ["requests"])
    result = check_dependency_audit(context(root, osv_standin))
    assert result.status == "fail"
    (finding,) = result.findings
    assert (finding.file, finding.line) == ("pyproject.toml", None)


def test_allow_listed_vulnerability_passes_with_the_reason(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn
) -> None:
    allow = (
        'audit-allow = [{ id = "CVE-2024-3651", reason = "only ASCII hostnames", '
        "expires = 2027-03-31 }]\n"
    )
    root = make_project(tmp_path / "p", ["idna==3.6"], allow)
    result = check_dependency_audit(context(root, osv_standin))
    assert result.status == "pass"
    assert "only ASCII hostnames, until 2027-03-31" in result.reason
    assert result.findings == []


def test_expired_allow_list_entry_fails_pointing_at_its_line(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn
) -> None:
    allow = (
        "audit-allow = [\n"
        '  { id = "GHSA-jjg7-2v4v-x38h", reason = "only ASCII", expires = 2026-11-01 },\n'
        "]\n"
    )
    root = make_project(tmp_path / "p", ["idna==3.6"], allow)
    result = check_dependency_audit(context(root, osv_standin))
    assert result.status == "fail"
    expired = next(f for f in result.findings if "expired on 2026-11-01" in f.message)
    assert (expired.file, expired.line) == ("pyproject.toml", 10)
    vulnerable = next(f for f in result.findings if "idna 3.6" in f.message)
    assert (vulnerable.file, vulnerable.line) == ("pyproject.toml", 5)


def test_osv_down_fails_the_check(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "1")
    osv_standin.set_failing(True)
    root = make_project(tmp_path / "p", ["idna==3.7"])
    result = check_dependency_audit(context(root, osv_standin))
    assert result.status == "fail"
    assert "audit failed" in result.reason
    assert result.findings and "still failing" in result.findings[0].message


def test_osv_url_from_config_is_used(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn
) -> None:
    root = make_project(tmp_path / "p", ["idna==3.6"], f'osv-url = "{osv_standin.query_url}"\n')
    result = check_dependency_audit(context(root, None))
    assert result.status == "fail"
    assert osv_standin.queries


def test_no_dependencies_pass_without_auditing(tmp_path: Path, osv_standin: OsvStandIn) -> None:
    root = make_project(tmp_path / "p", [])
    result = check_dependency_audit(context(root, osv_standin))
    assert (result.status, result.reason) == ("pass", "no runtime dependencies to audit")
    assert osv_standin.queries == []


def test_unresolvable_dependency_is_bad_input(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn
) -> None:
    root = make_project(tmp_path / "p", ["idna>=9"])
    with pytest.raises(InputError, match="resolving dependencies failed"):
        check_dependency_audit(context(root, osv_standin))
    assert osv_standin.queries == []


def test_cli_gate_with_an_unreachable_osv_names_the_url_and_the_setting(
    tmp_path: Path,
    index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0")
    with OsvStandIn() as gone:
        url = gone.query_url  # nothing listens there any more
    root = make_project(tmp_path / "p", ["idna==3.7"], 'previous-tag = "v1.1.0"\n')
    code, report = run_gate_cli(root, "--osv-url", url)
    assert code == 1
    check = report_rows(report)["dependency-audit"]
    assert check["status"] == "fail"
    (finding,) = check["findings"]
    message = finding["message"]
    assert f"cannot reach the vulnerability service at {url} (connection refused)" in message
    assert "set osv-url ([tool.upm-release] osv-url, --osv-url or UPM_OSV_URL)" in message
    err = capsys.readouterr().err
    for internal in ("_TransientAuditError", "_AuditFailed", "ConnectionError", "Traceback"):
        assert internal not in message and internal not in err


def test_cli_gate_reports_the_vulnerability(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "p", ["idna==3.6"], 'previous-tag = "v1.1.0"\n')
    code, report = run_gate_cli(root, "--osv-url", osv_standin.query_url)
    assert code == 1
    check = report_rows(report)["dependency-audit"]
    assert check["status"] == "fail"
    assert check["findings"][0]["line"] == 5
    assert "GHSA-jjg7-2v4v-x38h" in check["findings"][0]["message"]
    assert "dependency-audit" in capsys.readouterr().err


def test_cli_gate_unresolvable_dependency_exits_2_writing_nothing(
    tmp_path: Path, index: LocalIndex, osv_standin: OsvStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "p", ["idna>=9"], 'previous-tag = "v1.1.0"\n')
    code, report = run_gate_cli(root, "--osv-url", osv_standin.query_url)
    err = capsys.readouterr().err
    assert code == 2
    assert "resolving dependencies failed" in err and "Traceback" not in err
    assert not report.exists() and not (root / "release-manifest.json").exists()
