"""`upm-ci sign` writes a PEP 740 publish attestation per distribution: real sigstore-python and
pypi-attestations against the local Sigstore and OIDC stand-ins, checked independently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from pypi_attestations import Attestation
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.verify import Verifier, policy

from tests.test_sign import IDENTITY, REKOR_V1, cli, make_release, snapshot
from upm_ci import release_signer
from upm_ci.cli import main
from upm_ci.errors import PolicyError
from upm_ci.identity import GITHUB_ISSUER, ExpectedSigner
from upm_ci.layout import PEP740_SUFFIX
from upm_ci.manifest import Manifest
from upm_ci.sigstore_common import (
    PYPI_PUBLISH_V1,
    certificate_identities,
    certificate_issuer,
    verify_pep740,
)
from upm_ci.standins.oidc import mint_github_token
from upm_ci.standins.sigstore_server import SigstoreStandIn

DISTS = ("upm_sample-1.2.0.tar.gz", "upm_sample-1.2.0-py3-none-any.whl")


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = mint_github_token()
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", value)
    return value


def independent_check(release: Path, standin: SigstoreStandIn) -> Manifest:
    """Each attestation verifies with sigstore's own Verifier and names its distribution."""
    manifest = Manifest.load(release / "release-manifest.json")
    root = ClientTrustConfig.from_json(standin.trust_config_path.read_text()).trusted_root
    expected = policy.Identity(identity=IDENTITY, issuer=GITHUB_ISSUER)
    for name in DISTS:
        art = manifest.artifact(name + PEP740_SUFFIX)
        assert art is not None and art.kind == "pep740-attestation"
        raw = (release / "dist" / art.name).read_bytes()
        dist = manifest.artifact(name)
        assert dist is not None
        verify_pep740(raw, name, dist.sha256, verifier=Verifier(trusted_root=root), policy=expected)
        [record] = [a for a in manifest.attestations if a.file == art.name]
        assert record.predicate_type == PYPI_PUBLISH_V1
        assert record.subjects == [{"name": name, "digest": {"sha256": dist.sha256}}]
    return manifest


def certificate(raw: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(
        Attestation.model_validate_json(raw).verification_material.certificate
    )


@pytest.mark.parametrize("rekor_version", ["1", "2"], ids=["rekor-v1", "rekor-v2"])
def test_sign_writes_verified_attestations_with_the_release_certificate(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    token: str,
    rekor_version: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli(release, sigstore_standin, "--rekor-version", rekor_version) == 0
    out, err = capsys.readouterr()
    assert token not in out + err
    assert all(name + PEP740_SUFFIX in out for name in DISTS)
    independent_check(release, sigstore_standin)
    dist = release / "dist"
    bundle = Bundle.from_json((dist / (DISTS[0] + ".sigstore.json")).read_text())
    for name in DISTS:
        raw = (dist / (name + PEP740_SUFFIX)).read_bytes()
        cert = certificate(raw)
        if rekor_version == "1":
            assert cert == bundle.signing_certificate, "one certificate per release"
        # Under Rekor v2 the attestations (Rekor v1) come from a second signer: what matters
        # is that its certificate names the same identity and issuer (and that it verifies,
        # which independent_check did).
        assert certificate_identities(cert) == certificate_identities(bundle.signing_certificate)
        assert certificate_issuer(cert) == certificate_issuer(bundle.signing_certificate)
        assert IDENTITY in certificate_identities(cert)
        assert certificate_issuer(cert) == GITHUB_ISSUER
        doc = json.loads(raw)
        [entry] = doc["verification_material"]["transparency_entries"]
        # Rekor v1 even when the release signs with v2: the format has no timestamps.
        assert entry["kindVersion"]["version"] == "0.0.1" and entry["integratedTime"]


def test_rerun_keeps_valid_attestations_and_resigns_a_tampered_one(
    release: Path, fresh_sigstore_standin: SigstoreStandIn, token: str
) -> None:
    assert cli(release, fresh_sigstore_standin) == 0
    dist = release / "dist"
    kept = (dist / (DISTS[1] + PEP740_SUFFIX)).read_bytes()
    fresh_sigstore_standin.clear_requests()
    assert cli(release, fresh_sigstore_standin) == 0
    assert fresh_sigstore_standin.requests(REKOR_V1) == [], "nothing signed again"
    assert (dist / (DISTS[1] + PEP740_SUFFIX)).read_bytes() == kept

    other = dist / (DISTS[0] + PEP740_SUFFIX)
    other.write_bytes(kept)  # the wheel's attestation under the sdist's name
    assert cli(release, fresh_sigstore_standin) == 0
    # the attestation, then SHA256SUMS (which lists it) and the release statement
    assert len(fresh_sigstore_standin.requests(REKOR_V1)) == 3
    assert other.read_bytes() != kept
    independent_check(release, fresh_sigstore_standin)


def test_rekor_503_is_retried(
    release: Path, fresh_sigstore_standin: SigstoreStandIn, token: str
) -> None:
    fresh_sigstore_standin.inject_fault(503, count=3, path_prefix=REKOR_V1)
    assert cli(release, fresh_sigstore_standin) == 0
    assert fresh_sigstore_standin.pending_faults() == []
    independent_check(release, fresh_sigstore_standin)


def test_distribution_name_that_no_attestation_can_name_exits_2_writing_nothing(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    token: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = Manifest.load(release / "release-manifest.json")
    odd = release / "dist" / "upm-sample.tar.gz"
    odd.write_bytes(b"sdist")
    manifest.add_file(odd, "sdist")
    manifest.save()
    before = snapshot(release)
    assert cli(release, sigstore_standin) == 2
    err = capsys.readouterr().err
    assert "upm-sample.tar.gz: not a valid sdist or wheel file name" in err
    assert "Traceback" not in err
    assert snapshot(release) == before


def test_attestation_that_does_not_verify_is_a_policy_failure_and_not_written(
    release: Path, sigstore_standin: SigstoreStandIn
) -> None:
    wheel = release / "dist" / DISTS[1]
    with release_signer.ReleaseSigner(
        mint_github_token(ref="refs/heads/main"),
        expected=ExpectedSigner(identity=IDENTITY),
        trust_config=sigstore_standin.trust_config_path,
    ) as signer:
        with pytest.raises(PolicyError, match="does not verify for"):
            signer.sign_pep740(wheel)
    assert not wheel.with_name(wheel.name + PEP740_SUFFIX).exists()


def test_no_rekor_v1_log_means_no_attestations_warned(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    token: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = json.loads(sigstore_standin.trust_config_path.read_text())
    urls = doc["signingConfig"]["rekorTlogUrls"]
    doc["signingConfig"]["rekorTlogUrls"] = [u for u in urls if u["majorApiVersion"] != 1]
    v2_only = tmp_path / "v2-only.json"
    v2_only.write_text(json.dumps(doc))
    args = ["sign", "--project", str(release), "--manifest", str(release / "release-manifest.json")]
    assert main([*args, "--trust-config", str(v2_only)]) == 0
    assert "no PEP 740 attestations made" in capsys.readouterr().err
    assert not list((release / "dist").glob("*" + PEP740_SUFFIX))
    manifest = Manifest.load(release / "release-manifest.json")
    assert manifest.of_kind("pep740-attestation") == []


# ------------------------------------------------------------------------------ TSA beside Rekor

TSA = "/api/v1/timestamp"


def test_timestamp_failure_is_retried_and_every_bundle_is_timestamped(
    release: Path, fresh_sigstore_standin: SigstoreStandIn, token: str
) -> None:
    """The TSA is asked while Rekor creates the entry; an unanswered one still means a retry."""
    fresh_sigstore_standin.inject_fault(503, count=2, path_prefix=TSA)
    assert cli(release, fresh_sigstore_standin) == 0
    assert fresh_sigstore_standin.pending_faults() == []
    for path in (release / "dist").glob("*.sigstore.json"):
        bundle = Bundle.from_json(path.read_text())
        data = bundle.verification_material.timestamp_verification_data
        assert data is not None and len(data.rfc3161_timestamps) == 1, path.name
    independent_check(release, fresh_sigstore_standin)


def test_timestamp_authority_down_exits_3_without_bundles(
    release: Path,
    fresh_sigstore_standin: SigstoreStandIn,
    token: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fresh_sigstore_standin.inject_fault(503, count=1000, path_prefix=TSA)
    assert cli(release, fresh_sigstore_standin) == 3
    assert "timestamp" in capsys.readouterr().err
    assert not list((release / "dist").glob("*.sigstore.json"))
