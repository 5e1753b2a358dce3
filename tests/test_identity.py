"""The OIDC preflight: each problem is found from the token's claims, with a sentence that
says what the certificate will carry and what verify expects."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from upm_ci import identity
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.standins.oidc import OidcStandIn, mint_github_token

REPOSITORY = "unexpected/upm-sample"
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
        identity.decode_claims(token + "sentinel")
    assert "sentinel" not in str(err.value)


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
