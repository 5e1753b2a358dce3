"""The GitHub release against the stateful stand-in: drafts, digests, leftovers, faults."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fixtures.github import GITHUB_TOKEN, SAMPLE_NAME, SAMPLE_OWNER
from tests.fixtures.pypi import make_release
from upm_ci.errors import PolicyError
from upm_ci.manifest import Manifest
from upm_ci.project import load_project
from upm_ci.publish.github_release import ExpectedAsset, GitHubReleases
from upm_ci.publish.phase import PublishSettings, publish_release
from upm_ci.standins.github import GitHubStandIn

REPO = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"


@pytest.fixture
def repo(github_standin: GitHubStandIn) -> GitHubStandIn:
    r = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    github_standin.add_commit(r, message="init", author="alice")
    return github_standin


def _releases(standin: GitHubStandIn) -> GitHubReleases:
    return GitHubReleases(standin.api_url, GITHUB_TOKEN, REPO)


def _asset(tmp_path: Path, name: str, data: bytes) -> ExpectedAsset:
    path = tmp_path / name
    path.write_bytes(data)
    return ExpectedAsset(name, path, hashlib.sha256(data).hexdigest())


def _draft(releases: GitHubReleases, tag: str = "v1.2.0"):
    release, _ = releases.find_or_create_draft(
        tag, name=tag, body="notes", prerelease=False, make_latest="true"
    )
    return release


def _state(standin: GitHubStandIn) -> list[dict]:  # type: ignore[type-arg]
    return standin.snapshot()["repos"][0]["releases"]  # type: ignore[no-any-return]


def test_one_draft_per_tag_found_by_listing(repo: GitHubStandIn) -> None:
    releases = _releases(repo)
    first, created = releases.find_or_create_draft(
        "v1.2.0", name="x", body="b", prerelease=False, make_latest="true"
    )
    again, created_again = releases.find_or_create_draft(
        "v1.2.0", name="x", body="b", prerelease=False, make_latest="true"
    )
    assert (created, created_again) == (True, False)
    assert first.id == again.id and first.draft
    assert len(_state(repo)) == 1


def test_two_drafts_fail_naming_both_and_never_make_a_third(repo: GitHubStandIn) -> None:
    r = repo.repo(REPO)
    a = repo.add_release(r, "v1.2.0", draft=True)
    b = repo.add_release(r, "v1.2.0", draft=True)
    with pytest.raises(PolicyError, match=f"ids {b.id}, {a.id}|ids {a.id}, {b.id}"):
        _draft(_releases(repo))
    assert len(_state(repo)) == 2


def test_lost_create_answer_does_not_make_a_second_draft(repo: GitHubStandIn) -> None:
    repo.inject("reset_after", method="POST", path_regex=r"/releases$")
    _draft(_releases(repo))
    assert len(_state(repo)) == 1


def test_reset_mid_upload_leaves_starter_which_is_replaced(
    repo: GitHubStandIn, tmp_path: Path
) -> None:
    releases = _releases(repo)
    draft = _draft(releases)
    asset = _asset(tmp_path, "a.whl", b"x" * 5000)
    repo.inject("reset", method="POST", path_regex=r"/api/uploads/.*name=a\.whl")
    [outcome] = releases.sync_assets(draft, [asset])
    assert outcome.status == "uploaded"
    [remote] = releases.list_assets(draft)
    assert (remote.state, remote.digest) == ("uploaded", f"sha256:{asset.sha256}")
    assert [r.fault for r in repo.requests if r.fault] == ["reset"]


def test_lost_upload_answer_is_compared_not_failed(repo: GitHubStandIn, tmp_path: Path) -> None:
    releases = _releases(repo)
    draft = _draft(releases)
    asset = _asset(tmp_path, "a.whl", b"payload")
    repo.inject("reset_after", method="POST", path_regex=r"/api/uploads/")
    [outcome] = releases.sync_assets(draft, [asset])
    assert outcome.status == "uploaded"
    statuses = [r.status for r in repo.requests_matching("POST", "/api/uploads/")]
    assert statuses == [0, 422]  # landed, answer lost; retry says already_exists
    assert [a.name for a in releases.list_assets(draft)] == ["a.whl"]


def test_seeded_starter_leftover_is_deleted_and_uploaded(
    repo: GitHubStandIn, tmp_path: Path
) -> None:
    releases = _releases(repo)
    asset = _asset(tmp_path, "a.whl", b"full bytes")
    repo.add_release(repo.repo(REPO), "v1.2.0", draft=True, starter_assets={"a.whl": b"full"})
    draft = _draft(releases)
    [outcome] = releases.sync_assets(draft, [asset])
    assert outcome.status == "uploaded"
    assert releases.missing_or_wrong(draft, [asset]) == []


def test_same_digest_skipped_other_digest_fails_unless_replace(
    repo: GitHubStandIn, tmp_path: Path
) -> None:
    releases = _releases(repo)
    repo.add_release(
        repo.repo(REPO), "v1.2.0", draft=True, assets={"a.whl": b"same", "b.whl": b"old"}
    )
    draft = _draft(releases)
    a = _asset(tmp_path, "a.whl", b"same")
    b = _asset(tmp_path, "b.whl", b"new")
    c = _asset(tmp_path, "c.whl", b"more")
    with pytest.raises(PolicyError, match="b.whl has other bytes") as err:
        releases.sync_assets(draft, [a, b, c])
    assert "--replace" in str(err.value)
    assert sorted(x.name for x in releases.list_assets(draft)) == ["a.whl", "b.whl"]  # untouched
    outcomes = {o.name: o.status for o in releases.sync_assets(draft, [a, b, c], replace=True)}
    assert outcomes == {"a.whl": "skipped", "b.whl": "replaced", "c.whl": "uploaded"}
    assert releases.missing_or_wrong(draft, [a, b, c]) == []


def test_digest_missing_from_api_is_computed_by_download(
    repo: GitHubStandIn, tmp_path: Path
) -> None:
    releases = _releases(repo)
    repo.add_release(repo.repo(REPO), "v1.2.0", draft=True, assets={"a.whl": b"same"})
    draft = _draft(releases)
    [remote] = releases.list_assets(draft)
    stripped = type(remote)(**{**remote.__dict__, "digest": None})
    assert releases.asset_sha256(stripped) == hashlib.sha256(b"same").hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(20))
def test_seeded_transient_faults_end_with_exact_release(seed: int, tmp_path: Path) -> None:
    """20% of GitHub requests fail (5xx, 429, secondary limit, reset); the release still ends
    with exactly the expected assets, right digests, no duplicates, one release."""
    manifest_path = make_release(tmp_path / "proj")
    project = load_project(tmp_path / "proj")
    with GitHubStandIn(
        token={GITHUB_TOKEN: "release-bot"}, fault_rate=0.2, fault_seed=seed, retry_after=0
    ) as gh:
        r = gh.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
        gh.add_commit(r, message="init", author="alice")
        settings = PublishSettings(
            repository=REPO,
            tag="v1.2.0",
            github_api_url=gh.api_url,
            github_token=GITHUB_TOKEN,
            skip_pypi=True,
        )
        manifest = Manifest.load(manifest_path)
        publish_release(project, manifest, settings)
        releases = gh.snapshot()["repos"][0]["releases"]
        assert gh.requests_matching() and any(req.fault for req in gh.requests)
    assert len(releases) == 1 and releases[0]["draft"] is False
    assets = releases[0]["assets"]
    names = [a["name"] for a in assets]
    assert len(names) == len(set(names))
    expected = {a.name: a.sha256 for a in manifest.artifacts}
    assert {a["name"]: a["digest"].removeprefix("sha256:") for a in assets} == expected
    assert all(a["state"] == "uploaded" for a in assets)
