"""A publish run killed (SIGKILL) at any point resumes to the same release on re-run.

``upm-ci publish`` runs as a subprocess; the test kills it once the GitHub stand-in has seen
N requests, checks that a draft was never published incomplete, re-runs, and compares the
release with an uninterrupted one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.github import GITHUB_TOKEN, SAMPLE_NAME, SAMPLE_OWNER
from tests.fixtures.publish import publish_args, pypi_args
from tests.fixtures.pypi import PYPI_TOKEN, make_release
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.pypi import PypiStandIn

AUDIT = "upm-sample-1.2.0.audit.jsonl"


def _command(manifest: Path, gh: GitHubStandIn, index: PypiStandIn) -> list[str]:
    """The publish subprocess; its tokens come from :func:`_env`, not its command line."""
    return [
        sys.executable,
        "-m",
        "upm_ci",
        *publish_args(
            manifest,
            gh,
            "--repository",
            f"{SAMPLE_OWNER}/{SAMPLE_NAME}",
            *pypi_args(index, token=False),
            "--no-sign-audit-log",
            token=False,
        ),
    ]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "UPM_GITHUB_TOKEN": GITHUB_TOKEN,
        "UPM_PYPI_TOKEN": PYPI_TOKEN,
        "UPM_RETRY_BASE_DELAY": "0.01",
    }


def _final(gh: GitHubStandIn) -> tuple[int, bool, dict[str, str]]:
    releases = gh.snapshot()["repos"][0]["releases"]
    assert len(releases) == 1
    [release] = releases
    assets = {
        a["name"]: a["digest"] for a in release["assets"] if a["name"] != AUDIT
    }  # the audit log differs by design: it records each run
    assert AUDIT in {a["name"] for a in release["assets"]}
    assert all(a["state"] == "uploaded" for a in release["assets"])
    return len(releases), release["draft"], assets


def _published_complete_or_draft(gh: GitHubStandIn, expected: dict[str, str]) -> None:
    for release in gh.snapshot()["repos"][0]["releases"]:
        if not release["draft"]:
            got = {a["name"]: a["digest"] for a in release["assets"] if a["name"] != AUDIT}
            assert got == expected, "a release was published incomplete"


def _run_once(tmp: Path) -> tuple[dict[str, str], int, dict[str, str]]:
    manifest = make_release(tmp)
    with (
        GitHubStandIn(token={GITHUB_TOKEN: "bot"}) as gh,
        PypiStandIn(password=PYPI_TOKEN) as index,
    ):
        gh.add_commit(gh.add_repo(SAMPLE_OWNER, SAMPLE_NAME), message="init", author="a")
        done = subprocess.run(
            _command(manifest, gh, index), env=_env(), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return _final(gh)[2], len(gh.requests), index.files()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], int, Any]:
    """An uninterrupted run: its assets and how many requests it takes."""
    return _run_once(tmp_path_factory.mktemp("reference"))


@pytest.mark.slow
@pytest.mark.parametrize("point", [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
def test_killed_run_resumes_to_identical_release(
    point: float, reference: tuple[dict[str, str], int, dict[str, str]], tmp_path: Path
) -> None:
    expected, total, expected_index = reference
    kill_after = max(1, int(total * point))
    manifest = make_release(tmp_path / "proj")
    with (
        GitHubStandIn(token={GITHUB_TOKEN: "bot"}, latency=0.01) as gh,
        PypiStandIn(password=PYPI_TOKEN) as index,
    ):
        gh.add_commit(gh.add_repo(SAMPLE_OWNER, SAMPLE_NAME), message="init", author="a")
        run = subprocess.Popen(
            _command(manifest, gh, index),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while len(gh.requests) < kill_after and run.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        run.send_signal(signal.SIGKILL)
        assert run.wait() == -signal.SIGKILL, "the run ended before the kill: nothing to resume"
        _published_complete_or_draft(gh, expected)

        again = subprocess.run(
            _command(manifest, gh, index), env=_env(), capture_output=True, text=True
        )
        assert again.returncode == 0, again.stderr
        count, draft, assets = _final(gh)
        assert (count, draft, assets) == (1, False, expected)
        assert index.files() == expected_index
        assert GITHUB_TOKEN not in again.stdout + again.stderr
