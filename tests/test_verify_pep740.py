"""`upm-ci verify` on PEP 740 publish attestations: real attestations made by pypi-attestations'
own ``Attestation.sign`` (not upm_ci's signer) against the local Sigstore stand-in are accepted
per distribution; swapped, tampered, foreign, orphaned and missing ones fail closed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pypi_attestations import Attestation, Distribution

from tests.fixtures.release_kit import (
    REPOSITORY,
    SDIST,
    TAG,
    WHEEL,
    ReleaseKit,
    ReleaseSigner,
    release_dir,
    release_kit,
    release_policy,
)
from upm_ci.cli import main
from upm_ci.errors import PolicyError
from upm_ci.layout import PEP740_SUFFIX
from upm_ci.sigstore_common import make_verifier, verification_policy, verify_pep740
from upm_ci.verify.phase import verify_release
from upm_ci.verify.report import VerifyReport

__all__ = ["release_dir", "release_kit"]


def attest(signer: ReleaseSigner, dist: Path) -> Path:
    """What gh-action-pypi-publish writes: ``Attestation.sign(...).model_dump_json()``."""
    out = dist.with_name(dist.name + PEP740_SUFFIX)
    out.write_text(Attestation.sign(signer.signer, Distribution.from_file(dist)).model_dump_json())
    return out


@pytest.fixture(scope="module")
def attestations(release_kit: ReleaseKit) -> dict[str, bytes]:
    """Valid attestations of the kit's sdist and wheel (made once), by distribution name."""
    made = {}
    for name in (SDIST, WHEEL):
        made[name] = attest(release_kit.signer, release_kit.golden / name).read_bytes()
        (release_kit.golden / (name + PEP740_SUFFIX)).unlink()  # the golden copy stays as it was
    return made


@pytest.fixture
def attested(release_kit: ReleaseKit, release_dir: Path, attestations: dict[str, bytes]) -> Path:
    for name, raw in attestations.items():
        (release_dir / (name + PEP740_SUFFIX)).write_bytes(raw)
    release_kit.seal(release_dir)  # the release statement names them, as sign's does
    return release_dir


def verify(kit: ReleaseKit, dist: Path) -> VerifyReport:
    return verify_release(
        dist,
        policy=release_policy(),
        trust_config=kit.trust_config,
        offline=True,
        manifest=None,
        gpg_public_key=None,
        gpg_fingerprint=kit.gpg.fingerprint,
    )


def checks(report: VerifyReport, name: str) -> list[tuple[str, str]]:
    entry = next(a for a in report.artifacts if a.name == name)
    return [(c.status, c.reason) for c in entry.checks if c.check == "pep740"]


def test_valid_attestations_pass_per_distribution(release_kit: ReleaseKit, attested: Path) -> None:
    report = verify(release_kit, attested)
    assert report.passed, report.failures()
    for name in (SDIST, WHEEL):
        [(status, reason)] = checks(report, name)
        assert status == "pass" and name + PEP740_SUFFIX in reason
        [(status, _)] = checks(report, name + PEP740_SUFFIX)
        assert status == "pass"


def test_release_without_any_attestation_still_passes(
    release_kit: ReleaseKit, release_dir: Path
) -> None:
    """They are optional: a release signed before they existed has none."""
    report = verify(release_kit, release_dir)
    assert report.passed and checks(report, SDIST) == []


def test_swapped_attestations_fail_both(release_kit: ReleaseKit, attested: Path) -> None:
    sdist_att, wheel_att = (attested / (n + PEP740_SUFFIX) for n in (SDIST, WHEEL))
    a, b = sdist_att.read_bytes(), wheel_att.read_bytes()
    sdist_att.write_bytes(b)
    wheel_att.write_bytes(a)
    report = verify(release_kit, attested)
    assert not report.passed
    [(status, reason)] = checks(report, SDIST)
    assert status == "fail" and f"attests {WHEEL}, not {SDIST}" in reason
    [(status, _)] = checks(report, WHEEL)
    assert status == "fail"


def test_tampered_statement_fails(release_kit: ReleaseKit, attested: Path) -> None:
    path = attested / (WHEEL + PEP740_SUFFIX)
    doc = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(doc["envelope"]["statement"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    doc["envelope"]["statement"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(doc))
    report = verify(release_kit, attested)
    [(status, reason)] = checks(report, WHEEL + PEP740_SUFFIX)
    assert status == "fail" and "signature" in reason.lower(), reason
    assert checks(report, SDIST)[0][0] == "pass"


def test_changed_distribution_fails_its_attestation(
    release_kit: ReleaseKit, attested: Path
) -> None:
    (attested / SDIST).write_bytes(b"other bytes")
    [(status, reason)] = checks(verify(release_kit, attested), SDIST + PEP740_SUFFIX)
    assert status == "fail" and "subject sha256" in reason


@pytest.mark.parametrize("content", ["", "{}", "not json", '{"version": 1}'])
def test_malformed_attestation_fails(release_kit: ReleaseKit, attested: Path, content: str) -> None:
    (attested / (SDIST + PEP740_SUFFIX)).write_text(content)
    [(status, reason)] = checks(verify(release_kit, attested), SDIST + PEP740_SUFFIX)
    assert status == "fail" and "not a PEP 740 attestation" in reason


def test_missing_for_one_distribution_fails(release_kit: ReleaseKit, attested: Path) -> None:
    (attested / (WHEEL + PEP740_SUFFIX)).unlink()
    report = verify(release_kit, attested)
    assert not report.passed
    [(status, reason)] = checks(report, WHEEL)
    assert status == "fail" and f"no {WHEEL}{PEP740_SUFFIX}" in reason


def test_attestation_of_a_file_not_in_the_release_fails(
    release_kit: ReleaseKit, attested: Path
) -> None:
    orphan = attested / ("upm_sample-1.1.0.tar.gz" + PEP740_SUFFIX)
    orphan.write_bytes((attested / (SDIST + PEP740_SUFFIX)).read_bytes())
    report = verify(release_kit, attested)
    [(status, reason)] = checks(report, orphan.name)
    assert status == "fail" and "no distribution here" in reason


def test_other_identity_fails(release_kit: ReleaseKit, attested: Path) -> None:
    other = ReleaseSigner(release_kit.standin, ref="refs/heads/main")
    try:
        attest(other, attested / SDIST)
    finally:
        other.close()
    [(status, reason)] = checks(verify(release_kit, attested), SDIST + PEP740_SUFFIX)
    assert status == "fail" and "ref: expected refs/tags/v1.2.0, found refs/heads/main" in reason, (
        reason
    )


def test_rekor_v2_entry_cannot_be_verified(release_kit: ReleaseKit, attested: Path) -> None:
    """Why sign always logs attestations in Rekor v1: the format drops the RFC 3161 timestamp,
    and a Rekor v2 entry has no time of its own."""
    v2 = ReleaseSigner(release_kit.standin, rekor_version=2)
    try:
        attest(v2, attested / SDIST)
    finally:
        v2.close()
    [(status, reason)] = checks(verify(release_kit, attested), SDIST + PEP740_SUFFIX)
    assert status == "fail" and "time" in reason, reason


def test_verify_pep740_raises_with_the_reason(
    release_kit: ReleaseKit, attestations: dict[str, bytes]
) -> None:
    from sigstore.models import ClientTrustConfig

    root = ClientTrustConfig.from_json(release_kit.trust_config.read_text()).trusted_root
    verifier = make_verifier(root)
    policy = verification_policy(release_policy())
    digest = Distribution.from_file(release_kit.golden / SDIST).digest
    summary = verify_pep740(attestations[SDIST], SDIST, digest, verifier=verifier, policy=policy)
    assert "log index" in summary
    with pytest.raises(PolicyError, match="subject sha256"):
        verify_pep740(attestations[SDIST], SDIST, "1" * 64, verifier=verifier, policy=policy)


def test_cli_names_the_failing_attestation(
    release_kit: ReleaseKit, attested: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["verify", str(attested), "--project", str(attested.parent)]
    args += ["--repository", REPOSITORY, "--ref", TAG]
    args += ["--trust-config", str(release_kit.trust_config), "--offline"]
    args += ["--gpg-fingerprint", release_kit.gpg.fingerprint]
    assert main(args) == 0, capsys.readouterr()
    capsys.readouterr()
    (attested / (WHEEL + PEP740_SUFFIX)).unlink()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert WHEEL in out and f"no {WHEEL}{PEP740_SUFFIX}" in out
