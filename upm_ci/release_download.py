"""Download a GitHub release's assets for ``verify --github-release``, treating the server as
hostile.

A server (or anything between it and us) may answer slowly, say one thing and send another,
or send what is not JSON at all. What this module holds to:

- Time: every request (connect, answer, body) has ``request_timeout`` seconds and the whole
  download ``deadline`` seconds, retries and their pauses included; past the deadline it stops
  with one line (exit 3). A body is read one ``recv`` at a time, so a slow drip is noticed
  between reads; the status line and headers are awaited on a helper thread that is left
  behind when time is up.
- Size: an asset is read up to its declared ``size`` plus one byte, no further (one byte more
  is a policy failure); the declared sizes together may not exceed ``max_bytes``; an API
  answer may not exceed MAX_JSON_BYTES.
- Names: every asset name must be a plain release file name (:func:`layout.check_plain_name`:
  no C0/C1 control character, no bidi control such as U+202E) and appear once; nothing is
  printed or written before that holds. Files are created with ``O_EXCL | O_NOFOLLOW``
  relative to the download directory, which must be empty.
- Answers: an answer that is not JSON, or JSON of the wrong shape, is one line (exit 3).
  Redirects are followed by hand (at most MAX_REDIRECTS, never in a loop, never from https
  to http, never to a link-local, private or reserved address, nor to loopback unless the
  redirect came from loopback: :func:`redirect_address_problem`); the token goes only to the
  API's own origin, never along a redirect elsewhere (GitHub itself redirects asset downloads
  to a storage host), and never over plain http except to loopback.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import ipaddress
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from upm_ci.config import check_repository
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.layout import check_plain_name
from upm_ci.retry import (
    HttpStatusError,
    NoAnswerInTime,
    RetryPolicy,
    answered_within,
    call_with_retry,
    classify,
    describe,
)

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_JSON_BYTES = 16 << 20
MAX_ERROR_BYTES = 64 << 10
PER_PAGE = 100
MAX_PAGES = 20  # GitHub allows 1000 assets per release
CHUNK = 1 << 16
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class DownloadLimits:
    """How long and how much a release download may take (``verify`` options)."""

    request_timeout: float = 60.0
    deadline: float = 1800.0
    max_bytes: int = 4 << 30

    def __post_init__(self) -> None:
        for name in ("request_timeout", "deadline"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"--{name.replace('_', '-')} {value}: must be a positive number")
        if self.max_bytes < 1:
            raise InputError(f"--max-download-bytes {self.max_bytes}: must be at least 1")


class _Deadline:
    """The overall deadline: exceeded is a ServiceError (never retried)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise ServiceError(
                f"{self.what}: not done within the deadline of {self.seconds:g} s",
                hint="the server is too slow; raise --download-deadline or re-run later",
            )

    def sleep(self, seconds: float) -> None:
        """A retry pause that never outlasts the deadline."""
        if seconds >= self.remaining():
            time.sleep(max(0.0, self.remaining()))
            self.check()
        time.sleep(seconds)


@dataclass(frozen=True)
class _Answer:
    """Enough of an error response for :func:`upm_ci.retry.classify` (body already capped)."""

    status_code: int
    headers: dict[str, str]
    text: str
    url: str


@dataclass(frozen=True)
class _Asset:
    id: int
    name: str
    size: int
    state: str


class _Client:
    """GET requests to one GitHub API with the limits above."""

    def __init__(self, api_url: str, token: str, limits: DownloadLimits, deadline: _Deadline):
        from upm_ci.publish.github_release import GitHubApi  # only for --github-release

        self.github = GitHubApi.at(api_url, token)
        self.api = self.github.url
        self.limits = limits
        self.deadline = deadline
        self.retry = dataclasses.replace(RetryPolicy.from_env(), sleep=deadline.sleep)
        self.resolve: Resolver = socket.getaddrinfo

    def call(self, fn: Any, what: str) -> Any:
        return call_with_retry(fn, what=what, classify=classify, policy=self.retry)

    # -- one request, redirects followed by hand

    def open(self, url: str, accept: str, what: str) -> tuple[requests.Response, float]:
        """The final (non-redirect, 2xx) response and the monotonic time its request must end."""
        seen: set[str] = set()
        for _ in range(MAX_REDIRECTS + 1):
            self.deadline.check()
            if url in seen:
                raise ServiceError(f"{what}: redirect loop (at {_shown_url(url)})")
            seen.add(url)
            headers = self.github.headers(url, accept)
            limit = min(self.limits.request_timeout, self.deadline.remaining())
            ends = time.monotonic() + limit
            response = self._send(url, headers, limit, what)
            if response.status_code in _REDIRECTS:
                location = response.headers.get("Location", "")
                response.close()
                url = self._redirect_target(url, location, what)
                continue
            if not 200 <= response.status_code < 300:
                body = self.read(response, MAX_ERROR_BYTES, ends, what, overflow="truncate")
                raise HttpStatusError(
                    _Answer(
                        response.status_code,
                        {str(k): str(v) for k, v in response.headers.items()},
                        body.decode("utf-8", "replace"),
                        _shown_url(url),
                    )
                )
            return response, ends
        raise ServiceError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _redirect_target(self, url: str, location: str, what: str) -> str:
        if not location:
            raise ServiceError(f"{what}: a redirect without a Location")
        target = urljoin(url, location.strip())
        scheme = urlsplit(target).scheme
        if scheme not in ("http", "https") or not urlsplit(target).netloc:
            raise ServiceError(f"{what}: redirect to {_shown_url(target)}, not an http(s) URL")
        if urlsplit(url).scheme == "https" and scheme == "http":
            raise ServiceError(f"{what}: redirect from https to http ({_shown_url(target)})")
        problem = redirect_address_problem(url, target, resolve=self.resolve)
        if problem:
            raise ServiceError(
                f"{what}: redirect to {_shown_url(target)} refused: {problem}",
                hint="a release's assets are served from public hosts; this server is not GitHub",
            )
        return target

    def _send(self, url: str, headers: dict[str, str], limit: float, what: str) -> Any:
        """``requests.get`` (streamed), awaited ``limit`` seconds at most
        (:func:`~upm_ci.retry.answered_within`)."""
        import requests

        def get() -> requests.Response:
            return requests.get(
                url, headers=headers, stream=True, allow_redirects=False, timeout=(limit, limit)
            )

        try:
            return answered_within(get, limit, "upm-download")
        except NoAnswerInTime:
            self.deadline.check()
            raise TimeoutError(f"no answer within {limit:g} s (--request-timeout)") from None

    def read(
        self,
        response: requests.Response,
        limit: int,
        ends: float,
        what: str,
        *,
        overflow: str = "fail",
        sink: Any = None,
    ) -> bytes:
        """Read the body, one recv at a time, at most ``limit`` bytes (``limit + 1`` to
        notice more: ``overflow`` "fail" raises _TooLarge, "truncate" stops). With ``sink``
        the bytes go there and b"" is returned."""
        got = 0
        parts: list[bytes] = []
        try:
            while True:
                self.deadline.check()
                if time.monotonic() > ends:
                    raise TimeoutError(
                        f"{what}: not complete within {self.limits.request_timeout:g} s"
                        " (--request-timeout)"
                    )
                chunk = response.raw.read1(min(CHUNK, limit + 1 - got), decode_content=False)
                if not chunk:
                    return b"".join(parts)
                got += len(chunk)
                if got > limit:
                    if overflow == "truncate":
                        parts.append(chunk[: len(chunk) - (got - limit)])
                        return b"".join(parts)
                    raise _TooLarge(limit)
                if sink is not None:
                    sink.write(chunk)
                else:
                    parts.append(chunk)
        finally:
            response.close()

    def get_json(self, path: str, what: str) -> Any:
        def attempt() -> Any:
            response, ends = self.open(self.api + path, "application/vnd.github+json", what)
            content_type = response.headers.get("Content-Type", "")
            try:
                body = self.read(response, MAX_JSON_BYTES, ends, what)
            except _TooLarge:
                raise ServiceError(
                    f"{what}: the answer is larger than {MAX_JSON_BYTES >> 20} MiB"
                ) from None
            try:
                return json.loads(body)
            except (ValueError, RecursionError):  # RecursionError: nested too deep
                raise ServiceError(
                    f"{what}: the answer is not JSON (Content-Type {content_type[:60]!r},"
                    f" starts {body[:20]!r})",
                    hint="is --github-api-url a GitHub API?",
                ) from None

        return self.call(attempt, what)


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


#: ``socket.getaddrinfo``'s shape: the addresses a host name stands for.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _addresses(url: str, resolve: Resolver) -> list[_Address]:
    """Every address the host of ``url`` stands for (IPv4-mapped IPv6 as IPv4)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").strip("[]")
    try:
        found = [ipaddress.ip_address(host)]
    except ValueError:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = resolve(host, port, proto=socket.IPPROTO_TCP)
        found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return [
        a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a
        for a in found
    ]


def redirect_address_problem(
    source: str, target: str, *, resolve: Resolver = socket.getaddrinfo
) -> str | None:
    """Why a redirect from ``source`` to ``target`` must not be followed, or None.

    The target's host is resolved and every address checked: never a link-local (cloud
    metadata at 169.254.169.254), private, shared, reserved, multicast or unspecified address,
    and a loopback address only when the redirect comes from loopback too (the local
    stand-ins); a remote server must not point us at this machine's own services. (The
    address is checked when the redirect is read; the connection resolves the name again.)
    """
    targets = _addresses(target, resolve)
    if not targets:
        return "its host resolves to no address"
    from_loopback: bool | None = None
    for address in targets:
        if address.is_loopback:
            if from_loopback is None:
                from_loopback = all(a.is_loopback for a in _addresses(source, resolve))
            if not from_loopback:
                return f"{address} is a loopback address and the redirect came from another host"
        elif address.is_link_local:
            return f"{address} is a link-local address"
        elif not address.is_global or address.is_multicast:
            return f"{address} is a private or reserved address, not a public one"
    return None


def _shown_url(url: str) -> str:
    """A URL for one line of output: no query (signed URLs), control characters escaped."""
    parts = urlsplit(url)
    text = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return text.encode("unicode_escape").decode("ascii")[:200]


# --------------------------------------------------------------------------- the download


def download_release(
    api_url: str,
    token: str,
    repository: str,
    tag: str,
    dest: Path,
    *,
    limits: DownloadLimits | None = None,
) -> Path:
    """Download every uploaded asset of the published release ``tag`` into ``dest``, a new or
    empty directory. Raises InputError (no such release, bad directory), PolicyError (the
    release is not whole, or its assets are not what it says) or ServiceError."""
    limits = limits or DownloadLimits()
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise InputError(f"{dest}: not a directory", hint="pass a new or empty DIRECTORY")
    if dest.exists() and any(dest.iterdir()):
        raise InputError(
            f"{dest}: not empty; verify downloads the release into an empty directory, so that "
            "only the release's own files are verified",
            hint="pass a new or empty DIRECTORY",
        )
    check_repository(repository, where="--repository")
    what = f"GitHub release {tag} of {repository}"
    deadline = _Deadline(limits.deadline, f"download of {what}")
    client = _Client(api_url, token, limits, deadline)
    repo_path = "/repos/" + "/".join(quote(p, safe="") for p in repository.split("/", 1))
    try:
        release_id = _release_id(client, repo_path, repository, tag, what)
        assets = _assets(client, repo_path, release_id, tag)
        directory = _open_directory(dest)
        try:
            for asset in assets:
                client.call(
                    functools.partial(_download, client, repo_path, asset, directory),
                    f"download of {asset.name}",
                )
                log.info("downloaded %s (%d bytes)", asset.name, asset.size)
        finally:
            os.close(directory)
    except HttpStatusError as e:
        raise ServiceError(f"{what}: {e}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        # requests' and urllib3's errors are OSError or ValueError subclasses
        raise ServiceError(f"{what}: {describe(e)}") from None
    return dest


def _open_directory(dest: Path) -> int:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        return os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise InputError(f"{dest}: cannot use it as the download directory: {e.strerror}") from None


def _release_id(client: _Client, repo_path: str, repository: str, tag: str, what: str) -> int:
    path = f"{repo_path}/releases/tags/{quote(tag, safe='')}"
    try:
        release = client.get_json(path, what)
    except HttpStatusError as e:
        status = e.response.status_code
        if status == 404:
            raise InputError(
                f"--github-release {tag}: no published release with this tag in {repository}",
                hint="check the tag and --repository (drafts are not verified)",
            ) from None
        if status == 401:
            raise InputError(
                f"{client.api}: the GitHub token was refused (401)",
                hint="check --github-token / UPM_GITHUB_TOKEN",
            ) from None
        raise InputError(f"GitHub API {client.api}: {status} for {what}") from None
    release_id = release.get("id") if isinstance(release, dict) else None
    if not _is_int(release_id) or (isinstance(release, dict) and release.get("draft") is True):
        raise ServiceError(f"{what}: the answer is not a published release (no numeric id)")
    return int(release_id)  # type: ignore[arg-type]


def _assets(client: _Client, repo_path: str, release_id: int, tag: str) -> list[_Asset]:
    """Every asset, page by page (URLs built here: a Link header could point anywhere)."""
    what = f"assets of {tag}"
    raw: list[Any] = []
    for page in range(1, MAX_PAGES + 1):
        path = f"{repo_path}/releases/{release_id}/assets?per_page={PER_PAGE}&page={page}"
        try:
            items = client.get_json(path, what)
        except HttpStatusError as e:
            raise InputError(
                f"GitHub API {client.api}: {e.response.status_code} for {what}"
            ) from None
        if not isinstance(items, list):
            raise ServiceError(f"{what}: the answer is not a list of assets")
        raw += items
        if len(items) < PER_PAGE:
            break
    else:
        raise ServiceError(f"{what}: more than {MAX_PAGES} pages of assets")
    assets = []
    for item in raw:
        if not isinstance(item, dict):
            raise ServiceError(f"{what}: an asset is not a JSON object")
        asset_id, name, size, state = (item.get(k) for k in ("id", "name", "size", "state"))
        if not (_is_int(asset_id) and isinstance(name, str) and _is_int(size)):
            raise ServiceError(f"{what}: an asset without a numeric id, a name and a size")
        if not isinstance(state, str) or size < 0:  # type: ignore[operator]
            raise ServiceError(f"{what}: an asset with a negative size or no state")
        assets.append(_Asset(int(asset_id), name, int(size), state))  # type: ignore[arg-type]
    return _check_assets(assets, tag, client.limits.max_bytes)


def _check_assets(assets: list[_Asset], tag: str, max_bytes: int) -> list[_Asset]:
    """Names plain and unique, every upload finished, the total within ``max_bytes``."""
    seen: set[str] = set()
    for asset in assets:
        try:
            check_plain_name(asset.name, where=f"release {tag}: asset")
        except InputError as e:
            raise PolicyError(
                e.message, hint="a release asset must have a plain file name"
            ) from None
        if asset.name in seen:
            raise PolicyError(
                f"release {tag}: two assets are named {asset.name}: which one is the release's?"
            )
        seen.add(asset.name)
    for asset in assets:
        if asset.state != "uploaded":
            raise PolicyError(
                f"release {tag}: asset {asset.name} is in state {asset.state[:40]!r} (an upload "
                "that never finished): the release is incomplete"
            )
    total = sum(a.size for a in assets)
    if total > max_bytes:
        raise PolicyError(
            f"release {tag}: its assets declare {total} bytes, more than the {max_bytes} "
            "verify downloads",
            hint="raise --max-download-bytes if the release really is that large",
        )
    return assets


def _download(client: _Client, repo_path: str, asset: _Asset, directory: int) -> None:
    """One asset into ``directory`` (a dir fd) under its plain name; removed on any failure."""
    what = f"download of {asset.name}"
    url = f"{client.api}{repo_path}/releases/assets/{asset.id}"
    response, ends = client.open(url, "application/octet-stream", what)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(asset.name, flags, 0o644, dir_fd=directory)
    except OSError as e:
        response.close()
        raise InputError(
            f"{asset.name}: cannot create it in the download directory: {e.strerror}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            client.read(response, asset.size, ends, what, sink=out)
            written = out.tell()
        if written != asset.size:
            raise ConnectionError(f"{asset.name}: {written} of {asset.size} bytes arrived")
    except _TooLarge:
        os.unlink(asset.name, dir_fd=directory)
        raise PolicyError(
            f"asset {asset.name} is larger than the release says ({asset.size} bytes)",
            hint="the server sent other bytes than the release lists: do not trust this download",
        ) from None
    except BaseException:
        os.unlink(asset.name, dir_fd=directory)
        raise


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = ["DownloadLimits", "download_release"]
