"""Provenance of 40 pinned files: the ``dependency-provenance`` check beside a hand loop.

The PyPI stand-in serves real PEP 740 provenance (signed through the local Sigstore, one
publisher per package) for 40 pinned wheels, each answer 50 ms late (an index across a
network). Ours: :func:`upm_ci.dependency_provenance.check_files` (fetch and verify in a thread
pool, then the lock's rules). Theirs: what a user would script, since pypi-attestations' CLI
cannot take a custom index or trust root: a sequential loop that fetches each file's provenance
with ``requests`` and verifies every attestation with pypi-attestations' models and sigstore's
verifier for the publisher it names, checking the subject is this file. Both sides run in the
same run against the same server; best of three after one untimed pass each.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from benchmarks._harness import BenchResult, timed
from upm_ci import dependency_provenance as dp
from upm_ci.sigstore_common import make_verifier
from upm_ci.standins.integrity import DemoPublisher
from upm_ci.standins.pypi import PypiStandIn
from upm_ci.standins.sigstore_server import SigstoreStandIn
from upm_ci.vulnerability_audit import ResolvedFile

FILES = 40
LATENCY = 0.05


def _files() -> list[tuple[ResolvedFile, DemoPublisher]]:
    out = []
    for i in range(FILES):
        name = f"dep{i:02d}"
        wheel = f"{name}-1.0-py3-none-any.whl"
        digest = hashlib.sha256(wheel.encode()).hexdigest()
        out.append((ResolvedFile(name, "1.0", wheel, digest), DemoPublisher(f"org{i}/{name}")))
    return out


def _hand_loop(base: str, files: list[ResolvedFile], verifier: object) -> int:
    """The user's script: requests + pypi-attestations + sigstore, one file after another."""
    import requests
    from pypi_attestations import GitHubPublisher, Provenance
    from sigstore.verify import policy

    verified = 0
    for file in files:
        url = f"{base}{file.name}/{file.version}/{file.filename}/provenance"
        response = requests.get(url, timeout=30)
        response.raise_for_status()
        provenance = Provenance.model_validate_json(response.content)
        for bundle in provenance.attestation_bundles:
            publisher = bundle.publisher
            if not isinstance(publisher, GitHubPublisher):
                raise AssertionError(f"{file.filename}: not a GitHub publisher")
            identity = policy.AllOf(
                [
                    policy.OIDCIssuerV2("https://token.actions.githubusercontent.com"),
                    policy.GitHubWorkflowRepository(publisher.repository),
                ]
            )
            for attestation in bundle.attestations:
                _, payload = verifier.verify_dsse(attestation.to_bundle(), identity)  # type: ignore[attr-defined]
                subject = json.loads(payload)["subject"][0]
                if (subject["name"], subject["digest"]["sha256"]) != (file.filename, file.sha256):
                    raise AssertionError(f"{file.filename}: attestation for another file")
                verified += 1
    return verified


def run() -> list[BenchResult]:
    with SigstoreStandIn() as sigstore, PypiStandIn(integrity=True) as pypi:
        pypi.integrity.trust_config = sigstore.trust_config()
        pinned = _files()
        for file, publisher in pinned:
            pypi.integrity.publish(file.name, file.version, file.filename, file.sha256, publisher)
        pypi.integrity.latency = LATENCY
        files = [file for file, _ in pinned]
        lock = dp.ProvenanceLock(Path(os.devnull))
        for file, publisher in pinned:
            seen = dp.Publisher("GitHub", publisher.repository, publisher.workflow, "pypi")
            lock.set(dp.LockEntry(file.name, seen, "2026-12-06T00:00:00Z", file.version))
        verifier = make_verifier(sigstore.trust_config().trusted_root)
        base = dp.integrity_base(pypi.simple_url)
        today = dt.date.today()

        def ours() -> None:
            fetcher = dp.ProvenanceFetcher(pypi.simple_url, verifier)
            outcome = dp.check_files(files, lock, fetcher, today=today)
            if not outcome.passed:
                raise AssertionError(outcome.summary())

        def theirs() -> None:
            if _hand_loop(base, files, verifier) != FILES:
                raise AssertionError("the hand loop did not verify every file")

        ours()
        theirs()
        t_ours = timed(ours, repeat=3)
        t_theirs = timed(theirs, repeat=3)
    return [
        BenchResult(
            name=f"provenance of {FILES} pinned files ({LATENCY * 1000:.0f} ms latency)",
            ours=t_ours,
            theirs=t_theirs,
            baseline="sequential requests + pypi-attestations loop",
            target=0.3,
            note=f"{os.cpu_count()} cores; {dp.DEFAULT_WORKERS} fetch+verify threads",
        )
    ]


if __name__ == "__main__":
    for result in run():
        print(result, f"ratio {result.ratio:.2f}")
