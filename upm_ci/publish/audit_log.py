"""The publish audit log: one JSON line per step, attached to the release and signed.

The ledger in the manifest lets a killed run resume; the audit log is the record a reader of
the release gets: what was published where, with which digest, when, by which workflow run.
It is appended to (a resumed run adds its own lines under its own run id), so the history of
every attempt stays in it.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from upm_ci.manifest import utcnow


def run_id() -> str:
    """``GITHUB_RUN_ID.GITHUB_RUN_ATTEMPT``, or ``local`` outside GitHub Actions."""
    run = os.environ.get("GITHUB_RUN_ID", "")
    attempt = os.environ.get("GITHUB_RUN_ATTEMPT", "")
    if not run:
        return "local"
    return f"{run}.{attempt}" if attempt else run


def audit_log_name(name: str, version: str) -> str:
    return f"{name}-{version}.audit.jsonl"


@dataclass
class AuditLog:
    """Appends one flushed JSON line per :meth:`record`; safe to call from worker threads."""

    path: Path
    run: str = field(default_factory=run_id)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, what: str, where: str, item: str, sha256: str = "", url: str = "") -> None:
        entry = {
            "what": what,
            "where": where,
            "item": item,
            "sha256": sha256,
            "url": url,
            "at": utcnow(),
            "run_id": self.run,
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())

    def entries(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
