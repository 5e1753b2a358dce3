"""The GitHub release: one draft per tag, assets synced by digest, published last.

What makes this hard is GitHub, not the happy path:

- Tag lookup never returns drafts, so drafts are found by listing; two drafts for one tag
  (matrix jobs racing) is a failure naming both, never a reason to make a third. Creating
  is not idempotent, so every creation attempt first lists again: a create whose answer was
  lost is found, not repeated.
- A re-run meets assets that are already there: same name and digest is skipped; another
  digest is a policy failure unless ``replace`` (only while the release is a draft). An
  upload cut off half-way leaves an asset in state ``starter``, which is deleted and uploaded
  again; a 422 ``already_exists`` after a dropped connection means the first attempt may
  have landed, so the asset is re-read and compared instead of failing.
- Immutable releases accept nothing after publishing, so the release is un-drafted only when
  every expected asset, re-read from the API, is ``uploaded`` with the right digest.

PyGithub's own retries are off (``retry=None``); ours (:mod:`upm_ci.retry`, ``classify``) are
bounded and logged. PyGithub's connection object is not thread-safe, so each upload thread has
its own client.

:class:`GitHubApi` is the one construction of a GitHub client: the API's base URL (an http(s)
URL), the token and the headers a request carries (the token only to the API's own origin).
This module's PyGithub clients and asset reads, and the hostile-server release download of
``verify`` (:mod:`upm_ci.release_download`), are all built on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests

from upm_ci.config import check_http_url
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.retry import HttpStatusError, RetryPolicy, call_with_retry, classify

if TYPE_CHECKING:
    from github import Github
    from github.GitRelease import GitRelease

log = logging.getLogger(__name__)
T = TypeVar("T")
UPLOAD_WORKERS = 8
#: The REST API version every request asks for.
API_VERSION = "2022-11-28"


def url_origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, lower-case host, port) of ``url``: what "the same server" means for a token."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address literal (127.0.0.0/8, ::1): a host whose traffic
    never leaves this machine, the only one a token may reach over plain http."""
    import ipaddress

    host = host.lower().strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_origin_text(url: str) -> str:
    """``scheme://host:port`` of ``url`` for messages (no path, query or credentials)."""
    scheme, host, port = url_origin(url)
    return f"{scheme}://{host}:{port}".encode("unicode_escape").decode("ascii")[:120]


@dataclass(frozen=True)
class GitHubApi:
    """One GitHub API and the token for it; build it with :meth:`at`."""

    url: str
    token: str

    @classmethod
    def at(cls, url: str, token: str, *, where: str = "--github-api-url") -> GitHubApi:
        """The API at ``url`` (an http(s) URL, else InputError naming ``where``)."""
        check_http_url(url, where=where)
        scheme, host, _ = url_origin(url)
        if token and scheme != "https" and not is_loopback_host(host):
            raise InputError(
                f"{where} {url_origin_text(url)}: plain http to another machine would send the "
                "GitHub token unencrypted",
                hint="use the https:// URL of the API (plain http is only for 127.0.0.1)",
            )
        return cls(url.rstrip("/"), token)

    @property
    def origin(self) -> tuple[str, str, int | None]:
        return url_origin(self.url)

    def headers(self, url: str, accept: str) -> dict[str, str]:
        """The headers of a request to ``url``: the token goes only to this API's own origin,
        never to another host (GitHub redirects asset downloads to a storage host)."""
        headers = {
            "Accept": accept,
            "Accept-Encoding": "identity",
            "User-Agent": "upm-ci",
            "X-GitHub-Api-Version": API_VERSION,
        }
        scheme, host, _ = origin = url_origin(url)
        if self.token and origin == self.origin and (scheme == "https" or is_loopback_host(host)):
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def client(self, *, timeout: int) -> Github:
        """A PyGithub client of this API: its own retries and pacing off (ours are used)."""
        from github import Auth, Github

        return Github(
            base_url=self.url,
            auth=Auth.Token(self.token),
            seconds_between_requests=0,
            seconds_between_writes=0,
            retry=None,
            timeout=timeout,
            per_page=100,
            lazy=True,
        )


@dataclass(frozen=True)
class ExpectedAsset:
    """A file the release must carry. ``own_record``: rewritten by every run (the audit log
    and its bundle), so a differing copy on a draft is ours to replace."""

    name: str
    path: Path
    sha256: str
    own_record: bool = False


@dataclass(frozen=True)
class RemoteAsset:
    id: int
    name: str
    state: str
    digest: str | None
    url: str
    browser_download_url: str
    size: int


@dataclass(frozen=True)
class ReleaseInfo:
    id: int
    tag: str
    draft: bool
    html_url: str
    url: str
    upload_url: str
    immutable: bool = False


@dataclass(frozen=True)
class AssetOutcome:
    name: str
    sha256: str
    status: str  # uploaded | skipped | replaced
    url: str


def _already_exists(exc: BaseException) -> bool:
    from github import GithubException

    if not isinstance(exc, GithubException) or exc.status != 422:
        return False
    errors = exc.data.get("errors", []) if isinstance(exc.data, dict) else []
    return any(isinstance(e, dict) and e.get("code") == "already_exists" for e in errors)


class GitHubReleases:
    """Releases of one repository, through PyGithub with our retries."""

    def __init__(
        self,
        api_url: str,
        token: str,
        repository: str,
        *,
        workers: int = UPLOAD_WORKERS,
        policy: RetryPolicy | None = None,
        timeout: int = 120,
    ) -> None:
        if "/" not in repository:
            raise InputError(f"repository {repository!r} is not owner/name", hint="--repository")
        self.api = GitHubApi.at(api_url, token)
        self.api_url = self.api.url
        self.repository = repository
        self.workers = workers
        self.policy = policy or RetryPolicy.from_env()
        self._timeout = timeout
        self._local = threading.local()

    # --- plumbing ------------------------------------------------------------------------
    def _client(self) -> Github:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self.api.client(timeout=self._timeout)
            self._local.client = client
        return client

    def _call(self, fn: Callable[[], T], what: str) -> T:
        from github import BadCredentialsException, UnknownObjectException

        try:
            return call_with_retry(fn, what=what, classify=classify, policy=self.policy)
        except BadCredentialsException:
            raise InputError(
                f"{self.api_url}: the GitHub token was refused (401 Bad credentials)",
                hint="check --github-token / UPM_GITHUB_TOKEN",
            ) from None
        except UnknownObjectException:
            raise InputError(
                f"{what}: not found on {self.api_url} (404)",
                hint="check --repository and that the token can see it",
            ) from None

    def _release_object(self, release: ReleaseInfo) -> GitRelease:
        from github.GitRelease import GitRelease

        raw = {
            "id": release.id,
            "url": release.url,
            "upload_url": release.upload_url,
            "tag_name": release.tag,
            "draft": release.draft,
            "html_url": release.html_url,
        }
        return self._client().create_from_raw_data(GitRelease, raw)

    @staticmethod
    def _info(r: GitRelease) -> ReleaseInfo:
        return ReleaseInfo(
            id=r.id,
            tag=r.tag_name,
            draft=r.draft,
            html_url=r.html_url,
            url=r.url,
            upload_url=r.upload_url,
            immutable=bool(r.immutable),
        )

    # --- releases ------------------------------------------------------------------------
    def releases_for(self, tag: str) -> list[ReleaseInfo]:
        """Every release (drafts included) whose tag is ``tag``, found by listing."""

        def fetch() -> list[ReleaseInfo]:
            repo = self._client().get_repo(self.repository)
            return [self._info(r) for r in repo.get_releases() if r.tag_name == tag]

        return self._call(fetch, f"list releases of {self.repository}")

    def find_or_create_draft(
        self,
        tag: str,
        *,
        name: str,
        body: str,
        prerelease: bool,
        make_latest: str,
        target_commitish: str = "",
    ) -> tuple[ReleaseInfo, bool]:
        """The release for ``tag`` (published, or the one draft), else a new draft.

        Returns ``(release, created)``; a published release is returned as is (verify only).
        """
        created = False

        def attempt() -> ReleaseInfo:
            nonlocal created
            existing = self.releases_for(tag)
            published = [r for r in existing if not r.draft]
            if published:
                return published[0]
            if len(existing) > 1:
                ids = ", ".join(str(r.id) for r in existing)
                raise PolicyError(
                    f"{self.repository}: {len(existing)} draft releases for {tag} (ids {ids})",
                    hint="delete all but one draft, then re-run; upm-ci never makes another",
                )
            if existing:
                return existing[0]
            repo = self._client().get_repo(self.repository)
            extra: dict[str, Any] = {"make_latest": make_latest}
            if target_commitish:
                extra["target_commitish"] = target_commitish
            release = repo.create_git_release(
                tag, name, body, draft=True, prerelease=prerelease, **extra
            )
            created = True
            log.info("github: created draft release %s (id %s)", tag, release.id)
            return self._info(release)

        return self._call(attempt, f"find or create the draft for {tag}"), created

    def read_release(self, release_id: int) -> ReleaseInfo:
        def fetch() -> ReleaseInfo:
            _, raw = self._client().requester.requestJsonAndCheck(
                "GET", f"/repos/{self.repository}/releases/{release_id}"
            )
            return ReleaseInfo(
                id=raw["id"],
                tag=raw["tag_name"],
                draft=raw["draft"],
                html_url=raw["html_url"],
                url=raw["url"],
                upload_url=raw["upload_url"],
                immutable=bool(raw.get("immutable", False)),
            )

        return self._call(fetch, f"read release {release_id}")

    def update_notes(self, release: ReleaseInfo, *, name: str, body: str, prerelease: bool) -> None:
        """Refresh name, notes and prerelease on the draft (a re-run may bring new notes)."""

        def patch() -> None:
            self._release_object(release).update_release(
                name, body, draft=True, prerelease=prerelease
            )

        self._call(patch, f"update draft {release.tag}")

    def publish(
        self, release: ReleaseInfo, *, name: str, body: str, prerelease: bool, make_latest: str
    ) -> ReleaseInfo:
        """Un-draft: cannot be undone for an immutable release."""

        def patch() -> ReleaseInfo:
            updated = self._release_object(release).update_release(
                name, body, draft=False, prerelease=prerelease, make_latest=make_latest
            )
            return self._info(updated)

        published = self._call(patch, f"publish release {release.tag}")
        log.info("github: published %s", published.html_url)
        return published

    # --- assets --------------------------------------------------------------------------
    def list_assets(self, release: ReleaseInfo) -> list[RemoteAsset]:
        def fetch() -> list[RemoteAsset]:
            return [
                RemoteAsset(
                    id=a.id,
                    name=a.name,
                    state=a.state,
                    digest=a.digest,
                    url=a.url,
                    browser_download_url=a.browser_download_url,
                    size=a.size,
                )
                for a in self._release_object(release).get_assets()
            ]

        return self._call(fetch, f"list assets of {release.tag}")

    def asset_sha256(self, asset: RemoteAsset) -> str:
        """The asset's sha256: GitHub's ``digest`` when given, else download and hash."""
        if asset.digest and asset.digest.startswith("sha256:"):
            return asset.digest.removeprefix("sha256:")

        def download() -> str:
            digest = hashlib.sha256()
            with requests.get(
                asset.url,
                headers=self.api.headers(asset.url, "application/octet-stream"),
                stream=True,
                timeout=self._timeout,
            ) as r:
                if r.status_code != 200:
                    raise HttpStatusError(r)
                for chunk in r.iter_content(1 << 20):
                    digest.update(chunk)
            return digest.hexdigest()

        try:
            return call_with_retry(
                download, what=f"download {asset.name}", classify=classify, policy=self.policy
            )
        except HttpStatusError as e:
            raise ServiceError(
                f"download {asset.name}: GitHub answered {e.response.status_code}",
                hint="the asset cannot be read back to compare digests; re-run",
            ) from None

    def delete_asset(self, asset: RemoteAsset) -> None:
        from github import UnknownObjectException

        def delete() -> None:
            try:
                self._client().requester.requestJsonAndCheck("DELETE", asset.url)
            except UnknownObjectException:
                pass  # an earlier attempt's answer was lost; it is gone either way

        self._call(delete, f"delete asset {asset.name}")

    def conflicts(
        self, remote: Sequence[RemoteAsset], expected: Sequence[ExpectedAsset], replace: bool
    ) -> list[str]:
        """Assets on the draft that only ``replace`` may overwrite (all checked up front)."""
        wanted = {e.name: e for e in expected}
        problems = []
        for asset in remote:
            exp = wanted.get(asset.name)
            if asset.state != "uploaded" or exp is None or exp.own_record or replace:
                continue
            if self.asset_sha256(asset) != exp.sha256:
                problems.append(f"{asset.name} has other bytes on the release")
        extra = sorted(a.name for a in remote if a.name not in wanted and a.state == "uploaded")
        if extra and not replace:
            problems.append("unexpected assets on the draft: " + ", ".join(extra))
        return problems

    def sync_assets(
        self,
        release: ReleaseInfo,
        expected: Sequence[ExpectedAsset],
        *,
        replace: bool = False,
        keep: Collection[str] = (),
        before: Callable[[ExpectedAsset], None] = lambda e: None,
        after: Callable[[AssetOutcome], None] = lambda o: None,
    ) -> list[AssetOutcome]:
        """Make the draft carry exactly ``expected`` (plus the ``keep`` names, synced later),
        uploading concurrently; idempotent."""
        remote = {a.name: a for a in self.list_assets(release) if a.name not in keep}
        problems = self.conflicts(list(remote.values()), expected, replace)
        if problems:
            raise PolicyError(
                f"release {release.tag}: " + "; ".join(problems),
                hint="pass --replace to overwrite them while the release is a draft",
            )
        wanted = {e.name for e in expected}
        for asset in remote.values():
            if asset.name not in wanted:
                log.info(
                    "github: deleting %s (%s), not part of this release", asset.name, asset.state
                )
                self.delete_asset(asset)
        done = 0
        lock = threading.Lock()

        def one(exp: ExpectedAsset) -> AssetOutcome:
            nonlocal done
            outcome = self.sync_one(release, exp, remote.get(exp.name), before)
            with lock:
                done += 1
                log.info("github: [%d/%d] %s %s", done, len(expected), outcome.status, exp.name)
            after(outcome)
            return outcome

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="upload") as pool:
            return list(pool.map(one, expected))

    def sync_one(
        self,
        release: ReleaseInfo,
        exp: ExpectedAsset,
        current: RemoteAsset | None,
        before: Callable[[ExpectedAsset], None] = lambda e: None,
    ) -> AssetOutcome:
        """Make one asset right: skip, replace, clear a ``starter`` leftover, or upload."""
        status = "uploaded"
        if current is not None and current.state == "uploaded":
            if self.asset_sha256(current) == exp.sha256:
                return AssetOutcome(exp.name, exp.sha256, "skipped", current.browser_download_url)
            self.delete_asset(current)
            status = "replaced"
        elif current is not None:
            log.info("github: %s was left in state %s; uploading again", exp.name, current.state)
            self.delete_asset(current)
        before(exp)
        for _ in range(3):
            try:
                asset = self._upload(release, exp)
                return AssetOutcome(exp.name, exp.sha256, status, asset)
            except Exception as exc:
                if not _already_exists(exc):
                    raise
            # A dropped connection may have landed the upload: look before trying again.
            found = next((a for a in self.list_assets(release) if a.name == exp.name), None)
            if found is None:
                continue
            if found.state == "uploaded" and self.asset_sha256(found) == exp.sha256:
                return AssetOutcome(exp.name, exp.sha256, status, found.browser_download_url)
            if found.state == "uploaded" and not exp.own_record:
                raise PolicyError(
                    f"release {release.tag}: {exp.name} appeared with other bytes while uploading",
                    hint="another job is publishing the same release; let one of them finish",
                )
            self.delete_asset(found)
        raise ServiceError(f"release {release.tag}: {exp.name} could not be uploaded")

    def _upload(self, release: ReleaseInfo, exp: ExpectedAsset) -> str:
        def post() -> str:
            asset = self._release_object(release).upload_asset(
                str(exp.path), name=exp.name, content_type="application/octet-stream"
            )
            return str(asset.browser_download_url)

        return self._call(post, f"upload {exp.name}")

    def missing_or_wrong(
        self, release: ReleaseInfo, expected: Sequence[ExpectedAsset], *, names_only: bool = False
    ) -> list[str]:
        """Re-read the assets from the API: what keeps the release from being complete."""
        remote = {a.name: a for a in self.list_assets(release)}
        problems = []
        for exp in expected:
            asset = remote.get(exp.name)
            if asset is None:
                problems.append(f"{exp.name} missing")
            elif asset.state != "uploaded":
                problems.append(f"{exp.name} in state {asset.state}")
            elif not (names_only and exp.own_record) and self.asset_sha256(asset) != exp.sha256:
                problems.append(f"{exp.name} has another digest")
        return problems
