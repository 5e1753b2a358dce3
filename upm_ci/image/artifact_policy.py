"""The Artifact Trust Policy for container images in a registry (``upm-ci trust oci://REF``).

RELEASE.md's rows for registries, decided from what the registry holds next to the image
(its Sigstore bundle referrers, see :mod:`upm_ci.image.verify`):

- **Official Docker/Hub**: a bundle bound to the image digest that verifies for an official
  identity (the same ones as for files: ``upm_ci.identity.official_signers``) -> accepted;
- **Community (signed)**: bundles that verify, but only for other identities -> needs
  review, accepted once an approval record names the image digest (as for PyPI packages);
- **3rd-party unsigned**: no bundle that verifies for this digest -> blocked.

A tag is resolved to its digest once, and everything after is about that digest: the
decision names it, and an approval is for the digest, never for a tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from upm_ci.artifact_policy import (
    ACCEPTED,
    BLOCKED,
    ROW_UNSIGNED,
    Approval,
    TrustDecision,
    community_decision,
)
from upm_ci.errors import InputError, PolicyError
from upm_ci.identity import ExpectedSigner
from upm_ci.image.registry import OciRegistry, RegistryCredentials, parse_reference
from upm_ci.image.verify import inspect_image
from upm_ci.retry import RetryPolicy
from upm_ci.sigstore_common import (
    certificate_issuer,
    verification_policy,
    verify_bundle,
)

if TYPE_CHECKING:
    from sigstore.verify import Verifier

ROW_OFFICIAL_REGISTRY = "Official Docker/Hub"
SCHEME = "oci://"


def is_oci(target: str) -> bool:
    return target.startswith(SCHEME)


def evaluate_image(
    target: str,
    *,
    official: Sequence[ExpectedSigner],
    approvals: Sequence[Approval],
    verifier: Verifier,
    credentials: RegistryCredentials | None = None,
    retry: RetryPolicy | None = None,
) -> TrustDecision:
    """Place ``oci://HOST/NAME:TAG`` or ``oci://HOST/NAME@sha256:…`` in the policy table."""
    image = parse_reference(target, where=target)
    registry = OciRegistry(image.host, credentials, retry=retry)
    digest = image.digest
    if not digest:
        found = registry.get_manifest(image.name, image.tag or "latest")
        if found is None:
            raise InputError(f"{target}: no such image in the registry")
        digest = found[2]
    findings = inspect_image(
        image, digest, verifier=verifier, policy=None, credentials=credentials, retry=retry
    )
    name = f"{image.repository}@{digest}"
    hex_digest = digest.removeprefix("sha256:")
    if findings.manifest_problem:
        raise InputError(f"{target}: {findings.manifest_problem}")
    valid = [r for r in findings.referrers if r.valid]
    if not valid:
        problems = "; ".join(r.problem for r in findings.referrers if r.problem)
        reason = f"no valid Sigstore bundle for {digest}" + (f" ({problems})" if problems else "")
        return TrustDecision(name, hex_digest, "", ROW_UNSIGNED, BLOCKED, reason[:400])
    for referrer in valid:
        for policy in official:
            try:
                verify_bundle(
                    referrer.bundle,
                    verifier=verifier,
                    identity=policy.identity,
                    issuer=policy.issuer,
                    subject_sha256=hex_digest,
                    what=name,
                    policy=verification_policy(policy),
                )
            except PolicyError:
                continue
            return TrustDecision(
                name,
                hex_digest,
                ", ".join(referrer.signers),
                ROW_OFFICIAL_REGISTRY,
                ACCEPTED,
                f"{referrer.kind or 'bundle'} signed by official {policy.identity}",
            )
    first = valid[0]
    signer = f"{', '.join(first.signers)} ({certificate_issuer(first.bundle.signing_certificate)})"
    return community_decision(name, hex_digest, signer, approvals)
