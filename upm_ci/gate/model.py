"""What a gate check is: a function from :class:`GateContext` to :class:`CheckResult`.

The gate runs one check per row of RELEASE.md's Pre-Release Checklist; each check is a plain
function in its own module of this package, so a row of the policy maps to one file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from upm_ci.project import Project
from upm_ci.vulnerability_audit import SharedResolution

#: ``n/a``: the row does not apply to this project (``plugins = []``: it has no plugins).
Status = Literal["pass", "fail", "warn", "skipped", "n/a"]


@dataclass(frozen=True)
class Finding:
    """One thing a check found, with the place to fix it when there is one."""

    message: str
    file: str | None = None
    line: int | None = None


@dataclass
class CheckResult:
    """The outcome of one checklist row. ``reason`` is the one-line Status text."""

    id: str
    task: str
    status: Status
    reason: str
    findings: list[Finding] = field(default_factory=list)
    #: Machine data the gate records with its phase in the manifest (not in the report).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> bool:
        """Fail closed: only pass, warn, skipped and n/a let a release through."""
        return self.status == "fail"


@dataclass(frozen=True)
class GitHubAccess:
    """Where and how to reach GitHub's REST API (or the local stand-in)."""

    api_url: str
    token: str
    repository: str


@dataclass
class GateContext:
    """Everything a check may look at. Built once by the gate runner."""

    project: Project
    tag: str
    work_dir: Path
    junit_xml: Path | None = None
    github: GitHubAccess | None = None
    osv_url: str = ""
    today: dt.date = field(default_factory=dt.date.today)
    #: Interpreter for test-command's ``python``; empty: a new venv (:mod:`upm_ci.gate.testenv`).
    test_python: str = ""
    #: The package index (simple URL) whose Integrity API serves the dependencies' provenance;
    #: empty: config ``pypi-index-url``.
    index_url: str = ""
    #: Sigstore trust config for the dependencies' attestations; None: public Sigstore.
    trust_config: Path | None = None
    #: The runtime dependencies' pip resolution, made once for the rows that need it.
    resolution: SharedResolution = field(default_factory=SharedResolution)


Check = Callable[[GateContext], CheckResult]
