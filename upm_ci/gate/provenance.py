"""Checklist row "Dependency provenance (PEP 740)": the Artifact Trust Policy for every
runtime dependency the release ships (:mod:`upm_ci.dependency_provenance`).

Each dependency's file (by digest) must carry PEP 740 provenance from the publisher the
project's provenance lock records, or be an unsigned package the lock approves until a date.
The row lists each package with its publisher or the reason it is blocked. A malformed lock is
exit 2; an index that keeps failing is exit 3 (a ServiceError the gate lets through).
"""

from __future__ import annotations

import logging

from upm_ci.errors import ServiceError
from upm_ci.gate.model import CheckResult, Finding, GateContext, Status

log = logging.getLogger(__name__)

ID = "dependency-provenance"
TASK = "Dependency provenance (PEP 740)"


def check_dependency_provenance(ctx: GateContext) -> CheckResult:
    """Resolve the shipped files, fetch and verify their provenance, judge them by the lock."""
    from upm_ci import dependency_provenance as dp
    from upm_ci.sigstore_common import load_trusted_root, make_verifier

    project = ctx.project
    lock_name = project.config.provenance_lock
    lock_path = project.path(lock_name)
    lock = dp.load_lock(lock_path)
    try:
        files = dp.shipped_files(project, resolve=ctx.resolution.files)
    except ServiceError as e:
        return CheckResult(ID, TASK, "fail", f"could not resolve the dependencies: {e}")
    if not files:
        return CheckResult(ID, TASK, "pass", "no runtime dependencies")
    if not lock_path.is_file():
        # Nothing could pass without a lock (every publisher would be new): say what to run.
        names = ", ".join(f"{f.name} {f.version}" for f in files)
        reason = f"no {lock_name}: run upm-ci trust lock first to record the publishers of {names}"
        return CheckResult(ID, TASK, "fail", reason, [Finding(reason, lock_name)])
    log.info("checking the provenance of %d dependency files", len(files))
    verifier = make_verifier(load_trusted_root(ctx.trust_config, offline=False))
    fetcher = dp.ProvenanceFetcher(ctx.index_url or project.config.pypi_index_url, verifier)
    outcome = dp.check_files(files, lock, fetcher, today=ctx.today)
    findings = [Finding(verdict.line(), lock_name) for verdict in outcome.failing]
    status: Status = "pass" if outcome.passed else "fail"
    details = {"dependencies": [v.record() for v in outcome.verdicts]}
    return CheckResult(ID, TASK, status, outcome.summary(), findings, details)
