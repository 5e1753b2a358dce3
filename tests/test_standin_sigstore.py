"""Real sigstore-python against the local Sigstore stand-in and the GitHub OIDC stand-in.

Nothing here is mocked: every test signs or verifies over HTTP on 127.0.0.1, so a change in
the stand-in that real clients would notice breaks these tests first.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from sigstore import dsse
from sigstore.errors import VerificationError
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.oidc import IdentityError, IdentityToken, detect_credential
from sigstore.sign import SigningContext
from sigstore.verify import Verifier, policy

from upm_ci.retry import http_failure
from upm_ci.standins.oidc import (
    GITHUB_ISSUER,
    OidcStandIn,
    decode_claims,
    github_claims,
    mint_github_token,
)
from upm_ci.standins.sigstore_server import (
    SigstoreStandIn,
    StandInError,
    cache_root,
    ensure_node_deps,
)

REPOSITORY = "unexpected/upm-sample"
REF = "refs/tags/v1.2.0"
IDENTITY = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@{REF}"
ARTIFACT = b"upm_sample-1.2.0-py3-none-any.whl contents"

REKOR_VERSIONS = pytest.mark.parametrize("rekor_version", [1, 2], ids=["rekor-v1", "rekor-v2"])


def tlog_entry(bundle: Bundle) -> dict[str, Any]:
    """The bundle's log entry as its JSON has it (sigstore-python exposes no public accessor)."""
    entry: dict[str, Any] = json.loads(bundle.to_json())["verificationMaterial"]["tlogEntries"][0]
    return entry


def release_policy(repository: str = REPOSITORY, identity: str = IDENTITY) -> policy.AllOf:
    """What a verifier of a UPM release checks: who signed, from which repo, ref and event."""
    return policy.AllOf(
        [
            policy.Identity(identity=identity, issuer=GITHUB_ISSUER),
            policy.GitHubWorkflowRepository(repository),
            policy.GitHubWorkflowRef(REF),
            policy.GitHubWorkflowTrigger("push"),
            policy.OIDCSourceRepositoryURI(f"https://github.com/{repository}"),
            policy.OIDCRunnerEnvironment("github-hosted"),
        ]
    )


def statement() -> dsse.Statement:
    return (
        dsse.StatementBuilder()
        .subjects(
            [
                dsse.Subject(
                    name="upm_sample-1.2.0-py3-none-any.whl",
                    digest=dsse.DigestSet({"sha256": hashlib.sha256(ARTIFACT).hexdigest()}),
                )
            ]
        )
        .predicate_type("https://docs.pypi.org/attestations/publish/v1")
        .predicate({"note": "stand-in test"})
        .build()
    )


def sign(
    standin: SigstoreStandIn, rekor_version: int, token: str | None = None
) -> tuple[Bundle, ClientTrustConfig]:
    config = standin.trust_config(rekor_version)
    ctx = SigningContext.from_trust_config(config)
    with ctx.signer(IdentityToken(token or mint_github_token())) as signer:
        return signer.sign_artifact(ARTIFACT), config


def sct_count(bundle: Bundle) -> int:
    ext = bundle.signing_certificate.extensions.get_extension_for_class(
        x509.PrecertificateSignedCertificateTimestamps
    )
    return len(list(ext.value))


# ---------------------------------------------------------------- sign and verify


@REKOR_VERSIONS
def test_sign_and_verify_artifact(sigstore_standin: SigstoreStandIn, rekor_version: int) -> None:
    bundle, config = sign(sigstore_standin, rekor_version)

    Verifier(trusted_root=config.trusted_root).verify_artifact(ARTIFACT, bundle, release_policy())

    entry = tlog_entry(bundle)
    assert entry["kindVersion"]["kind"] == "hashedrekord"
    assert entry["kindVersion"]["version"] == f"0.0.{rekor_version}"
    # Rekor v1 gives a signed entry timestamp; Rekor v2 does not, so there the TSA
    # timestamp (adapter 3) is the only verified time and the bundle verifying proves it.
    assert ("inclusionPromise" in entry) == (rekor_version == 1)
    tsv = bundle.verification_material.timestamp_verification_data
    assert tsv is not None and len(tsv.rfc3161_timestamps) == 1
    assert sct_count(bundle) == 1
    san = bundle.signing_certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [IDENTITY]


@REKOR_VERSIONS
def test_sign_and_verify_dsse(sigstore_standin: SigstoreStandIn, rekor_version: int) -> None:
    config = sigstore_standin.trust_config(rekor_version)
    with SigningContext.from_trust_config(config).signer(
        IdentityToken(mint_github_token())
    ) as signer:
        bundle = signer.sign_dsse(statement())

    payload_type, payload = Verifier(trusted_root=config.trusted_root).verify_dsse(
        bundle, release_policy()
    )

    assert payload_type == "application/vnd.in-toto+json"
    assert b"upm_sample-1.2.0-py3-none-any.whl" in payload
    # Rekor v1 keeps a dsse entry (adapter 4); Rekor v2 records DSSE as hashedrekord.
    expected_kind = "dsse" if rekor_version == 1 else "hashedrekord"
    assert tlog_entry(bundle)["kindVersion"]["kind"] == expected_kind


@REKOR_VERSIONS
def test_tampered_artifact_fails(sigstore_standin: SigstoreStandIn, rekor_version: int) -> None:
    bundle, config = sign(sigstore_standin, rekor_version)
    with pytest.raises(VerificationError):
        Verifier(trusted_root=config.trusted_root).verify_artifact(
            ARTIFACT + b"!", bundle, release_policy()
        )


@REKOR_VERSIONS
def test_wrong_identity_fails(sigstore_standin: SigstoreStandIn, rekor_version: int) -> None:
    bundle, config = sign(sigstore_standin, rekor_version)
    verifier = Verifier(trusted_root=config.trusted_root)
    with pytest.raises(VerificationError):
        verifier.verify_artifact(ARTIFACT, bundle, release_policy(repository="evil/fork"))
    with pytest.raises(VerificationError):
        other_workflow = IDENTITY.replace("release.yml", "ci.yml")
        verifier.verify_artifact(ARTIFACT, bundle, release_policy(identity=other_workflow))


@REKOR_VERSIONS
def test_dsse_wrong_identity_fails(sigstore_standin: SigstoreStandIn, rekor_version: int) -> None:
    config = sigstore_standin.trust_config(rekor_version)
    token = mint_github_token(repository="evil/fork")
    with SigningContext.from_trust_config(config).signer(IdentityToken(token)) as signer:
        bundle = signer.sign_dsse(statement())
    with pytest.raises(VerificationError):
        Verifier(trusted_root=config.trusted_root).verify_dsse(bundle, release_policy())


def test_bundle_from_another_instance_fails(
    sigstore_standin: SigstoreStandIn, fresh_sigstore_standin: SigstoreStandIn
) -> None:
    bundle, _ = sign(sigstore_standin, 1)
    other_root = fresh_sigstore_standin.trust_config().trusted_root
    with pytest.raises(VerificationError):
        Verifier(trusted_root=other_root).verify_artifact(ARTIFACT, bundle, release_policy())


def test_rekor_v2_log_grows_with_real_inclusion_proofs(sigstore_standin: SigstoreStandIn) -> None:
    bundles = [sign(sigstore_standin, 2)[0] for _ in range(3)]
    config = sigstore_standin.trust_config(2)
    indexes = [int(tlog_entry(b)["logIndex"]) for b in bundles]
    assert indexes == sorted(indexes) and len(set(indexes)) == 3
    for bundle in bundles:
        Verifier(trusted_root=config.trusted_root).verify_artifact(
            ARTIFACT, bundle, release_policy()
        )
    assert int(tlog_entry(bundles[-1])["inclusionProof"]["treeSize"]) == indexes[-1] + 1


def test_trust_config_files_select_rekor_version(sigstore_standin: SigstoreStandIn) -> None:
    def logged_version(config: ClientTrustConfig) -> str:
        """hashedrekord 0.0.1 is Rekor v1's entry, 0.0.2 Rekor v2's."""
        token = IdentityToken(mint_github_token())
        with SigningContext.from_trust_config(config).signer(token) as signer:
            bundle = signer.sign_artifact(ARTIFACT)
        return str(tlog_entry(bundle)["kindVersion"]["version"])

    default = ClientTrustConfig.from_json(sigstore_standin.trust_config_path.read_text())
    v2 = ClientTrustConfig.from_json(sigstore_standin.trust_config_v2_path.read_text())
    assert logged_version(default) == "0.0.1"
    assert logged_version(v2) == "0.0.2"
    default.force_tlog_version = 2
    assert logged_version(default) == "0.0.2"
    v2.force_tlog_version = 1
    assert logged_version(v2) == "0.0.1"
    assert sigstore_standin.trust_config_path_for(2) == sigstore_standin.trust_config_v2_path


def test_sigstore_cli_with_trust_config(sigstore_standin: SigstoreStandIn, tmp_path: Path) -> None:
    artifact = tmp_path / "upm_sample-1.2.0.tar.gz"
    artifact.write_bytes(ARTIFACT)
    base = [
        sys.executable,
        "-m",
        "sigstore",
        "--trust-config",
        str(sigstore_standin.trust_config_path),
    ]
    signed = subprocess.run(
        [
            *base,
            "sign",
            "--rekor-version",
            "2",
            "--identity-token",
            mint_github_token(),
            str(artifact),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    verified = subprocess.run(
        [
            *base,
            "verify",
            "github",
            "--cert-identity",
            IDENTITY,
            "--repository",
            REPOSITORY,
            "--ref",
            REF,
            "--trigger",
            "push",
            str(artifact),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr


# ---------------------------------------------------------------- Fulcio's own checks


@pytest.mark.parametrize(
    ("token_kwargs", "reason"),
    [({"lifetime": -60}, "expired"), ({"audience": "pypi"}, "audience")],
    ids=["expired", "wrong-audience"],
)
def test_fulcio_rejects_bad_tokens(
    sigstore_standin: SigstoreStandIn, token_kwargs: dict[str, object], reason: str
) -> None:
    response = requests.post(
        f"{sigstore_standin.url}/api/v2/signingCert",
        json={"certificateSigningRequest": "unused"},
        headers={"Authorization": f"Bearer {mint_github_token(**token_kwargs)}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert reason in response.json()["message"]


# ---------------------------------------------------------------- faults and timing


def test_injected_fulcio_503s_are_served_then_recovery(
    fresh_sigstore_standin: SigstoreStandIn,
) -> None:
    standin = fresh_sigstore_standin
    standin.inject_fault(503, count=2, path_prefix="/api/v2/signingCert")
    ctx = SigningContext.from_trust_config(standin.trust_config(1))
    for _ in range(2):
        with (
            pytest.raises(Exception) as failed,
            ctx.signer(IdentityToken(mint_github_token())),
        ):
            pass
        failure = http_failure(failed.value.__cause__ or failed.value)
        assert failure is not None and failure[0] == 503, "Fulcio's 503 reached the client"
    with ctx.signer(IdentityToken(mint_github_token())) as signer:
        bundle = signer.sign_artifact(ARTIFACT)
    assert [r["status"] for r in standin.requests("/api/v2/signingCert")] == [503, 503, 201]
    assert standin.pending_faults() == []
    Verifier(trusted_root=standin.trust_config().trusted_root).verify_artifact(
        ARTIFACT, bundle, release_policy()
    )


@REKOR_VERSIONS
def test_injected_rekor_400_reaches_the_client(
    fresh_sigstore_standin: SigstoreStandIn, rekor_version: int
) -> None:
    fresh_sigstore_standin.inject_fault(400, path_prefix=f"/api/v{rekor_version}/log/entries")
    with pytest.raises(Exception, match="injected"):
        sign(fresh_sigstore_standin, rekor_version)


def test_failing_tsa_silently_drops_the_timestamp(fresh_sigstore_standin: SigstoreStandIn) -> None:
    """The trap a release tool must guard against: sigstore-python only logs a warning."""
    fresh_sigstore_standin.inject_fault(500, path_prefix="/api/v1/timestamp")
    bundle, config = sign(fresh_sigstore_standin, 1)
    assert bundle.verification_material.timestamp_verification_data is None
    # Still verifies on Rekor v1's signed entry timestamp alone.
    Verifier(trusted_root=config.trusted_root).verify_artifact(ARTIFACT, bundle, release_policy())


def test_fault_kinds_over_raw_http(fresh_sigstore_standin: SigstoreStandIn) -> None:
    standin = fresh_sigstore_standin
    health = f"{standin.url}/healthz"
    standin.inject_fault(429, path_prefix="/healthz", retry_after=3)
    limited = requests.get(health, timeout=10)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"

    standin.inject_fault(0, path_prefix="/healthz", delay_ms=200)
    started = time.monotonic()
    assert requests.get(health, timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.2

    standin.inject_fault(path_prefix="/healthz", drop=True)
    with pytest.raises(requests.ConnectionError):
        requests.get(health, timeout=10)

    standin.inject_fault(503, count=5, path_prefix="/healthz", method="POST")
    assert requests.get(health, timeout=10).status_code == 200
    standin.clear_faults()
    assert standin.pending_faults() == []


def test_fault_rate_is_seeded() -> None:
    def statuses() -> list[int]:
        with SigstoreStandIn(fault_rate=0.5, fault_seed=7) as standin:
            return [
                requests.get(f"{standin.url}/healthz", timeout=10).status_code for _ in range(16)
            ]

    first, second = statuses(), statuses()
    assert first == second
    assert set(first) == {200, 503}


def test_rekor_delay_slows_only_entry_creation() -> None:
    with SigstoreStandIn(rekor_delay_ms=300) as standin:
        started = time.monotonic()
        sign(standin, 2)
        assert time.monotonic() - started >= 0.3
        fulcio = standin.requests("/api/v2/signingCert")[0]
        rekor = standin.requests("/api/v2/log/entries")[0]
    assert fulcio["ms"] < 300 <= rekor["ms"]


# ---------------------------------------------------------------- wrapper behaviour


def test_start_failure_reports_server_stderr() -> None:
    with pytest.raises(StandInError, match="unknown option --bogus"):
        SigstoreStandIn(extra_args=["--bogus"]).start()


def test_missing_node_is_a_clear_error() -> None:
    with pytest.raises(StandInError, match="Node.js"):
        SigstoreStandIn(node="/nonexistent/node").start()


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UPM_STANDIN_CACHE", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("UPM_STANDIN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "upm-ci"


def test_node_deps_are_keyed_by_lock_file(sigstore_standin: SigstoreStandIn) -> None:
    appdir = ensure_node_deps()
    lock = (Path(__file__).parents[1] / "upm_ci/standins/sigstore/package-lock.json").read_bytes()
    assert appdir.name == hashlib.sha256(lock).hexdigest()[:16]
    assert (appdir / "node_modules" / "@sigstore" / "mock").is_dir()
    assert (appdir / "server.js").is_file()


# ---------------------------------------------------------------- GitHub Actions OIDC


def test_ambient_credential_signs_like_a_runner(
    sigstore_standin: SigstoreStandIn, github_actions_oidc_env: OidcStandIn
) -> None:
    token = detect_credential()
    assert token is not None
    bundle, config = sign(sigstore_standin, 2, token=token)
    Verifier(trusted_root=config.trusted_root).verify_artifact(ARTIFACT, bundle, release_policy())
    assert github_actions_oidc_env.requests[-1]["audience"] == "sigstore"


def test_wrong_request_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, oidc_standin: OidcStandIn
) -> None:
    for name, value in oidc_standin.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-token")
    with pytest.raises(IdentityError, match="401"):
        detect_credential()


def test_oidc_fault_is_an_identity_error(
    monkeypatch: pytest.MonkeyPatch, fresh_oidc_standin: OidcStandIn
) -> None:
    for name, value in fresh_oidc_standin.env().items():
        monkeypatch.setenv(name, value)
    fresh_oidc_standin.inject_fault(500)
    with pytest.raises(IdentityError, match="500"):
        detect_credential()
    assert detect_credential() is not None


def test_audience_and_claims_are_honoured(fresh_oidc_standin: OidcStandIn) -> None:
    standin = fresh_oidc_standin
    auth = {"Authorization": f"bearer {standin.request_token}"}
    pypi = requests.get(f"{standin.url}&audience=pypi", headers=auth, timeout=10)
    assert decode_claims(pypi.json()["value"])["aud"] == "pypi"
    default = requests.get(standin.url, headers=auth, timeout=10)
    assert decode_claims(default.json()["value"])["aud"] == "https://github.com/unexpected"

    standin.claims.update(ref="refs/heads/main", environment="pypi")
    claims = decode_claims(requests.get(standin.url, headers=auth, timeout=10).json()["value"])
    assert claims["ref"] == "refs/heads/main" and claims["environment"] == "pypi"
    assert claims["exp"] - claims["iat"] == 300


def test_github_claims_follow_githubs_rules() -> None:
    claims = github_claims(repository="acme/tool", ref="refs/tags/v2.0.0", environment="pypi")
    assert claims["sub"] == "repo:acme/tool:environment:pypi"
    assert claims["job_workflow_ref"] == "acme/tool/.github/workflows/release.yml@refs/tags/v2.0.0"
    assert claims["repository_owner"] == "acme" and claims["iss"] == GITHUB_ISSUER
    token = decode_claims(mint_github_token(repository="acme/tool", run_attempt="2", actor=None))
    assert token["run_attempt"] == "2" and "actor" not in token
    assert token["repository"] == "acme/tool"
