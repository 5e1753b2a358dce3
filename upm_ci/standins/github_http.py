"""HTTP side of the GitHub stand-in: routing, auth, pagination, fault injection, request log.

Real clients (PyGithub, requests, curl) talk to it as to GitHub Enterprise Server:
API under ``/api/v3``, uploads under ``/api/uploads``, browser downloads at
``/{owner}/{repo}/releases/download/{tag}/{name}``. Faults are decided before a request is
handled (or after, for ``reset_after``) so a client's retry logic meets what GitHub's edge
really does: 5xx, 429 and 403 secondary rate limits with ``Retry-After``, dropped connections.
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from upm_ci.standins.faults import FAULT_KINDS, FaultPlan, FaultRule, check_kinds
from upm_ci.standins.github_model import (
    ApiError,
    Asset,
    GitHubState,
    Release,
    Repo,
    not_found,
)
from upm_ci.standins.github_render import Renderer

#: What the GitHub stand-in injects: every kind of the fault plan.
GITHUB_FAULT_KINDS = FAULT_KINDS
#: What ``fault_rate`` draws from by default: the faults GitHub's edge gives most.
GITHUB_DEFAULT_FAULT_KINDS = ("5xx", "429", "secondary", "reset")
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    " If you reach out to GitHub Support for help, please include the request ID."
)
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
UPLOAD_PATH = re.compile(
    r"^/api/uploads/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/releases/(?P<id>\d+)/assets$"
)
GHES_VERSION = "3.17.0"


@dataclass
class RequestRecord:
    """One line of the request log; ``status`` 0 means the connection was dropped."""

    method: str
    path: str
    status: int
    fault: str | None = None
    login: str | None = None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, doc: Any, headers: Mapping[str, str] | None = None) -> Response:
        payload = json.dumps(doc, indent=None).encode()
        all_headers = {"Content-Type": "application/json; charset=utf-8"}
        all_headers.update(headers or {})
        return cls(status, payload, all_headers)

    @classmethod
    def error(cls, err: ApiError, headers: Mapping[str, str] | None = None) -> Response:
        return cls.json(err.status, err.body(), headers)


@dataclass
class Request:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    login: str | None

    @property
    def authenticated(self) -> bool:
        return self.login is not None

    def json_body(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            doc = json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, "Problems parsing JSON") from exc
        if not isinstance(doc, dict):
            raise ApiError(400, "Problems parsing JSON")
        return doc


Handler = Callable[[Request, "re.Match[str]"], Response]


class GitHubService:
    """Everything the HTTP handler needs: state, renderer, tokens, faults, log."""

    def __init__(
        self,
        state: GitHubState,
        tokens: Mapping[str, str],
        faults: FaultPlan,
        latency: float = 0.0,
    ) -> None:
        self.state = state
        self.tokens = dict(tokens)
        self.faults = faults
        self.latency = latency
        self.renderer = Renderer("http://127.0.0.1")
        self.log: list[RequestRecord] = []
        self.log_lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._register_routes()

    # -- request plumbing ---------------------------------------------------------------

    def record(self, record: RequestRecord) -> None:
        with self.log_lock:
            self.log.append(record)

    def login_for(self, authorization: str | None) -> tuple[str | None, bool]:
        """Returns (login, credentials_were_offered)."""
        if not authorization:
            return None, False
        scheme, _, value = authorization.strip().partition(" ")
        token = value.strip()
        if scheme.lower() == "basic":
            import base64

            try:
                token = base64.b64decode(token).decode().partition(":")[2]
            except ValueError:
                return None, True
        elif scheme.lower() not in ("token", "bearer"):
            return None, True
        return self.tokens.get(token), True

    def rate_headers(self) -> dict[str, str]:
        used = len(self.log) + 1
        return {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(max(5000 - used, 1)),
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Resource": "core",
        }

    def fault_response(self, kind: str) -> Response:
        retry_after = str(self.faults.retry_after)
        if kind in ("500", "502", "503"):
            messages = {"500": "Server Error", "502": "Bad Gateway", "503": "Service Unavailable"}
            return Response.json(int(kind), {"message": messages[kind]})
        if kind == "429":
            return Response.json(
                429,
                {"message": SECONDARY_RATE_LIMIT_MESSAGE, "documentation_url": _DOC_RATE},
                {"Retry-After": retry_after},
            )
        if kind == "secondary":
            return Response.json(
                403,
                {"message": SECONDARY_RATE_LIMIT_MESSAGE, "documentation_url": _DOC_RATE},
                {"Retry-After": retry_after},
            )
        if kind == "primary":
            headers = self.rate_headers()
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(time.time()) + self.faults.retry_after)
            return Response.json(
                403,
                {
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": _DOC_RATE,
                },
                headers,
            )
        raise ValueError(kind)

    def dispatch(self, request: Request) -> Response:
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            if method != request.method and not (method == "GET" and request.method == "HEAD"):
                continue
            try:
                return handler(request, match)
            except ApiError as err:
                return Response.error(err)
        return Response.error(not_found())

    def paginate(
        self, request: Request, items: Sequence[Any], default: int = 30, maximum: int = 100
    ) -> tuple[list[Any], dict[str, str]]:
        """GitHub's page/per_page slicing with a ``Link`` header (first/prev/next/last)."""
        per_page = _int_param(request.query.get("per_page"), default)
        per_page = min(max(per_page, 1), maximum)
        page = max(_int_param(request.query.get("page"), 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)
        chunk = list(items[(page - 1) * per_page : page * per_page])
        links = []

        def link(target: int, rel: str) -> str:
            query = dict(request.query)
            query["per_page"] = str(per_page)
            query["page"] = str(target)
            return f'<{self.renderer.web}{request.raw_path}?{urlencode(query)}>; rel="{rel}"'

        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
            links.append(link(last, "last"))
        if page > 1:
            links.append(link(1, "first"))
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # -- routes ---------------------------------------------------------------------------

    def _register_routes(self) -> None:
        repo = r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"^/?$", self.get_root),
            ("GET", r"^/user$", self.get_user),
            ("GET", r"^/rate_limit$", self.get_rate_limit),
            ("GET", repo + r"$", self.get_repo),
            ("GET", repo + r"/tags$", self.list_tags),
            ("GET", repo + r"/branches$", self.list_branches),
            ("GET", repo + r"/branches/(?P<branch>.+)$", self.get_branch),
            ("GET", repo + r"/git/ref/(?P<ref>.+)$", self.get_ref),
            ("GET", repo + r"/git/refs(?:/(?P<prefix>.+))?$", self.list_refs),
            ("GET", repo + r"/git/matching-refs/(?P<prefix>.*)$", self.matching_refs),
            ("POST", repo + r"/git/refs$", self.create_ref),
            ("DELETE", repo + r"/git/refs/(?P<ref>.+)$", self.delete_ref),
            ("GET", repo + r"/commits$", self.list_commits),
            ("GET", repo + r"/commits/(?P<ref>[^/]+)/pulls$", self.commit_pulls),
            ("GET", repo + r"/commits/(?P<ref>.+)$", self.get_commit),
            ("GET", repo + r"/compare/(?P<base>.+?)\.\.\.(?P<head>.+)$", self.compare),
            ("GET", repo + r"/pulls$", self.list_pulls),
            ("GET", repo + r"/pulls/(?P<number>\d+)$", self.get_pull),
            ("GET", repo + r"/pulls/(?P<number>\d+)/commits$", self.pull_commits),
            ("GET", repo + r"/pulls/(?P<number>\d+)/reviews$", self.pull_reviews),
            ("GET", repo + r"/releases$", self.list_releases),
            ("POST", repo + r"/releases$", self.create_release),
            ("GET", repo + r"/releases/latest$", self.latest_release),
            ("GET", repo + r"/releases/tags/(?P<tag>.+)$", self.release_by_tag),
            ("GET", repo + r"/releases/(?P<id>\d+)$", self.get_release),
            ("PATCH", repo + r"/releases/(?P<id>\d+)$", self.update_release),
            ("DELETE", repo + r"/releases/(?P<id>\d+)$", self.delete_release),
            ("GET", repo + r"/releases/(?P<id>\d+)/assets$", self.list_assets),
            ("GET", repo + r"/releases/assets/(?P<id>\d+)$", self.get_asset),
            ("PATCH", repo + r"/releases/assets/(?P<id>\d+)$", self.update_asset),
            ("DELETE", repo + r"/releases/assets/(?P<id>\d+)$", self.delete_asset),
        ]
        self.routes = [(method, re.compile(regex), handler) for method, regex, handler in table]

    def _repo(self, request: Request, match: re.Match[str]) -> Repo:
        repo = self.state.repo(unquote(match["owner"]), unquote(match["repo"]))
        if repo.private and not request.authenticated:
            raise not_found()
        return repo

    def _release_doc(self, repo: Repo, release: Release) -> dict[str, Any]:
        with self.state.lock:
            return self.renderer.release(repo, release, self.state.assets_of(repo, release))

    def get_root(self, request: Request, match: re.Match[str]) -> Response:
        api = self.renderer.api
        return Response.json(
            200,
            {
                "current_user_url": f"{api}/user",
                "repository_url": f"{api}/repos/{{owner}}/{{repo}}",
                "rate_limit_url": f"{api}/rate_limit",
                "installed_version": GHES_VERSION,
            },
        )

    def get_user(self, request: Request, match: re.Match[str]) -> Response:
        if request.login is None:
            raise ApiError(401, "Requires authentication")
        return Response.json(200, self.renderer.user(request.login))

    def get_rate_limit(self, request: Request, match: re.Match[str]) -> Response:
        headers = self.rate_headers()
        core = {
            "limit": 5000,
            "remaining": int(headers["X-RateLimit-Remaining"]),
            "reset": int(headers["X-RateLimit-Reset"]),
            "used": int(headers["X-RateLimit-Used"]),
        }
        return Response.json(200, {"resources": {"core": core}, "rate": core})

    def get_repo(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        return Response.json(200, self.renderer.repository(repo, request.authenticated))

    def list_tags(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        with self.state.lock:
            tags = list(reversed(repo.tags.items()))
        page, headers = self.paginate(request, tags)
        return Response.json(200, [self.renderer.tag(repo, n, s) for n, s in page], headers)

    def list_branches(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        with self.state.lock:
            branches = sorted(repo.branches.items())
        page, headers = self.paginate(request, branches)
        docs = [self.renderer.branch(repo, name, repo.commits[sha]) for name, sha in page]
        return Response.json(200, docs, headers)

    def get_branch(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        name = unquote(match["branch"])
        sha = repo.branches.get(name)
        if sha is None:
            raise ApiError(404, "Branch not found")
        return Response.json(200, self.renderer.branch(repo, name, repo.commits[sha]))

    def _all_refs(self, repo: Repo) -> list[tuple[str, str]]:
        with self.state.lock:
            heads = [(f"refs/heads/{name}", sha) for name, sha in sorted(repo.branches.items())]
            tags = [(f"refs/tags/{name}", sha) for name, sha in sorted(repo.tags.items())]
        return heads + tags

    def get_ref(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        wanted = "refs/" + unquote(match["ref"]).removeprefix("refs/")
        for ref, sha in self._all_refs(repo):
            if ref == wanted:
                return Response.json(200, self.renderer.ref(repo, ref, sha))
        raise not_found()

    def list_refs(self, request: Request, match: re.Match[str]) -> Response:
        """``/git/refs/tags/v1`` answers one ref if it matches exactly, else a list."""
        repo = self._repo(request, match)
        prefix = "refs/" + unquote(match["prefix"] or "").removeprefix("refs/")
        refs = self._all_refs(repo)
        exact = [(ref, sha) for ref, sha in refs if ref == prefix]
        if exact and match["prefix"]:
            return Response.json(200, self.renderer.ref(repo, *exact[0]))
        found = [(ref, sha) for ref, sha in refs if ref.startswith(prefix)]
        if not found:
            raise not_found()
        page, headers = self.paginate(request, found)
        return Response.json(200, [self.renderer.ref(repo, r, s) for r, s in page], headers)

    def matching_refs(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        prefix = "refs/" + unquote(match["prefix"]).removeprefix("refs/")
        found = [(ref, sha) for ref, sha in self._all_refs(repo) if ref.startswith(prefix)]
        page, headers = self.paginate(request, found)
        return Response.json(200, [self.renderer.ref(repo, r, s) for r, s in page], headers)

    def create_ref(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        doc = request.json_body()
        ref, sha = str(doc.get("ref", "")), str(doc.get("sha", ""))
        self.state.create_ref(repo, ref, sha)
        return Response.json(201, self.renderer.ref(repo, ref, sha))

    def delete_ref(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        self.state.delete_ref(repo, unquote(match["ref"]))
        return Response(204)

    def list_commits(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        with self.state.lock:
            start = self.state.resolve_or_404(repo, request.query.get("sha", repo.default_branch))
            shas = self.state.topological(repo, self.state.ancestors(repo, start))[::-1]
            commits = [repo.commits[sha] for sha in shas]
        page, headers = self.paginate(request, commits)
        docs = [self.renderer.commit(repo, c, full=False) for c in page]
        return Response.json(200, docs, headers)

    def get_commit(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        sha = self.state.resolve_or_404(repo, unquote(match["ref"]))
        return Response.json(200, self.renderer.commit(repo, repo.commits[sha]))

    def commit_pulls(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        sha = self.state.resolve_or_404(repo, unquote(match["ref"]))
        pulls = self.state.pulls_for_commit(repo, sha)
        page, headers = self.paginate(request, pulls)
        return Response.json(200, [self.renderer.pull(repo, p, full=False) for p in page], headers)

    def compare(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        base, head = unquote(match["base"]), unquote(match["head"])
        result = self.state.compare(repo, base, head)
        with self.state.lock:
            commits = [repo.commits[sha] for sha in result["commits"]]
            if "page" in request.query or "per_page" in request.query:
                page, headers = self.paginate(request, commits, default=250, maximum=1000)
            else:
                page, headers = commits[:250], {}
            url = f"{self.renderer.repo_url(repo)}/compare/{quote(base)}...{quote(head)}"
            web = f"{self.renderer.web}/{repo.full_name}/compare/{quote(base)}...{quote(head)}"
            merge_base = result["merge_base"]
            doc = {
                "url": url,
                "html_url": web,
                "permalink_url": f"{self.renderer.web}/{repo.full_name}/compare/"
                f"{result['base']}...{result['head']}",
                "diff_url": f"{web}.diff",
                "patch_url": f"{web}.patch",
                "base_commit": self.renderer.commit(repo, repo.commits[result["base"]], full=False),
                "merge_base_commit": self.renderer.commit(
                    repo, repo.commits[merge_base], full=False
                )
                if merge_base
                else None,
                "status": result["status"],
                "ahead_by": result["ahead_by"],
                "behind_by": result["behind_by"],
                "total_commits": len(commits),
                "commits": [self.renderer.commit(repo, c, full=False) for c in page],
                "files": [],
            }
        return Response.json(200, doc, headers)

    def list_pulls(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        state = request.query.get("state", "open")
        with self.state.lock:
            pulls = sorted(repo.pulls.values(), key=lambda p: -p.number)
        if state != "all":
            pulls = [p for p in pulls if ("closed" if p.merged else "open") == state]
        page, headers = self.paginate(request, pulls)
        return Response.json(200, [self.renderer.pull(repo, p, full=False) for p in page], headers)

    def _pull(self, request: Request, match: re.Match[str]) -> tuple[Repo, Any]:
        repo = self._repo(request, match)
        pull = repo.pulls.get(int(match["number"]))
        if pull is None:
            raise not_found()
        return repo, pull

    def get_pull(self, request: Request, match: re.Match[str]) -> Response:
        repo, pull = self._pull(request, match)
        return Response.json(200, self.renderer.pull(repo, pull))

    def pull_commits(self, request: Request, match: re.Match[str]) -> Response:
        repo, pull = self._pull(request, match)
        commits = [repo.commits[sha] for sha in pull.commits]
        page, headers = self.paginate(request, commits, maximum=250)
        docs = [self.renderer.commit(repo, c, full=False) for c in page]
        return Response.json(200, docs, headers)

    def pull_reviews(self, request: Request, match: re.Match[str]) -> Response:
        repo, pull = self._pull(request, match)
        page, headers = self.paginate(request, list(pull.reviews))
        docs = [self.renderer.review(repo, pull, review) for review in page]
        return Response.json(200, docs, headers)

    def list_releases(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        releases = self.state.releases_newest_first(repo, include_drafts=request.authenticated)
        page, headers = self.paginate(request, releases)
        return Response.json(200, [self._release_doc(repo, r) for r in page], headers)

    def create_release(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        doc = request.json_body()
        body = doc.get("body")
        if body is None and doc.get("generate_release_notes"):
            body = f"**Full Changelog**: {doc.get('tag_name')}"
        release = self.state.create_release(
            repo,
            request.login or "",
            tag_name=str(doc.get("tag_name") or ""),
            target_commitish=doc.get("target_commitish"),
            name=doc.get("name"),
            body=body,
            draft=bool(doc.get("draft", False)),
            prerelease=bool(doc.get("prerelease", False)),
            make_latest=str(doc.get("make_latest", "true")).lower(),
        )
        location = f"{self.renderer.repo_url(repo)}/releases/{release.id}"
        return Response.json(201, self._release_doc(repo, release), {"Location": location})

    def latest_release(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        return Response.json(200, self._release_doc(repo, self.state.latest_release(repo)))

    def release_by_tag(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        release = self.state.release_by_tag(repo, unquote(match["tag"]))
        return Response.json(200, self._release_doc(repo, release))

    def get_release(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        release = self.state.release(repo, int(match["id"]), include_drafts=request.authenticated)
        return Response.json(200, self._release_doc(repo, release))

    def update_release(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        release = self.state.update_release(repo, int(match["id"]), request.json_body())
        return Response.json(200, self._release_doc(repo, release))

    def delete_release(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        self.state.delete_release(repo, int(match["id"]))
        return Response(204)

    def list_assets(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        release = self.state.release(repo, int(match["id"]), include_drafts=request.authenticated)
        page, headers = self.paginate(request, self.state.assets_of(repo, release))
        return Response.json(200, [self.renderer.asset(repo, release, a) for a in page], headers)

    def get_asset(self, request: Request, match: re.Match[str]) -> Response:
        """JSON by default; the bytes with ``Accept: application/octet-stream``."""
        repo = self._repo(request, match)
        with self.state.lock:
            asset = self.state.asset(repo, int(match["id"]))
            release = repo.releases[asset.release_id]
            if release.draft and not request.authenticated:
                raise not_found()
            if "application/octet-stream" in request.headers.get("Accept", ""):
                if asset.state != "uploaded":
                    raise not_found()
                asset.download_count += 1
                return _bytes_response(asset.name, asset.content_type, asset.data)
            return Response.json(200, self.renderer.asset(repo, release, asset))

    def update_asset(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        with self.state.lock:
            asset = self.state.update_asset(repo, int(match["id"]), request.json_body())
            release = repo.releases[asset.release_id]
            return Response.json(200, self.renderer.asset(repo, release, asset))

    def delete_asset(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        self.state.delete_asset(repo, int(match["id"]))
        return Response(204)

    def upload(self, request: Request, match: re.Match[str]) -> Response:
        repo = self._repo(request, match)
        with self.state.lock:
            asset = self._store_upload(repo, request, match)
            release = repo.releases[asset.release_id]
            return Response.json(201, self.renderer.asset(repo, release, asset))

    def record_interrupted_upload(self, request: Request, match: re.Match[str]) -> None:
        """What GitHub keeps when an upload dies half-way: an asset stuck in ``starter``."""
        try:
            self._store_upload(self._repo(request, match), request, match, state="starter")
        except ApiError:
            pass

    def _store_upload(
        self, repo: Repo, request: Request, match: re.Match[str], state: str = "uploaded"
    ) -> Asset:
        """The asset an upload request makes, with as much of the body as arrived."""
        return self.state.add_asset(
            repo,
            int(match["id"]),
            name=request.query.get("name", ""),
            label=request.query.get("label", ""),
            data=request.body,
            uploader=request.login or "",
            content_type=request.headers.get("Content-Type") or "application/octet-stream",
            state=state,
        )

    def browser_download(self, request: Request, parts: list[str]) -> Response:
        """``/{owner}/{repo}/releases/download/{tag or untagged-x}/{name}``: the bytes."""
        owner, name, tag, asset_name = parts
        try:
            repo = self.state.repo(owner, name)
        except ApiError:
            return Response(404, b"Not Found", {"Content-Type": "text/plain"})
        with self.state.lock:
            for release in repo.releases.values():
                if release.draft:
                    if tag != f"untagged-{release.untagged_slug}" or not request.authenticated:
                        continue
                elif release.tag_name != tag:
                    continue
                for asset in self.state.assets_of(repo, release):
                    if asset.name == asset_name and asset.state == "uploaded":
                        asset.download_count += 1
                        return _bytes_response(asset.name, asset.content_type, asset.data)
        return Response(404, b"Not Found", {"Content-Type": "text/plain"})


_DOC_RATE = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)


def _bytes_response(name: str, content_type: str, data: bytes) -> Response:
    return Response(
        200,
        data,
        {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"attachment; filename={name}",
            "X-Original-Content-Type": content_type,
        },
    )


def _int_param(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    service: GitHubService


class GitHubRequestHandler(BaseHTTPRequestHandler):
    """Parses, authenticates, injects faults, dispatches, logs. One instance per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com-standin"
    timeout = 60
    server: _Server

    def setup(self) -> None:
        """No Nagle: headers and body go out in separate writes, and with Nagle plus delayed
        ACKs every keep-alive request would cost about 40 ms."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the request log is the record, stderr stays readable."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self, limit: int | None = None) -> bytes:
        """The whole body (Content-Length or chunked), or only its first ``limit`` bytes."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if limit is not None and sum(map(len, chunks)) >= limit:
                    break
            data = b"".join(chunks)
            return data if limit is None else data[:limit]
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(limit, length))

    def _send(self, response: Response, service: GitHubService) -> None:
        self.send_response(response.status)
        headers = {
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": f"0000:{len(service.log):05d}",
            "X-GitHub-Enterprise-Version": GHES_VERSION,
        }
        headers.update(service.rate_headers())
        headers.update(response.headers)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def _drop_connection(self) -> None:
        self.close_connection = True
        self.wfile.flush()

    def _handle(self, method: str) -> None:
        service = self.server.service
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        login, offered = service.login_for(self.headers.get("Authorization"))

        if path.startswith("/_standin/"):
            body = self._read_body()
            self._send(self._control(service, method, path, body), service)
            return

        if service.latency:
            time.sleep(service.latency)
        record = RequestRecord(method, self.path, 0, None, login)
        fault = service.faults.decide(method, self.path)
        record.fault = fault
        if fault == "slow":
            time.sleep(service.faults.slow_seconds)
            fault = None
        upload_match = UPLOAD_PATH.match(path) if method == "POST" else None
        api_path = path.removeprefix("/api/v3") or "/"

        def request_with(body: bytes) -> Request:
            return Request(method, api_path, path, query, dict(self.headers.items()), body, login)

        if fault == "reset" and upload_match is not None:
            half = max(int(self.headers.get("Content-Length") or 0) // 2, 1)
            partial = self._read_body(limit=half)
            if offered and login is not None:
                service.record_interrupted_upload(request_with(partial), upload_match)
            service.record(record)
            self._drop_connection()
            return
        body = self._read_body()
        if len(body) < int(self.headers.get("Content-Length") or 0):
            # The client went away mid-request (killed, reset): GitHub keeps such an upload as
            # a ``starter`` asset and acts on no other truncated request.
            if upload_match is not None and offered and login is not None:
                service.record_interrupted_upload(request_with(body), upload_match)
            service.record(record)
            self._drop_connection()
            return
        if fault == "reset":
            service.record(record)
            self._drop_connection()
            return
        if fault is not None and fault != "reset_after":
            response = service.fault_response(fault)
        elif offered and login is None:
            response = Response.error(ApiError(401, "Bad credentials"))
        elif method in WRITE_METHODS and login is None:
            response = Response.error(ApiError(401, "Requires authentication"))
        elif upload_match is not None:
            try:
                response = service.upload(request_with(body), upload_match)
            except ApiError as err:
                response = Response.error(err)
        elif method in ("GET", "HEAD") and _is_browser_download(path):
            response = service.browser_download(request_with(body), _browser_parts(path))
        elif path == "/api/v3" or path.startswith("/api/v3/") or path.startswith("/repos/"):
            response = service.dispatch(request_with(body))
        else:
            response = Response.error(not_found())
        record.status = response.status
        service.record(record)
        if fault == "reset_after":
            record.status = 0
            self._drop_connection()
            return
        self._send(response, service)

    def _control(self, service: GitHubService, method: str, path: str, body: bytes) -> Response:
        """``/_standin/state``, ``/_standin/requests``, ``POST /_standin/inject``: for tests
        that run the stand-in in another process (the CLI)."""
        if path == "/_standin/state" and method == "GET":
            return Response.json(200, service.state.snapshot())
        if path == "/_standin/requests" and method == "GET":
            with service.log_lock:
                return Response.json(200, [asdict(r) for r in service.log])
        if path == "/_standin/inject" and method == "POST":
            try:
                doc = json.loads(body or b"{}")
                rule = FaultRule(**doc)
                check_kinds([rule.kind], GITHUB_FAULT_KINDS, "GitHub")
                service.faults.add_rule(rule)
            except (ValueError, TypeError) as exc:
                return Response.json(400, {"message": str(exc)})
            return Response.json(201, doc)
        return Response.error(not_found())


_BROWSER_DOWNLOAD = re.compile(r"^/([^/]+)/([^/]+)/releases/download/(.+)/([^/]+)$")


def _is_browser_download(path: str) -> bool:
    return not path.startswith("/api/") and _BROWSER_DOWNLOAD.match(path) is not None


def _browser_parts(path: str) -> list[str]:
    match = _BROWSER_DOWNLOAD.match(path)
    assert match is not None
    return [unquote(part) for part in match.groups()]


def make_server(host: str, port: int, service: GitHubService) -> _Server:
    server = _Server((host, port), GitHubRequestHandler)
    server.service = service
    bound_port = server.server_address[1]
    service.renderer = Renderer(f"http://{host}:{bound_port}")
    return server
