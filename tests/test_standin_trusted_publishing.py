"""Trusted Publishing at the PyPI stand-in, with each job's own token from the OIDC stand-in.

The run is a project's release workflow (``.github/workflows/release.yml``) that calls
upm-release's reusable workflow for its signing jobs and publishes in a job of its own: the
OIDC stand-in mints each job's claims as GitHub does, and the PyPI stand-in, whose trusted
publisher is the project's release.yml, exchanges only the caller's job's token (PyPI matches
``job_workflow_ref``: pypi/warehouse#11096).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.pypi import PYPI_TOKEN, make_distributions
from upm_ci.errors import InputError, PolicyError
from upm_ci.identity import ExpectedSigner
from upm_ci.publish import pypi
from upm_ci.release_signer import ReleaseSigner
from upm_ci.standins.oidc import (
    UPM_RELEASE_WORKFLOW,
    OidcStandIn,
    decode_claims,
    mint_github_token,
    mint_jwt,
)
from upm_ci.standins.pypi import PypiStandIn, TrustedPublisher
from upm_ci.standins.sigstore_server import SigstoreStandIn

REPOSITORY = "unexpected/upm-sample"
TAG_REF = "refs/tags/v1.2.0"
CALLED = f"{UPM_RELEASE_WORKFLOW}@{'c' * 40}"


@pytest.fixture
def index() -> Iterator[PypiStandIn]:
    with PypiStandIn(
        password=PYPI_TOKEN, capture=True, trusted_publisher=TrustedPublisher(REPOSITORY)
    ) as standin:
        yield standin


@pytest.fixture
def run() -> Iterator[OidcStandIn]:
    """One run: the default endpoint is a job of the reusable workflow (sign), plus the
    caller's own publish job."""
    with OidcStandIn(repository=REPOSITORY, ref=TAG_REF, reusable_workflow=CALLED) as oidc:
        oidc.add_job("publish", reusable_workflow=None, environment="release")
        yield oidc


def _token_from(url: str, request_token: str, audience: str) -> str:
    answer = requests.get(
        f"{url}&audience={audience}",
        headers={"Authorization": f"bearer {request_token}"},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["value"])


def _exchange(index: PypiStandIn, token: str) -> requests.Response:
    return requests.post(f"{index.url}/_/oidc/mint-token", json={"token": token}, timeout=10)


def test_each_job_of_the_run_gets_its_own_claims(run: OidcStandIn) -> None:
    sign = decode_claims(_token_from(run.url, run.request_token, "sigstore"))
    job = run.jobs["publish"]
    publish = decode_claims(_token_from(job.url, job.request_token, "pypi"))
    caller = f"{REPOSITORY}/.github/workflows/release.yml@{TAG_REF}"
    assert sign["job_workflow_ref"] == CALLED
    assert publish["job_workflow_ref"] == caller
    assert sign["workflow_ref"] == publish["workflow_ref"] == caller
    assert sign["repository"] == publish["repository"] == REPOSITORY
    assert sign["ref"] == publish["ref"] == TAG_REF
    assert sign["run_id"] == publish["run_id"]
    assert (sign["aud"], publish["aud"]) == ("sigstore", "pypi")
    # One job's request token does not open another job's endpoint.
    wrong = requests.get(
        f"{job.url}&audience=pypi",
        headers={"Authorization": f"bearer {run.request_token}"},
        timeout=10,
    )
    assert wrong.status_code == 401


def test_the_callers_job_token_is_exchanged_and_uploads(
    index: PypiStandIn, run: OidcStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in run.jobs["publish"].env().items():
        monkeypatch.setenv(name, value)
    token = pypi.trusted_publishing_token(index.upload_url)
    assert token == index.password
    assert [c["job_workflow_ref"].split("@")[0] for c in index.minted] == [
        f"{REPOSITORY}/.github/workflows/release.yml"
    ]
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    target = pypi.IndexTarget(index.upload_url, index.simple_url, token)
    plan = [
        pypi.PlannedFile(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest(), "upload")
        for p in dists
    ]
    pypi.upload(target, "upm-sample", plan)
    assert sorted(index.files()) == sorted(p.name for p in dists)


def test_the_reusable_workflows_token_is_refused_as_pypi_does(
    index: PypiStandIn, run: OidcStandIn
) -> None:
    """A job inside upm-release.yml, called from the publisher's own release.yml: refused."""
    token = _token_from(run.url, run.request_token, "pypi")
    answer = _exchange(index, token)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert [e["code"] for e in errors] == ["invalid-publisher"]
    assert UPM_RELEASE_WORKFLOW in errors[0]["description"]
    assert not index.minted and len(index.refused) == 1
    # The client refuses it before asking (and says why), so nothing reaches the exchange.
    with pytest.raises(InputError, match="reusable workflow"):
        pypi.trusted_publishing_token(index.upload_url, id_token=lambda audience: token)
    assert len(index.exchanges) == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"repository": "someone/else"}, "repository"),
        ({"audience": "sigstore"}, "audience"),
        ({"workflow_path": ".github/workflows/other.yml"}, "job_workflow_ref"),
        ({"lifetime": -10}, "expired"),
    ],
)
def test_other_tokens_are_refused(
    index: PypiStandIn, claims: dict[str, object], reason: str
) -> None:
    params: dict[str, object] = {"repository": REPOSITORY, "audience": "pypi", **claims}
    answer = _exchange(index, mint_github_token(**params))
    assert answer.status_code == 422
    assert reason in answer.json()["errors"][0]["description"]
    assert not index.minted


def test_a_token_the_issuer_did_not_sign_is_refused(index: PypiStandIn) -> None:
    good = mint_github_token(repository=REPOSITORY, audience="pypi")
    forged = good.rsplit(".", 1)[0] + "." + mint_jwt({}).rsplit(".", 1)[1]
    answer = _exchange(index, forged)
    assert answer.status_code == 422
    assert "signature" in answer.json()["errors"][0]["description"]
    assert _exchange(index, good).status_code == 200


def test_an_environment_bound_publisher_wants_that_environment(tmp_path: Path) -> None:
    publisher = TrustedPublisher(REPOSITORY, environment="release")
    with PypiStandIn(password=PYPI_TOKEN, trusted_publisher=publisher) as index:
        plain = mint_github_token(repository=REPOSITORY, audience="pypi")
        bound = mint_github_token(repository=REPOSITORY, audience="pypi", environment="release")
        assert _exchange(index, plain).status_code == 422
        assert _exchange(index, bound).status_code == 200


def test_one_endpoint_for_every_job_tells_them_apart_by_who_asks() -> None:
    """act gives all jobs the same endpoint: ``job_of`` names the job a request comes from."""
    asking: list[tuple[str, int]] = []

    def job_of(address: tuple[str, int]) -> str | None:
        asking.append(address)
        return "publish" if len(asking) == 2 else "sign"  # "sign" is not a job: the default

    with OidcStandIn(
        repository=REPOSITORY, ref=TAG_REF, reusable_workflow=CALLED, job_of=job_of
    ) as oidc:
        oidc.add_job("publish", reusable_workflow=None)
        first = decode_claims(_token_from(oidc.url, oidc.request_token, "sigstore"))
        second = decode_claims(_token_from(oidc.url, oidc.request_token, "pypi"))
    assert first["job_workflow_ref"] == CALLED
    assert second["job_workflow_ref"] == f"{REPOSITORY}/.github/workflows/release.yml@{TAG_REF}"
    assert [a[0] for a in asking] == ["127.0.0.1", "127.0.0.1"]
    assert [r["job"] for r in oidc.requests] == [None, "publish"]


def test_attestations_are_checked_against_the_publisher_as_pypi_does(
    tmp_path: Path, sigstore_standin: SigstoreStandIn
) -> None:
    """PyPI takes an attestation whose certificate names the publisher's repository and, as
    Build Config URI, its workflow: one signed in upm-release.yml called from the publisher's
    release.yml passes (the calling workflow is the build config); one signed in another
    repository's release is refused, and nothing is stored."""
    dists = make_distributions(tmp_path / "dist", "upm-sample", "1.2.0")
    own = _attested(dists[1], sigstore_standin, REPOSITORY, CALLED)
    other = _attested(dists[0], sigstore_standin, "mallory/upm-sample", None)
    with PypiStandIn(
        password=PYPI_TOKEN, capture=True, trusted_publisher=TrustedPublisher(REPOSITORY)
    ) as index:
        target = pypi.IndexTarget(index.upload_url, index.simple_url, PYPI_TOKEN)
        pypi.upload(target, "upm-sample", [_planned(dists[1], own)])
        assert set(index.files()) == {dists[1].name}
        with pytest.raises(PolicyError, match="Invalid attestations"):
            pypi.upload(target, "upm-sample", [_planned(dists[0], other)])
        assert set(index.files()) == {dists[1].name}
        [(name, problems)] = index.rejected_attestations
        assert name == dists[0].name and "mallory/upm-sample" in problems[0]


def _attested(dist: Path, standin: SigstoreStandIn, repository: str, reusable: str | None) -> Path:
    identity = (
        f"https://github.com/{reusable}"
        if reusable
        else f"https://github.com/{repository}/.github/workflows/release.yml@{TAG_REF}"
    )
    token = mint_github_token(repository=repository, ref=TAG_REF, reusable_workflow=reusable)
    with ReleaseSigner(
        token, expected=ExpectedSigner(identity=identity), trust_config=standin.trust_config_path
    ) as signer:
        return signer.sign_pep740(dist)


def _planned(dist: Path, attestation: Path) -> pypi.PlannedFile:
    sha = hashlib.sha256(dist.read_bytes()).hexdigest()
    return pypi.PlannedFile(dist.name, dist, sha, "upload", attestation)
