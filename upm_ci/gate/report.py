"""The gate's report: RELEASE.md's Pre-Release Checklist with its Status column filled in.

The rows (order, Task, Who, Tool/Doc Reference) are the seed policy's own; the gate runs one
check per row in this order. The same report renders as a terminal table, as Markdown for the
job summary, and as versioned JSON for machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from upm_ci.gate.model import CheckResult
from upm_ci.tables import markdown_table, table

SCHEMA = "upm-release/gate-report/v1"
HEADERS = ["Task", "Who", "Tool/Doc Reference", "Status"]


@dataclass(frozen=True)
class ChecklistRow:
    """One row of RELEASE.md's checklist and the id of the check that fills it in."""

    id: str
    task: str
    who: str
    reference: str


CHECKLIST = [
    ChecklistRow(
        "tests",
        "All tests (unit/integration/sec)",
        "Developer, Reviewer",
        "`pytest`, `CONTRIBUTING.md`",
    ),
    ChecklistRow(
        "plugin-sandbox",
        "Plugin sandbox/process isolation",
        "Developer, Reviewer",
        "`PLUGINS.md`, `CONTRIBUTING.md`",
    ),
    ChecklistRow(
        "plugin-entrypoint", "All plugins: entrypoint present", "Developer", "`PLUGINS.md`"
    ),
    ChecklistRow("code-review", "Code review (security, style)", "Reviewer, Lead", "`SECURITY.md`"),
    ChecklistRow("docs", "Docs updated", "Developer, Reviewer", "See docs below"),
    ChecklistRow(
        "dependency-audit", "Dependency/SBOM audit", "DevOps, Security", "`pip-audit`, `syft`"
    ),
    ChecklistRow(
        "dependency-provenance",
        "Dependency provenance (PEP 740)",
        "DevOps, Security",
        "Artifact Trust Policy, `upm-provenance.json`",
    ),
    ChecklistRow(
        "version-bump", "Version bump in manifests", "Developer", "`pyproject.toml`, `CHANGELOG.md`"
    ),
]
_ROWS = {row.id: row for row in CHECKLIST}


def task_of(check_id: str) -> str:
    """The checklist's Task text for a check id."""
    return _ROWS[check_id].task


@dataclass
class GateReport:
    """All checks of one gate run; ``passed`` only when no check fails (fail closed)."""

    project: str
    version: str
    tag: str
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not any(check.blocks for check in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [check for check in self.checks if check.blocks]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "passed": self.passed,
            "project": self.project,
            "version": self.version,
            "tag": self.tag,
            "checks": [
                {
                    "id": check.id,
                    "task": check.task,
                    "status": check.status,
                    "reason": check.reason,
                    "findings": [
                        {"message": f.message, "file": f.file, "line": f.line}
                        for f in check.findings
                    ],
                }
                for check in self.checks
            ],
        }


def status_text(check: CheckResult) -> str:
    """The Status cell: ``pass``, ``fail: reason``, ``warn: ...``, ``skipped: ...``."""
    if check.status == "pass":
        return "pass"
    return f"{check.status}: {check.reason}"


def _rows(report: GateReport) -> list[list[str]]:
    rows = []
    for check in report.checks:
        row = _ROWS.get(check.id, ChecklistRow(check.id, check.task, "", ""))
        rows.append([row.task, row.who, row.reference, status_text(check)])
    return rows


def render_text(report: GateReport) -> str:
    """The filled-in checklist as a plain terminal table, with a verdict line; a Status too
    long for the terminal is shown whole below its row."""
    verdict = "passed" if report.passed else f"BLOCKED ({len(report.failed)} failed)"
    head = f"Release gate for {report.project} {report.version} ({report.tag}): {verdict}"
    return f"{head}\n\n{table(HEADERS, _rows(report))}"


def render_markdown(report: GateReport) -> str:
    """The filled-in checklist as Markdown for the job summary, findings listed below it."""
    verdict = "passed ✅" if report.passed else "blocked ❌"
    out = [
        f"## Release gate: {report.project} {report.version} (`{report.tag}`) {verdict}",
        "",
        markdown_table(HEADERS, _rows(report)),
    ]
    for check in report.checks:
        if check.status in ("fail", "warn") and check.findings:
            out += ["", f"### {check.task}: {check.status}", ""]
            for finding in check.findings:
                where = _where(finding.file, finding.line)
                first, *rest = finding.message.splitlines() or [""]
                out.append(f"- {where}{first}")
                if rest:
                    out += ["", "  ```", *(f"  {line}" for line in rest), "  ```"]
    return "\n".join(out)


def _where(file: str | None, line: int | None) -> str:
    if not file:
        return ""
    return f"`{file}:{line}`: " if line else f"`{file}`: "
