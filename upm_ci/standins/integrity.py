"""PyPI's Integrity API (PEP 740) for the PyPI stand-in: real provenance, signed locally.

``GET /integrity/<project>/<version>/<filename>/provenance`` answers a PEP 740 provenance
object, ``{"version": 1, "attestation_bundles": [{"publisher": {...}, "attestations": [...]}]}``,
or 404 when the file has none, as PyPI does. The attestations are real: each is made with
pypi-attestations' ``Attestation.sign`` through the local Sigstore stand-in, with an ID token
minted for the package's own publisher (its repository and workflow), so the certificate says
what a Trusted Publisher's would. Only a file's name and sha256 are needed to attest it, so the
index serves provenance for files it does not host (the ones pip resolves elsewhere).

The switches the rules need: :meth:`IntegrityStore.drop` (provenance disappears),
:meth:`IntegrityStore.resign` (another publisher signs it), :meth:`IntegrityStore.put_raw`
(any body: malformed, or another file's provenance) and ``latency`` (seconds every answer
waits, for benchmarks). :meth:`IntegrityStore.hold` makes answers wait until what is being
signed is served (:meth:`IntegrityStore.release`), so signing need not delay the index's start.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig

_PATH = re.compile(r"^/integrity/([^/]+)/([^/]+)/([^/]+)/provenance/?$")


@dataclass(frozen=True)
class DemoPublisher:
    """A GitHub Trusted Publisher: who uploads a package (``workflow`` is a file name)."""

    repository: str
    workflow: str = "release.yml"
    environment: str | None = "pypi"

    def as_json(self) -> dict[str, str | None]:
        return {
            "kind": "GitHub",
            "repository": self.repository,
            "workflow": self.workflow,
            "environment": self.environment,
        }


#: The example's dependencies and who publishes them on the stand-in (one publisher each);
#: any other package the stand-in is asked about has no provenance.
DEMO_PUBLISHERS = {
    "packaging": DemoPublisher("pypa/packaging", "release.yml", "pypi"),
    "idna": DemoPublisher("kjd/idna", "deploy.yml", "pypi"),
}


@dataclass(frozen=True)
class _Served:
    project: str
    version: str
    sha256: str
    body: bytes


def attest(
    filename: str, sha256: str, publisher: DemoPublisher, trust_config: ClientTrustConfig
) -> str:
    """A PEP 740 provenance JSON for one file, signed as ``publisher`` through the trust
    config's Fulcio and Rekor v1 log (the attestation format keeps no TSA timestamp)."""
    from pypi_attestations import (
        Attestation,
        AttestationBundle,
        Distribution,
        GitHubPublisher,
        Provenance,
    )
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    from upm_ci.standins.oidc import mint_github_token

    v1 = copy.copy(trust_config)
    v1.force_tlog_version = 1
    context = SigningContext.from_trust_config(v1)
    token = mint_github_token(
        repository=publisher.repository,
        workflow_path=f".github/workflows/{publisher.workflow}",
        ref="refs/tags/release",
        environment=publisher.environment,
    )
    with context.signer(IdentityToken(token)) as signer:
        attestation = Attestation.sign(signer, Distribution(name=filename, digest=sha256))
    provenance = Provenance(
        attestation_bundles=[
            AttestationBundle(
                publisher=GitHubPublisher(
                    repository=publisher.repository,
                    workflow=publisher.workflow,
                    environment=publisher.environment,
                ),
                attestations=[attestation],
            )
        ]
    )
    return provenance.model_dump_json()


class IntegrityStore:
    """What the stand-in's Integrity API serves, by file name (thread-safe)."""

    def __init__(self) -> None:
        self._files: dict[str, _Served] = {}
        self._lock = threading.Lock()
        self.trust_config: ClientTrustConfig | None = None
        #: Seconds every Integrity API answer waits (a slow index, for benchmarks).
        self.latency = 0.0
        self.requests = 0
        self._released = threading.Event()
        self._released.set()

    #: How long an answer waits for :meth:`release` before it is a 503 (the client retries).
    HOLD_SECONDS = 300.0

    def hold(self) -> None:
        """Answers wait until :meth:`release`: provenance is still being signed."""
        self._released.clear()

    def release(self) -> None:
        """Answer again, with whatever is served now."""
        self._released.set()

    def publish(
        self,
        project: str,
        version: str,
        filename: str,
        sha256: str,
        publisher: DemoPublisher,
    ) -> None:
        """Serve provenance for ``filename`` (sha256 ``sha256``) signed by ``publisher``."""
        if self.trust_config is None:
            raise RuntimeError("IntegrityStore.trust_config is not set (the local Sigstore's)")
        body = attest(filename, sha256, publisher, self.trust_config).encode()
        self.put_raw(project, version, filename, sha256, body)

    def put_raw(self, project: str, version: str, filename: str, sha256: str, body: bytes) -> None:
        """Serve ``body`` as ``filename``'s provenance, whatever it is."""
        with self._lock:
            self._files[filename] = _Served(_norm(project), version, sha256, body)

    def resign(self, filename: str, publisher: DemoPublisher) -> None:
        """The switch for a hijacked release: ``filename`` is now signed by ``publisher``."""
        served = self._served(filename)
        self.publish(served.project, served.version, filename, served.sha256, publisher)

    def drop(self, filename: str) -> None:
        """The switch for vanished provenance: ``filename`` now answers 404."""
        with self._lock:
            self._files.pop(filename, None)

    def body(self, filename: str) -> bytes:
        return self._served(filename).body

    def _served(self, filename: str) -> _Served:
        with self._lock:
            if filename not in self._files:
                raise KeyError(f"the stand-in serves no provenance for {filename}")
            return self._files[filename]

    def answer(self, method: str, path: str) -> tuple[int, str, bytes] | None:
        """The Integrity API's answer to a request, or None when it is not for it."""
        match = _PATH.match(path.split("?", 1)[0])
        if match is None or method not in ("GET", "HEAD"):
            return None
        with self._lock:
            self.requests += 1
        if not self._released.wait(self.HOLD_SECONDS):
            detail = json.dumps({"message": "provenance is still being signed"}).encode()
            return 503, "application/json", detail
        if self.latency:
            time.sleep(self.latency)
        project, version, filename = (unquote(part) for part in match.groups())
        with self._lock:
            served = self._files.get(filename)
        if served is None or served.project != _norm(project) or served.version != version:
            detail = json.dumps({"message": "No provenance available"}).encode()
            return 404, "application/json", detail
        return 200, "application/vnd.pypi.integrity.v1+json", served.body


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


__all__ = ["DEMO_PUBLISHERS", "DemoPublisher", "IntegrityStore", "attest"]
