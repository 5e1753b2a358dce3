"""Checklist row "Code review (security, style)": every change since the last release was
merged through a pull request that someone other than its author approved.

The commits under review are GitHub's compare ``previous-tag...head`` (head: the release tag
when GitHub has it, else the local ``HEAD``; the previous tag: ``previous-tag`` from the
config, else the highest release tag on GitHub below this version). With no earlier release
tag, every commit reachable from head is reviewed, so a first release needs its whole history
reviewed, the initial commit included.

A commit passes when one of its pull requests (``GET commits/{sha}/pulls``) was merged into
the default branch and is approved: per reviewer only the latest APPROVED, CHANGES_REQUESTED
or DISMISSED review counts (COMMENTED does not change a verdict), at least one reviewer other
than the author approved, and no reviewer's latest verdict is CHANGES_REQUESTED. The author's
own approval never counts.

Without a token the check is ``skipped`` ("no token, local run") only on a local run; in CI
(``GITHUB_ACTIONS=true`` or ``CI=true``, :func:`upm_ci.gha.in_ci`) it fails saying what to
pass, and ``review-without-token = "fail"`` makes it fail locally too. GitHub failing after
retries, a rejected token or a missing repository fail it. Nothing here ever passes on an
error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from upm_ci import gha
from upm_ci.errors import InputError, ServiceError
from upm_ci.gate.model import CheckResult, Finding, GateContext, GitHubAccess
from upm_ci.gate.version import highest_tag_below
from upm_ci.project import git, parse_version
from upm_ci.retry import call_with_retry, classify, describe

if TYPE_CHECKING:
    from github.Commit import Commit
    from github.PullRequest import PullRequest
    from github.Repository import Repository

log = logging.getLogger(__name__)
T = TypeVar("T")

ID = "code-review"
TASK = "Code review (security, style)"

_VERDICTS = {"APPROVED", "CHANGES_REQUESTED", "DISMISSED"}


class _Refused(Exception):
    """GitHub answered with a 4xx that another attempt will not change."""


@dataclass(frozen=True)
class _PullVerdict:
    number: int
    author: str
    approved_by: tuple[str, ...]
    changes_requested_by: tuple[str, ...]

    @property
    def approved(self) -> bool:
        return bool(self.approved_by) and not self.changes_requested_by

    def problem(self) -> str:
        if self.changes_requested_by:
            return f"PR #{self.number}: changes requested by {', '.join(self.changes_requested_by)}"
        return f"PR #{self.number} by {self.author} has no approval from anyone but its author"


def check_code_review(ctx: GateContext) -> CheckResult:
    """Check every commit since the previous release tag; see the module docstring."""
    access = ctx.github
    if access is None or not access.token.strip():
        return _without_token(ctx)
    gha.mask(access.token)
    if not access.repository:
        raise InputError(
            "code-review: the GitHub repository is unknown",
            hint="set repository in [tool.upm-release] or GITHUB_REPOSITORY",
        )
    try:
        return _review(ctx, access)
    except ServiceError as e:
        return CheckResult(ID, TASK, "fail", f"GitHub kept failing, reviews not checked: {e}")
    except _Refused as e:
        return CheckResult(ID, TASK, "fail", str(e))


_PASS_A_TOKEN = (
    "pass a GitHub token with pull-requests:read and contents:read (the gate action's "
    "github-token input, default the job's github.token; --github-token, GITHUB_TOKEN or "
    "UPM_GITHUB_TOKEN)"
)


def _without_token(ctx: GateContext) -> CheckResult:
    """No token: skipped on a local run only; in CI (or with ``review-without-token = "fail"``)
    the row fails, since a missing or mis-wired token must not drop the review."""
    ci = gha.in_ci()
    if ci:
        reason = f"no GitHub token in CI ({ci}): pull-request reviews were not checked; "
        return CheckResult(ID, TASK, "fail", reason + _PASS_A_TOKEN)
    if ctx.project.config.review_without_token == "fail":
        reason = "no GitHub token (review-without-token = fail): reviews were not checked; "
        return CheckResult(ID, TASK, "fail", reason + _PASS_A_TOKEN)
    return CheckResult(
        ID,
        TASK,
        "skipped",
        "no token, local run: pull-request reviews were not checked (in CI this fails; "
        "give upm-ci a token with pull-requests:read to check them here)",
    )


def _review(ctx: GateContext, access: GitHubAccess) -> CheckResult:
    from github import Auth, Github

    client = Github(
        base_url=access.api_url.rstrip("/"),
        auth=Auth.Token(access.token),
        seconds_between_requests=0,
        seconds_between_writes=0,
        retry=None,  # upm_ci.retry decides, the same way for every service
        timeout=30,
    )
    repo = _call(
        f"GitHub repository {access.repository}",
        lambda: client.get_repo(access.repository),
        not_found=f"GitHub repository {access.repository} not found at {access.api_url} "
        "(check repository and the token's access)",
    )
    default = repo.default_branch
    head = _head(ctx, repo)
    previous = ctx.project.config.previous_tag or _previous_tag(ctx, repo)
    if previous:
        scope = f"since {previous}"
        commits = _call(
            f"GitHub compare {previous}...{head[:7]}",
            lambda: list(repo.compare(previous, head).commits),
            not_found=f"previous release tag {previous} not found on GitHub: push it, "
            "or set previous-tag",
        )
    else:
        scope = f"up to {head[:7]} (no earlier release tag: the whole history)"
        commits = _call(f"GitHub commits of {head[:7]}", lambda: list(repo.get_commits(sha=head)))
    log.info("code-review: %d commits %s", len(commits), scope)
    verdicts: dict[int, _PullVerdict] = {}
    findings = [
        finding
        for commit in commits
        if (finding := _commit_finding(repo, commit, default, verdicts)) is not None
    ]
    if findings:
        reason = f"{len(findings)} of {len(commits)} commits {scope} lack an approved pull request"
        return CheckResult(ID, TASK, "fail", reason, findings)
    reason = f"all {len(commits)} commits {scope} reached {default} through approved pull requests"
    return CheckResult(ID, TASK, "pass", reason)


def _head(ctx: GateContext, repo: Repository) -> str:
    """The release tag's commit if GitHub has the tag, else the local HEAD's (must be pushed)."""
    tag = ctx.tag
    try:
        return _call(f"GitHub tag {tag}", lambda: repo.get_commit(tag).sha, not_found="")
    except _Refused:
        pass
    local = git(ctx.project.root, "rev-parse", "HEAD")
    return _call(
        f"GitHub commit {local[:7]}",
        lambda: repo.get_commit(local).sha,
        not_found=f"neither tag {tag} nor HEAD {local[:7]} is on GitHub: push them first",
    )


def _previous_tag(ctx: GateContext, repo: Repository) -> str:
    """The highest release tag on GitHub below this version ('' for a first release)."""
    prefix = ctx.project.config.tag_prefix
    current = parse_version(ctx.project.version, where="[project] version")
    names = _call("GitHub tags", lambda: [t.name for t in repo.get_tags()])
    previous = highest_tag_below([n for n in names if n.startswith(prefix)], prefix, current)
    return previous[0] if previous else ""


def _commit_finding(
    repo: Repository, commit: Commit, default: str, verdicts: dict[int, _PullVerdict]
) -> Finding | None:
    sha = commit.sha
    subject = (commit.commit.message.splitlines() or [""])[0]
    pulls = _call(f"GitHub pulls of {sha[:7]}", lambda: list(commit.get_pulls()))
    merged = [p for p in pulls if p.merged_at is not None and p.base.ref == default]
    if not merged:
        return Finding(f"{sha[:7]} {subject}: no merged pull request into {default}")
    problems = []
    for pull in merged:
        if pull.number not in verdicts:
            verdicts[pull.number] = _verdict(pull)
        if verdicts[pull.number].approved:
            return None
        problems.append(verdicts[pull.number].problem())
    return Finding(f"{sha[:7]} {subject}: {'; '.join(problems)}")


def _verdict(pull: PullRequest) -> _PullVerdict:
    author = pull.user.login
    reviews = _call(f"GitHub reviews of PR #{pull.number}", lambda: list(pull.get_reviews()))
    latest: dict[str, str] = {}
    for review in reviews:  # GitHub lists reviews oldest first
        if review.state in _VERDICTS and review.user is not None:
            latest[review.user.login] = review.state
    others = {login: state for login, state in latest.items() if login != author}
    return _PullVerdict(
        number=pull.number,
        author=author,
        approved_by=tuple(sorted(u for u, s in others.items() if s == "APPROVED")),
        changes_requested_by=tuple(
            sorted(u for u, s in others.items() if s == "CHANGES_REQUESTED")
        ),
    )


def _call(what: str, fn: Callable[[], T], *, not_found: str | None = None) -> T:
    """Call GitHub with retries; a 401/403/404/422 becomes :class:`_Refused` with a reason."""
    from github import GithubException

    try:
        return call_with_retry(fn, what=what, classify=classify)
    except GithubException as e:
        if e.status == 401:
            raise _Refused(
                "GitHub rejected the token (401 Bad credentials): give upm-ci a valid token"
            ) from None
        if e.status in (404, 422) and not_found is not None:
            raise _Refused(not_found) from None
        if e.status == 403:
            raise _Refused(
                f"{what}: GitHub refused access (403): the token needs contents:read and "
                "pull-requests:read"
            ) from None
        raise _Refused(f"{what}: GitHub answered {e.status}: {describe(e)}") from None
