"""Verify an image from the registry: digest, tags, and its Sigstore referrers.

:func:`inspect_image` reads what the registry holds (the manifest at the digest, each tag,
each Sigstore bundle referrer found through the referrers API or the ``sha256-<hex>``
fallback index) and verifies every bundle cryptographically against the trust root with
sigstore-python's own ``Verifier``, noting who signed it and whether that identity satisfies
the release's :class:`~upm_ci.identity.ExpectedSigner`.

:func:`verify_image` turns that into one verify-report row (``ArtifactReport``):

- ``manifest``: the manifest at ``digest`` exists and hashes to it;
- ``tag <t>``: each tag resolves to that digest (a re-tagged image fails);
- ``signature``: a bundle over the digest by the release identity;
- ``provenance``: SLSA provenance by that identity, a subject bound to the digest;
- ``sbom-attestation``: a CycloneDX attestation by that identity bound to the digest whose
  SBOM names this image (an SBOM of another image fails).

An image with no referrer by the release identity fails every one of the last three.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upm_ci.errors import PolicyError, ServiceError, UpmError
from upm_ci.identity import ExpectedSigner
from upm_ci.image.registry import (
    SIGSTORE_BUNDLE,
    ImageName,
    OciRegistry,
    RegistryCredentials,
    find_referrers,
)
from upm_ci.image.release_assets import sbom_names_image
from upm_ci.manifest import ImageRecord
from upm_ci.provenance import CYCLONEDX_BOM, SLSA_PROVENANCE_V1
from upm_ci.retry import RetryPolicy
from upm_ci.sigstore_common import (
    certificate_identities,
    first_line,
    verification_policy,
    verify_bundle,
)
from upm_ci.verify.report import FAIL, PASS, WARN, ArtifactReport

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.verify import Verifier

log = logging.getLogger(__name__)

#: Largest bundle read from a registry (a real one is a few kilobytes; an SBOM attestation
#: carries the SBOM, so allow for large ones).
MAX_BUNDLE = 32 << 20
KINDS = ("signature", "provenance", "sbom-attestation")


@dataclass
class Referrer:
    """One Sigstore bundle found next to the image, and what it proved."""

    digest: str
    kind: str = ""  # signature, provenance, sbom-attestation, or another predicate type
    signers: list[str] = field(default_factory=list)
    official: bool = False  # verified for the release's identity policy
    valid: bool = False  # verified cryptographically (any identity)
    problem: str = ""
    bundle: Any = field(default=None, repr=False)  # the parsed sigstore Bundle, when valid


@dataclass
class ImageFindings:
    image: ImageName
    digest: str
    manifest_problem: str = ""
    tags: dict[str, str] = field(default_factory=dict)  # tag -> the digest it resolves to
    referrers: list[Referrer] = field(default_factory=list)

    def by_kind(self, kind: str) -> list[Referrer]:
        return [r for r in self.referrers if r.kind == kind]


def inspect_image(
    image: ImageName,
    digest: str,
    *,
    verifier: Verifier,
    policy: ExpectedSigner | None,
    tags: list[str] | None = None,
    credentials: RegistryCredentials | None = None,
    retry: RetryPolicy | None = None,
    sbom_record: ImageRecord | None = None,
) -> ImageFindings:
    """What the registry holds for ``image@digest`` (see the module docstring)."""
    registry = OciRegistry(image.host, credentials, retry=retry)
    found = ImageFindings(image, digest)
    stored = registry.get_manifest(image.name, digest)
    if stored is None:
        found.manifest_problem = f"no manifest {digest} in {image.repository}"
        return found
    if stored[2] != digest:
        found.manifest_problem = f"the manifest served for {digest} hashes to {stored[2]}"
        return found
    for tag in tags or []:
        at = registry.get_manifest(image.name, tag)
        found.tags[tag] = at[2] if at is not None else ""
    record = sbom_record or ImageRecord(ref=str(image), digest=digest)
    for descriptor in find_referrers(registry, image, digest):
        found.referrers.append(
            _check_referrer(registry, image, digest, descriptor, verifier, policy, record)
        )
    return found


def _check_referrer(
    registry: OciRegistry,
    image: ImageName,
    digest: str,
    descriptor: dict[str, Any],
    verifier: Verifier,
    policy: ExpectedSigner | None,
    record: ImageRecord,
) -> Referrer:
    from sigstore.models import Bundle

    referrer = Referrer(str(descriptor["digest"]))
    try:
        stored = registry.get_manifest(image.name, referrer.digest)
        if stored is None or stored[2] != referrer.digest:
            raise PolicyError("the referrer manifest is missing or does not hash to its digest")
        doc = json.loads(stored[0])
        if doc.get("subject", {}).get("digest") != digest:
            raise PolicyError("the referrer's subject is another manifest")
        layers = doc.get("layers") or []
        if len(layers) != 1 or layers[0].get("mediaType") != SIGSTORE_BUNDLE:
            raise PolicyError("the referrer does not hold exactly one Sigstore bundle")
        if int(layers[0].get("size", 0)) > MAX_BUNDLE:
            raise PolicyError(f"the bundle is over {MAX_BUNDLE} bytes")
        raw = registry.get_blob(image.name, str(layers[0]["digest"]), limit=MAX_BUNDLE)
        bundle = Bundle.from_json(raw.decode("utf-8"))
    except (ServiceError, PolicyError) as e:
        referrer.problem = first_line(e)
        return referrer
    except UpmError:
        raise
    except Exception as e:  # noqa: BLE001 - a malformed referrer or bundle is a finding
        referrer.problem = f"unreadable bundle: {first_line(e)}"
        return referrer
    hex_digest = digest.removeprefix("sha256:")
    referrer.signers = sorted(certificate_identities(bundle.signing_certificate))
    statement: dict[str, Any] | None = None
    official_problem = ""
    if policy is not None:
        try:
            statement = verify_bundle(
                bundle,
                verifier=verifier,
                identity=policy.identity,
                issuer=policy.issuer,
                subject_sha256=hex_digest,
                what=f"referrer {referrer.digest[:19]}",
                policy=verification_policy(policy),
            )
            referrer.official = referrer.valid = True
        except PolicyError as e:
            official_problem = str(e)
    if not referrer.valid:
        # Valid at all, for any identity? What trust needs for "community"; the identity is
        # then only shown (to a reviewer), never trusted by itself.
        try:
            statement = verify_bundle(
                bundle,
                verifier=verifier,
                identity="(any identity)",
                subject_sha256=hex_digest,
                what=f"referrer {referrer.digest[:19]}",
                policy=_AnyIdentity(),
            )
            referrer.valid = True
        except PolicyError as e:
            referrer.problem = str(e)
            return referrer
    referrer.bundle = bundle
    referrer.problem = official_problem
    if statement is None:
        referrer.kind = "signature"
    elif statement.get("predicateType") == SLSA_PROVENANCE_V1:
        referrer.kind = "provenance"
    elif statement.get("predicateType") == CYCLONEDX_BOM:
        referrer.kind = "sbom-attestation"
        if not sbom_names_image(statement.get("predicate"), record):
            referrer.problem = "the attested SBOM names neither this digest nor the image ID"
            referrer.official = referrer.valid = False
    else:
        referrer.kind = str(statement.get("predicateType", "unknown"))
    return referrer


class _AnyIdentity:
    """A sigstore verification policy that accepts any signer (the bundle, chain, log and
    timestamps are still verified). sigstore's ``UnsafeNoOp`` does the same but logs a
    warning on every use."""

    def verify(self, cert: Certificate) -> None:
        return None


def verify_image(
    record: ImageRecord,
    *,
    verifier: Verifier,
    policy: ExpectedSigner,
    credentials: RegistryCredentials | None = None,
    retry: RetryPolicy | None = None,
) -> ArtifactReport:
    """One verify-report row for an image of the manifest (see the module docstring)."""
    from upm_ci.image.registry import parse_reference

    image = parse_reference(record.repository or record.ref, where=f"images[{record.ref}]")
    report = ArtifactReport(
        f"{image.repository}@{record.digest}", record.digest.removeprefix("sha256:")
    )
    found = inspect_image(
        image,
        record.digest,
        verifier=verifier,
        policy=policy,
        tags=record.tags,
        credentials=credentials,
        retry=retry,
        sbom_record=record,
    )
    report_findings(report, found)
    return report


def report_findings(report: ArtifactReport, found: ImageFindings) -> None:
    """Add the checks of ``found`` to ``report``."""
    if found.manifest_problem:
        report.add("manifest", FAIL, found.manifest_problem)
        return
    report.add("manifest", PASS, f"{found.image.repository}@{found.digest[:19]}... hashes to it")
    for tag, at in found.tags.items():
        if at == found.digest:
            report.add(f"tag {tag}", PASS, "resolves to the signed digest")
        elif at:
            report.add(f"tag {tag}", FAIL, f"resolves to {at}, not the signed digest")
        else:
            report.add(f"tag {tag}", FAIL, "not in the registry")
    for kind in KINDS:
        mine = [r for r in found.by_kind(kind) if r.official]
        if mine:
            report.add(
                kind, PASS, f"verified for the release identity (referrer {mine[0].digest[:19]}...)"
            )
            continue
        others = [r for r in found.referrers if r.kind == kind or (not r.kind and r.problem)]
        reason = "; ".join(r.problem for r in others if r.problem)[:400]
        report.add(kind, FAIL, reason or f"no {kind} referrer in the registry (unsigned image)")
    extra = [r for r in found.referrers if r.kind and r.kind not in KINDS]
    for r in extra:
        report.add(
            "referrer", WARN, f"{r.kind} by {', '.join(r.signers) or 'unknown'}: not checked"
        )


def verify_images(
    images: list[ImageRecord],
    *,
    verifier: Verifier,
    policy: ExpectedSigner,
    credentials: RegistryCredentials | None = None,
    retry: RetryPolicy | None = None,
) -> list[ArtifactReport]:
    """Verify phase: one row per image of the manifest (none when it has no image)."""
    return [
        verify_image(r, verifier=verifier, policy=policy, credentials=credentials, retry=retry)
        for r in images
    ]
