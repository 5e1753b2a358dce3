"""`upm-ci publish` sends each distribution's PEP 740 attestation in twine's ``attestations``
field: real uploads through the capturing PyPI stand-in, real attestations signed against the
Sigstore stand-in, the GitHub stand-in for the release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.github import GITHUB_TOKEN
from tests.fixtures.pypi import PYPI_TOKEN, make_release
from tests.test_publish import REPO, _args, _releases, gh
from upm_ci.cli import main
from upm_ci.errors import InputError
from upm_ci.identity import ExpectedSigner
from upm_ci.layout import PEP740_SUFFIX
from upm_ci.manifest import AttestationRecord, Manifest
from upm_ci.project import load_project
from upm_ci.publish import pypi
from upm_ci.publish.phase import PublishSettings, publish_release, recorded_attestations
from upm_ci.publish.pypi import IndexTarget
from upm_ci.release_signer import ReleaseSigner
from upm_ci.sigstore_common import PYPI_PUBLISH_V1
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.oidc import mint_github_token
from upm_ci.standins.pypi import PypiStandIn
from upm_ci.standins.sigstore_server import SigstoreStandIn

__all__ = ["gh"]

IDENTITY = "https://github.com/unexpected/upm-sample/.github/workflows/release.yml@refs/tags/v1.2.0"


@pytest.fixture
def attested(tmp_path: Path, sigstore_standin: SigstoreStandIn) -> Path:
    """A release whose sdist and wheel have real attestations recorded in the manifest."""
    manifest_path = make_release(tmp_path / "proj")
    manifest = Manifest.load(manifest_path)
    with ReleaseSigner(
        mint_github_token(),
        expected=ExpectedSigner(identity=IDENTITY),
        trust_config=sigstore_standin.trust_config_path,
    ) as signer:
        for dist in manifest.distributions():
            made = manifest.add_file(
                signer.sign_pep740(manifest.resolve(dist)), "pep740-attestation"
            )
            subject = {"name": dist.name, "digest": {"sha256": dist.sha256}}
            manifest.add_attestation(AttestationRecord(made.name, PYPI_PUBLISH_V1, [subject]))
    manifest.save()
    return manifest_path


def sent(pypi_standin: PypiStandIn) -> dict[str, list[str]]:
    """Upload file name -> the ``attestations`` field values it carried."""
    return {u.filename: u.fields.get("attestations", []) for u in pypi_standin.uploads}


def expected_field(manifest_path: Path, dist: str) -> list[object]:
    return [json.loads((manifest_path.parent / "dist" / (dist + PEP740_SUFFIX)).read_text())]


def dist_names(manifest_path: Path) -> list[str]:
    return [a.name for a in Manifest.load(manifest_path).distributions()]


def test_attestations_are_uploaded_with_each_distribution_and_attached_to_the_release(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    attested: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(_args(attested, gh, pypi_standin)) == 0
    out, err = capsys.readouterr()
    assert PYPI_TOKEN not in out + err and GITHUB_TOKEN not in out + err
    carried = sent(pypi_standin)
    assert sorted(carried) == sorted(dist_names(attested))
    for dist, values in carried.items():
        [value] = values
        assert json.loads(value) == expected_field(attested, dist)
    [release] = _releases(gh)
    assets = {a["name"] for a in release["assets"]}
    assert {d + PEP740_SUFFIX for d in dist_names(attested)} <= assets


def test_retried_upload_carries_the_attestation_again(
    pypi_standin: PypiStandIn, attested: Path
) -> None:
    manifest = Manifest.load(attested)
    dists = [(a.name, manifest.resolve(a), a.sha256) for a in manifest.distributions()]
    target = IndexTarget(pypi_standin.upload_url, pypi_standin.simple_url, PYPI_TOKEN)
    sending = pypi.attestations_to_send(
        target, dists, recorded_attestations(manifest), trusted_publishing=False
    )
    plan = pypi.plan_uploads(dists, {}, sending)
    pypi_standin.fail_next(503)
    pypi.upload(target, "upm-sample", plan)
    assert pypi_standin.faults.counts() == {"503": 1}, "the 503 was answered"
    statuses = [(u.status, bool(u.fields.get("attestations"))) for u in pypi_standin.uploads]
    assert statuses == [(200, True), (200, True)]
    assert sorted(pypi_standin.files()) == sorted(n for n, _, _ in dists)


def test_no_attestations_flag_semantics_skip_sending(
    pypi_standin: PypiStandIn, attested: Path
) -> None:
    project = load_project(attested.parent)
    target = IndexTarget(
        pypi_standin.upload_url, pypi_standin.simple_url, PYPI_TOKEN, skip_attestations=True
    )
    settings = PublishSettings(
        repository=REPO, tag="v1.2.0", github_api_url="", pypi=target, skip_github=True
    )
    publish_release(project, Manifest.load(attested), settings)
    assert all(v == [] for v in sent(pypi_standin).values())
    assert len(pypi_standin.files()) == 2


def test_attestation_missing_for_one_distribution_exits_2_before_anything_is_sent(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    attested: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = Manifest.load(attested)
    wheel = next(a for a in manifest.distributions() if a.kind == "wheel")
    manifest.artifacts = [a for a in manifest.artifacts if a.name != wheel.name + PEP740_SUFFIX]
    manifest.save()
    assert main(_args(attested, gh, pypi_standin)) == 2
    err = capsys.readouterr().err
    assert f"{wheel.name}{PEP740_SUFFIX}: missing" in err and "--no-attestations" in err
    assert pypi_standin.uploads == [] and _releases(gh) == []


def test_required_attestations_missing_exit_2(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, tmp_path: Path
) -> None:
    plain = make_release(tmp_path / "plain")
    assert main(_args(plain, gh, pypi_standin, "--attestations")) == 2
    assert pypi_standin.uploads == [] and _releases(gh) == []


def test_release_without_attestations_uploads_without_the_field(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, tmp_path: Path
) -> None:
    plain = make_release(tmp_path / "plain")
    assert main(_args(plain, gh, pypi_standin)) == 0
    assert all(v == [] for v in sent(pypi_standin).values()) and len(pypi_standin.uploads) == 2


def test_changed_attestation_file_exits_2_and_sends_nothing(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, attested: Path
) -> None:
    att = next(attested.parent.glob("dist/*" + PEP740_SUFFIX))
    att.write_text(att.read_text().replace('"version":1', '"version": 1'))
    assert main(_args(attested, gh, pypi_standin)) == 2
    assert pypi_standin.uploads == [] and _releases(gh) == []


def test_dry_run_plan_names_the_attestations(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    attested: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(_args(attested, gh, pypi_standin, "--dry-run")) == 0
    out = capsys.readouterr().out
    for dist in dist_names(attested):
        assert f"upload {dist} " in out and f"with {dist}{PEP740_SUFFIX}" in out
    assert pypi_standin.uploads == []


DISTS = [
    ("a-1.0.tar.gz", Path("a-1.0.tar.gz"), "0" * 64),
    ("a-1.0-py3-none-any.whl", Path("w"), "1" * 64),
]
RECORDED = {name: Path(name + PEP740_SUFFIX) for name, _, _ in DISTS}


@pytest.mark.parametrize(
    "url", ["https://upload.pypi.org/legacy/", "https://test.pypi.org/legacy/"]
)
def test_pypi_takes_attestations_only_from_trusted_publishing(url: str) -> None:
    token = IndexTarget(url, "https://pypi.org/simple/", "pypi-token")
    assert pypi.attestations_to_send(token, DISTS, RECORDED, trusted_publishing=False) == {}
    assert pypi.attestations_to_send(token, DISTS, RECORDED, trusted_publishing=True) == RECORDED
    required = IndexTarget(url, "https://pypi.org/simple/", "pypi-token", attestations=True)
    with pytest.raises(InputError, match="only with Trusted Publishing"):
        pypi.attestations_to_send(required, DISTS, RECORDED, trusted_publishing=False)


def test_other_indexes_get_them_with_a_token() -> None:
    target = IndexTarget(
        "https://pypi.example.org/upload/", "https://pypi.example.org/simple/", "t"
    )
    assert pypi.attestations_to_send(target, DISTS, RECORDED, trusted_publishing=False) == RECORDED
    assert pypi.attestations_to_send(target, DISTS, {}, trusted_publishing=False) == {}
