"""The shared vulnerability audit: real pip-audit against the OSV stand-in, fail closed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from upm_ci import audit
from upm_ci.audit import PipAuditRun, audit_packages, resolve_pins, runtime_requirements
from upm_ci.config import AuditAllowance
from upm_ci.errors import InputError
from upm_ci.standins.osv import OsvStandIn

TODAY = dt.date(2026, 11, 26)
IDNA_GHSA = "GHSA-jjg7-2v4v-x38h"


def allowance(vuln_id: str, expires: dt.date = dt.date(2027, 1, 31)) -> AuditAllowance:
    return AuditAllowance(id=vuln_id, reason="encode() never sees user input", expires=expires)


def test_clean_pins_pass_and_exactly_those_pins_are_queried(osv_standin: OsvStandIn) -> None:
    pins = [("idna", "3.7"), ("requests", "2.32.3"), ("Jinja2", "3.1.4")]
    outcome = audit_packages(pins, osv_url=osv_standin.query_url, allow=[], today=TODAY)
    assert outcome.passed, outcome.summary()
    assert outcome.vulnerabilities == [] and outcome.skipped == [] and outcome.problems == []
    assert sorted((q.name.lower(), q.version) for q in osv_standin.queries) == sorted(
        (n.lower(), v) for n, v in pins
    )
    assert outcome.summary() == "no known vulnerabilities in 3 packages"


def test_a_vulnerable_pin_fails_naming_id_and_package(osv_standin: OsvStandIn) -> None:
    outcome = audit_packages(
        [("idna", "3.6"), ("requests", "2.32.3")],
        osv_url=osv_standin.query_url,
        allow=[],
        today=TODAY,
    )
    assert not outcome.passed
    (vuln,) = outcome.blocking
    assert (vuln.package, vuln.version, vuln.fix_versions) == ("idna", "3.6", ("3.7",))
    assert IDNA_GHSA in vuln.ids and "CVE-2024-3651" in vuln.ids
    assert IDNA_GHSA in vuln.describe() and "idna 3.6" in vuln.describe()
    assert outcome.summary().startswith("1 vulnerabilities")


def test_fix_versions_below_the_pin_are_not_offered(osv_standin: OsvStandIn) -> None:
    """pip-audit reports only the first OSV range's fix (1.26.19) for urllib3 2.2.1."""
    outcome = audit_packages(
        [("urllib3", "2.2.1")], osv_url=osv_standin.query_url, allow=[], today=TODAY
    )
    (vuln,) = outcome.blocking
    assert vuln.fix_versions == ()
    assert "no later fixed version known" in vuln.describe()


def test_allow_listed_vulnerability_passes_with_its_reason(osv_standin: OsvStandIn) -> None:
    outcome = audit_packages(
        [("idna", "3.6")],
        osv_url=osv_standin.query_url,
        allow=[allowance("cve-2024-3651")],  # an alias, any case
        today=TODAY,
    )
    assert outcome.passed
    (vuln,) = outcome.allowed
    assert vuln.allowed_by is not None and vuln.allowed_by.id == "cve-2024-3651"
    assert "encode() never sees user input, until 2027-01-31" in outcome.summary()


def test_allowance_is_valid_through_its_expiry_day(osv_standin: OsvStandIn) -> None:
    outcome = audit_packages(
        [("idna", "3.6")],
        osv_url=osv_standin.query_url,
        allow=[allowance(IDNA_GHSA, TODAY)],
        today=TODAY,
    )
    assert outcome.passed


@pytest.mark.parametrize("pins", [[("idna", "3.6")], [("idna", "3.7")]], ids=["used", "unused"])
def test_expired_allowance_fails(osv_standin: OsvStandIn, pins: list[tuple[str, str]]) -> None:
    expired = allowance(IDNA_GHSA, dt.date(2026, 11, 25))
    outcome = audit_packages(pins, osv_url=osv_standin.query_url, allow=[expired], today=TODAY)
    assert not outcome.passed
    assert outcome.expired == [expired]
    assert all(v.allowed_by is None for v in outcome.vulnerabilities)
    assert "1 expired allow-list entries" in outcome.summary()


def test_osv_answering_503_fails_after_retries(
    osv_standin: OsvStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    osv_standin.set_failing(True)
    outcome = audit_packages(
        [("idna", "3.7")], osv_url=osv_standin.query_url, allow=[], today=TODAY
    )
    assert not outcome.passed
    assert "still failing after 2 attempts" in outcome.problems[0]
    assert outcome.summary().startswith("audit failed: vulnerability audit")


def test_osv_unreachable_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "1")
    with OsvStandIn() as gone:
        url = gone.query_url
    outcome = audit_packages([("idna", "3.7")], osv_url=url, allow=[], today=TODAY)
    assert not outcome.passed
    assert outcome.problems


def closed_port_url() -> str:
    """An OSV URL on 127.0.0.1 whose port nothing listens on (a stand-in, stopped)."""
    with OsvStandIn() as gone:
        return gone.query_url


def test_an_unreachable_service_names_its_url_and_the_osv_url_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0")
    url = closed_port_url()
    outcome = audit_packages([("idna", "3.7")], osv_url=url, allow=[], today=TODAY)
    (problem,) = outcome.problems
    assert problem == (
        "vulnerability audit: still failing after 2 attempts: cannot reach the vulnerability "
        f"service at {url} (connection refused); if that address is wrong or blocked from "
        "here, set osv-url ([tool.upm-release] osv-url, --osv-url or UPM_OSV_URL) to a "
        "reachable OSV API"
    )
    for internal in ("Error", "Unavailable", "_", "HTTPConnectionPool", "Traceback"):
        assert internal not in problem.replace(url, "").replace("UPM_OSV_URL", "")


def test_a_service_answering_5xx_names_its_url_and_the_osv_url_setting(
    osv_standin: OsvStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "1")
    osv_standin.set_failing(True)
    url = osv_standin.query_url
    outcome = audit_packages([("idna", "3.7")], osv_url=url, allow=[], today=TODAY)
    (problem,) = outcome.problems
    assert f"the vulnerability service at {url} answered HTTP 5" in problem
    assert "--osv-url or UPM_OSV_URL" in problem
    assert "Unavailable" not in problem and "Error" not in problem


def test_transient_osv_outage_is_retried(osv_standin: OsvStandIn) -> None:
    osv_standin.fail_next(1)
    outcome = audit_packages(
        [("idna", "3.6")], osv_url=osv_standin.query_url, allow=[], today=TODAY
    )
    assert not outcome.problems
    assert [v.package for v in outcome.blocking] == ["idna"]


def run_with(
    report: dict[str, object] | None, returncode: int = 0, stderr: str = ""
) -> PipAuditRun:
    return PipAuditRun(returncode=returncode, report=report, stderr=stderr)


def test_a_package_pip_audit_skipped_fails(mocker: MockerFixture) -> None:
    """The trap: pip-audit exits 0 with 'No known vulnerabilities' having checked nothing."""
    fake = mocker.patch.object(audit, "run_pip_audit", autospec=True)
    fake.return_value = run_with(
        {"dependencies": [{"name": "idna", "skip_reason": "Dependency not found on PyPI"}]}
    )
    outcome = audit_packages([("idna", "3.7")], osv_url="http://x/v1/query", allow=[], today=TODAY)
    assert not outcome.passed
    assert [(s.name, s.reason) for s in outcome.skipped] == [
        ("idna", "Dependency not found on PyPI")
    ]


def test_a_pin_missing_from_the_report_counts_as_unchecked(mocker: MockerFixture) -> None:
    fake = mocker.patch.object(audit, "run_pip_audit", autospec=True)
    fake.return_value = run_with(
        {"dependencies": [{"name": "idna", "version": "3.7", "vulns": []}]}
    )
    outcome = audit_packages(
        [("idna", "3.7"), ("six", "1.16.0")], osv_url="", allow=[], today=TODAY
    )
    assert not outcome.passed
    assert [s.name for s in outcome.skipped] == ["six"]
    # pip-audit never talks to OSV itself: it asks the audit's bounded proxy on 127.0.0.1.
    assert fake.call_args.kwargs["osv_url"].startswith("http://127.0.0.1:")


def test_pip_audit_crash_is_not_retried_and_fails(mocker: MockerFixture) -> None:
    fake = mocker.patch.object(audit, "run_pip_audit", autospec=True)
    fake.return_value = run_with(None, 1, "ERROR: requirement idna is not pinned\n")
    outcome = audit_packages([("idna", "3.7")], osv_url="", allow=[], today=TODAY)
    assert not outcome.passed
    assert outcome.problems == ["pip-audit failed (exit 1): ERROR: requirement idna is not pinned"]
    assert fake.call_count == 1


def test_no_packages_pass_without_running_pip_audit(mocker: MockerFixture) -> None:
    fake = mocker.patch.object(audit, "run_pip_audit", autospec=True)
    assert audit_packages([], osv_url="", allow=[], today=TODAY).passed
    fake.assert_not_called()


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        ([("idna", "three")], "'three' is not a PEP 440 version"),
        ([("not a name", "1.0")], "is not a valid package name"),
        ([("idna", "3.6"), ("IDNA", "3.7")], "pinned twice"),
    ],
)
def test_bad_pins_are_input_errors(pins: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(InputError, match=message):
        audit_packages(pins, osv_url="", allow=[], today=TODAY)


def test_resolve_pins_returns_the_full_closure(local_index: Callable[..., Path]) -> None:
    local_index("idna", "3.6")
    local_index("idna", "3.7")
    local_index("requests", "2.32.3", ["idna<4,>=2.5", "certifi>=2017.4.17"])
    local_index("certifi", "2024.8.30")
    pins = resolve_pins(["requests>=2.32", "idna<3.7"])
    assert sorted(pins) == [("certifi", "2024.8.30"), ("idna", "3.6"), ("requests", "2.32.3")]


def test_resolve_pins_names_an_unresolvable_requirement(local_index: Callable[..., Path]) -> None:
    local_index("idna", "3.7")
    with pytest.raises(InputError, match="resolving dependencies failed: .*nosuchpkg"):
        resolve_pins(["nosuchpkg>=1"])


def test_runtime_requirements_reads_static_dependencies(tmp_path: Path) -> None:
    data = {"project": {"name": "x", "dependencies": ["idna>=3", "requests"]}}
    assert runtime_requirements(data, source="p.toml") == ["idna>=3", "requests"]
    with pytest.raises(InputError, match="p.toml: \\[project\\] dependencies is dynamic"):
        runtime_requirements({"project": {"dynamic": ["dependencies"]}}, source="p.toml")
    with pytest.raises(InputError, match="p.toml: \\[project\\] dependencies: 'idna >>= 3'"):
        runtime_requirements({"project": {"dependencies": ["idna >>= 3"]}}, source="p.toml")


def test_a_fix_version_that_is_not_pep440_is_kept_not_a_crash() -> None:
    from upm_ci.audit import _later_fixes

    assert _later_fixes(["1.0", "2.5", "2024-06-security"], "2.0") == ("2.5", "2024-06-security")
