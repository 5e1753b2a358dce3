"""`upm-ci sign` end to end: real sigstore-python against the local Sigstore and OIDC stand-ins,
real gpg, real files. The only thing not real is the content of the distributions."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.verify import Verifier, policy

from upm_ci import sign
from upm_ci.cli import main
from upm_ci.identity import GITHUB_ISSUER
from upm_ci.manifest import Manifest, ProjectInfo, SbomRecord
from upm_ci.project import load_project
from upm_ci.standins.oidc import OidcStandIn, mint_github_token
from upm_ci.standins.sigstore_server import SigstoreStandIn

REPOSITORY = "unexpected/upm-sample"
TAG_REF = "refs/tags/v1.2.0"
IDENTITY = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@{TAG_REF}"
GPG_PASSPHRASE = "sentinel-gpg-passphrase-5f1c9e"
#: A key body that must never be echoed: long and unique, so it cannot match by chance.
GARBAGE_KEY_BODY = "c2VudGluZWwta2V5LWJvZHk" + secrets.token_hex(12)
PYPROJECT = f"""\
[project]
name = "upm-sample"
version = "1.2.0"

[tool.upm-release]
repository = "{REPOSITORY}"
"""
FULCIO = "/api/v2/signingCert"
REKOR_V1 = "/api/v1/log/entries"


def _cyclonedx() -> str:
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "version": 1,
            "components": [{"type": "library", "name": "click", "version": "8.1.7"}],
        }
    )


def make_release(root: Path) -> Path:
    """A project with a built release: sdist, wheel, SHA256SUMS, two SBOMs, a manifest."""
    project = root / "upm-sample"
    dist = project / "dist"
    dist.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "unipkg.yaml").write_text("name: upm-sample\nversion: 1.2.0\n")
    (project / ".unipkg.lock").write_text("lock: 1\n")
    files = {
        "upm_sample-1.2.0.tar.gz": ("sdist", b"sdist bytes" * 100),
        "upm_sample-1.2.0-py3-none-any.whl": ("wheel", b"wheel bytes" * 100),
    }
    for name, (_, data) in files.items():
        (dist / name).write_bytes(data)
    sums = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, (_, data) in files.items()
    )
    (dist / "SHA256SUMS").write_text(sums)
    (dist / "upm_sample-1.2.0-py3-none-any.whl.cdx.json").write_text(_cyclonedx())
    (dist / "upm_sample-1.2.0-py3-none-any.whl.spdx.json").write_text('{"spdxVersion": "SPDX-2.3"}')
    manifest = Manifest(ProjectInfo("upm-sample", "1.2.0", "v1.2.0", repository=REPOSITORY))
    manifest.path = project / "release-manifest.json"
    for name, (kind, _) in files.items():
        manifest.add_file(dist / name, kind)
    manifest.add_file(dist / "SHA256SUMS", "checksums")
    wheel = manifest.artifact("upm_sample-1.2.0-py3-none-any.whl")
    assert wheel is not None
    for name, fmt in (("cdx", "cyclonedx"), ("spdx", "spdx")):
        art = manifest.add_file(dist / f"{wheel.name}.{name}.json", "sbom")
        manifest.add_sbom(SbomRecord(art.name, fmt, wheel.name, wheel.sha256))
    manifest.save()
    return project


def sign_keyless(
    release: Path,
    manifest: Manifest,
    standin: SigstoreStandIn,
    *,
    rekor_version: int | None = 1,
    gpg_key: str | None = None,
    gpg_passphrase: str | None = None,
) -> sign.SignResult:
    """The sign phase on ``release`` (a :func:`make_release` project) with a minted GitHub
    token against ``standin``, expecting :data:`IDENTITY`."""
    return sign.sign_release(
        load_project(release),
        manifest,
        dist_dir=release / "dist",
        identity_token=mint_github_token(),
        trust_config=standin.trust_config_path,
        rekor_version=rekor_version,
        gpg_key=gpg_key,
        gpg_passphrase=gpg_passphrase,
        expected_identity=IDENTITY,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return make_release(tmp_path)


@pytest.fixture(scope="session")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away ed25519 key protected by GPG_PASSPHRASE, armored."""
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    base = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    phrase = ["--passphrase", GPG_PASSPHRASE]
    subprocess.run(
        [*base, *phrase, "--quick-gen-key", "UPM Test <release@example.com>", "ed25519", "sign"],
        check=True,
        capture_output=True,
    )
    key = subprocess.run(
        [*base, *phrase, "--armor", "--export-secret-keys"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    yield key
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def cli_args(release: Path, standin: SigstoreStandIn, *extra: str) -> list[str]:
    return [
        "sign",
        "--project",
        str(release),
        "--manifest",
        str(release / "release-manifest.json"),
        "--trust-config",
        str(standin.trust_config_path),
        *extra,
    ]


def cli(release: Path, standin: SigstoreStandIn, *extra: str) -> int:
    return main(cli_args(release, standin, *extra))


def actions_env(monkeypatch: pytest.MonkeyPatch, oidc: OidcStandIn, tmp_path: Path) -> None:
    for name, value in oidc.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "gh-output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "gh-summary"))


def verify_independently(release: Path, standin: SigstoreStandIn) -> Manifest:
    """Check every recorded bundle with sigstore's own Verifier (not upm_ci's helper)."""
    manifest = Manifest.load(release / "release-manifest.json")
    config = ClientTrustConfig.from_json(standin.trust_config_path.read_text())
    verifier = Verifier(trusted_root=config.trusted_root)
    expected = policy.Identity(identity=IDENTITY, issuer=GITHUB_ISSUER)
    for record in (s for s in manifest.signatures if s.method == "sigstore"):
        bundle = Bundle.from_json((release / "dist" / record.file).read_text())
        data = (release / "dist" / record.subject).read_bytes()
        verifier.verify_artifact(data, bundle, expected)
        assert hashlib.sha256(data).hexdigest() == record.subject_sha256
    for att in (a for a in manifest.attestations if a.file.endswith(".intoto.jsonl")):
        text = (release / "dist" / att.file).read_text()
        assert text.count("\n") == 1, "an .intoto.jsonl holds one JSON document per line"
        _, payload = verifier.verify_dsse(Bundle.from_json(text), expected)
        statement = json.loads(payload)
        assert statement["predicateType"] == att.predicate_type
        assert statement["subject"] == att.subjects
    return manifest


# ------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("rekor_version", [1, 2], ids=["rekor-v1", "rekor-v2"])
def test_sign_round_trip_via_ambient_oidc(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    oidc_standin: OidcStandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    gpg_key: str,
    capsys: pytest.CaptureFixture[str],
    rekor_version: int,
) -> None:
    actions_env(monkeypatch, oidc_standin, tmp_path)
    monkeypatch.setenv("UPM_GPG_PRIVATE_KEY", gpg_key)
    monkeypatch.setenv("UPM_GPG_PASSPHRASE", GPG_PASSPHRASE)
    code = cli(release, sigstore_standin, "--rekor-version", str(rekor_version))
    out = capsys.readouterr().out
    assert code == 0, out

    manifest = verify_independently(release, sigstore_standin)
    dist = release / "dist"
    signed = {s.subject for s in manifest.signatures if s.method == "sigstore"}
    assert signed == {
        "upm_sample-1.2.0.tar.gz",
        "upm_sample-1.2.0-py3-none-any.whl",
        "SHA256SUMS",
        "upm_sample-1.2.0-py3-none-any.whl.cdx.json",
        "upm_sample-1.2.0-py3-none-any.whl.spdx.json",
        "unipkg.yaml",
        "unipkg.lock",  # GitHub renames assets with a leading dot: the release drops it
        "toolchain.cdx.json",
    }
    assert (dist / "unipkg.yaml").read_bytes() == (release / "unipkg.yaml").read_bytes()
    assert (dist / "unipkg.lock").read_bytes() == (release / ".unipkg.lock").read_bytes()
    assert {a.kind for a in manifest.artifacts} >= {
        "sigstore-bundle",
        "provenance",
        "sbom-attestation",
        "gpg-signature",
        "gpg-public-key",
        "project-manifest",
    }
    assert all(s.log_index is not None for s in manifest.signatures if s.method == "sigstore")
    envelope = json.loads((dist / "upm_sample-1.2.0.intoto.jsonl").read_text())["dsseEnvelope"]
    provenance = json.loads(base64.b64decode(envelope["payload"]))
    assert provenance["predicate"]["runDetails"]["builder"]["id"] == IDENTITY
    assert {s["name"] for s in provenance["subject"]} == {
        "upm_sample-1.2.0.tar.gz",
        "upm_sample-1.2.0-py3-none-any.whl",
    }
    gpg_subjects = {s.subject for s in manifest.signatures if s.method == "gpg"}
    assert "upm_sample-1.2.0-py3-none-any.whl" in gpg_subjects and "unipkg.yaml" not in gpg_subjects
    assert manifest.phases["sign"]["status"] == "pass"
    outputs = (tmp_path / "gh-output").read_text()
    assert "upm_sample-1.2.0.intoto.jsonl" in outputs and "manifest=" in outputs
    assert "upm_sample-1.2.0.tar.gz.sigstore.json" in out


def test_gpg_signatures_verify_with_gpg(
    release: Path, sigstore_standin: SigstoreStandIn, gpg_key: str, tmp_path: Path
) -> None:
    manifest = Manifest.load(release / "release-manifest.json")
    sign_keyless(
        release,
        manifest,
        sigstore_standin,
        rekor_version=None,
        gpg_key=gpg_key,
        gpg_passphrase=GPG_PASSPHRASE,
    )
    home = tmp_path / "verify-home"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    pub = release / "dist" / "upm_sample-1.2.0.pub.asc"
    subprocess.run([*gpg, "--import", str(pub)], check=True, capture_output=True)
    wheel = release / "dist" / "upm_sample-1.2.0-py3-none-any.whl"
    ok = subprocess.run([*gpg, "--verify", f"{wheel}.asc", str(wheel)], capture_output=True)
    assert ok.returncode == 0
    wheel.write_bytes(wheel.read_bytes() + b"x")
    bad = subprocess.run([*gpg, "--verify", f"{wheel}.asc", str(wheel)], capture_output=True)
    assert bad.returncode != 0
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def test_sigstore_cli_accepts_provenance_for_the_wheel(
    release: Path, sigstore_standin: SigstoreStandIn
) -> None:
    """The documented `.intoto.jsonl` choice: `sigstore verify identity` takes it as-is."""
    manifest = Manifest.load(release / "release-manifest.json")
    sign_keyless(release, manifest, sigstore_standin)
    dist = release / "dist"
    base = [
        sys.executable,
        "-m",
        "sigstore",
        "--trust-config",
        str(sigstore_standin.trust_config_path),
    ]
    verify = [
        *base,
        "verify",
        "identity",
        "--cert-identity",
        IDENTITY,
        "--cert-oidc-issuer",
        GITHUB_ISSUER,
    ]
    wheel = dist / "upm_sample-1.2.0-py3-none-any.whl"
    ok = subprocess.run(
        [*verify, "--bundle", str(dist / "upm_sample-1.2.0.intoto.jsonl"), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    other = dist / "unipkg.yaml"
    refused = subprocess.run(
        [*verify, "--bundle", str(dist / "upm_sample-1.2.0.intoto.jsonl"), str(other)],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0


# ------------------------------------------------------------------------------ resume


def test_second_run_resigns_nothing(
    release: Path,
    fresh_sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", mint_github_token())
    assert cli(release, fresh_sigstore_standin) == 0
    first = snapshot(release / "dist")
    fresh_sigstore_standin.clear_requests()

    assert cli(release, fresh_sigstore_standin) == 0
    assert fresh_sigstore_standin.requests() == []
    assert snapshot(release / "dist") == first
    assert "kept" in capsys.readouterr().out
    manifest = Manifest.load(release / "release-manifest.json")
    assert manifest.phases["sign"]["reused"] == 8


def test_changed_bundle_is_resigned(
    release: Path, fresh_sigstore_standin: SigstoreStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", mint_github_token())
    assert cli(release, fresh_sigstore_standin) == 0
    bundle = release / "dist" / "SHA256SUMS.sigstore.json"
    other = (release / "dist" / "unipkg.yaml.sigstore.json").read_text()
    bundle.write_text(other)  # a valid bundle, of another file
    fresh_sigstore_standin.clear_requests()

    assert cli(release, fresh_sigstore_standin) == 0
    # SHA256SUMS's bundle, and the release statement that names that bundle's digest
    assert len(fresh_sigstore_standin.requests(REKOR_V1)) == 2
    verify_independently(release, fresh_sigstore_standin)


# ------------------------------------------------------------------------------ preflight


def _preflight_case(
    release: Path,
    standin: SigstoreStandIn,
    oidc: OidcStandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> str:
    actions_env(monkeypatch, oidc, tmp_path)
    before = snapshot(release)
    code = cli(release, standin)
    err = capsys.readouterr().err
    assert code == 1, err
    assert snapshot(release) == before, "nothing may be written when preflight fails"
    return err


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"event_name": "pull_request_target"}, "untrusted trigger 'pull_request_target'"),
        ({"event_name": "workflow_run"}, "untrusted trigger 'workflow_run'"),
        ({"repository": "evil/upm-sample"}, "token is for repository 'evil/upm-sample'"),
        (
            {
                # a reusable workflow is expected by default, but only at the release tag
                "job_workflow_ref": "unexpected/shared/.github/workflows/sign.yml@refs/heads/main",
                "ref": "refs/tags/v9.9.9",
            },
            "token is for ref 'refs/tags/v9.9.9', but the release is 'refs/tags/v1.2.0'",
        ),
    ],
    ids=["pull_request_target", "workflow_run", "wrong-repository", "reusable-workflow"],
)
def test_preflight_refuses_before_writing(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    claims: dict[str, str],
    expected: str,
) -> None:
    with OidcStandIn(claims) as oidc:
        err = _preflight_case(release, sigstore_standin, oidc, monkeypatch, tmp_path, capsys)
    assert expected in err
    assert "nothing was signed" in err
    assert len(err.strip().splitlines()) == 1


def test_preflight_refuses_fork_pull_request(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {"pull_request": {"head": {"repo": {"full_name": "mallory/upm-sample", "fork": True}}}}
        )
    )
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    with OidcStandIn(event_name="pull_request", ref="refs/pull/7/merge") as oidc:
        err = _preflight_case(release, sigstore_standin, oidc, monkeypatch, tmp_path, capsys)
    assert "pull request from the fork mallory/upm-sample" in err


def test_no_id_token_permission_is_a_policy_failure(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    before = snapshot(release)
    assert cli(release, sigstore_standin) == 1
    assert "permissions: id-token: write" in capsys.readouterr().out
    assert snapshot(release) == before


# ------------------------------------------------------------------------------ services


@pytest.mark.parametrize("path", [FULCIO, REKOR_V1], ids=["fulcio", "rekor"])
def test_transient_503_is_retried(
    release: Path,
    fresh_sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", mint_github_token())
    fresh_sigstore_standin.inject_fault(503, count=2, path_prefix=path)
    assert cli(release, fresh_sigstore_standin) == 0
    assert fresh_sigstore_standin.pending_faults() == []
    statuses = [r["status"] for r in fresh_sigstore_standin.requests(path)]
    assert statuses.count(503) == 2
    verify_independently(release, fresh_sigstore_standin)


def test_connection_reset_is_retried(
    release: Path, fresh_sigstore_standin: SigstoreStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", mint_github_token())
    fresh_sigstore_standin.inject_fault(count=1, path_prefix=REKOR_V1, drop=True)
    assert cli(release, fresh_sigstore_standin) == 0
    verify_independently(release, fresh_sigstore_standin)


@pytest.mark.parametrize("path", [FULCIO, REKOR_V1], ids=["fulcio", "rekor"])
def test_4xx_is_not_retried(
    release: Path,
    fresh_sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
) -> None:
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", mint_github_token())
    # At most one submission per signature: the release's files, its two project manifests,
    # two PEP 740 attestations, the provenance and the SBOM attestation. A retried 400 would
    # show up as several per signature.
    files = len(Manifest.load(release / "release-manifest.json").artifacts) + 6
    fresh_sigstore_standin.inject_fault(400, count=100, path_prefix=path)
    assert cli(release, fresh_sigstore_standin) == 3
    err = capsys.readouterr().err
    assert "not retried" in err or "refused" in err
    statuses = [r["status"] for r in fresh_sigstore_standin.requests(path)]
    assert statuses and all(s == 400 for s in statuses)
    assert len(statuses) == 1 if path == FULCIO else len(statuses) <= files
    manifest = Manifest.load(release / "release-manifest.json")
    assert "sign" not in manifest.phases and manifest.signatures == []


def test_service_down_exits_3_after_retries(
    release: Path,
    fresh_sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", mint_github_token())
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "3")
    fresh_sigstore_standin.inject_fault(503, count=100, path_prefix=FULCIO)
    assert cli(release, fresh_sigstore_standin) == 3
    assert "still failing after 3 attempts" in capsys.readouterr().err
    assert len(fresh_sigstore_standin.requests(FULCIO)) == 3


# ------------------------------------------------------------------------------ bad input


def test_missing_manifest_exits_2(
    release: Path, sigstore_standin: SigstoreStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    (release / "release-manifest.json").unlink()
    assert cli(release, sigstore_standin, "--identity-token", mint_github_token()) == 2
    err = capsys.readouterr().err
    assert "release manifest not found" in err and "Traceback" not in err


def test_malformed_token_exits_2(
    release: Path, sigstore_standin: SigstoreStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(release)
    assert cli(release, sigstore_standin, "--identity-token", "not-a-jwt-sentinel") == 2
    err = capsys.readouterr().err
    assert "not a JWT" in err and "not-a-jwt-sentinel" not in err
    assert snapshot(release) == before


@pytest.mark.parametrize(
    "key",
    [
        "/nonexistent/release-key.asc",
        f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{GARBAGE_KEY_BODY}\n-----END",
    ],
    ids=["unreadable-file", "garbage-armor"],
)
def test_bad_gpg_key_exits_2_before_writing(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    capsys: pytest.CaptureFixture[str],
    key: str,
) -> None:
    before = snapshot(release)
    code = cli(release, sigstore_standin, "--identity-token", mint_github_token(), "--gpg-key", key)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--gpg-key" in err and GARBAGE_KEY_BODY not in err
    assert snapshot(release) == before


def test_wrong_gpg_passphrase_exits_2_before_writing(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    gpg_key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = snapshot(release)
    token = mint_github_token()
    args = ["--identity-token", token, "--gpg-key", gpg_key, "--gpg-passphrase", "wrong-phrase"]
    assert cli(release, sigstore_standin, *args) == 2
    assert "--gpg-passphrase" in capsys.readouterr().err
    assert snapshot(release) == before


def test_altered_artifact_is_a_policy_failure(
    release: Path, sigstore_standin: SigstoreStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = release / "dist" / "upm_sample-1.2.0-py3-none-any.whl"
    wheel.write_bytes(b"swapped after build")
    before = snapshot(release)
    assert cli(release, sigstore_standin, "--identity-token", mint_github_token()) == 1
    assert "differs from the manifest" in capsys.readouterr().err
    assert snapshot(release) == before


def test_bad_trust_config_exits_2(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "trust.json"
    bad.write_text("{}")
    code = main(
        [
            "sign",
            "--project",
            str(release),
            "--manifest",
            str(release / "release-manifest.json"),
            "--trust-config",
            str(bad),
            "--identity-token",
            mint_github_token(),
        ]
    )
    assert code == 2
    assert "ClientTrustConfig" in capsys.readouterr().err


# ------------------------------------------------------------------------------ secrets


def test_secrets_never_leak(
    release: Path,
    sigstore_standin: SigstoreStandIn,
    gpg_key: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = mint_github_token(jti="sentinel-token-7d3a0b")
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", token)
    monkeypatch.setenv("UPM_GPG_PRIVATE_KEY", gpg_key)
    monkeypatch.setenv("UPM_GPG_PASSPHRASE", GPG_PASSPHRASE)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "gh-output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "gh-summary"))
    assert main(["--debug", *cli_args(release, sigstore_standin)]) == 0
    # A failing run too: its message must not carry them either.
    monkeypatch.setenv("UPM_GPG_PASSPHRASE", "x" + GPG_PASSPHRASE)
    (release / "dist" / "SHA256SUMS.asc").unlink()
    assert main(["--debug", *cli_args(release, sigstore_standin)]) == 2
    captured = capsys.readouterr()
    key_body = [line for line in gpg_key.splitlines() if len(line) > 40][0]
    sentinels = [token, token.split(".")[1], GPG_PASSPHRASE, key_body]
    texts = {"stdout": captured.out, "stderr": captured.err}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert len(texts) > 20
    for where, text in texts.items():
        for sentinel in sentinels:
            assert sentinel not in text, f"a secret leaked into {where}"
