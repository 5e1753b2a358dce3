"""The OIDC preflight: each problem is found from the token's claims, with a sentence that
says what the certificate will carry and what verify expects."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from pathlib import Path

import pytest

from tests.fixtures.release_kit import CDX, add_audit_log, cyclonedx
from upm_ci import identity
from upm_ci.cli import main
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.manifest import Manifest, ProjectInfo, SbomRecord
from upm_ci.sigstore_common import certificate_identities
from upm_ci.standins.oidc import (
    UPM_RELEASE_WORKFLOW,
    OidcStandIn,
    github_claims,
    mint_github_token,
)
from upm_ci.standins.sigstore_server import SigstoreStandIn

REPOSITORY = "unexpected/upm-sample"
#: Appended to a token that must never be echoed: long and unique, cannot match by chance.
ECHO_SENTINEL = "sentinel-" + secrets.token_hex(12)
IDENTITY = identity.workflow_identity(
    REPOSITORY, ".github/workflows/release.yml", "refs/tags/v1.2.0"
)


def problems(**claims: object) -> list[str]:
    decoded = identity.decode_claims(mint_github_token(**claims))
    return identity.preflight(decoded, expected_identity=IDENTITY, expected_repository=REPOSITORY)


def test_workflow_identity_and_claims() -> None:
    assert IDENTITY == (
        "https://github.com/unexpected/upm-sample/.github/workflows/release.yml@refs/tags/v1.2.0"
    )
    claims = identity.decode_claims(mint_github_token())
    assert claims.issuer == identity.GITHUB_ISSUER
    assert claims.repository == REPOSITORY and claims.repository_owner == "unexpected"
    assert claims.workflow_path == ".github/workflows/release.yml"
    assert identity.certificate_identity(claims) == IDENTITY
    assert problems() == []


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"event_name": "pull_request_target"}, "untrusted trigger 'pull_request_target'"),
        ({"event_name": "workflow_run"}, "untrusted trigger 'workflow_run'"),
        ({"event_name": "pull_request"}, "a fork's code cannot be ruled out"),
        ({"iss": "https://accounts.google.com"}, "not GitHub Actions"),
        ({"audience": "pypi"}, "not 'sigstore'"),
        ({"now": int(time.time()) - 3600}, "token expired"),
        ({"exp": None}, "no 'exp' claim"),
        ({"repository": "evil/upm-sample"}, "token is for repository 'evil/upm-sample'"),
        ({"ref": "refs/heads/main"}, "will carry https://github.com/unexpected/upm-sample/"),
    ],
    ids=[
        "prt",
        "workflow_run",
        "pr-unknown",
        "issuer",
        "audience",
        "expired",
        "no-exp",
        "repository",
        "branch",
    ],
)
def test_each_problem_is_named(claims: dict[str, object], expected: str) -> None:
    found = problems(**claims)
    assert any(expected in p for p in found), found


def test_reusable_workflow_mismatch_says_both_identities() -> None:
    called = "unexpected/shared/.github/workflows/sign.yml@refs/heads/main"
    (problem,) = problems(job_workflow_ref=called)
    assert f"will carry https://github.com/{called}" in problem
    assert f"verify expects {IDENTITY}" in problem
    assert "Trusted Publishing" in problem and ".github/workflows/release.yml" in problem


def test_pull_request_from_fork_and_from_same_repo() -> None:
    claims = identity.decode_claims(mint_github_token(event_name="pull_request"))
    fork = {"pull_request": {"head": {"repo": {"full_name": "mallory/x", "fork": True}}}}
    same = {"pull_request": {"head": {"repo": {"full_name": REPOSITORY, "fork": False}}}}
    found = identity.preflight(claims, expected_identity=None, expected_repository=None, event=fork)
    assert found and "fork mallory/x" in found[0]
    assert (
        identity.preflight(claims, expected_identity=None, expected_repository=None, event=same)
        == []
    )


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.!!!.c", "a.bnVsbA.c"])
def test_decode_rejects_non_jwt_without_echo(token: str) -> None:
    with pytest.raises(InputError) as err:
        identity.decode_claims(token + ECHO_SENTINEL)
    assert ECHO_SENTINEL not in str(err.value)


def test_load_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"pull_request": {}}')
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    assert identity.load_event() == {"pull_request": {}}
    event.write_text("not json")
    assert identity.load_event() is None
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    assert identity.load_event() is None


def test_ambient_token_from_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    with OidcStandIn() as oidc:
        for name, value in oidc.env().items():
            monkeypatch.setenv(name, value)
        oidc.inject_fault(503, count=1)
        token = identity.ambient_token()
        assert token is not None
        assert identity.decode_claims(token).audiences == ["sigstore"]
        assert [r["status"] for r in oidc.requests] == [503, 200]


def test_ambient_token_refused_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    with OidcStandIn() as oidc:
        for name, value in oidc.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong-request-token")
        with pytest.raises(ServiceError, match="code=401") as err:
            identity.ambient_token()
        assert "wrong-request-token" not in str(err.value)
        assert len(oidc.requests) == 1


def test_ambient_token_without_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(PolicyError, match="id-token: write"):
        identity.ambient_token()


def test_no_ambient_token_outside_ci() -> None:
    assert identity.ambient_token() is None


# ------------------------------------------------------------------ the reusable workflow

CALLED = f"{UPM_RELEASE_WORKFLOW}@refs/tags/v1"
CALLED_IDENTITY = f"https://github.com/{CALLED}"
TAG = "v1.2.0"
SDIST = "upm_sample-1.2.0.tar.gz"
WHEEL = "upm_sample-1.2.0-py3-none-any.whl"


def test_reusable_workflow_claims_are_githubs() -> None:
    """A job in a called workflow: job_workflow_* name it; everything else is the caller's."""
    raw = github_claims(REPOSITORY, reusable_workflow=CALLED, sha="a" * 40)
    assert raw["job_workflow_ref"] == CALLED
    assert raw["job_workflow_sha"] not in ("", "a" * 40)
    assert raw["workflow_ref"] == f"{REPOSITORY}/.github/workflows/release.yml@refs/tags/{TAG}"
    assert (raw["repository"], raw["ref"], raw["sha"], raw["workflow_sha"]) == (
        REPOSITORY,
        f"refs/tags/{TAG}",
        "a" * 40,
        "a" * 40,
    )
    assert raw["sub"] == f"repo:{REPOSITORY}:ref:refs/tags/{TAG}"
    pinned = github_claims(reusable_workflow=f"{UPM_RELEASE_WORKFLOW}@{'b' * 40}")
    assert pinned["job_workflow_sha"] == "b" * 40
    claims = identity.decode_claims(mint_github_token(reusable_workflow=CALLED))
    assert identity.certificate_identity(claims) == CALLED_IDENTITY
    expected = identity.expected_signer(
        claims, repository=REPOSITORY, tag=TAG, release_workflow=".github/workflows/release.yml"
    )
    assert expected == identity.ExpectedSigner(CALLED_IDENTITY, REPOSITORY, f"refs/tags/{TAG}")
    assert expected.reusable


def _project(root: Path, repository: str) -> tuple[Path, Path]:
    """A built release of upm-sample 1.2.0 whose repository is ``repository``."""
    dist = root / "dist"
    dist.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "upm-sample"\nversion = "1.2.0"\n\n'
        f'[tool.upm-release]\nrepository = "{repository}"\n'
    )
    (root / "unipkg.yaml").write_text("name: upm-sample\n")
    (root / ".unipkg.lock").write_text("lock: 1\n")
    (dist / SDIST).write_bytes(b"sdist" * 99)
    (dist / WHEEL).write_bytes(b"wheel" * 99)
    digests = {n: hashlib.sha256((dist / n).read_bytes()).hexdigest() for n in (SDIST, WHEEL)}
    (dist / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in digests.items()))
    manifest = Manifest(ProjectInfo("upm-sample", "1.2.0", TAG, repository=repository))
    manifest.path = root / "release-manifest.json"
    for name, kind in ((SDIST, "sdist"), (WHEEL, "wheel"), ("SHA256SUMS", "checksums")):
        manifest.add_file(dist / name, kind)
    (dist / CDX).write_text(json.dumps(cyclonedx(digests[WHEEL])))
    manifest.add_file(dist / CDX, "sbom")
    manifest.add_sbom(SbomRecord(CDX, "cyclonedx", WHEEL, digests[WHEEL]))
    manifest.record_phase("gate", "pass", checks={"tests": "pass"}, summaries={"tests": "1 passed"})
    manifest.save()
    return dist, manifest.path


def _sign_in_reusable_workflow(
    root: Path, repository: str, standin: SigstoreStandIn, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """`upm-ci sign` with the README's defaults, in upm-release.yml called by ``repository``."""
    dist, manifest = _project(root, repository)
    with OidcStandIn(repository=repository, reusable_workflow=CALLED) as oidc:
        with monkeypatch.context() as env:
            for name, value in oidc.env().items():
                env.setenv(name, value)
            code = main(
                ["sign", "--project", str(root), "--manifest", str(manifest)]
                + ["--trust-config", str(standin.trust_config_path)]
            )
            assert code == 0
            from sigstore.oidc import detect_credential

            token = detect_credential()
            assert token is not None
            add_audit_log(dist, token, standin.trust_config_path, CALLED_IDENTITY, manifest)
    return dist, manifest


def _san(bundle: Path) -> set[str]:
    from sigstore.models import Bundle

    return certificate_identities(Bundle.from_json(bundle.read_bytes()).signing_certificate)


def test_sign_in_the_reusable_workflow_needs_no_extra_input_and_verify_accepts_it(
    sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dist, manifest = _sign_in_reusable_workflow(
        tmp_path / "p", REPOSITORY, sigstore_standin, monkeypatch
    )
    assert _san(dist / f"{WHEEL}.sigstore.json") == {CALLED_IDENTITY}
    signed = Manifest.load(manifest).phases["sign"]
    assert (signed["identity"], signed["repository"], signed["ref"]) == (
        CALLED_IDENTITY,
        REPOSITORY,
        f"refs/tags/{TAG}",
    )
    trust = ["--trust-config", str(sigstore_standin.trust_config_path), "--offline"]
    capsys.readouterr()
    # the README's consumer command: no project, no manifest, no identity
    consumer = ["verify", str(dist), "--repository", REPOSITORY, "--ref", TAG, *trust]
    assert main(consumer) == 0, capsys.readouterr().out
    # with the manifest, exactly the identity sign recorded
    assert main(["verify", str(dist), "--manifest", str(manifest), *trust]) == 0
    # the table wraps long cells at the terminal's width: read it without the line breaks
    assert CALLED_IDENTITY in "".join(capsys.readouterr().out.split())
    # the exact SAN (sigstore verify github --cert-identity ... --repository ... --ref ...)
    exact = ["verify", str(dist), "--identity", CALLED_IDENTITY, "--repository", REPOSITORY]
    assert main([*exact, "--ref", TAG, *trust]) == 0
    assert main([*exact, "--ref", "v9.9.9", *trust]) == 1


def test_verify_rejects_the_reusable_workflow_called_from_another_repository(
    sigstore_standin: SigstoreStandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """evil/fork calls the same upm-release.yml: same SAN, another source repository."""
    dist, _ = _sign_in_reusable_workflow(
        tmp_path / "evil", "evil/fork", sigstore_standin, monkeypatch
    )
    assert _san(dist / f"{WHEEL}.sigstore.json") == {CALLED_IDENTITY}
    trust = ["--trust-config", str(sigstore_standin.trust_config_path), "--offline"]
    capsys.readouterr()
    for args in (
        ["--repository", REPOSITORY, "--ref", TAG],
        ["--identity", CALLED_IDENTITY, "--repository", REPOSITORY],
    ):
        assert main(["verify", str(dist), *args, *trust]) == 1, args
        out = capsys.readouterr().out
        assert "evil/fork" in out and REPOSITORY in out, out
        assert "repository: expected" in " ".join(out.split()), out
    # $GITHUB_REPOSITORY pins it too
    monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
    assert main(["verify", str(dist), "--identity", CALLED_IDENTITY, *trust]) == 1


def test_verify_with_no_repository_anywhere_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    code = main(
        ["verify", str(dist), "--project", str(tmp_path / "none")] + ["--identity", CALLED_IDENTITY]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--repository" in err and len(err.strip().splitlines()) <= 2, err


def test_a_dry_run_pins_the_ref_that_ran_and_a_release_pins_the_tag() -> None:
    """A dry run dispatched from a branch signs for that branch (never for the tag)."""
    claims = identity.TokenClaims(
        github_claims(repository="o/r", ref="refs/heads/main", event_name="workflow_dispatch")
    )
    dry = identity.expected_signer(
        claims, repository="o/r", tag="v1.0.0", release_workflow="w.yml", dry_run=True
    )
    assert dry.ref == "refs/heads/main"
    assert dry.identity == "https://github.com/o/r/w.yml@refs/heads/main"
    assert not identity.preflight(
        claims, expected_identity=None, expected_repository="o/r", expected_ref=dry.ref
    )
    real = identity.expected_signer(
        claims, repository="o/r", tag="v1.0.0", release_workflow="w.yml"
    )
    assert real.ref == "refs/tags/v1.0.0"
    problems = identity.preflight(
        claims, expected_identity=None, expected_repository="o/r", expected_ref=real.ref
    )
    assert any("refs/heads/main" in p for p in problems)


def test_one_rule_turns_a_tag_into_a_ref() -> None:
    assert identity.tag_ref("v1.2.0") == "refs/tags/v1.2.0"
    assert identity.tag_ref("refs/tags/v1.2.0") == "refs/tags/v1.2.0"
    assert identity.tag_ref("refs/heads/main") == "refs/heads/main"


def test_the_manifest_gives_the_recorded_signer_typed() -> None:
    manifest = Manifest(ProjectInfo("upm-sample", "1.2.0", "v1.2.0", repository=REPOSITORY))
    assert manifest.recorded_signer() is None
    manifest.record_phase("sign", "fail", reason="preflight")
    assert manifest.recorded_signer() is None  # a failed sign recorded no identity
    manifest.record_phase(
        "sign",
        "pass",
        identity=IDENTITY,
        issuer=identity.GITHUB_ISSUER,
        repository=REPOSITORY,
        ref="refs/tags/v1.2.0",
        trigger="push",
        runner_environment="github-hosted",
        sha="not-a-commit",
        bundles=3,
    )
    recorded = manifest.recorded_signer()
    assert recorded == identity.RecordedSigner(
        identity.ExpectedSigner(IDENTITY, REPOSITORY, "refs/tags/v1.2.0"),
        trigger="push",
        runner_environment="github-hosted",
        sha="",  # only a commit id is taken
    )


def test_verify_prefers_the_recorded_signer_only_for_its_own_repository_and_tag() -> None:
    called = UPM_RELEASE_WORKFLOW.join(["https://github.com/", "@refs/heads/main"])
    recorded = identity.ExpectedSigner(called, REPOSITORY, "refs/tags/v1.2.0")
    same = identity.verification_signer(repository=REPOSITORY, tag="v1.2.0", recorded=recorded)
    assert same == identity.ExpectedSigner(called, REPOSITORY, "refs/tags/v1.2.0")
    other = identity.verification_signer(repository=REPOSITORY, tag="v1.3.0", recorded=recorded)
    assert other.identity == identity.workflow_identity(
        REPOSITORY, identity.DEFAULT_RELEASE_WORKFLOW, "refs/tags/v1.3.0"
    )
    assert other.alternatives == (identity.UPM_RELEASE_IDENTITY,)
    asked = identity.verification_signer(
        repository=REPOSITORY, tag="v1.2.0", recorded=recorded, workflow=".github/workflows/r.yml"
    )
    assert asked.identity.endswith("/.github/workflows/r.yml@refs/tags/v1.2.0")
    assert asked.alternatives == ()
    with pytest.raises(InputError, match="cannot tell which identity"):
        identity.verification_signer(repository="", tag="v1.2.0")
