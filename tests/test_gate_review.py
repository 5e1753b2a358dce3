"""The ``code-review`` gate check: real PyGithub against the GitHub stand-in."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from tests.fixtures.gate import report_rows
from tests.fixtures.gate import run_gate_cli as gate_cli
from tests.fixtures.github import GITHUB_TOKEN, SAMPLE_NAME, SAMPLE_OWNER, SampleHistory
from upm_ci import gha
from upm_ci.gate.model import GateContext, GitHubAccess
from upm_ci.gate.review import check_code_review
from upm_ci.project import load_project
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.github_model import Repo

REPOSITORY = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"


def make_project(root: Path, version: str = "1.1.0", upm_release: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "upm-sample"\nversion = "{version}"\n\n[tool.upm-release]\n'
        f"{upm_release}"
    )
    return root


def context(
    root: Path,
    gh: GitHubStandIn | None,
    *,
    token: str = GITHUB_TOKEN,
    repository: str = REPOSITORY,
) -> GateContext:
    project = load_project(root)
    access = GitHubAccess(gh.api_url, token, repository) if gh else None
    return GateContext(project=project, tag=project.tag, work_dir=root, github=access)


def reviewed_release(
    gh: GitHubStandIn, reviews: list[tuple[str, str]], author: str = "carol"
) -> Repo:
    """v1.0.0, then one feature PR (#1, merge commit) with ``reviews``, tagged v1.1.0."""
    repo = gh.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    base = gh.add_commit(repo, message="chore: release 1.0.0", author="alice")
    gh.add_tag(repo, "v1.0.0", base)
    feature = gh.add_commit(
        repo, message="feat: greet", author=author, parents=[base], branch="feature"
    )
    merge = gh.add_commit(
        repo,
        message="Merge pull request #1 from carol/feature",
        author="alice",
        parents=[base, feature],
    )
    gh.add_pull(
        repo, author=author, commits=[feature], merge_commit_sha=merge, reviews=reviews, number=1
    )
    gh.add_tag(repo, "v1.1.0", merge)
    return repo


def test_all_commits_through_approved_pulls_pass(
    tmp_path: Path, github_standin: GitHubStandIn
) -> None:
    reviewed_release(github_standin, [("bob", "APPROVED"), ("bob", "COMMENTED")])
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert (result.id, result.task) == ("code-review", "Code review (security, style)")
    assert result.status == "pass", result
    assert result.reason == "all 2 commits since v1.0.0 reached main through approved pull requests"


def test_commits_without_approved_pull_fail_naming_commit_and_pull(
    tmp_path: Path, github_standin: GitHubStandIn, sample_history: SampleHistory
) -> None:
    github_standin.add_tag(sample_history.repo, "v1.1.0", sample_history.head)
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert result.status == "fail"
    assert result.reason == "2 of 5 commits since v1.0.0 lack an approved pull request"
    assert [f.message for f in result.findings] == [
        f"{sample_history.fix[:7]} fix: typo (#2): PR #2 by dave has no approval from anyone "
        "but its author",
        f"{sample_history.head[:7]} ci: bump: no merged pull request into main",
    ]


def test_self_approval_does_not_count(tmp_path: Path, github_standin: GitHubStandIn) -> None:
    reviewed_release(github_standin, [("carol", "APPROVED")])
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert result.status == "fail"
    assert all(
        "PR #1 by carol has no approval from anyone but its author" in f.message
        for f in result.findings
    )
    assert len(result.findings) == 2


def test_approval_then_changes_requested_is_not_approved(
    tmp_path: Path, github_standin: GitHubStandIn
) -> None:
    reviewed_release(github_standin, [("bob", "APPROVED"), ("bob", "CHANGES_REQUESTED")])
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert result.status == "fail"
    assert "PR #1: changes requested by bob" in result.findings[0].message


def test_another_reviewers_open_change_request_blocks(
    tmp_path: Path, github_standin: GitHubStandIn
) -> None:
    reviewed_release(github_standin, [("bob", "APPROVED"), ("erin", "CHANGES_REQUESTED")])
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert result.status == "fail"
    assert "changes requested by erin" in result.findings[0].message


def test_unmerged_pull_does_not_count(tmp_path: Path, github_standin: GitHubStandIn) -> None:
    repo = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    base = github_standin.add_commit(repo, message="chore: release 1.0.0")
    github_standin.add_tag(repo, "v1.0.0", base)
    pushed = github_standin.add_commit(repo, message="feat: pushed past the PR")
    github_standin.add_pull(repo, author="carol", commits=[pushed], reviews=[("bob", "APPROVED")])
    github_standin.add_tag(repo, "v1.1.0", pushed)
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert result.status == "fail"
    assert result.findings[0].message.endswith(
        "feat: pushed past the PR: no merged pull request into main"
    )


def test_first_release_reviews_the_whole_history(
    tmp_path: Path, github_standin: GitHubStandIn
) -> None:
    repo = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    initial = github_standin.add_commit(repo, message="Initial commit")
    github_standin.add_tag(repo, "v1.0.0", initial)
    result = check_code_review(context(make_project(tmp_path, "1.0.0"), github_standin))
    assert result.status == "fail"
    assert "no earlier release tag: the whole history" in result.reason
    assert (
        result.findings[0].message
        == f"{initial[:7]} Initial commit: no merged pull request into main"
    )


def test_previous_tag_from_config(tmp_path: Path, github_standin: GitHubStandIn) -> None:
    repo = reviewed_release(github_standin, [("bob", "APPROVED")])
    github_standin.add_tag(repo, "v1.0.5", "v1.1.0")
    root = make_project(tmp_path, upm_release='previous-tag = "v1.0.0"\n')
    result = check_code_review(context(root, github_standin))
    assert result.reason.startswith("all 2 commits since v1.0.0")
    # without the setting the highest lower tag (v1.0.5, at head) bounds the range
    result = check_code_review(context(make_project(tmp_path / "b"), github_standin))
    assert result.reason.startswith("all 0 commits since v1.0.5")


def test_head_falls_back_to_the_local_head_when_the_tag_is_not_pushed(
    tmp_path: Path, github_standin: GitHubStandIn
) -> None:
    root = make_project(tmp_path / "p")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "local work")
    local = git(root, "rev-parse", "HEAD")
    repo = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
    base = github_standin.add_commit(repo, message="chore: release 1.0.0")
    github_standin.add_tag(repo, "v1.0.0", base)
    result = check_code_review(context(root, github_standin))
    assert result.status == "fail"
    assert result.reason == f"neither tag v1.1.0 nor HEAD {local[:7]} is on GitHub: push them first"
    github_standin.add_commit(repo, sha=local, message="local work")
    result = check_code_review(context(root, github_standin))
    assert [f.message for f in result.findings] == [
        f"{local[:7]} local work: no merged pull request into main"
    ]


def test_without_token_skipped_with_a_warning_never_pass(tmp_path: Path) -> None:
    result = check_code_review(context(make_project(tmp_path), None))
    assert result.status == "skipped"
    assert result.reason.startswith("no token, local run: ")
    assert not result.blocks


@pytest.mark.parametrize(
    ("variable", "value"), [("GITHUB_ACTIONS", "true"), ("CI", "true"), ("CI", "1")]
)
def test_without_token_in_ci_fails_saying_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    # Even the default review-without-token = "skip" does not let CI drop the review row.
    result = check_code_review(context(make_project(tmp_path), None))
    assert result.status == "fail" and result.blocks
    assert result.reason.startswith(f"no GitHub token in CI ({variable}={value}): ")
    assert "github-token input" in result.reason and "pull-requests:read" in result.reason


@pytest.mark.parametrize("value", ["false", "0", ""])
def test_ci_false_is_a_local_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    assert check_code_review(context(make_project(tmp_path), None)).status == "skipped"


def test_without_token_fails_when_configured(tmp_path: Path, github_standin: GitHubStandIn) -> None:
    root = make_project(tmp_path, upm_release='review-without-token = "fail"\n')
    result = check_code_review(context(root, github_standin, token="  "))
    assert result.status == "fail" and result.blocks


def test_transient_github_5xx_is_retried(tmp_path: Path, github_standin: GitHubStandIn) -> None:
    reviewed_release(github_standin, [("bob", "APPROVED")])
    github_standin.inject("503", path_regex=r"/pulls$", count=2)
    github_standin.inject("502", path_regex=r"/reviews$", count=1)
    github_standin.inject("429", path_regex=r"/compare/", count=1)
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert result.status == "pass", result
    statuses = [r.status for r in github_standin.requests]
    assert statuses.count(503) == 2 and statuses.count(502) == 1 and statuses.count(429) == 1


def test_github_down_fails_the_check_not_the_gate(
    tmp_path: Path, github_standin: GitHubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "3")
    reviewed_release(github_standin, [("bob", "APPROVED")])
    github_standin.inject("503", path_regex=r"/pulls$", count=1000)
    result = check_code_review(context(make_project(tmp_path), github_standin))
    assert result.status == "fail"
    assert result.reason.startswith("GitHub kept failing, reviews not checked")
    assert "still failing after 3 attempts" in result.reason


def test_bad_token_fails_with_a_clear_reason(tmp_path: Path, github_standin: GitHubStandIn) -> None:
    reviewed_release(github_standin, [("bob", "APPROVED")])
    result = check_code_review(context(make_project(tmp_path), github_standin, token="wrong-token"))
    assert result.status == "fail"
    assert result.reason.startswith("GitHub rejected the token (401")


def test_unknown_repository_fails_with_a_clear_reason(
    tmp_path: Path, github_standin: GitHubStandIn
) -> None:
    result = check_code_review(
        context(make_project(tmp_path), github_standin, repository="unexpected/missing")
    )
    assert result.status == "fail"
    assert result.reason.startswith("GitHub repository unexpected/missing not found")


def test_token_never_appears_in_results_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    secret = "ghp_S3cretReleaseToken0123456789abcdef"
    caplog.set_level(logging.DEBUG)
    with GitHubStandIn(token={secret: "release-bot"}) as gh:
        reviewed_release(gh, [("carol", "APPROVED")])
        gh.inject("503", path_regex=r"/reviews$", count=1)
        results = [check_code_review(context(make_project(tmp_path), gh, token=secret))]
        gh.inject("503", count=1000)
        results.append(check_code_review(context(make_project(tmp_path), gh, token=secret)))
    assert [r.status for r in results] == ["fail", "fail"]
    text = caplog.text + repr(results)
    assert secret not in text
    assert gha.redact(f"token {secret}") == "token ***"


#: The version-bump check needs to know the previous release outside a git checkout.
PREVIOUS = 'previous-tag = "v1.0.0"\n'


def run_gate_cli(root: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """``upm-ci gate`` on a bare project: only this module's check matters here."""
    code, report = gate_cli(root, *args)
    return code, report_rows(report)["code-review"]


def test_cli_gate_blocks_on_review_and_never_prints_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "ghp_CliSecretToken0123456789abcdefABCD"
    root = make_project(tmp_path / "p", upm_release=PREVIOUS)
    with GitHubStandIn(token={secret: "release-bot"}) as gh:
        reviewed_release(gh, [("carol", "APPROVED")])
        code, check = run_gate_cli(
            root,
            "--github-api-url",
            gh.api_url,
            "--github-token",
            secret,
            "--repository",
            REPOSITORY,
        )
    out, err = capsys.readouterr()
    assert code == 1
    assert check["status"] == "fail"
    assert (
        "PR #1 by carol has no approval from anyone but its author"
        in check["findings"][0]["message"]
    )
    assert secret not in out + err + (root / "gate.json").read_text()


def test_cli_gate_without_token_skips_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, check = run_gate_cli(make_project(tmp_path / "p", upm_release=PREVIOUS))
    assert check["status"] == "skipped"
    assert "skipped: no token, local run" in capsys.readouterr().out


def test_cli_gate_in_github_actions_without_token_fails_review(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    code, check = run_gate_cli(make_project(tmp_path / "p", upm_release=PREVIOUS))
    assert code == 1
    assert check["status"] == "fail"
    assert check["reason"].startswith("no GitHub token in CI (GITHUB_ACTIONS=true)")
    out = capsys.readouterr().out
    assert "fail: no GitHub token in CI" in out and "--github-token" in out
