"""A stateful GitHub REST stand-in, shaped like GitHub Enterprise Server, for real PyGithub.

No installable server speaks GitHub's API, and a release pipeline's hardest bugs live in
GitHub's behaviour, not in its happy path: drafts that tag lookup never returns, 422
``already_exists`` on re-runs, assets stuck in ``starter`` after a dropped upload, immutable
releases, secondary rate limits. This stand-in reproduces those, on 127.0.0.1, for the tests
and for ``upm-ci rehearse``.

Use from Python::

    with GitHubStandIn(token="t0k") as gh:
        repo = gh.add_repo("unexpected", "upm-sample", immutable_releases=True)
        c1 = gh.add_commit(repo, message="feat: x", author="alice")
        gh.add_tag(repo, "v1.0.0", c1)
        gh.add_pull(repo, author="alice", commits=[c1], merge_commit_sha=c1,
                    reviews=[("bob", "APPROVED")])
        github.Github(base_url=gh.api_url, auth=github.Auth.Token("t0k"),
                      seconds_between_requests=0, seconds_between_writes=0)

URLs: API ``{url}/api/v3``; uploads ``{url}/api/uploads/repos/{o}/{r}/releases/{id}/assets``;
browser downloads ``{url}/{o}/{r}/releases/download/{tag}/{name}`` (drafts: ``untagged-<hex>``
instead of the tag, and only with a token, as on GitHub); debugging ``GET {url}/_standin/state``,
``GET {url}/_standin/requests`` and ``POST {url}/_standin/inject`` (body: the keyword
arguments of :meth:`GitHubStandIn.inject`).

Command line (serves until SIGTERM/SIGINT; used when workflows under ``act`` need it)::

    python -m upm_ci.standins.github --port 0 --token T[=LOGIN] --seed seed.json \
        --ready-file ready.json [--fault-rate 0.1 --fault-seed 7 --fault-kinds 5xx,429]

The ready file is written atomically once the port is open:
``{"url": ..., "api_url": ..., "port": ..., "pid": ...}``.

Seed file (JSON; every key optional except a repo's ``owner`` and ``name``)::

    {
      "tokens": {"t0k": "release-bot"},
      "repos": [{
        "owner": "unexpected", "name": "upm-sample", "default_branch": "main",
        "immutable_releases": false, "private": false,
        "git": "/path/to/checkout"  or  {"path": "...", "rev": "HEAD",
                                         "approve_pulls_as": "maintainer",
                                         "logins": {"a@example.org": "alice"}},
        "commits": [{"id": "c1", "message": "feat: x", "author": "alice",
                     "parents": ["c0"], "branch": "main", "sha": "...", "date": "..."}],
        "branches": {"feature": "c1"},
        "tags": {"v1.0.0": "c1"},
        "pulls": [{"number": 1, "author": "alice", "commits": ["c1"],
                   "merge_commit_sha": "c1", "reviews": [["bob", "APPROVED"]]}],
        "releases": [{"tag_name": "v1.0.0", "draft": false, "prerelease": false,
                      "name": "v1.0.0", "body": "...", "target_commitish": "main",
                      "assets": [{"name": "a.txt", "content": "text"},
                                 {"name": "b.bin", "content_base64": "AAE="},
                                 {"name": "c.whl", "path": "dist/c.whl"},
                                 {"name": "d.txt", "content": "half", "state": "starter"}]}]
      }]
    }

Commit references anywhere in a repo's entry may be a commit's ``id`` alias, a full or
abbreviated sha, a branch or a tag. Commits without ``parents`` extend their ``branch``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from upm_ci.standins._server import (
    ThreadedStandIn,
    serve_until_signal,
    standin_parser,
    write_atomically,
)
from upm_ci.standins.faults import (
    FaultPlan,
    FaultRule,
    add_fault_options,
    check_kinds,
    fault_kwargs,
)
from upm_ci.standins.github_http import (
    GITHUB_DEFAULT_FAULT_KINDS,
    GITHUB_FAULT_KINDS,
    GitHubService,
    RequestRecord,
    make_server,
)
from upm_ci.standins.github_model import ApiError, GitHubState, Release, Repo

__all__ = [
    "GITHUB_DEFAULT_FAULT_KINDS",
    "GITHUB_FAULT_KINDS",
    "FaultRule",
    "GitHubStandIn",
    "RequestRecord",
    "main",
]

DEFAULT_TOKEN = "t0k"
DEFAULT_LOGIN = "github-actions[bot]"
_MERGE_PR = re.compile(r"^Merge pull request #(\d+) from ([^/\s]+)/(\S+)")
_SQUASH_PR = re.compile(r"\(#(\d+)\)\s*$")
_NOREPLY = re.compile(r"^(?:\d+\+)?([^@]+)@users\.noreply\.github\.com$")


class GitHubStandIn(ThreadedStandIn):
    """The server plus a seeding API. Start with ``with`` or :meth:`start`; cheap (ms)."""

    label = "GitHub"

    def __init__(
        self,
        token: str | Mapping[str, str] = DEFAULT_TOKEN,
        *,
        login: str = DEFAULT_LOGIN,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Sequence[str] = GITHUB_DEFAULT_FAULT_KINDS,
        retry_after: int = 1,
        latency: float = 0.0,
    ) -> None:
        """``token``: one token (acting as ``login``) or a mapping token → login.

        ``fault_rate`` is the fraction of API requests that fail with one of ``fault_kinds``;
        which ones depends only on ``fault_seed`` and the requests themselves
        (:class:`~upm_ci.standins.faults.FaultPlan`; counts in ``self.faults.injected``).
        ``retry_after`` is the ``Retry-After`` sent with 429/403 rate limits; ``latency``
        is added to every request (seconds).
        """
        super().__init__(host=host, port=port)
        tokens = {token: login} if isinstance(token, str) else dict(token)
        check_kinds(fault_kinds, GITHUB_FAULT_KINDS, self.label)
        self.state = GitHubState()
        self.service = GitHubService(
            self.state,
            tokens,
            FaultPlan(
                rate=fault_rate, seed=fault_seed, kinds=tuple(fault_kinds), retry_after=retry_after
            ),
            latency=latency,
        )
        self.token = next(iter(tokens), "")

    @property
    def faults(self) -> FaultPlan:
        """The fault plan: seeded faults, armed rules, and what was injected."""
        return self.service.faults

    def _make_server(self) -> ThreadingHTTPServer:
        return make_server(self._host, self._port, self.service)

    @property
    def api_url(self) -> str:
        """What PyGithub takes as ``base_url``."""
        return f"{self.url}/api/v3"

    @property
    def uploads_url(self) -> str:
        return f"{self.url}/api/uploads"

    # -- seeding --------------------------------------------------------------------------

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        default_branch: str = "main",
        immutable_releases: bool = False,
        private: bool = False,
    ) -> Repo:
        return self.state.add_repo(
            owner,
            name,
            default_branch=default_branch,
            immutable_releases=immutable_releases,
            private=private,
        )

    def repo(self, full_name: str) -> Repo:
        owner, _, name = full_name.partition("/")
        try:
            return self.state.repo(owner, name)
        except ApiError:
            raise KeyError(full_name) from None

    def add_commit(
        self,
        repo: Repo,
        sha: str | None = None,
        message: str = "",
        author: str | None = None,
        parents: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        date: str | None = None,
        author_name: str = "",
        author_email: str = "",
    ) -> str:
        """Returns the sha (generated when not given). ``parents=None`` extends ``branch``."""
        return self.state.add_commit(
            repo,
            sha=sha,
            message=message,
            author=author,
            parents=[self._ref(repo, p) for p in parents] if parents is not None else None,
            branch=branch,
            date=date,
            author_name=author_name,
            author_email=author_email,
        )

    def add_tag(self, repo: Repo, name: str, ref: str) -> str:
        """Lightweight tag at a sha, branch or other tag; returns the sha."""
        return self.state.add_tag(repo, name, ref)

    def add_branch(self, repo: Repo, name: str, ref: str) -> str:
        sha = self._ref(repo, ref)
        with self.state.lock:
            repo.branches[name] = sha
        return sha

    def add_pull(
        self,
        repo: Repo,
        *,
        author: str,
        commits: Sequence[str],
        merge_commit_sha: str | None = None,
        reviews: Iterable[Sequence[str] | dict[str, str]] = (),
        number: int | None = None,
        title: str = "",
        body: str = "",
        base: str | None = None,
        head_ref: str | None = None,
        merged: bool | None = None,
    ) -> int:
        """A pull request; merged when ``merge_commit_sha`` is given. Returns its number.

        ``reviews``: ``(user, state)`` or ``(user, state, submitted_at)`` tuples, state one of
        APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING.
        """
        return self.state.add_pull(
            repo,
            author=author,
            commits=[self._ref(repo, c) for c in commits],
            merge_commit_sha=self._ref(repo, merge_commit_sha) if merge_commit_sha else None,
            reviews=reviews,
            number=number,
            title=title,
            body=body,
            base=base,
            head_ref=head_ref,
            merged=merged,
        )

    def add_review(
        self, repo: Repo, number: int, user: str, state: str, submitted_at: str | None = None
    ) -> None:
        review = (user, state) if submitted_at is None else (user, state, submitted_at)
        self.state.add_review(repo, number, review)

    def add_release(
        self,
        repo: Repo,
        tag_name: str,
        *,
        target_commitish: str | None = None,
        name: str | None = None,
        body: str | None = None,
        draft: bool = False,
        prerelease: bool = False,
        assets: Mapping[str, bytes] | None = None,
        starter_assets: Mapping[str, bytes] | None = None,
        author: str | None = None,
    ) -> Release:
        """A release as a previous (perhaps failed) run left it: assets are attached before
        publishing so the seed works for immutable repos too."""
        uploader = author or self.service.tokens.get(self.token, DEFAULT_LOGIN)
        release = self.state.create_release(
            repo,
            uploader,
            tag_name=tag_name,
            target_commitish=target_commitish,
            name=name,
            body=body,
            draft=True,
            prerelease=prerelease,
        )
        for asset_name, data in (assets or {}).items():
            self.state.add_asset(repo, release.id, name=asset_name, data=data, uploader=uploader)
        for asset_name, data in (starter_assets or {}).items():
            self.state.add_asset(
                repo, release.id, name=asset_name, data=data, uploader=uploader, state="starter"
            )
        if not draft:
            self.state.update_release(repo, release.id, {"draft": False})
        return release

    def seed_from_git(
        self,
        repo: Repo,
        checkout: str | os.PathLike[str],
        *,
        rev: str = "HEAD",
        logins: Mapping[str, str] | None = None,
        detect_pulls: bool = True,
        approve_pulls_as: str | None = None,
    ) -> dict[str, Any]:
        """Import the history reachable from ``rev`` in a local git checkout.

        Imports every commit (shas kept, so ``git rev-parse`` in the checkout agrees with the
        API), the tags pointing into it (annotated tags peeled to their commit), local
        branches, and ``rev`` as the repo's default branch. Author logins come from GitHub
        noreply emails, else ``logins[email or name]``, else the email's local part. With
        ``detect_pulls``, "Merge pull request #N from user/branch" merge commits and
        "Subject (#N)" squash commits become merged pull requests; ``approve_pulls_as`` gives
        each an APPROVED review by that login. Returns counts and the head sha.
        """
        logins = dict(logins or {})
        path = str(Path(checkout).resolve())
        log = _git(
            path,
            "log",
            "--reverse",
            "--topo-order",
            "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%B%x1e",
            rev,
        )
        head = _git(path, "rev-parse", f"{rev}^{{commit}}").strip()
        imported: list[str] = []
        for entry in log.split("\x1e"):
            entry = entry.strip("\n")
            if not entry:
                continue
            sha, parents, name, email, date, message = entry.split("\x1f", 5)
            with self.state.lock:
                known = [p for p in parents.split() if p in repo.commits]
                if sha in repo.commits:
                    continue
            self.state.add_commit(
                repo,
                sha=sha,
                message=message.rstrip("\n"),
                author=_login_for(name, email, logins),
                parents=known,
                branch=f"refs/import/{id(imported)}",
                author_name=name,
                author_email=email,
                date=_utc(date),
            )
            imported.append(sha)
        with self.state.lock:
            repo.branches = {
                name: sha for name, sha in repo.branches.items() if not name.startswith("refs/")
            }
            repo.branches[repo.default_branch] = head
        refs = _git(
            path,
            "for-each-ref",
            "--format=%(refname)%1f%(objectname)%1f%(*objectname)",
            "refs/tags",
            "refs/heads",
        )
        tags = 0
        for line in refs.splitlines():
            ref, obj, peeled = line.split("\x1f")
            sha = peeled or obj
            with self.state.lock:
                if sha not in repo.commits:
                    continue
                if ref.startswith("refs/tags/"):
                    repo.tags[ref.removeprefix("refs/tags/")] = sha
                    tags += 1
                else:
                    repo.branches.setdefault(ref.removeprefix("refs/heads/"), sha)
        pulls = self._pulls_from_history(repo, imported, approve_pulls_as) if detect_pulls else 0
        return {"commits": len(imported), "tags": tags, "pulls": pulls, "head": head}

    def _pulls_from_history(self, repo: Repo, shas: Sequence[str], approve_as: str | None) -> int:
        reviews = [(approve_as, "APPROVED")] if approve_as else []
        count = 0
        for sha in shas:
            commit = repo.commits[sha]
            subject = commit.message.splitlines()[0] if commit.message else ""
            merge = _MERGE_PR.match(subject)
            squash = _SQUASH_PR.search(subject)
            with self.state.lock:
                if merge and len(commit.parents) == 2:
                    number, author, head_ref = int(merge[1]), merge[2], merge[3]
                    first, second = commit.parents
                    only_in_pr = self.state.ancestors(repo, second) - self.state.ancestors(
                        repo, first
                    )
                    commits = self.state.topological(repo, only_in_pr) or [second]
                elif squash and len(commit.parents) <= 1:
                    number, author, head_ref = int(squash[1]), commit.author or "unknown", ""
                    commits = [sha]
                else:
                    continue
                if number in repo.pulls:
                    continue
                self.state.add_pull(
                    repo,
                    author=author,
                    commits=commits,
                    merge_commit_sha=sha,
                    reviews=reviews,
                    number=number,
                    head_ref=head_ref or None,
                )
            count += 1
        return count

    def load_seed(self, seed: Mapping[str, Any] | str | os.PathLike[str]) -> None:
        """Apply a seed document (see the module docstring) or a path to one."""
        if not isinstance(seed, Mapping):
            base = Path(seed).resolve().parent
            doc: Mapping[str, Any] = json.loads(Path(seed).read_text(encoding="utf-8"))
        else:
            base, doc = Path.cwd(), seed
        self.service.tokens.update(doc.get("tokens", {}))
        for entry in doc.get("repos", []):
            self._load_repo(entry, base)

    def _load_repo(self, entry: Mapping[str, Any], base: Path) -> None:
        repo = self.add_repo(
            entry["owner"],
            entry["name"],
            default_branch=entry.get("default_branch", "main"),
            immutable_releases=bool(entry.get("immutable_releases", False)),
            private=bool(entry.get("private", False)),
        )
        git = entry.get("git")
        if git:
            options: dict[str, Any] = {"path": git} if isinstance(git, str) else dict(git)
            self.seed_from_git(
                repo,
                base / str(options["path"]),
                rev=str(options.get("rev", "HEAD")),
                logins=options.get("logins"),
                detect_pulls=bool(options.get("detect_pulls", True)),
                approve_pulls_as=options.get("approve_pulls_as"),
            )
        aliases: dict[str, str] = {}

        def ref(name: str) -> str:
            return aliases.get(name) or self._ref(repo, name)

        for commit in entry.get("commits", []):
            parents = commit.get("parents")
            sha = self.add_commit(
                repo,
                sha=commit.get("sha"),
                message=commit.get("message", ""),
                author=commit.get("author"),
                parents=[ref(p) for p in parents] if parents is not None else None,
                branch=commit.get("branch"),
                date=commit.get("date"),
            )
            if "id" in commit:
                aliases[commit["id"]] = sha
        for branch, target in entry.get("branches", {}).items():
            self.add_branch(repo, branch, ref(target))
        for tag, target in entry.get("tags", {}).items():
            self.add_tag(repo, tag, ref(target))
        for pull in entry.get("pulls", []):
            merge = pull.get("merge_commit_sha")
            self.add_pull(
                repo,
                author=pull["author"],
                commits=[ref(c) for c in pull["commits"]],
                merge_commit_sha=ref(merge) if merge else None,
                reviews=[tuple(r) if isinstance(r, list) else r for r in pull.get("reviews", [])],
                number=pull.get("number"),
                title=pull.get("title", ""),
                body=pull.get("body", ""),
                base=pull.get("base"),
                head_ref=pull.get("head_ref"),
                merged=pull.get("merged"),
            )
        for release in entry.get("releases", []):
            assets: dict[str, bytes] = {}
            starters: dict[str, bytes] = {}
            for asset in release.get("assets", []):
                target = starters if asset.get("state") == "starter" else assets
                target[asset["name"]] = _asset_bytes(asset, base)
            target_commitish = release.get("target_commitish")
            self.add_release(
                repo,
                release["tag_name"],
                target_commitish=ref(target_commitish)
                if target_commitish in aliases
                else target_commitish,
                name=release.get("name"),
                body=release.get("body"),
                draft=bool(release.get("draft", False)),
                prerelease=bool(release.get("prerelease", False)),
                assets=assets,
                starter_assets=starters,
            )

    def _ref(self, repo: Repo, ref: str) -> str:
        sha = self.state.resolve(repo, ref)
        if sha is None:
            raise ValueError(f"{repo.full_name}: unknown commit, branch or tag {ref!r}")
        return sha

    # -- faults and observation -----------------------------------------------------------

    def inject(
        self,
        kind: str,
        *,
        method: str | None = None,
        path_regex: str | None = None,
        count: int = 1,
        skip: int = 0,
    ) -> FaultRule:
        """Make the next ``count`` matching requests (after ``skip`` of them) fail with ``kind``.

        Kinds: 5xx/500/502/503, 429, secondary (403 + Retry-After), primary (403, remaining 0),
        reset (drop the connection; on an upload, after half the body, leaving a ``starter``
        asset), reset_after (handle the request, then drop the response), slow.
        """
        check_kinds([kind], GITHUB_FAULT_KINDS, self.label)
        return self.service.faults.add_rule(
            FaultRule(kind=kind, method=method, path_regex=path_regex, count=count, skip=skip)
        )

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self.service.log_lock:
            return list(self.service.log)

    def requests_matching(
        self, method: str | None = None, path_regex: str = ""
    ) -> list[RequestRecord]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and re.search(path_regex, r.path)
        ]

    def clear_log(self) -> None:
        with self.service.log_lock:
            self.service.log.clear()

    def snapshot(self) -> dict[str, Any]:
        """All state except asset bytes, JSON-able (digests and sizes stand in for bytes)."""
        return self.state.snapshot()

    def dump(self, path: str | os.PathLike[str]) -> None:
        """Snapshot and request log to a JSON file, for a failing test or a rehearsal."""
        doc = self.snapshot()
        doc["requests"] = [vars(r) for r in self.requests]
        write_atomically(Path(path), json.dumps(doc, indent=2))


def _git(path: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", f"safe.directory={path}", "-C", path, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _login_for(name: str, email: str, logins: Mapping[str, str]) -> str:
    if email in logins:
        return logins[email]
    if name in logins:
        return logins[name]
    noreply = _NOREPLY.match(email)
    if noreply:
        return noreply[1]
    return email.partition("@")[0] or name


def _utc(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _asset_bytes(asset: Mapping[str, Any], base: Path) -> bytes:
    if "content_base64" in asset:
        return base64.b64decode(asset["content_base64"])
    if "path" in asset:
        return (base / str(asset["path"])).read_bytes()
    return str(asset.get("content", "")).encode()


def _parse_tokens(values: Sequence[str]) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for value in values:
        token, _, login = value.partition("=")
        tokens[token] = login or DEFAULT_LOGIN
    return tokens


def build_parser() -> argparse.ArgumentParser:
    parser = standin_parser(
        "github",
        "Serve a GitHub REST stand-in (GHES-shaped) until SIGTERM or Ctrl-C.",
        "url, api_url",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN[=LOGIN]",
        help=f"accepted token (repeatable); default {DEFAULT_TOKEN}",
    )
    parser.add_argument("--seed", help="seed JSON file (format: module docstring)")
    parser.add_argument("--dump-on-exit", help="write state and request log here on exit")
    add_fault_options(parser, GITHUB_DEFAULT_FAULT_KINDS)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tokens = _parse_tokens(args.token) or {DEFAULT_TOKEN: DEFAULT_LOGIN}
    try:
        standin = GitHubStandIn(
            tokens,
            host=args.host,
            port=args.port,
            **fault_kwargs(args),
            retry_after=args.retry_after,
            latency=args.latency,
        )
    except ValueError as e:  # a fault kind or rate it cannot take
        print(f"github stand-in: {e}", file=sys.stderr)
        return 2
    if args.seed:
        standin.load_seed(args.seed)
    serve_until_signal(
        standin,
        ready_file=args.ready_file,
        urls=lambda: {"url": standin.url, "api_url": standin.api_url},
        serving="api_url",
    )
    if args.dump_on_exit:
        standin.dump(args.dump_on_exit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
