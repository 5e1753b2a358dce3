"""The recommended path's hand-off: upm-release's reusable workflow signs, the caller's own
job publishes with Trusted Publishing after verifying what it was handed.

Real everything: the release is signed by the real sign phase with a token of a job of the
reusable workflow (the OIDC stand-in's claims for it), against the Sigstore stand-in; the
caller's publish job gets its own token from the OIDC stand-in, exchanges it at the PyPI
stand-in (whose trusted publisher is the project's release.yml), uploads with real PEP 740
attestations to pypiserver and makes the release on the GitHub stand-in; the release is then
verified as a consumer does. A hand-off tampered between the jobs, signed by another
workflow or for another repository's caller, stops publish with nothing on the index
(pypiserver's own simple index) or the release (the GitHub stand-in's API).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.github import GITHUB_TOKEN, SAMPLE_NAME, SAMPLE_OWNER
from tests.fixtures.pypi import CHANGELOG, PYPI_TOKEN, make_distributions
from tests.fixtures.release_kit import cyclonedx
from upm_ci import sign
from upm_ci.cli import main
from upm_ci.identity import ExpectedSigner
from upm_ci.layout import PEP740_SUFFIX
from upm_ci.manifest import Manifest, ProjectInfo, SbomRecord
from upm_ci.project import load_project
from upm_ci.publish.handoff import handoff_digest
from upm_ci.standins.faults import FaultRule
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.oidc import UPM_RELEASE_WORKFLOW, OidcStandIn, mint_github_token
from upm_ci.standins.pypi import PypiStandIn, TrustedPublisher
from upm_ci.standins.sigstore_server import SigstoreStandIn

REPO = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"
TAG = "v1.2.0"
TAG_REF = f"refs/tags/{TAG}"
CALLED = f"{UPM_RELEASE_WORKFLOW}@{'c' * 40}"
WHEEL = "upm_sample-1.2.0-py3-none-any.whl"
SDIST = "upm_sample-1.2.0.tar.gz"
PYPROJECT = f"""\
[project]
name = "upm-sample"
version = "1.2.0"

[tool.upm-release]
repository = "{REPO}"
"""


def built_release(root: Path) -> Path:
    """What the reusable workflow's jobs before sign leave: a project checkout, and
    ``release/`` with the manifest and ``dist/`` (real sdist and wheel, SHA256SUMS, SBOMs)."""
    project = root / "project"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "CHANGELOG.md").write_text(CHANGELOG)
    dist = root / "release" / "dist"
    dists = make_distributions(dist, "upm-sample", "1.2.0")
    (dist / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in dists)
    )
    wheel_sha = hashlib.sha256((dist / WHEEL).read_bytes()).hexdigest()
    (dist / f"{WHEEL}.cdx.json").write_text(json.dumps(cyclonedx(wheel_sha)))
    manifest = Manifest(ProjectInfo("upm-sample", "1.2.0", TAG, repository=REPO))
    manifest.path = root / "release" / "release-manifest.json"
    for path in dists:
        manifest.add_file(path, "sdist" if path.name.endswith(".tar.gz") else "wheel")
    manifest.add_file(dist / "SHA256SUMS", "checksums")
    wheel = manifest.artifact(WHEEL)
    assert wheel is not None
    sbom = manifest.add_file(dist / f"{WHEEL}.cdx.json", "sbom")
    manifest.add_sbom(SbomRecord(sbom.name, "cyclonedx", wheel.name, wheel.sha256))
    # the gate's rows go into the release statement; a gate with none is no verdict
    manifest.record_phase("gate", "pass", checks={"tests": "pass"}, summaries={"tests": "ok"})
    for phase in ("build", "sbom"):
        manifest.record_phase(phase, "pass")
    manifest.save()
    return root


def signed_release(
    root: Path, trust_config: Path, *, repository: str = REPO, reusable: str | None = CALLED
) -> Path:
    """``built_release`` signed by the sign phase in a job of ``reusable`` (None: the
    project's own release.yml) called from ``repository``'s release workflow at the tag."""
    built_release(root)
    identity = (
        f"https://github.com/{reusable}"
        if reusable
        else f"https://github.com/{repository}/.github/workflows/release.yml@{TAG_REF}"
    )
    project = load_project(root / "project")
    manifest = Manifest.load(root / "release" / "release-manifest.json")
    sign.sign_release(
        project,
        manifest,
        dist_dir=root / "release" / "dist",
        identity_token=mint_github_token(
            repository=repository, ref=TAG_REF, reusable_workflow=reusable
        ),
        trust_config=trust_config,
        rekor_version=1,
        gpg_key=None,
        gpg_passphrase=None,
        expected_identity=ExpectedSigner(identity, repository=repository, ref=TAG_REF),
    )
    return root


@pytest.fixture(scope="module")
def handed_over(
    tmp_path_factory: pytest.TempPathFactory, sigstore_standin: SigstoreStandIn
) -> Path:
    """The reusable workflow's signed-artifact (release/) and the project checkout."""
    return signed_release(tmp_path_factory.mktemp("signed"), sigstore_standin.trust_config_path)


@pytest.fixture
def job(handed_over: Path, tmp_path: Path) -> Path:
    """The caller's publish job's workspace: the artifact downloaded afresh."""
    shutil.copytree(handed_over, tmp_path / "job")
    return tmp_path / "job"


@pytest.fixture
def gh(github_standin: GitHubStandIn) -> GitHubStandIn:
    r = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME, immutable_releases=True)
    github_standin.add_commit(r, message="init", author="alice")
    return github_standin


@pytest.fixture
def index() -> Iterator[PypiStandIn]:
    """PyPI with the project's release.yml as its trusted publisher."""
    with PypiStandIn(
        password=PYPI_TOKEN, capture=True, trusted_publisher=TrustedPublisher(REPO)
    ) as standin:
        yield standin


@pytest.fixture
def publish_job(monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcStandIn]:
    """The run's token endpoints; this process is the caller's publish job (its env)."""
    with OidcStandIn(repository=REPO, ref=TAG_REF, reusable_workflow=CALLED) as oidc:
        job = oidc.add_job("publish", reusable_workflow=None, environment="release")
        for name, value in job.env().items():
            monkeypatch.setenv(name, value)
        yield oidc


def publish_args(
    job: Path, gh: GitHubStandIn, index: PypiStandIn, trust_config: Path, *extra: str
) -> list[str]:
    """The caller's publish step, as docs/actions.md's snippet runs it."""
    release = job / "release"
    return [
        "publish",
        "--project",
        str(job / "project"),
        "--manifest",
        str(release / "release-manifest.json"),
        "--dist-dir",
        str(release / "dist"),
        "--github-api-url",
        gh.api_url,
        "--github-token",
        GITHUB_TOKEN,
        "--repository",
        REPO,
        "--tag",
        TAG,
        "--pypi-upload-url",
        index.upload_url,
        "--pypi-index-url",
        index.simple_url,
        "--trusted-publishing",
        "--expect-signer",
        "reusable",
        "--trust-config",
        str(trust_config),
        *extra,
    ]


def digest_of(job: Path) -> str:
    return handoff_digest(Manifest.load(job / "release" / "release-manifest.json"))


def releases(gh: GitHubStandIn) -> list[dict[str, Any]]:
    """The repository's releases, drafts included, as GitHub's API lists them."""
    answer = requests.get(
        f"{gh.api_url}/repos/{REPO}/releases",
        headers={"Authorization": f"token {GITHUB_TOKEN}"},
        timeout=10,
    )
    answer.raise_for_status()
    listed: list[dict[str, Any]] = answer.json()
    return listed


def on_index(index: PypiStandIn) -> str:
    """pypiserver's own simple page for the project ("" when it has no file)."""
    answer = requests.get(f"{index.server_url}/simple/upm-sample/", auth=index.auth, timeout=10)
    return answer.text if answer.status_code == 200 else ""


def assert_nothing_published(gh: GitHubStandIn, index: PypiStandIn) -> None:
    assert releases(gh) == []
    assert on_index(index) == "" or ".whl" not in on_index(index)
    assert index.files() == {}
    assert index.uploads == []
    assert index.exchanges == []  # not even an upload token was asked for


def consumer_verify(job: Path, gh: GitHubStandIn, trust_config: Path, dest: Path) -> int:
    return main(
        [
            "verify",
            "--project",
            str(job / "project"),
            "--github-release",
            TAG,
            "--repository",
            REPO,
            "--github-api-url",
            gh.api_url,
            "--github-token",
            GITHUB_TOKEN,
            "--trust-config",
            str(trust_config),
            "--offline",
            str(dest),
        ]
    )


@dataclass
class CallerJob:
    """The caller's publish job with everything it talks to: its workspace (the artifact
    downloaded afresh), the GitHub and PyPI stand-ins, the trust config."""

    dir: Path
    gh: GitHubStandIn
    index: PypiStandIn
    trust: Path

    def args(self, *extra: str) -> list[str]:
        return publish_args(self.dir, self.gh, self.index, self.trust, *extra)

    def assert_nothing_published(self) -> None:
        assert_nothing_published(self.gh, self.index)


@pytest.fixture
def caller(
    job: Path,
    gh: GitHubStandIn,
    index: PypiStandIn,
    publish_job: OidcStandIn,
    sigstore_standin: SigstoreStandIn,
) -> CallerJob:
    return CallerJob(job, gh, index, sigstore_standin.trust_config_path)


# --- the release goes out ------------------------------------------------------------------
def test_the_callers_job_publishes_with_trusted_publishing_and_pep740_and_it_verifies(
    caller: CallerJob, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job, gh, index, trust = caller.dir, caller.gh, caller.index, caller.trust
    digest = digest_of(job)
    assert (
        main(["manifest", "digest", "--manifest", str(job / "release/release-manifest.json")]) == 0
    )
    assert capsys.readouterr().out.strip() == digest
    assert main(caller.args("--handoff-digest", digest)) == 0, capsys.readouterr().err
    # Trusted Publishing with the caller's job's token (its workflow is the publisher).
    [claims] = index.minted
    assert claims["job_workflow_ref"] == f"{REPO}/.github/workflows/release.yml@{TAG_REF}"
    assert claims["environment"] == "release" and not index.refused
    # PEP 740: each upload carried the attestation sign made for it.
    dist = job / "release" / "dist"
    sent = {u.filename: u.fields.get("attestations", []) for u in index.uploads}
    assert set(sent) == {SDIST, WHEEL}
    for name, field in sent.items():
        assert json.loads(field[0]) == [json.loads((dist / (name + PEP740_SUFFIX)).read_text())]
    assert WHEEL in on_index(index) and SDIST in on_index(index)
    [release] = releases(gh)
    assert release["draft"] is False
    assert {WHEEL, SDIST, f"{WHEEL}{PEP740_SUFFIX}"} <= {a["name"] for a in release["assets"]}
    # What the release holds verifies as a consumer checks it (the audit log is signed by
    # the caller's release.yml, the rest by the reusable workflow: both pinned to REPO, TAG).
    assert consumer_verify(job, gh, trust, tmp_path / "download") == 0, capsys.readouterr()


def test_a_rerun_after_a_partial_publish_resumes(caller: CallerJob, tmp_path: Path) -> None:
    """The index refuses the second upload: the sdist is there, the release a draft; the
    re-run (the same hand-off, checked again) uploads only the wheel and publishes."""
    index, gh = caller.index, caller.gh
    index.faults.add_rule(FaultRule("400", method="POST", path_regex=r"^/$", skip=1))
    args = caller.args("--handoff-digest", digest_of(caller.dir))
    assert main(args) == 1
    assert set(index.files()) == {SDIST}
    assert [r["draft"] for r in releases(gh)] == [True]
    assert main(args) == 0
    assert set(index.files()) == {SDIST, WHEEL}
    assert [r["draft"] for r in releases(gh)] == [False]
    assert consumer_verify(caller.dir, gh, caller.trust, tmp_path / "download") == 0


# --- the hand-off is refused ---------------------------------------------------------------
def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_one_modified_file_stops_the_release_with_nothing_published(
    caller: CallerJob, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = digest_of(caller.dir)
    _flip_byte(caller.dir / "release" / "dist" / WHEEL)
    assert main(caller.args("--handoff-digest", digest)) == 1
    err = capsys.readouterr().err
    assert WHEEL in err and "nothing was published" in err
    caller.assert_nothing_published()


def test_a_modified_file_with_its_manifest_entry_fails_the_digest(
    caller: CallerJob, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = digest_of(caller.dir)
    wheel = caller.dir / "release" / "dist" / WHEEL
    _flip_byte(wheel)
    manifest = Manifest.load(caller.dir / "release" / "release-manifest.json")
    manifest.add_file(wheel, "wheel")
    manifest.save()
    assert main(caller.args("--handoff-digest", digest)) == 1
    assert "hand-off digest" in capsys.readouterr().err
    caller.assert_nothing_published()
    # Without the digest, the verify of the files still stops it.
    assert main(caller.args()) == 1
    assert WHEEL in capsys.readouterr().err
    caller.assert_nothing_published()


@pytest.mark.parametrize(
    ("signer", "named"),
    [
        ({"reusable": None}, "release.yml"),  # signed by the project's own workflow
        ({"repository": "mallory/upm-sample"}, "mallory/upm-sample"),  # another caller
    ],
    ids=["another-workflow", "another-repositorys-caller"],
)
def test_a_release_signed_by_another_signer_is_refused(
    signer: dict[str, Any],
    named: str,
    tmp_path: Path,
    gh: GitHubStandIn,
    index: PypiStandIn,
    publish_job: OidcStandIn,
    sigstore_standin: SigstoreStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trust = sigstore_standin.trust_config_path
    root = signed_release(tmp_path / "other", trust, **signer)
    if "repository" in signer:  # the other repository's release, handed to REPO's job
        manifest = Manifest.load(root / "release" / "release-manifest.json")
        manifest.project = ProjectInfo("upm-sample", "1.2.0", TAG, repository=REPO)
        manifest.save()
    args = publish_args(root, gh, index, trust, "--handoff-digest", digest_of(root))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "does not verify as signed by" in err and "sigstore" in err
    assert named in err, err
    assert_nothing_published(gh, index)


def test_a_missing_artifact_is_bad_input(
    caller: CallerJob, capsys: pytest.CaptureFixture[str]
) -> None:
    args = caller.args()
    shutil.rmtree(caller.dir / "release" / "dist")
    assert main(args) == 2
    assert "dist" in capsys.readouterr().err
    shutil.rmtree(caller.dir / "release")
    assert main(args) == 2
    assert "release-manifest.json" in capsys.readouterr().err
    caller.assert_nothing_published()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (("--handoff-digest", "md5:abc"), "--handoff-digest"),
        (("--expect-signer", "somebody"), "--expect-signer"),
    ],
)
def test_unusable_handoff_options_are_bad_input(
    extra: tuple[str, str], named: str, caller: CallerJob, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(caller.args(*extra)) == 2
    assert named in capsys.readouterr().err
    caller.assert_nothing_published()
