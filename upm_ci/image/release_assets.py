"""An image's three bundles as release assets: their names, and what binds each to the image.

Sign writes, per image (:mod:`upm_ci.image.attest`), a Sigstore bundle over the image manifest
digest, its SLSA provenance and its SBOM attestation. RELEASE.md attaches every signature to
the release, so they are release files like any other: listed in the manifest (kinds
``image-signature``, ``image-provenance``, ``image-sbom-attestation``), in ``SHA256SUMS`` and
among the release statement's subjects, attached by publish; publish also stores them next to
the image in its registry. Verify checks them from the release, offline, against the digest the
signed release statement names for the image (:meth:`upm_ci.verify.checks.ReleaseVerification.
check_image_bundles`); the image row checks the registry's copies.

A bundle is named ``<image name>-<version><suffix>``, the image name being the repository path
without the registry host, ``/`` as ``-`` (``ghcr.io/o/n`` -> ``o-n-1.2.0.image.sigstore.json``).
This module needs only the light install (no registry client).
"""

from __future__ import annotations

import json
from typing import Any

from upm_ci.layout import (
    IMAGE_BUNDLE_KINDS,
    IMAGE_PROVENANCE_SUFFIX,
    IMAGE_SBOM_ATTESTATION_SUFFIX,
    IMAGE_SIGNATURE_SUFFIX,
)
from upm_ci.manifest import ImageRecord
from upm_ci.provenance import CYCLONEDX_BOM, SLSA_PROVENANCE_V1, statement_subjects

#: Artifact kind -> the referrer kind it is in the manifest's ``images[].referrers``.
REFERRER_KIND = {
    "image-signature": "signature",
    "image-provenance": "provenance",
    "image-sbom-attestation": "sbom-attestation",
}
#: The predicate type each attestation kind must carry.
PREDICATE_TYPE = {"image-provenance": SLSA_PROVENANCE_V1, "image-sbom-attestation": CYCLONEDX_BOM}
#: How a report names each kind.
WHAT = {
    "image-signature": "signature",
    "image-provenance": "SLSA provenance",
    "image-sbom-attestation": "SBOM attestation",
}


def image_stem_name(repository: str) -> str:
    """``ghcr.io/o/n`` -> ``o-n``: the first part of the image's bundle names."""
    return repository.split("/", 1)[-1].replace("/", "-")


def bundle_names(repository: str, version: str) -> dict[str, str]:
    """Artifact kind -> the file name of that bundle of the image ``repository``."""
    stem = f"{image_stem_name(repository)}-{version}"
    return {
        "image-signature": stem + IMAGE_SIGNATURE_SUFFIX,
        "image-provenance": stem + IMAGE_PROVENANCE_SUFFIX,
        "image-sbom-attestation": stem + IMAGE_SBOM_ATTESTATION_SUFFIX,
    }


def images_named_by(file_name: str, images: dict[str, str]) -> dict[str, str]:
    """The images (repository -> sha256 hex, of the release statement) whose bundle
    ``file_name`` is by its name: ``<image name>-<version><suffix>``; a normalised version has
    no ``-``, so the image name is what comes before the last one."""
    for suffix in IMAGE_BUNDLE_KINDS:
        if file_name.endswith(suffix):
            stem_name = file_name[: -len(suffix)].rpartition("-")[0]
            return {r: d for r, d in images.items() if image_stem_name(r) == stem_name}
    return {}


def sbom_names_image(bom: Any, record: ImageRecord) -> bool:
    """True when a CycloneDX SBOM's metadata names this image (manifest digest or image ID)."""
    if not isinstance(bom, dict):
        return False
    metadata = json.dumps(bom.get("metadata", {}))
    names = [record.digest, record.image_id] if record.image_id else [record.digest]
    return any(n and n in metadata for n in names)


def attestation_problem(
    kind: str, statement: dict[str, Any], repository: str, digest_hex: str
) -> str:
    """Why a verified image attestation's statement is not the ``kind`` attestation of the
    image ``repository`` at ``digest_hex``, or '' when it is (exactly that one subject, the
    predicate type of its kind, and for an SBOM one that names the image)."""
    predicate_type = statement.get("predicateType")
    if predicate_type != PREDICATE_TYPE[kind]:
        return f"predicateType {predicate_type!r}, not {PREDICATE_TYPE[kind]}"
    subjects = statement_subjects(statement.get("subject"))
    if subjects is None:
        return "subject list is missing or malformed"
    if subjects != {repository: digest_hex}:
        shown = ", ".join(f"{n}@sha256:{d[:12]}..." for n, d in subjects.items()) or "nothing"
        return f"its subjects are {shown}, not {repository}@sha256:{digest_hex[:12]}..."
    if kind == "image-sbom-attestation" and not sbom_names_image(
        statement.get("predicate"), ImageRecord(ref=repository, digest=f"sha256:{digest_hex}")
    ):
        return "the attested SBOM names neither this digest nor the image ID"
    return ""
