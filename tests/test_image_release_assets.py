"""The image bundles' names and bindings as release files (no registry, no Sigstore: the
rules verify applies once sigstore's Verifier has verified a bundle)."""

from __future__ import annotations

from typing import Any

from upm_ci.image import release_assets
from upm_ci.layout import artifact_kind
from upm_ci.provenance import CYCLONEDX_BOM, SLSA_PROVENANCE_V1, STATEMENT_TYPE

A, AB = "ghcr.io/o/a", "ghcr.io/o/a-b"
DIGEST_A, DIGEST_AB = "a" * 64, "b" * 64


def statement(
    predicate_type: str, subjects: dict[str, str], predicate: object = None
) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects.items()],
        "predicateType": predicate_type,
        "predicate": predicate if predicate is not None else {},
    }


def test_names_and_kinds() -> None:
    names = release_assets.bundle_names(A, "1.2.0")
    assert names == {
        "image-signature": "o-a-1.2.0.image.sigstore.json",
        "image-provenance": "o-a-1.2.0.image.intoto.jsonl",
        "image-sbom-attestation": "o-a-1.2.0.image.cdx.intoto.jsonl",
    }
    assert {artifact_kind(n): k for k, n in names.items()} == {k: k for k in names}
    assert artifact_kind("upm_sample-1.2.0.intoto.jsonl") == "attestation"
    assert artifact_kind("x.whl.sigstore.json") == "bundle"


def test_a_bundle_names_its_image_even_when_one_name_starts_another() -> None:
    images = {A: DIGEST_A, AB: DIGEST_AB}
    assert release_assets.images_named_by("o-a-b-1.2.0.image.sigstore.json", images) == {
        AB: DIGEST_AB
    }
    assert release_assets.images_named_by("o-a-1.2.0.image.cdx.intoto.jsonl", images) == {
        A: DIGEST_A
    }
    assert release_assets.images_named_by("o-c-1.2.0.image.intoto.jsonl", images) == {}
    assert release_assets.images_named_by("o-a-1.2.0.intoto.jsonl", images) == {}


def test_an_attestation_binds_exactly_its_image_with_its_predicate_type() -> None:
    problem = release_assets.attestation_problem
    provenance = statement(SLSA_PROVENANCE_V1, {A: DIGEST_A})
    assert problem("image-provenance", provenance, A, DIGEST_A) == ""
    assert "subjects are ghcr.io/o/a@sha256:aaaa" in problem(
        "image-provenance", provenance, A, DIGEST_AB
    )
    two = statement(SLSA_PROVENANCE_V1, {A: DIGEST_A, AB: DIGEST_AB})
    assert "subjects are" in problem("image-provenance", two, A, DIGEST_A)
    assert "predicateType" in problem("image-sbom-attestation", provenance, A, DIGEST_A)
    bom = {"metadata": {"component": {"type": "container", "version": f"sha256:{DIGEST_A}"}}}
    sbom = statement(CYCLONEDX_BOM, {A: DIGEST_A}, bom)
    assert problem("image-sbom-attestation", sbom, A, DIGEST_A) == ""
    other = statement(CYCLONEDX_BOM, {A: DIGEST_A}, {"metadata": {"component": {}}})
    assert "names neither" in problem("image-sbom-attestation", other, A, DIGEST_A)
    malformed = {**provenance, "subject": "ghcr.io/o/a"}
    assert "malformed" in problem("image-provenance", malformed, A, DIGEST_A)
