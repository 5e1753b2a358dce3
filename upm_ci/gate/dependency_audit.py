"""Checklist row "Dependency/SBOM audit": no known vulnerability in the runtime dependencies.

The project's ``[project] dependencies`` are resolved to the exact pins pip would install (one
resolution, shared with the ``dependency-provenance`` row: ``GateContext.resolution``), and
those pins are audited with :func:`upm_ci.vulnerability_audit.audit_packages` (pip-audit
against OSV, fail closed). Allowed vulnerabilities come from ``audit-allow``; an expired entry
fails. Findings point at the line of ``pyproject.toml`` to change: the dependency that pulls in
a vulnerable package when it is a direct one, the allow-list entry when it expired.
"""

from __future__ import annotations

import logging
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from upm_ci.errors import ServiceError
from upm_ci.gate.model import CheckResult, Finding, GateContext, Status
from upm_ci.vulnerability_audit import (
    AuditOutcome,
    audit_packages,
    runtime_requirements,
)

log = logging.getLogger(__name__)

ID = "dependency-audit"
TASK = "Dependency/SBOM audit"


def check_dependency_audit(ctx: GateContext) -> CheckResult:
    """Resolve, audit, and report every un-allowed vulnerability, expiry and unchecked pin."""
    project = ctx.project
    pyproject = project.root / "pyproject.toml"
    requirements = runtime_requirements(project.pyproject, source=str(pyproject))
    if not requirements:
        return CheckResult(ID, TASK, "pass", "no runtime dependencies to audit")
    try:
        pins = ctx.resolution.pins(requirements)
    except ServiceError as e:
        return CheckResult(ID, TASK, "fail", f"could not resolve the dependencies: {e}")
    log.info("auditing %d resolved runtime dependencies", len(pins))
    outcome = audit_packages(
        pins,
        osv_url=ctx.osv_url or project.config.osv_url,
        allow=project.config.audit_allow,
        today=ctx.today,
    )
    status: Status = "pass" if outcome.passed else "fail"
    text = pyproject.read_text(encoding="utf-8")
    return CheckResult(ID, TASK, status, outcome.summary(), _findings(outcome, text))


def _findings(outcome: AuditOutcome, pyproject_text: str) -> list[Finding]:
    lines = pyproject_text.splitlines()
    findings = [
        Finding(
            f"{vuln.describe()}: upgrade it or allow-list it in audit-allow",
            "pyproject.toml",
            _dependency_line(lines, vuln.package),
        )
        for vuln in outcome.blocking
    ]
    findings += [
        Finding(
            f"audit-allow entry {entry.id} expired on {entry.expires.isoformat()}: "
            "remove it, or renew it with a new date and reason",
            "pyproject.toml",
            _allowance_line(lines, entry.id),
        )
        for entry in outcome.expired
    ]
    findings += [
        Finding(f"{skip.name} could not be checked: {skip.reason}") for skip in outcome.skipped
    ]
    findings += [Finding(problem) for problem in outcome.problems]
    return findings


def _dependency_line(lines: list[str], package: str) -> int | None:
    """The line of ``[project] dependencies`` naming ``package``; None for transitive ones."""
    wanted = canonicalize_name(package)
    in_project = False
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_project = stripped == "[project]"
        if not in_project:
            continue
        for quoted in re.findall(r"[\"']([^\"']+)[\"']", line):
            try:
                if canonicalize_name(Requirement(quoted).name) == wanted:
                    return number
            except ValueError:
                continue
    return None


def _allowance_line(lines: list[str], entry_id: str) -> int | None:
    pattern = re.compile(r"\bid\s*=\s*[\"']" + re.escape(entry_id) + r"[\"']")
    return next((n for n, line in enumerate(lines, start=1) if pattern.search(line)), None)
