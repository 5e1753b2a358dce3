"""The GitHub stand-in, driven by real PyGithub (and plain requests where headers matter).

Each test pins one GitHub behaviour that release tooling trips over, so a change to the
stand-in that would hide such a bug fails here first.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from github import Auth, BadCredentialsException, Github, GithubException, GithubRetry

from tests.conftest import git
from tests.fixtures.github import (
    GITHUB_LOGIN,
    GITHUB_TOKEN,
    SAMPLE_NAME,
    SAMPLE_OWNER,
    SampleHistory,
    github_client,
)
from upm_ci.standins.github import GitHubStandIn

SAMPLE = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"


def auth_headers(token: str = GITHUB_TOKEN) -> dict[str, str]:
    return {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# -- repository, history, pull requests ------------------------------------------------------


def test_repo_and_commit_read_like_github(github: Github, sample_history: SampleHistory) -> None:
    repo = github.get_repo(SAMPLE)
    assert (repo.full_name, repo.default_branch, repo.private) == (SAMPLE, "main", False)
    commit = repo.get_commit("main")
    assert commit.sha == sample_history.head
    assert commit.author.login == "alice"
    assert [p.sha for p in commit.parents] == [sample_history.fix]
    assert repo.get_git_ref("tags/v1.0.0").object.sha == sample_history.v1_0_0
    assert [t.name for t in repo.get_tags()] == ["v1.0.0"]


def test_compare_lists_commits_reachable_from_head_only(
    github: Github, sample_history: SampleHistory
) -> None:
    comparison = github.get_repo(SAMPLE).compare("v1.0.0", "main")
    shas = [c.sha for c in comparison.commits]
    h = sample_history
    assert shas[0] == h.feature  # oldest first, parents before children
    assert set(shas) == {h.feature, shas[1], h.merge, h.fix, h.head}
    assert shas.index(h.merge) > shas.index(h.feature)
    assert (comparison.status, comparison.ahead_by, comparison.behind_by) == ("ahead", 5, 0)
    assert comparison.merge_base_commit.sha == h.v1_0_0
    behind = github.get_repo(SAMPLE).compare("main", "v1.0.0")
    assert (behind.status, behind.ahead_by, behind.total_commits) == ("behind", 0, 0)


def test_compare_paginates_long_histories(github_standin: GitHubStandIn, github: Github) -> None:
    repo = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    base = github_standin.add_commit(repo, message="base")
    made = [github_standin.add_commit(repo, message=f"c{i}") for i in range(260)]
    comparison = github.get_repo(SAMPLE).compare(base, "main", comparison_commits_per_page=100)
    assert [c.sha for c in comparison.commits] == made
    assert comparison.total_commits == 260


def test_commit_pulls_and_reviews(github: Github, sample_history: SampleHistory) -> None:
    repo = github.get_repo(SAMPLE)
    for sha in (sample_history.feature, sample_history.merge):
        pulls = list(repo.get_commit(sha).get_pulls())
        assert [p.number for p in pulls] == [1]
    pull = repo.get_pull(1)
    assert (pull.user.login, pull.merged, pull.merge_commit_sha) == (
        "carol",
        True,
        sample_history.merge,
    )
    assert [c.sha for c in pull.get_commits()][0] == sample_history.feature
    reviews = [(r.user.login, r.state) for r in pull.get_reviews()]
    assert reviews == [("bob", "CHANGES_REQUESTED"), ("bob", "APPROVED")]
    assert list(repo.get_pull(2).get_reviews()) == []
    assert list(repo.get_commit(sample_history.head).get_pulls()) == []


# -- releases ---------------------------------------------------------------------------------


def test_draft_release_is_hidden_from_tag_lookup_until_published(
    github: Github, sample_history: SampleHistory
) -> None:
    repo = github.get_repo(SAMPLE)
    draft = repo.create_git_release("v1.1.0", "v1.1.0", "notes", draft=True)
    with pytest.raises(GithubException) as lookup:
        repo.get_release("v1.1.0")
    assert lookup.value.status == 404
    assert [r.id for r in repo.get_releases() if r.draft and r.tag_name == "v1.1.0"] == [draft.id]
    assert "v1.1.0" not in [t.name for t in repo.get_tags()]  # tag made on publish, as GitHub

    published = draft.update_release("v1.1.0", "notes", draft=False)
    assert not published.draft
    assert published.published_at is not None
    assert repo.get_release("v1.1.0").id == draft.id
    assert repo.get_git_ref("tags/v1.1.0").object.sha == sample_history.head
    assert repo.get_latest_release().tag_name == "v1.1.0"


def test_two_drafts_for_one_tag_are_allowed_but_one_published_release(
    github: Github, sample_history: SampleHistory
) -> None:
    """What lets racing matrix jobs create duplicate drafts (pain 2)."""
    repo = github.get_repo(SAMPLE)
    first = repo.create_git_release("v1.1.0", "a", "", draft=True)
    second = repo.create_git_release("v1.1.0", "b", "", draft=True)
    first.update_release("a", "", draft=False)
    with pytest.raises(GithubException) as err:
        second.update_release("b", "", draft=False)
    assert err.value.status == 422
    assert err.value.data["errors"][0]["code"] == "already_exists"


def test_prerelease_does_not_become_latest(github: Github, sample_history: SampleHistory) -> None:
    repo = github.get_repo(SAMPLE)
    repo.create_git_release("v1.1.0", "v1.1.0", "")
    repo.create_git_release("v1.2.0rc1", "rc", "", prerelease=True)
    assert repo.get_latest_release().tag_name == "v1.1.0"


def test_upload_digest_and_exact_download(
    github_standin: GitHubStandIn, github: Github, sample_history: SampleHistory, tmp_path: Path
) -> None:
    payload = os.urandom(300_000)
    release = github.get_repo(SAMPLE).create_git_release("v1.1.0", "v1.1.0", "", draft=True)
    assert release.upload_url.endswith("/assets{?name,label}")
    asset = release.upload_asset(write(tmp_path, "pkg.whl", payload), label="wheel")
    assert asset.raw_data["digest"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert (asset.state, asset.size, asset.label) == ("uploaded", len(payload), "wheel")
    assert asset.uploader.login == GITHUB_LOGIN

    status, _, chunks = asset.download_asset(chunk_size=65536)
    assert status == 200
    assert b"".join(chunks) == payload
    # a draft's browser URL is private and changes on publish, as on GitHub
    assert "/releases/download/untagged-" in asset.browser_download_url
    assert requests.get(asset.browser_download_url, timeout=5).status_code == 404
    release.update_release("v1.1.0", "", draft=False)
    public_url = github.get_repo(SAMPLE).get_release("v1.1.0").assets[0].browser_download_url
    assert public_url.endswith("/releases/download/v1.1.0/pkg.whl")
    assert requests.get(public_url, timeout=5).content == payload


def test_duplicate_asset_name_is_422_already_exists(
    github: Github, sample_history: SampleHistory, tmp_path: Path
) -> None:
    release = github.get_repo(SAMPLE).create_git_release("v1.1.0", "v1.1.0", "", draft=True)
    path = write(tmp_path, "a.txt", b"one")
    release.upload_asset(path)
    with pytest.raises(GithubException) as err:
        release.upload_asset(path)
    assert err.value.status == 422
    assert err.value.data["message"] == "Validation Failed"
    assert err.value.data["errors"][0] == {
        "resource": "ReleaseAsset",
        "code": "already_exists",
        "field": "name",
    }


def test_interrupted_upload_leaves_a_starter_asset_that_blocks_the_name(
    github_standin: GitHubStandIn, github: Github, sample_history: SampleHistory, tmp_path: Path
) -> None:
    release = github.get_repo(SAMPLE).create_git_release("v1.1.0", "v1.1.0", "", draft=True)
    path = write(tmp_path, "big.bin", os.urandom(200_000))
    github_standin.inject("reset", method="POST", path_regex=r"/assets", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        release.upload_asset(path)

    [starter] = list(release.get_assets())
    assert (starter.name, starter.state) == ("big.bin", "starter")
    assert starter.raw_data["digest"] is None
    with pytest.raises(GithubException) as err:
        release.upload_asset(path)
    assert err.value.data["errors"][0]["code"] == "already_exists"

    starter.delete_asset()
    assert release.upload_asset(path).state == "uploaded"
    statuses = [r.status for r in github_standin.requests_matching("POST", r"/assets")]
    assert statuses == [0, 422, 201]


def test_immutable_release_refuses_asset_changes_after_publish(
    github_standin: GitHubStandIn, github: Github, tmp_path: Path
) -> None:
    repo_state = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME, immutable_releases=True)
    github_standin.add_commit(repo_state, message="init", author="alice")
    repo = github.get_repo(SAMPLE)
    release = repo.create_git_release("v1.0.0", "v1.0.0", "", draft=True)
    asset = release.upload_asset(write(tmp_path, "a.txt", b"a"))  # drafts accept assets
    release = release.update_release("v1.0.0", "", draft=False)
    assert release.raw_data["immutable"] is True

    with pytest.raises(GithubException) as upload:
        release.upload_asset(write(tmp_path, "b.txt", b"b"))
    assert upload.value.status == 422
    assert upload.value.data["message"] == "Cannot upload assets to an immutable release."
    for change in (asset.delete_asset, lambda: asset.update_asset("renamed.txt")):
        with pytest.raises(GithubException) as refused:
            change()
        assert refused.value.status == 422
        assert "immutable" in refused.value.data["message"]

    # release notes stay editable; the tag can never carry another release
    assert release.update_release("v1.0.0", "better notes").body == "better notes"
    release.delete_release()
    with pytest.raises(GithubException) as reuse:
        repo.create_git_release("v1.0.0", "again", "")
    assert "immutable" in json.dumps(reuse.value.data)


def test_mutable_repo_allows_uploads_after_publish(
    github: Github, sample_history: SampleHistory, tmp_path: Path
) -> None:
    release = github.get_repo(SAMPLE).create_git_release("v1.1.0", "v1.1.0", "")
    assert release.raw_data["immutable"] is False
    assert release.upload_asset(write(tmp_path, "late.txt", b"late")).state == "uploaded"


def test_assets_paginate_past_100_with_link_header(
    github_standin: GitHubStandIn, github: Github, sample_history: SampleHistory
) -> None:
    release = github_standin.add_release(
        sample_history.repo,
        "v1.1.0",
        draft=True,
        assets={f"file-{i:03}.txt": str(i).encode() for i in range(130)},
    )
    assets_url = f"{github_standin.api_url}/repos/{SAMPLE}/releases/{release.id}/assets"
    first = requests.get(assets_url, params={"per_page": 100}, headers=auth_headers(), timeout=5)
    assert len(first.json()) == 100
    assert first.links["next"]["url"].endswith("per_page=100&page=2")
    assert first.links["last"]["url"].endswith("page=2")
    second = requests.get(first.links["next"]["url"], headers=auth_headers(), timeout=5)
    assert len(second.json()) == 30
    assert "next" not in second.links and "first" in second.links
    default = requests.get(assets_url, headers=auth_headers(), timeout=5)
    assert len(default.json()) == 30  # GitHub's default page size

    names = [a.name for a in github.get_repo(SAMPLE).get_release(release.id).get_assets()]
    assert names == [f"file-{i:03}.txt" for i in range(130)]


# -- auth, rate limits, faults ----------------------------------------------------------------


def test_wrong_token_is_401_and_anonymous_writes_are_refused(
    github_standin: GitHubStandIn, sample_history: SampleHistory
) -> None:
    with pytest.raises(BadCredentialsException) as err:
        github_client(github_standin, token="wrong").get_repo(SAMPLE)
    assert err.value.status == 401
    anonymous = Github(
        base_url=github_standin.api_url,
        seconds_between_requests=0,
        seconds_between_writes=0,
        retry=None,
    )
    assert anonymous.get_repo(SAMPLE).name == SAMPLE_NAME  # public reads need no token
    with pytest.raises(GithubException) as write_err:
        anonymous.get_repo(SAMPLE).create_git_release("v9", "v9", "")
    assert write_err.value.status == 401
    bearer = requests.get(
        f"{github_standin.api_url}/user",
        headers={"Authorization": f"Bearer {GITHUB_TOKEN}"},
        timeout=5,
    )
    assert bearer.json()["login"] == GITHUB_LOGIN


def test_anonymous_callers_do_not_see_drafts(
    github_standin: GitHubStandIn, github: Github, sample_history: SampleHistory
) -> None:
    github_standin.add_release(sample_history.repo, "v1.1.0", draft=True)
    github_standin.add_release(sample_history.repo, "v1.0.0")
    anonymous = Github(base_url=github_standin.api_url, seconds_between_requests=0, retry=None)
    assert [r.tag_name for r in anonymous.get_repo(SAMPLE).get_releases()] == ["v1.0.0"]
    assert [r.tag_name for r in github.get_repo(SAMPLE).get_releases()] == ["v1.0.0", "v1.1.0"]


@pytest.mark.parametrize(
    ("kind", "status"), [("429", 429), ("secondary", 403), ("primary", 403), ("502", 502)]
)
def test_rate_limits_and_server_errors_carry_github_shapes(
    github_standin: GitHubStandIn, sample_history: SampleHistory, kind: str, status: int
) -> None:
    github_standin.inject(kind, path_regex=r"/releases$")
    url = f"{github_standin.api_url}/repos/{SAMPLE}/releases"
    failed = requests.get(url, headers=auth_headers(), timeout=5)
    assert failed.status_code == status
    if kind in ("429", "secondary"):
        assert failed.headers["Retry-After"] == "1"
        assert failed.json()["message"].startswith("You have exceeded a secondary rate limit")
    if kind == "primary":
        assert failed.headers["X-RateLimit-Remaining"] == "0"
    assert requests.get(url, headers=auth_headers(), timeout=5).status_code == 200  # one-shot


def test_pygithub_retry_rides_out_secondary_limits_and_5xx(sample_history: SampleHistory) -> None:
    with GitHubStandIn(token=GITHUB_TOKEN, retry_after=0) as standin:
        repo = standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
        standin.add_commit(repo, message="init")
        retrying = github_client(
            standin, retry=GithubRetry(total=3, backoff_factor=0, secondary_rate_wait=0)
        )
        standin.inject("secondary", method="GET", path_regex=rf"/repos/{SAMPLE}$")
        standin.inject("429", method="GET", path_regex=rf"/repos/{SAMPLE}$")
        standin.inject("503", method="GET", path_regex=rf"/repos/{SAMPLE}$")
        assert retrying.get_repo(SAMPLE).name == SAMPLE_NAME
        assert [r.status for r in standin.requests] == [403, 429, 503, 200]

        with pytest.raises(GithubException) as err:
            standin.inject("429", method="GET")
            github_client(standin).get_repo(SAMPLE)  # without retries the 429 surfaces
        assert err.value.status == 429
        assert err.value.headers is not None and err.value.headers["retry-after"] == "0"


def test_reset_after_loses_the_response_but_not_the_release(
    github_standin: GitHubStandIn, github: Github, sample_history: SampleHistory
) -> None:
    """Why a client must look before it retries a create (no second release)."""
    github_standin.inject("reset_after", method="POST", path_regex=r"/releases$")
    repo = github.get_repo(SAMPLE)
    with pytest.raises(requests.exceptions.ConnectionError):
        repo.create_git_release("v1.1.0", "v1.1.0", "", draft=True)
    assert [r.tag_name for r in repo.get_releases()] == ["v1.1.0"]
    assert len(github_standin.requests_matching("POST", r"/releases$")) == 1


def _statuses_under_faults(seed: int) -> list[int]:
    with GitHubStandIn(token=GITHUB_TOKEN, fault_rate=0.3, fault_seed=seed) as standin:
        repo = standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
        sha = standin.add_commit(repo, message="init")
        statuses = []
        for i in range(40):
            path = (
                f"{standin.api_url}/repos/{SAMPLE}/commits/{sha}"
                if i % 2
                else (f"{standin.api_url}/repos/{SAMPLE}")
            )
            try:
                statuses.append(requests.get(path, headers=auth_headers(), timeout=5).status_code)
            except requests.exceptions.ConnectionError:
                statuses.append(0)
        assert statuses == [r.status for r in standin.requests]
        return statuses


def test_seeded_fault_rate_is_deterministic() -> None:
    first, again, other = (_statuses_under_faults(s) for s in (7, 7, 8))
    assert first == again
    assert first != other
    failures = sum(status != 200 for status in first)
    assert 4 <= failures <= 20  # about 30 % of 40
    assert {403, 429, 0} & set(first)


def test_latency_is_added_to_each_request(sample_history: SampleHistory) -> None:
    with GitHubStandIn(token=GITHUB_TOKEN, latency=0.05) as standin:
        standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
        started = time.perf_counter()
        for _ in range(3):
            requests.get(f"{standin.api_url}/repos/{SAMPLE}", timeout=5)
        assert time.perf_counter() - started >= 0.15


def test_concurrent_uploads_all_land(
    github_standin: GitHubStandIn, github: Github, sample_history: SampleHistory, tmp_path: Path
) -> None:
    release = github.get_repo(SAMPLE).create_git_release("v1.1.0", "v1.1.0", "", draft=True)
    paths = [write(tmp_path, f"part-{i}.bin", os.urandom(10_000)) for i in range(12)]
    errors: list[BaseException] = []

    def upload(path: str) -> None:
        try:
            github_client(github_standin).get_repo(SAMPLE).get_release(release.id).upload_asset(
                path
            )
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(a.name for a in release.get_assets()) == sorted(Path(p).name for p in paths)


# -- seeding, snapshot, CLI -------------------------------------------------------------------


def test_seed_from_git_imports_history_tags_and_pulls(
    github_standin: GitHubStandIn, github: Github, tmp_path: Path
) -> None:
    checkout = tmp_path / "project"
    checkout.mkdir()
    git(checkout, "init", "-q", "-b", "main")
    (checkout / "a").write_text("1")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", "init")
    git(checkout, "tag", "-a", "v1.0.0", "-m", "release 1.0.0")
    git(checkout, "checkout", "-q", "-b", "feature")
    (checkout / "b").write_text("2")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", "feat: b")
    git(checkout, "checkout", "-q", "main")
    git(checkout, "merge", "-q", "--no-ff", "feature", "-m", "Merge pull request #7 from carol/b")
    (checkout / "c").write_text("3")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", "fix: c (#8)")

    repo = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    summary = github_standin.seed_from_git(repo, checkout, approve_pulls_as="maintainer")
    assert summary == {
        "commits": 4,
        "tags": 1,
        "pulls": 2,
        "head": git(checkout, "rev-parse", "HEAD"),
    }
    api = github.get_repo(SAMPLE)
    assert api.get_git_ref("tags/v1.0.0").object.sha == git(checkout, "rev-parse", "v1.0.0^{}")
    assert [c.sha for c in api.compare("v1.0.0", "main").commits] == git(
        checkout, "rev-list", "--reverse", "--topo-order", "v1.0.0..main"
    ).split()
    feature_sha = git(checkout, "rev-parse", "feature")
    [pull] = list(api.get_commit(feature_sha).get_pulls())
    assert (pull.number, pull.user.login) == (7, "carol")
    assert [r.state for r in pull.get_reviews()] == ["APPROVED"]
    assert api.get_pull(8).user.login == "alice"  # from alice@example.com


def test_snapshot_is_json_and_shows_asset_state(
    github_standin: GitHubStandIn, sample_history: SampleHistory, tmp_path: Path
) -> None:
    github_standin.add_release(
        sample_history.repo,
        "v1.1.0",
        draft=True,
        assets={"ok.txt": b"ok"},
        starter_assets={"half.txt": b"ha"},
    )
    snapshot = json.loads(json.dumps(github_standin.snapshot()))
    [release] = snapshot["repos"][0]["releases"]
    assert [(a["name"], a["state"]) for a in release["assets"]] == [
        ("ok.txt", "uploaded"),
        ("half.txt", "starter"),
    ]
    github_standin.dump(tmp_path / "dump.json")
    assert "requests" in json.loads((tmp_path / "dump.json").read_text())


def test_cli_serves_a_seed_file_until_terminated(tmp_path: Path) -> None:
    seed = {
        "tokens": {"cli-token": "cli-bot"},
        "repos": [
            {
                "owner": SAMPLE_OWNER,
                "name": SAMPLE_NAME,
                "immutable_releases": True,
                "commits": [
                    {"id": "c1", "message": "init", "author": "alice"},
                    {"id": "c2", "message": "feat (#1)", "author": "carol"},
                ],
                "tags": {"v1.0.0": "c1"},
                "pulls": [
                    {
                        "number": 1,
                        "author": "carol",
                        "commits": ["c2"],
                        "merge_commit_sha": "c2",
                        "reviews": [["bob", "APPROVED"]],
                    }
                ],
                "releases": [
                    {"tag_name": "v1.0.0", "assets": [{"name": "a.txt", "content": "hello"}]}
                ],
            }
        ],
    }
    (tmp_path / "seed.json").write_text(json.dumps(seed))
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upm_ci.standins.github",
            "--seed",
            str(tmp_path / "seed.json"),
            "--ready-file",
            str(ready),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        client = Github(
            base_url=info["api_url"],
            auth=Auth.Token("cli-token"),
            seconds_between_requests=0,
            retry=None,
        )
        repo = client.get_repo(SAMPLE)
        release = repo.get_release("v1.0.0")
        assert release.raw_data["immutable"] is True
        assert [a.name for a in release.get_assets()] == ["a.txt"]
        assert [r.state for r in repo.get_pull(1).get_reviews()] == ["APPROVED"]
        state = requests.get(f"{info['url']}/_standin/state", timeout=5).json()
        assert state["repos"][0]["tags"]["v1.0.0"] == repo.get_commits()[1].sha
        rule = {"kind": "503", "method": "GET", "path_regex": "/releases/latest$"}
        assert requests.post(f"{info['url']}/_standin/inject", json=rule, timeout=5).ok
        with pytest.raises(GithubException) as err:
            repo.get_latest_release()
        assert err.value.status == 503
        assert repo.get_latest_release().tag_name == "v1.0.0"
        log = requests.get(f"{info['url']}/_standin/requests", timeout=5).json()
        assert [entry["status"] for entry in log[-2:]] == [503, 200]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_an_upload_cut_short_by_the_client_stays_a_starter_asset(github_standin, github) -> None:
    """A client killed mid-body leaves what GitHub leaves: a ``starter`` asset, not a short one."""
    import socket

    repo = github_standin.add_repo("o", "r")
    github_standin.add_commit(repo, message="init", author="a")
    release = github.get_repo("o/r").create_git_release("v1", "v1", "", draft=True)
    path = f"/api/uploads/repos/o/r/releases/{release.id}/assets?name=big.bin"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: token {github_standin.token}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", github_standin.port)) as sock:
        sock.sendall(head.encode() + b"x" * 400)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
    [asset] = github.get_repo("o/r").get_release(release.id).get_assets()
    assert (asset.name, asset.state) == ("big.bin", "starter")
