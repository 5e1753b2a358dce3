"""SLSA v1 provenance and the CycloneDX attestation are in-toto Statement v1 documents that
sigstore-python accepts, built from the token's claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sigstore import dsse

from upm_ci import provenance
from upm_ci.errors import InputError
from upm_ci.identity import decode_claims
from upm_ci.standins.oidc import mint_github_token

SHA = "a" * 64


def test_slsa_provenance_from_claims() -> None:
    claims = decode_claims(mint_github_token(run_id="99", run_attempt="2", sha="c" * 40))
    subjects = [provenance.subject("upm_sample-1.2.0.tar.gz", SHA)]
    statement = provenance.slsa_provenance(subjects, claims, tag="v1.2.0", tool_version="0.1")
    dsse.Statement(json.dumps(statement).encode())  # sigstore-python accepts it
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    build = statement["predicate"]["buildDefinition"]
    assert build["externalParameters"]["workflow"] == {
        "ref": "refs/tags/v1.2.0",
        "repository": "https://github.com/unexpected/upm-sample",
        "path": ".github/workflows/release.yml",
    }
    assert build["resolvedDependencies"] == [
        {
            "uri": "git+https://github.com/unexpected/upm-sample@refs/tags/v1.2.0",
            "digest": {"gitCommit": "c" * 40},
        }
    ]
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"].endswith("release.yml@refs/tags/v1.2.0")
    assert run["metadata"]["invocationId"] == (
        "https://github.com/unexpected/upm-sample/actions/runs/99/attempts/2"
    )


def test_builder_is_the_reusable_workflow() -> None:
    called = "unexpected/shared/.github/workflows/build.yml@refs/tags/v3"
    claims = decode_claims(mint_github_token(job_workflow_ref=called))
    statement = provenance.slsa_provenance([provenance.subject("x", SHA)], claims)
    assert statement["predicate"]["runDetails"]["builder"]["id"] == f"https://github.com/{called}"


def test_provenance_needs_subjects() -> None:
    with pytest.raises(InputError):
        provenance.slsa_provenance([], decode_claims(mint_github_token()))


def test_sbom_statement(tmp_path: Path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6"}))
    statement = provenance.sbom_statement(bom, "x.whl", SHA)
    dsse.Statement(json.dumps(statement).encode())
    assert statement["subject"] == [{"name": "x.whl", "digest": {"sha256": SHA}}]
    assert statement["predicateType"] == "https://cyclonedx.org/bom"
    assert statement["predicate"]["specVersion"] == "1.6"
    assert provenance.is_cyclonedx(bom)


@pytest.mark.parametrize("content", ["{not json", '{"spdxVersion": "SPDX-2.3"}'])
def test_sbom_statement_bad_input(tmp_path: Path, content: str) -> None:
    bom = tmp_path / "bom.json"
    bom.write_text(content)
    with pytest.raises(InputError, match="bom.json"):
        provenance.sbom_statement(bom, "x.whl", SHA)
    assert not provenance.is_cyclonedx(bom)
    with pytest.raises(InputError, match="not found"):
        provenance.sbom_statement(tmp_path / "missing.json", "x.whl", SHA)
