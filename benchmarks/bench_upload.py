"""Release asset upload: our uploader beside a sequential PyGithub ``upload_asset`` loop.

A release carries dozens of files (artifacts, bundles, SBOMs, provenance); on a real network
each request costs a round trip, so 50 small assets (64 KiB) go to the GitHub stand-in with
50 ms latency added to every request. Ours lists the draft once, then uploads concurrently
(8 threads, digest-idempotent); the baseline is what most release scripts do: a plain loop of
``release.upload_asset(path)``. Both get a fresh draft on the same server, in the same run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from benchmarks._harness import BenchResult, stopwatch
from upm_ci.publish.github_release import ExpectedAsset, GitHubReleases
from upm_ci.retry import RetryPolicy
from upm_ci.standins.github import GitHubStandIn

ASSETS = 50
SIZE = 64 * 1024
LATENCY = 0.05
TOKEN = "bench-token"
REPO = "unexpected/upm-sample"


def _files(root: Path) -> list[ExpectedAsset]:
    out = []
    for n in range(ASSETS):
        data = os.urandom(SIZE)
        path = root / f"asset-{n:02d}.bin"
        path.write_bytes(data)
        out.append(ExpectedAsset(path.name, path, hashlib.sha256(data).hexdigest()))
    return out


def run() -> list[BenchResult]:
    from github import Auth, Github

    with tempfile.TemporaryDirectory() as tmp, GitHubStandIn(TOKEN, latency=LATENCY) as gh:
        files = _files(Path(tmp))
        repo = gh.add_repo("unexpected", "upm-sample")
        gh.add_commit(repo, message="init", author="alice")

        releases = GitHubReleases(gh.api_url, TOKEN, REPO, policy=RetryPolicy(attempts=1))
        ours_draft, _ = releases.find_or_create_draft(
            "v1.0.0", name="ours", body="", prerelease=False, make_latest="true"
        )
        with stopwatch() as ours:
            releases.sync_assets(ours_draft, files)
        assert releases.missing_or_wrong(ours_draft, files) == []

        client = Github(
            base_url=gh.api_url,
            auth=Auth.Token(TOKEN),
            seconds_between_requests=0,
            seconds_between_writes=0,
            retry=None,
        )
        theirs_draft = client.get_repo(REPO).create_git_release("v2.0.0", "theirs", "", draft=True)
        with stopwatch() as theirs:
            for exp in files:
                theirs_draft.upload_asset(str(exp.path), name=exp.name)
        assert len(list(theirs_draft.get_assets())) == ASSETS
    return [
        BenchResult(
            name=f"upload {ASSETS} x 64 KiB release assets, {LATENCY * 1000:.0f} ms latency",
            ours=ours[0],
            theirs=theirs[0],
            baseline="PyGithub upload_asset loop",
            target=0.3,
            note="ours: 8 threads, skip-by-digest listing included",
        )
    ]


if __name__ == "__main__":
    for result in run():
        print(
            f"{result.name}: ours {result.ours:.2f}s, theirs {result.theirs:.2f}s, "
            f"ratio {result.ratio:.2f} (target <= {result.target})"
        )
