"""The verify report: one entry per file, one status per check, and its JSON form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from upm_ci.manifest import write_json_atomic

SCHEMA = "upm-release/verify-report/v1"

PASS, FAIL, WARN = "pass", "fail", "warn"
#: A check that could not run where the consumer did not ask for it (the pipeline's own
#: read-back of the audit log in S3, without access to the bucket): never a pass, reported
#: beside the verdict of what was checked.
NOT_CHECKED = "not-checked"


@dataclass
class Check:
    """One check of one file: ``pass``, ``fail``, ``warn`` (reported, not failing) or
    ``not-checked`` (could not run; never counts as a pass)."""

    check: str
    status: str
    reason: str


@dataclass
class ArtifactReport:
    """Everything checked about one file of the release."""

    name: str
    sha256: str
    checks: list[Check] = field(default_factory=list)

    @property
    def checked(self) -> bool:
        """True when at least one check ran (a row of only not-checked items did not)."""
        return any(c.status != NOT_CHECKED for c in self.checks)

    @property
    def passed(self) -> bool:
        return self.checked and all(c.status != FAIL for c in self.checks)

    def add(self, check: str, status: str, reason: str) -> None:
        self.checks.append(Check(check, status, reason))


@dataclass
class VerifyReport:
    """The verdict over a release directory."""

    policy: dict[str, str]
    artifacts: list[ArtifactReport]
    directory: str = ""

    @property
    def passed(self) -> bool:
        """Everything that was checked passed (at least one file was): items that could not
        be checked are not part of this verdict, and :meth:`not_checked` lists them."""
        checked = [a for a in self.artifacts if a.checked]
        return bool(checked) and all(a.passed for a in checked)

    def failures(self) -> list[tuple[str, Check]]:
        """(artifact name, failed check), in report order."""
        return [(a.name, c) for a in self.artifacts for c in a.checks if c.status == FAIL]

    def not_checked(self) -> list[tuple[str, Check]]:
        """(artifact name, check that could not run), in report order."""
        return [(a.name, c) for a in self.artifacts for c in a.checks if c.status == NOT_CHECKED]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "passed": self.passed,
            "not_checked": [f"{name}: {c.check}" for name, c in self.not_checked()],
            "policy": self.policy,
            "directory": self.directory,
            "artifacts": [
                {
                    "name": a.name,
                    "sha256": a.sha256,
                    "checks": [asdict(c) for c in a.checks],
                    "passed": a.passed,
                }
                for a in self.artifacts
            ],
        }

    def write(self, path: Path) -> Path:
        """Write the JSON report atomically."""
        write_json_atomic(path, self.to_json())
        return path
