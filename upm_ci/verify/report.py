"""The verify report: one entry per file, one status per check, and its JSON form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from upm_ci.manifest import write_json_atomic

SCHEMA = "upm-release/verify-report/v1"

PASS, FAIL, WARN = "pass", "fail", "warn"


@dataclass
class Check:
    """One check of one file: ``pass``, ``fail`` or ``warn`` (reported, not failing)."""

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
    def passed(self) -> bool:
        return bool(self.checks) and all(c.status != FAIL for c in self.checks)

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
        return bool(self.artifacts) and all(a.passed for a in self.artifacts)

    def failures(self) -> list[tuple[str, Check]]:
        """(artifact name, failed check), in report order."""
        return [(a.name, c) for a in self.artifacts for c in a.checks if c.status == FAIL]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "passed": self.passed,
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
