"""SLSA v1 provenance and the CycloneDX attestation are in-toto Statement v1 documents that
sigstore-python accepts, built from the token's claims."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sigstore import dsse

from tests.fixtures.release_kit import ReleaseSigner as KitSigner
from tests.test_sign import make_release, sign_keyless
from upm_ci import provenance
from upm_ci.errors import InputError
from upm_ci.identity import decode_claims
from upm_ci.manifest import Manifest
from upm_ci.standins.oidc import decode_claims as oidc_claims
from upm_ci.standins.oidc import mint_github_token
from upm_ci.standins.sigstore_server import SigstoreStandIn

SHA = "a" * 64


def test_slsa_provenance_from_claims() -> None:
    """Field for field what GitHub's actions/attest-build-provenance writes for these claims
    (@actions/attest buildSLSAProvenancePredicate); upm-release's own only under its key."""
    token = mint_github_token(run_id="99", run_attempt="2", sha="c" * 40)
    claims = decode_claims(token)
    raw = oidc_claims(token)
    subjects = [provenance.subject("upm_sample-1.2.0.tar.gz", SHA)]
    statement = provenance.slsa_provenance(subjects, claims, tag="v1.2.0", tool_version="0.1")
    dsse.Statement(json.dumps(statement).encode())  # sigstore-python accepts it
    assert statement == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": "refs/tags/v1.2.0",
                        "repository": "https://github.com/unexpected/upm-sample",
                        "path": ".github/workflows/release.yml",
                    }
                },
                "internalParameters": {
                    "github": {
                        "event_name": "push",
                        "repository_id": raw["repository_id"],
                        "repository_owner_id": raw["repository_owner_id"],
                        "runner_environment": "github-hosted",
                    },
                    "upm_release": {"version": "0.1", "tag": "v1.2.0"},
                },
                "resolvedDependencies": [
                    {
                        "uri": "git+https://github.com/unexpected/upm-sample@refs/tags/v1.2.0",
                        "digest": {"gitCommit": "c" * 40},
                    }
                ],
            },
            "runDetails": {
                "builder": {
                    "id": "https://github.com/unexpected/upm-sample/.github/workflows/"
                    "release.yml@refs/tags/v1.2.0"
                },
                "metadata": {
                    "invocationId": (
                        "https://github.com/unexpected/upm-sample/actions/runs/99/attempts/2"
                    )
                },
            },
        },
    }


def test_enterprise_server_urls() -> None:
    """On GitHub Enterprise Server every URL is the server's, as GITHUB_SERVER_URL says."""
    claims = decode_claims(mint_github_token())
    server = "https://ghe.example.com"
    statement = provenance.slsa_provenance(
        [provenance.subject("x", SHA)], claims, server_url=server
    )
    build = statement["predicate"]["buildDefinition"]
    assert build["externalParameters"]["workflow"]["repository"] == (
        f"{server}/unexpected/upm-sample"
    )
    assert build["resolvedDependencies"][0]["uri"].startswith(f"git+{server}/unexpected/")
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == f"{server}/{claims.job_workflow_ref}"
    assert run["metadata"]["invocationId"].startswith(f"{server}/unexpected/upm-sample/actions/")


def test_builder_is_the_reusable_workflow() -> None:
    """The builder is the called workflow (the certificate's SAN); the workflow parameter
    stays the caller's, which is what the build type describes."""
    called = "unexpected/shared/.github/workflows/build.yml@refs/tags/v3"
    claims = decode_claims(mint_github_token(reusable_workflow=called))
    statement = provenance.slsa_provenance([provenance.subject("x", SHA)], claims)
    assert statement["predicate"]["runDetails"]["builder"]["id"] == f"https://github.com/{called}"
    workflow = statement["predicate"]["buildDefinition"]["externalParameters"]["workflow"]
    assert workflow["path"] == ".github/workflows/release.yml"
    assert workflow["repository"] == "https://github.com/unexpected/upm-sample"


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


@pytest.mark.slow
def test_sign_replaces_a_provenance_of_another_shape(
    tmp_path: Path, sigstore_standin: SigstoreStandIn
) -> None:
    """A re-run keeps an attestation only if it says exactly what this run would: a valid
    provenance in an older shape (another buildType, extra externalParameters) is re-signed."""
    project_dir = make_release(tmp_path)
    dist = project_dir / "dist"

    def run_sign() -> None:
        sign_keyless(
            project_dir, Manifest.load(project_dir / "release-manifest.json"), sigstore_standin
        )

    run_sign()
    bundle = dist / "upm_sample-1.2.0.intoto.jsonl"
    sbom_attestation = (dist / "upm_sample-1.2.0-py3-none-any.whl.cdx.intoto.jsonl").read_bytes()
    old = _statement(bundle)
    old["predicate"]["buildDefinition"]["buildType"] = "https://example.com/upm-release/v1"
    old["predicate"]["buildDefinition"]["externalParameters"]["tag"] = "v1.2.0"
    signer = KitSigner(sigstore_standin)
    try:
        signer.sign_statement(old, bundle)
    finally:
        signer.close()
    assert _statement(bundle) == old

    run_sign()
    new = _statement(bundle)
    assert new["predicate"]["buildDefinition"]["buildType"] == provenance.BUILD_TYPE
    assert set(new["predicate"]["buildDefinition"]["externalParameters"]) == {"workflow"}
    assert new["subject"] == old["subject"]
    assert (dist / "upm_sample-1.2.0-py3-none-any.whl.cdx.intoto.jsonl").read_bytes() == (
        sbom_attestation
    ), "an attestation that says the same is kept"


def _statement(bundle: Path) -> dict[str, Any]:
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def test_slsa_provenance_lists_the_dependencies_by_digest() -> None:
    from upm_ci.provenance import dependency_descriptor, slsa_provenance

    dep = dependency_descriptor(
        "pkg:pypi/idna@3.21", "idna-3.21-py3-none-any.whl", "ef" * 32,
        "GitHub kjd/idna deploy.yml", "https://pypi.example/integrity/idna/3.21/x/provenance",
    )  # fmt: skip
    claims = decode_claims(mint_github_token())
    subjects = [provenance.subject("a.whl", "ab" * 32)]
    statement = slsa_provenance(subjects, claims, dependencies=[dep])
    resolved = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert resolved[0]["uri"].startswith("git+")
    assert resolved[1] == {
        "uri": "pkg:pypi/idna@3.21",
        "name": "idna-3.21-py3-none-any.whl",
        "digest": {"sha256": "ef" * 32},
        "annotations": {
            "pep740_publisher": "GitHub kjd/idna deploy.yml",
            "pep740_provenance": "https://pypi.example/integrity/idna/3.21/x/provenance",
        },
    }
