"""`upm-ci verify`: real signed releases pass; report, manifest, GitHub download, faults,
bad input and secrets; and the verifier is sigstore's own."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.verify import Verifier

from tests.fixtures.release_kit import (
    CDX,
    REPOSITORY,
    SDIST,
    SPDX,
    TAG,
    WHEEL,
    ReleaseKit,
    add_audit_log,
    complete_manifest,
    cyclonedx,
    release_dir,
    release_kit,
    release_policy,
)
from upm_ci.cli import main
from upm_ci.manifest import Manifest, ProjectInfo, SbomRecord
from upm_ci.sigstore_common import make_verifier, verification_policy
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.oidc import OidcStandIn, mint_github_token
from upm_ci.standins.sigstore_server import SigstoreStandIn
from upm_ci.verify.phase import verify_release
from upm_ci.verify.report import SCHEMA

__all__ = ["release_dir", "release_kit"]

SENTINEL_TOKEN = "ghs_sentinelVerifyToken0123456789abcdef"

IDENTITY = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@refs/tags/{TAG}"


@pytest.fixture(autouse=True)
def _pin_the_kit_gpg_key(release_kit: ReleaseKit, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify trusts .asc signatures only by a pinned key: the CLI gets the kit's fingerprint."""
    monkeypatch.setenv("UPM_GPG_FINGERPRINT", release_kit.gpg.fingerprint)


def cli_args(kit: ReleaseKit, dist: Path | None, *extra: str) -> list[str]:
    return [
        "verify",
        *([str(dist)] if dist else []),
        "--project",
        str(dist.parent if dist else kit.root),
        "--repository",
        REPOSITORY,
        "--ref",
        TAG,
        "--trust-config",
        str(kit.trust_config),
        "--offline",
        *extra,
    ]


def run(kit: ReleaseKit, dist: Path, **kwargs: object) -> bool:
    args: dict[str, object] = {
        "policy": release_policy(),
        "trust_config": kit.trust_config,
        "offline": True,
        "manifest": None,
        "gpg_public_key": None,
        "gpg_fingerprint": kit.gpg.fingerprint,
        **kwargs,
    }
    return verify_release(dist, **args).passed  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ happy path


def test_cli_passes_and_writes_the_report(
    release_kit: ReleaseKit,
    release_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    report = tmp_path / "report.json"

    code = main(
        cli_args(
            release_kit,
            release_dir,
            "--gpg-public-key",
            str(release_kit.gpg.public_key),
            "--trigger",
            "push",
            "--report-json",
            str(report),
        )
    )

    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(report.read_text())
    assert data["schema"] == SCHEMA and data["passed"] is True
    assert data["policy"]["repository"] == REPOSITORY
    assert data["policy"]["ref"] == f"refs/tags/{TAG}" and data["policy"]["trigger"] == "push"
    names = {a["name"] for a in data["artifacts"]}
    assert {SDIST, WHEEL, CDX, SPDX, "SHA256SUMS"} <= names
    (wheel,) = [a for a in data["artifacts"] if a["name"] == WHEEL]
    assert wheel["sha256"] == hashlib.sha256((release_dir / WHEEL).read_bytes()).hexdigest()
    assert {c["check"] for c in wheel["checks"]} == {
        "sigstore",
        "checksum",
        "provenance",
        "sbom-attestation",
        "gpg",
        "release-statement",
    }
    assert "verification passed" in out
    assert "Release verification passed" in summary.read_text()
    assert "passed=true" in outputs.read_text()


def test_rekor_v2_release_passes_via_the_cli(release_kit: ReleaseKit, tmp_path: Path) -> None:
    dist = release_kit.copy(tmp_path / "dist", rekor_version=2)
    assert main(cli_args(release_kit, dist)) == 0


def test_policy_comes_from_the_project_config(release_kit: ReleaseKit, tmp_path: Path) -> None:
    release_kit.copy(tmp_path / "dist")  # the project's default dist dir
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "upm-sample"\nversion = "1.2.0"\n\n'
        f'[tool.upm-release]\nrepository = "{REPOSITORY}"\n'
    )
    base = ["verify", "--project", str(tmp_path), "--trust-config", str(release_kit.trust_config)]
    assert main(base) == 0  # dist dir, repository, tag and workflow all from the project
    assert main([*base, "--workflow", ".github/workflows/other.yml"]) == 1
    assert main([*base, "--ref", "v1.1.0"]) == 1


def test_explicit_identity_policy(release_kit: ReleaseKit, release_dir: Path) -> None:
    identity = f"https://github.com/{REPOSITORY}/.github/workflows/release.yml@refs/tags/{TAG}"
    base = ["verify", str(release_dir), "--trust-config", str(release_kit.trust_config)]
    base += ["--repository", REPOSITORY]  # an identity is always pinned to a repository
    assert main([*base, "--identity", identity]) == 0
    assert main([*base, "--identity", identity, "--issuer", "https://accounts.google.com"]) == 1
    assert main([*base, "--identity", identity.replace(TAG, "v9.9.9")]) == 1


def test_manifest_cross_check_and_phase_record(release_kit: ReleaseKit, tmp_path: Path) -> None:
    dist = release_kit.copy(tmp_path / "dist")
    manifest = Manifest.load(complete_manifest(dist, tmp_path / "release-manifest.json"))
    assert manifest.path is not None
    args = ["verify", str(dist), "--manifest", str(manifest.path)]
    args += ["--trust-config", str(release_kit.trust_config)]

    assert main(args) == 0  # repository and tag come from the manifest
    assert Manifest.load(manifest.path).phases["verify"]["status"] == "pass"

    data = json.loads(manifest.path.read_text())
    data["artifacts"][1]["sha256"] = "0" * 64
    manifest.path.write_text(json.dumps(data))
    assert main(args) == 1
    assert Manifest.load(manifest.path).phases["verify"]["status"] == "fail"


def test_manifest_file_missing_from_the_directory_fails(
    release_kit: ReleaseKit, release_dir: Path, tmp_path: Path
) -> None:
    manifest = Manifest.load(complete_manifest(release_dir, tmp_path / "m.json"))
    extra = tmp_path / "upm_sample-1.2.0-cp311-linux.whl"
    extra.write_bytes(b"another wheel")
    manifest.add_file(extra, "wheel")

    report = verify_release(
        release_dir,
        policy=release_policy(),
        trust_config=release_kit.trust_config,
        offline=True,
        manifest=manifest,
        gpg_public_key=None,
        gpg_fingerprint=release_kit.gpg.fingerprint,
    )

    assert [(n, c.check) for n, c in report.failures()] == [(extra.name, "manifest")]


def test_end_to_end_with_upm_ci_sign(
    sigstore_standin: SigstoreStandIn,
    oidc_standin: OidcStandIn,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What `upm-ci sign` writes is what `upm-ci verify` accepts (the phase contract)."""
    project = tmp_path / "upm-sample"
    dist = project / "dist"
    dist.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "upm-sample"\nversion = "1.2.0"\n\n'
        f'[tool.upm-release]\nrepository = "{REPOSITORY}"\n'
    )
    (project / "unipkg.yaml").write_text("name: upm-sample\n")
    (project / ".unipkg.lock").write_text("lock: 1\n")
    (dist / SDIST).write_bytes(b"sdist" * 99)
    (dist / WHEEL).write_bytes(b"wheel" * 99)
    digests = {n: hashlib.sha256((dist / n).read_bytes()).hexdigest() for n in (SDIST, WHEEL)}
    (dist / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in digests.items()))
    (dist / CDX).write_text(json.dumps(cyclonedx(digests[WHEEL])))
    manifest = Manifest(ProjectInfo("upm-sample", "1.2.0", TAG, repository=REPOSITORY))
    manifest.path = project / "release-manifest.json"
    for name, kind in ((SDIST, "sdist"), (WHEEL, "wheel"), ("SHA256SUMS", "checksums")):
        manifest.add_file(dist / name, kind)
    manifest.add_file(dist / CDX, "sbom")
    manifest.add_sbom(SbomRecord(CDX, "cyclonedx", WHEEL, digests[WHEEL]))
    manifest.record_phase("gate", "pass", checks={"tests": "pass"}, summaries={"tests": "1 passed"})
    manifest.save()
    for name, value in oidc_standin.env().items():
        monkeypatch.setenv(name, value)
    trust = ["--trust-config", str(sigstore_standin.trust_config_path)]
    common = ["--project", str(project), "--manifest", str(manifest.path), *trust]
    assert main(["sign", *common]) == 0, capsys.readouterr()
    capsys.readouterr()
    add_audit_log(
        dist,
        mint_github_token(),
        sigstore_standin.trust_config_path,
        IDENTITY,
        manifest.path,
    )

    assert main(["verify", *common]) == 0, capsys.readouterr().out
    (dist / "SHA256SUMS").write_text(f"{digests[SDIST]}  {SDIST}\n")
    assert main(["verify", *common]) == 1


# ------------------------------------------------------------------------------ the verifier


def test_verifier_is_sigstore_s_own_and_agrees_with_it(
    release_kit: ReleaseKit, release_dir: Path
) -> None:
    """No subclass: every check sigstore has (or adds) runs, for every bundle."""
    root = ClientTrustConfig.from_json(release_kit.trust_config.read_text()).trusted_root
    ours, theirs = make_verifier(root), Verifier(trusted_root=root)
    assert type(ours) is Verifier
    policy = verification_policy(release_policy())
    names = [SDIST, WHEEL, CDX, SPDX, "SHA256SUMS"]
    for name in names:
        data = (release_dir / name).read_bytes()
        bundle = Bundle.from_json((release_dir / f"{name}.sigstore.json").read_bytes())
        theirs.verify_artifact(data, bundle, policy)
        ours.verify_artifact(data, bundle, policy)

    from sigstore.errors import VerificationError

    wrong = verification_policy(release_policy(repository="mallory/upm-sample"))
    bundle = Bundle.from_json((release_dir / f"{WHEEL}.sigstore.json").read_bytes())
    for verifier in (theirs, ours):
        with pytest.raises(VerificationError, match="SANs"):
            verifier.verify_artifact((release_dir / WHEEL).read_bytes(), bundle, wrong)


def test_corrupt_timestamp_gets_the_same_verdict_as_sigstore(
    release_kit: ReleaseKit, release_dir: Path
) -> None:
    """Through sigstore's public ``verify_artifact``: a corrupt TSA timestamp is dropped, so
    the bundle passes while the log's SET still dates it and fails once nothing else does."""
    from sigstore.errors import VerificationError

    root = ClientTrustConfig.from_json(release_kit.trust_config.read_text()).trusted_root
    policy = verification_policy(release_policy())

    def bundle(name: str, *, corrupt: bool, keep_set: bool) -> Bundle:
        data = json.loads((release_dir / f"{name}.sigstore.json").read_text())
        material = data["verificationMaterial"]
        if corrupt:
            stamps = material["timestampVerificationData"]["rfc3161Timestamps"]
            raw = bytearray(base64.b64decode(stamps[0]["signedTimestamp"]))
            raw[-5] ^= 0x01  # inside the CMS signature: the timestamp no longer verifies
            stamps[0]["signedTimestamp"] = base64.b64encode(bytes(raw)).decode()
        if not keep_set:
            del material["tlogEntries"][0]["inclusionPromise"]  # the log's signed time
        return Bundle.from_json(json.dumps(data))

    for verifier in (Verifier(trusted_root=root), make_verifier(root)):
        for name in (SDIST, WHEEL):
            data = (release_dir / name).read_bytes()
            # sigstore drops the bad timestamp; the SET remains
            verifier.verify_artifact(data, bundle(name, corrupt=True, keep_set=True), policy)
            # the intact timestamp alone dates the signature ...
            verifier.verify_artifact(data, bundle(name, corrupt=False, keep_set=False), policy)
            # ... the corrupt one does not: it was rejected, not merely ignored
            with pytest.raises(VerificationError):
                verifier.verify_artifact(data, bundle(name, corrupt=True, keep_set=False), policy)


def test_empty_directory_is_a_policy_failure(
    release_kit: ReleaseKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dist").mkdir()
    assert main(cli_args(release_kit, tmp_path / "dist")) == 1
    assert "no wheel or sdist" in capsys.readouterr().err


def test_gpg_signature_without_a_public_key_fails(
    release_kit: ReleaseKit, release_dir: Path
) -> None:
    (release_dir / "upm_sample-1.2.0.pub.asc").unlink()
    release_kit.seal(release_dir)  # a release without the key: signed as such
    assert not run(release_kit, release_dir)
    assert run(release_kit, release_dir, gpg_public_key=release_kit.gpg.public_key)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d, t: ["verify", str(d / "nope")], "release directory not found"),
        (lambda d, t: ["--report-json", str(t / "no" / "r.json")], "does not exist"),
        (lambda d, t: ["--report-json", str(t)], "is a directory"),
        (lambda d, t: ["--manifest", str(t / "missing.json")], "release manifest not found"),
        (lambda d, t: ["--trust-config", str(_write(t / "tc.json", "{]"))], "ClientTrustConfig"),
        (lambda d, t: ["--gpg-public-key", str(t / "key.asc")], "GPG public key not found"),
    ],
    ids=["missing-dir", "report-dir-missing", "report-is-dir", "manifest", "trust", "gpg-key"],
)
def test_bad_input_exits_2_and_writes_nothing(
    release_kit: ReleaseKit,
    release_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: object,
    message: str,
) -> None:
    extra = mutate(release_dir, tmp_path)  # type: ignore[operator]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    args = cli_args(release_kit, release_dir)
    args = [*extra, *args[2:]] if extra[0] == "verify" else [*args, *extra]

    code = main(args)

    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_no_identity_to_expect_exits_2(
    release_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(release_dir), "--project", str(tmp_path / "none")]) == 2
    assert "--repository" in capsys.readouterr().err


# ------------------------------------------------------------------------------ GitHub release


@pytest.fixture
def published(release_kit: ReleaseKit) -> Iterator[GitHubStandIn]:
    """The signed release published on a GitHub stand-in that accepts SENTINEL_TOKEN."""
    with GitHubStandIn(token={SENTINEL_TOKEN: "release-bot"}) as gh:
        repo = gh.add_repo("unexpected", "upm-sample")
        gh.add_tag(repo, TAG, gh.add_commit(repo, message="release", author="alice"))
        assets = {p.name: p.read_bytes() for p in release_kit.golden.iterdir()}
        gh.add_release(repo, TAG, assets=assets)
        yield gh


def github_args(kit: ReleaseKit, gh: GitHubStandIn, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "verify",
        "--project",
        str(tmp_path),
        "--github-release",
        TAG,
        "--github-api-url",
        gh.api_url,
        "--repository",
        REPOSITORY,
        "--trust-config",
        str(kit.trust_config),
        *extra,
    ]


def test_github_release_is_downloaded_and_verified(
    release_kit: ReleaseKit,
    published: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", SENTINEL_TOKEN)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    # Two transient faults on asset downloads and one on the release lookup: all retried.
    published.inject("503", path_regex=r"/releases/assets/", count=2)
    published.inject("503", path_regex=r"/releases/tags/", count=1)
    report = tmp_path / "report.json"
    dest = tmp_path / "downloaded"

    code = main(
        github_args(release_kit, published, tmp_path, str(dest), "--report-json", str(report))
    )

    out, err = capsys.readouterr()
    assert code == 0, out + err
    # GitHub drops leading dots from asset names: .unipkg.lock arrives as unipkg.lock.
    golden = {p.name.lstrip("."): p.read_bytes() for p in release_kit.golden.iterdir()}
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == golden
    for text in (out, err, report.read_text(), summary.read_text()):
        assert SENTINEL_TOKEN not in text


def test_tampered_github_asset_fails(
    release_kit: ReleaseKit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with GitHubStandIn(token={SENTINEL_TOKEN: "bot"}) as gh:
        repo = gh.add_repo("unexpected", "upm-sample")
        gh.add_tag(repo, TAG, gh.add_commit(repo, message="release", author="alice"))
        assets = {p.name: p.read_bytes() for p in release_kit.golden.iterdir()}
        assets[WHEEL] = assets[WHEEL] + b"!"
        gh.add_release(repo, TAG, assets=assets)
        code = main(github_args(release_kit, gh, tmp_path, "--github-token", SENTINEL_TOKEN))
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{WHEEL}: sigstore" in err
    assert SENTINEL_TOKEN not in out + err


def test_unknown_release_exits_2(
    release_kit: ReleaseKit,
    published: GitHubStandIn,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = github_args(release_kit, published, tmp_path, "--github-token", SENTINEL_TOKEN)
    args[args.index(TAG)] = "v9.9.9"
    assert main(args) == 2
    assert "no published release" in capsys.readouterr().err


def test_github_down_exits_3_after_retries(
    release_kit: ReleaseKit,
    published: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "3")
    published.inject("502", path_regex=r"/releases/assets/", count=1000)
    code = main(github_args(release_kit, published, tmp_path, "--github-token", SENTINEL_TOKEN))
    err = capsys.readouterr().err
    assert code == 3
    assert "still failing after 3 attempts" in err and SENTINEL_TOKEN not in err
    downloads = [r for r in published.requests if "/releases/assets/" in r.path]
    assert len(downloads) == 3


def test_download_keeps_no_partial_files(
    release_kit: ReleaseKit, published: GitHubStandIn, tmp_path: Path
) -> None:
    from upm_ci.errors import ServiceError
    from upm_ci.release_download import download_release

    published.inject("reset", path_regex=r"/releases/assets/", count=1000)
    dest = tmp_path / "dl"
    with pytest.raises(ServiceError):
        download_release(published.api_url, SENTINEL_TOKEN, REPOSITORY, TAG, dest)
    assert list(dest.iterdir()) == []


def test_an_unfinished_asset_fails_the_release_before_any_download(
    release_kit: ReleaseKit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fail closed: a ``starter`` asset is a release that is not whole, not a file to skip."""
    monkeypatch.setenv("UPM_GITHUB_TOKEN", SENTINEL_TOKEN)
    dest = tmp_path / "dl"
    with GitHubStandIn(token={SENTINEL_TOKEN: "release-bot"}) as gh:
        repo = gh.add_repo("unexpected", "upm-sample")
        gh.add_tag(repo, TAG, gh.add_commit(repo, message="release", author="alice"))
        assets = {p.name: p.read_bytes() for p in release_kit.golden.iterdir()}
        gh.add_release(repo, TAG, assets=assets, starter_assets={"extra.sbom.json": b"{"})
        assert main(github_args(release_kit, gh, tmp_path, str(dest))) == 1
    assert "extra.sbom.json is in state 'starter'" in capsys.readouterr().err
    assert not dest.exists()


def test_github_release_needs_an_empty_directory(
    release_kit: ReleaseKit,
    published: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "old.whl").write_bytes(b"left over")
    monkeypatch.setenv("UPM_GITHUB_TOKEN", SENTINEL_TOKEN)
    assert main(github_args(release_kit, published, tmp_path, str(dest))) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in dest.iterdir()] == ["old.whl"]


def test_copy_helper_is_isolated(release_kit: ReleaseKit, tmp_path: Path) -> None:
    """Tamper tests rely on copies: changing one never touches the golden release."""
    dist = release_kit.copy(tmp_path / "d")
    (dist / WHEEL).write_bytes(b"x")
    shutil.rmtree(dist)
    assert run(release_kit, release_kit.copy(tmp_path / "again"))


def test_not_checked_is_never_a_pass() -> None:
    """A row whose checks could not run is not passed; the verdict covers what was checked,
    and lists the rest."""
    from upm_ci.verify.report import NOT_CHECKED, ArtifactReport, Check, VerifyReport

    skipped = ArtifactReport("s3://b/k", "", [Check("audit log S3 copy", NOT_CHECKED, "why")])
    checked = ArtifactReport("f", "ab", [Check("sigstore", "pass", "ok")])
    assert not skipped.passed and not skipped.checked
    assert not VerifyReport({}, [skipped]).passed  # nothing checked: no pass
    report = VerifyReport({}, [checked, skipped])
    assert report.passed
    assert report.to_json()["not_checked"] == ["s3://b/k: audit log S3 copy"]
    assert [a["passed"] for a in report.to_json()["artifacts"]] == [True, False]
    failing = ArtifactReport("g", "cd", [Check("sigstore", "fail", "bad")])
    assert not VerifyReport({}, [checked, skipped, failing]).passed
