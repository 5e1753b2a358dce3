"""Sign phase for container images: a signature, SLSA provenance and the SBOM attestation.

For every image of the manifest, with the release's signer and identity
(:class:`upm_ci.release_signer.ReleaseSigner`, same token, same expected identity and pins):

- ``<name>-<version>.image.sigstore.json``: a Sigstore bundle over the image manifest digest
  (the bytes signed are the layout's manifest blob, whose sha256 *is* the digest);
- ``<name>-<version>.image.intoto.jsonl``: SLSA v1 provenance (``provenance.slsa_provenance``)
  with the image as subject ``{name: repository, digest: {sha256: hex}}``;
- ``<name>-<version>.image.cdx.intoto.jsonl``: the image's CycloneDX SBOM as an in-toto
  attestation bound to the digest. The SBOM must be of this image (its metadata names the
  digest or the image ID): an SBOM of another image is refused (exit 1).

``<name>`` is the repository path with ``/`` as ``-``. The bundles are written to the dist
directory and recorded in ``ImageRecord.referrers`` (kind and file) and as release files
(kinds ``image-signature``, ``image-provenance``, ``image-sbom-attestation``), so that
``SHA256SUMS`` and the release statement cover them; publish attaches them to the GitHub
release and stores them in the registry next to the image, and verify checks both copies
(:mod:`upm_ci.image.release_assets`). Every bundle is verified before it is recorded; a re-run
keeps those that still verify for the digest (and, for attestations, the same statement).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upm_ci import __version__, identity, provenance
from upm_ci.errors import InputError, PolicyError
from upm_ci.image.registry import layout_dir, parse_reference, read_layout
from upm_ci.image.release_assets import image_stem_name, sbom_names_image
from upm_ci.layout import (
    IMAGE_PROVENANCE_SUFFIX,
    IMAGE_SBOM_ATTESTATION_SUFFIX,
    IMAGE_SIGNATURE_SUFFIX,
    check_plain_name,
)
from upm_ci.manifest import (
    IMAGE_ARTIFACT_KINDS,
    ImageRecord,
    ImageReferrer,
    Manifest,
    SbomRecord,
)
from upm_ci.project import Project
from upm_ci.release_signer import ReleaseSigner, sign_statement_file

log = logging.getLogger(__name__)

SIGNATURE_SUFFIX = IMAGE_SIGNATURE_SUFFIX
PROVENANCE_SUFFIX = IMAGE_PROVENANCE_SUFFIX
SBOM_ATTESTATION_SUFFIX = IMAGE_SBOM_ATTESTATION_SUFFIX


@dataclass
class ImageSigned:
    """One bundle made (or kept) for an image."""

    image: str
    kind: str  # an IMAGE_REFERRER_KINDS value
    bundle: str
    reused: bool = False


def bundle_stem(record: ImageRecord, version: str) -> str:
    image = parse_reference(record.repository or record.ref, where=f"images[{record.ref}]")
    stem = f"{image_stem_name(image.repository)}-{version}"
    check_plain_name(stem + SIGNATURE_SUFFIX, where=f"images[{record.ref}]")
    return stem


def image_subject(record: ImageRecord) -> dict[str, Any]:
    """The in-toto subject of an image: its repository and manifest digest."""
    image = parse_reference(record.repository or record.ref, where=f"images[{record.ref}]")
    return provenance.subject(image.repository, record.digest.removeprefix("sha256:"))


def image_sbom(manifest: Manifest, record: ImageRecord, dist_dir: Path) -> Path:
    """The image's CycloneDX SBOM file (from ``sboms``/``sbom``), checked to be of this image."""
    names = list(dict.fromkeys([*record.sboms, *([record.sbom] if record.sbom else [])]))
    for name in names:
        check_plain_name(name, where=f"images[{record.ref}].sboms")
        artifact = manifest.artifact(name)
        path = manifest.resolve(artifact) if artifact else Path(dist_dir) / name
        if path.is_file() and provenance.is_cyclonedx(path):
            bom = json.loads(path.read_text(encoding="utf-8"))
            if not sbom_names_image(bom, record):
                raise PolicyError(
                    f"{path.name}: an SBOM of another image (its metadata names neither "
                    f"{record.digest} nor the image ID)",
                    hint="run upm-ci sbom on this release's image",
                )
            return path
    raise InputError(
        f"{manifest.path}: image {record.ref} has no CycloneDX SBOM", hint="run upm-ci sbom"
    )


@dataclass
class ImagePlan:
    """One image, checked before anything is signed: its layout and its SBOM."""

    record: ImageRecord
    manifest_path: Path
    sbom: Path


def plan_images(manifest: Manifest, dist_dir: Path) -> list[ImagePlan]:
    """Every image's inputs, checked (layout matches the digest, SBOM of this image). An
    image SBOM the manifest names only in ``images[].sboms`` becomes a release file here
    (kind ``sbom``, bound to the image digest), so that sign signs it like the sbom phase's."""
    dist_dir = Path(dist_dir).resolve()
    plans = []
    for record in manifest.images:
        local = read_layout(layout_dir(manifest, record, dist_dir), record.digest)
        sbom = image_sbom(manifest, record, dist_dir)
        _record_image_sboms(manifest, record, dist_dir)
        plans.append(ImagePlan(record, local.manifest_path, sbom))
    return plans


def _record_image_sboms(manifest: Manifest, record: ImageRecord, dist_dir: Path) -> None:
    repository = record.repository or parse_reference(record.ref).repository
    described = f"{image_stem_name(repository)}.oci-image"
    for name in dict.fromkeys([*record.sboms, *([record.sbom] if record.sbom else [])]):
        path = dist_dir / check_plain_name(name, where=f"images[{record.ref}].sboms")
        if manifest.artifact(name) is not None or not path.is_file():
            continue
        manifest.add_file(path, "sbom")
        fmt = "cyclonedx" if provenance.is_cyclonedx(path) else "spdx"
        manifest.add_sbom(SbomRecord(name, fmt, described, record.digest.removeprefix("sha256:")))


def sign_images(
    project: Project,
    manifest: Manifest,
    *,
    dist_dir: Path,
    identity_token: str,
    trust_config: Path | None,
    rekor_version: int | None,
    expected: identity.ExpectedSigner,
) -> list[ImageSigned]:
    """Sign every image of the manifest on its own (nothing when it has none). ``upm-ci
    sign`` signs them inside :func:`upm_ci.sign.sign_release`, with the release's signer,
    before ``SHA256SUMS`` and the release statement, which then cover the bundles too."""
    if not manifest.images:
        return []
    plans = plan_images(manifest, dist_dir)  # every input checked before anything is signed
    with ReleaseSigner(
        identity_token, expected=expected, trust_config=trust_config, rekor_version=rekor_version
    ) as signer:
        made = sign_planned(
            signer, project, manifest, plans, dist_dir, identity.decode_claims(identity_token)
        )
    if manifest.path:
        manifest.save()
    return made


def sign_planned(
    signer: ReleaseSigner,
    project: Project,
    manifest: Manifest,
    plans: list[ImagePlan],
    dist_dir: Path,
    claims: identity.TokenClaims,
) -> list[ImageSigned]:
    """Each planned image's signature, provenance and SBOM attestation with ``signer``;
    records the referrers and the bundles as release files (saved by the caller)."""
    dist_dir = Path(dist_dir).resolve()
    made: list[ImageSigned] = []
    for plan in plans:
        record = plan.record
        stem = bundle_stem(record, project.version)
        hex_digest = record.digest.removeprefix("sha256:")
        subject = image_subject(record)
        signature = dist_dir / f"{stem}{SIGNATURE_SUFFIX}"
        kept = signer.existing_bundle_verifies(signature, hex_digest)
        if not kept:
            signer.sign_file(plan.manifest_path, signature, sha256=hex_digest)
        made.append(ImageSigned(record.ref, "signature", signature.name, kept))
        statement = provenance.slsa_provenance(
            [subject],
            claims,
            server_url=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
            tag=project.tag,
            tool_version=__version__,
        )
        out = dist_dir / f"{stem}{PROVENANCE_SUFFIX}"
        kept = sign_statement_file(signer, out, statement, f"provenance of {record.ref}")
        made.append(ImageSigned(record.ref, "provenance", out.name, kept))
        statement = provenance.sbom_statement(plan.sbom, subject["name"], hex_digest)
        out = dist_dir / f"{stem}{SBOM_ATTESTATION_SUFFIX}"
        kept = sign_statement_file(signer, out, statement, f"SBOM attestation of {record.ref}")
        made.append(ImageSigned(record.ref, "sbom-attestation", out.name, kept))
    for record in manifest.images:
        old = {r.bundle: r.digest for r in record.referrers}
        record.referrers = [
            ImageReferrer(
                kind=m.kind, bundle=m.bundle, digest=old.get(m.bundle, "") if m.reused else ""
            )
            for m in made
            if m.image == record.ref
        ]
    for m in made:
        manifest.add_file(dist_dir / m.bundle, IMAGE_ARTIFACT_KINDS[m.kind])
    return made
