"""RELEASE.md's "Artifact Trust Policy" table as a decision per artifact.

| Artifact/Source        | Accepted if Signed     | Manual Review | Blocked by Policy |
|------------------------|------------------------|---------------|-------------------|
| Official PyPI/Registry | Yes                    | No            | No                |
| 3rd-party unsigned     | No                     | N/A           | Yes               |
| Community (signed)     | Only with manual audit | Yes           | No (if passes)    |

Official means a valid Sigstore bundle from an official identity: this repository's release
workflow at any tag, upm-release's reusable workflow run for this repository, or one of config
``official-identities`` (each pinned to a repository: a reusable workflow's identity is the
same for every repository that calls it). A valid bundle from any other
identity is Community: ``needs-review`` until an approval record (the artifact's sha256, the
reviewer, the date, the reason) exists. No bundle, or a bundle that does not verify for this
artifact (a bad signature is no signature), is Blocked.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upm_ci.errors import InputError
from upm_ci.identity import ExpectedSigner
from upm_ci.layout import sha256_file
from upm_ci.sigstore_common import (
    certificate_identities,
    certificate_issuer,
    load_trusted_root,
    make_verifier,
    verification_policy,
)

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.verify import Verifier

ROW_OFFICIAL = "Official PyPI/Registry"
ROW_UNSIGNED = "3rd-party unsigned"
ROW_COMMUNITY = "Community (signed)"
ACCEPTED, NEEDS_REVIEW, BLOCKED = "accepted", "needs-review", "blocked"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Approval:
    """A reviewer's manual audit of one community-signed artifact, by digest."""

    sha256: str
    reviewer: str
    date: dt.date
    reason: str


@dataclass(frozen=True)
class TrustDecision:
    """Where an artifact falls in the policy table, and what that means for it."""

    artifact: str
    sha256: str
    signer: str
    row: str
    decision: str
    reason: str

    @property
    def accepted(self) -> bool:
        return self.decision == ACCEPTED


def load_approvals(path: Path, *, required: bool) -> list[Approval]:
    """Read approval records: a JSON list of {sha256, reviewer, date, reason}."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise InputError(f"{path}: approvals file not found") from None
        return []
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(f"{path}: approvals are not valid JSON: {e}") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the approvals ({e.strerror or e})") from None
    if isinstance(raw, dict) and "approvals" in raw:
        raw = raw["approvals"]
    if not isinstance(raw, list):
        raise InputError(f"{path}: expected a JSON list of approval records")
    return [_approval(item, f"{path}: approval [{i}]") for i, item in enumerate(raw)]


def _approval(item: Any, where: str) -> Approval:
    hint = 'e.g. {"sha256": "<64 hex>", "reviewer": "bob", "date": "2026-11-01", "reason": "..."}'
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object", hint=hint)
    missing = [k for k in ("sha256", "reviewer", "date", "reason") if not item.get(k)]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)}", hint=hint)
    digest = str(item["sha256"]).lower().removeprefix("sha256:")
    if not _SHA256.match(digest):
        raise InputError(f"{where}.sha256: {item['sha256']!r} is not a sha256 hex digest")
    try:
        date = dt.date.fromisoformat(str(item["date"]))
    except ValueError:
        raise InputError(f"{where}.date: {item['date']!r} is not a YYYY-MM-DD date") from None
    return Approval(digest, str(item["reviewer"]), date, str(item["reason"]))


REPORT_SCHEMA = "upm-release/trust-report/v1"


def report_json(decisions: Sequence[TrustDecision]) -> dict[str, Any]:
    """The decisions as ``upm-ci trust --format json`` prints them."""
    return {
        "schema": REPORT_SCHEMA,
        "accepted": bool(decisions) and all(d.accepted for d in decisions),
        "decisions": [asdict(d) for d in decisions],
    }


class _AnyIdentity:
    """Accept any signer: used only to tell a community signature from a bad one; the
    identity is then shown to a human reviewer, never trusted by itself."""

    def verify(self, cert: Certificate) -> None:
        return None


def evaluate(
    artifact: Path,
    bundle: Path | None,
    *,
    official: Sequence[ExpectedSigner],
    approvals: Sequence[Approval],
    trust_config: Path | None,
    offline: bool = True,
    verifier: Verifier | None = None,
) -> TrustDecision:
    """Place ``artifact`` (signed by ``bundle``, or unsigned) in the trust policy table."""
    from sigstore.errors import VerificationError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore_models.common.v1 import HashAlgorithm

    if not artifact.is_file():
        raise InputError(f"{artifact}: artifact not found")
    digest = sha256_file(artifact)
    name = artifact.name
    if bundle is None:
        return TrustDecision(name, digest, "", ROW_UNSIGNED, BLOCKED, "no Sigstore bundle")
    if not bundle.is_file():
        raise InputError(f"{bundle}: bundle not found")
    if verifier is None:
        verifier = make_verifier(load_trusted_root(trust_config, offline=offline))
    try:
        parsed = Bundle.from_json(bundle.read_bytes())
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad signature
        reason = f"bad signature: {bundle.name} is not a valid bundle ({type(e).__name__})"
        return TrustDecision(name, digest, "", ROW_UNSIGNED, BLOCKED, reason)
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(digest))
    cert = parsed.signing_certificate
    signer = ", ".join(sorted(certificate_identities(cert)))
    for policy in official:
        try:
            verifier.verify_artifact(hashed, parsed, verification_policy(policy))
        except VerificationError:
            continue
        return TrustDecision(
            name, digest, signer, ROW_OFFICIAL, ACCEPTED, f"signed by official {policy.identity}"
        )
    try:
        verifier.verify_artifact(hashed, parsed, _AnyIdentity())
    except VerificationError as e:
        return TrustDecision(name, digest, signer, ROW_UNSIGNED, BLOCKED, f"bad signature: {e}")
    signer = f"{signer} ({certificate_issuer(cert)})"
    return community_decision(name, digest, signer, approvals)


def community_decision(
    artifact: str, sha256: str, signer: str, approvals: Sequence[Approval]
) -> TrustDecision:
    """The Community (signed) row: a valid signature from an identity that is not official
    needs review unless an approval record names the artifact's ``sha256`` (hex digest).

    Files (:func:`evaluate`) and images (``upm_ci.image.artifact_policy``) both decide here.
    """
    approval = next((a for a in approvals if a.sha256 == sha256), None)
    if approval is None:
        reason = "signed by a community identity: needs a manual audit (approval record)"
        return TrustDecision(artifact, sha256, signer, ROW_COMMUNITY, NEEDS_REVIEW, reason)
    reason = f"approved by {approval.reviewer} on {approval.date.isoformat()}: {approval.reason}"
    return TrustDecision(artifact, sha256, signer, ROW_COMMUNITY, ACCEPTED, reason)
