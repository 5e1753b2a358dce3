"""Retry what is safe to retry: 5xx, 429 and secondary rate limits (honouring Retry-After),
connection resets. Never other 4xx: a bad request stays bad, and retrying it only hides the
message. A host that cannot be reached at all (its name does not resolve, or it refuses the
connection) is no rate limit: one quick retry, then a ServiceError naming the whole host.
Used by every phase that talks to a service (GitHub, PyPI, Sigstore, OSV).
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from upm_ci.errors import InputError, ServiceError, UpmError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ``classify(exc)`` returns None (do not retry) or the seconds the server asked us to wait
#: (0.0 when it did not say, and backoff decides).
Classifier = Callable[[BaseException], "float | None"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; Retry-After wins when larger."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, overridable by ``UPM_RETRY_ATTEMPTS`` / ``UPM_RETRY_BASE_DELAY`` (tests)."""
        return cls(
            attempts=int(_env_number("UPM_RETRY_ATTEMPTS", cls.attempts, minimum=1, maximum=100)),
            base_delay=_env_number("UPM_RETRY_BASE_DELAY", cls.base_delay, minimum=0),
            max_delay=_env_number("UPM_RETRY_MAX_DELAY", cls.max_delay, minimum=0),
        )

    def delay(self, attempt: int, retry_after: float) -> float:
        backoff = self.rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        return max(backoff, min(retry_after, self.max_retry_after))


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    classify: Classifier,
    policy: RetryPolicy | None = None,
) -> T:
    """Call ``fn`` until it succeeds, a non-retryable error occurs, or attempts run out.

    Running out raises :class:`ServiceError` naming ``what`` and the last failure.
    """
    policy = policy or RetryPolicy.from_env()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except UpmError:
            raise  # a verdict, or an inner retry that already gave up: never retried again
        except Exception as exc:  # noqa: BLE001 - classify decides
            retry_after = classify(exc)
            if retry_after is None:
                raise
            gone = unreachable(exc)
            if gone is not None:
                host, why = gone
                if attempt >= 1 or attempt + 1 >= policy.attempts:
                    raise ServiceError(
                        f"{what}: host unreachable: {host} ({why})",
                        hint="check this machine's network, DNS and proxy, and that the URL "
                        "is right; re-run when the host answers",
                    ) from exc
                pause = min(policy.delay(attempt, 0.0), 1.0)
                log.info("%s: host %s: %s; one retry in %.1fs", what, host, why, pause)
                policy.sleep(pause)
                continue
            if attempt + 1 >= policy.attempts:
                raise ServiceError(
                    f"{what}: still failing after {policy.attempts} attempts: {describe(exc)}",
                    hint="the service is down or rate-limiting; re-run later, the release resumes",
                ) from exc
            pause = policy.delay(attempt, retry_after)
            log.info("%s: %s; retry %d in %.1fs", what, describe(exc), attempt + 1, pause)
            policy.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


class NoAnswerInTime(Exception):
    """:func:`answered_within`'s call had not returned when its time was up."""


def answered_within(call: Callable[[], T], limit: float, name: str) -> T:
    """``call()`` on a daemon helper thread called ``name``, awaited ``limit`` seconds at most.

    Returns what it returned, raises what it raised, or :class:`NoAnswerInTime` when it is still
    running (the thread is left behind): a server that drips its status line and headers
    cannot hold the caller past its deadline.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise NoAnswerInTime(f"{name}: no answer within {limit:g} s")
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


def classify_http(status: int, headers: Mapping[str, str], body: str = "") -> float | None:
    """Retry decision for an HTTP answer: None for 'do not retry', else the asked-for delay."""
    retry_after = _retry_after(headers)
    # An explicit ``Retry-After: 0`` is honoured; only a missing header falls back to 1 s.
    if status >= 500 or status == 408:
        return retry_after if retry_after is not None else 0.0
    if status == 429:
        return retry_after if retry_after is not None else 1.0
    if status == 403 and (retry_after is not None or "rate limit" in body.lower()):
        if headers.get("x-ratelimit-remaining", headers.get("X-RateLimit-Remaining")) == "0":
            reset = headers.get("x-ratelimit-reset", headers.get("X-RateLimit-Reset"))
            if reset and reset.isascii() and reset.isdigit():
                return max(0.0, float(reset) - time.time())
        return retry_after if retry_after is not None else 1.0
    return None


class HttpStatusError(Exception):
    """A non-success HTTP answer, raised inside a retried call so :func:`classify` sees it."""

    def __init__(self, response: Any) -> None:
        super().__init__(f"HTTP {response.status_code} from {response.url}")
        self.response = response


def http_failure(exc: BaseException) -> tuple[int, dict[str, str], str] | None:
    """Status, headers and body of an HTTP failure from any client upm-ci uses, else None.

    PyGithub's ``GithubException`` carries ``status``/``headers``/``data``; requests'
    ``HTTPError`` and :class:`HttpStatusError` carry the ``response``.
    """
    status = getattr(exc, "status", None)
    if isinstance(status, int) and hasattr(exc, "data"):
        headers = getattr(exc, "headers", None) or {}
        return status, {str(k): str(v) for k, v in headers.items()}, str(exc.data or "")
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    if isinstance(code, int):
        headers = getattr(response, "headers", None) or {}
        body = getattr(response, "text", "") or ""
        return code, {str(k): str(v) for k, v in headers.items()}, body[:2000]
    return None


def classify(exc: BaseException) -> float | None:
    """The retry decision for every HTTP client upm-ci uses: an HTTP failure by its status
    (:func:`classify_http`), a dropped connection always, anything else never."""
    failure = http_failure(exc)
    if failure is not None:
        return classify_http(*failure)
    return 0.0 if is_connection_error(exc) else None


def is_connection_error(exc: BaseException) -> bool:
    """A reset, refused or dropped connection, at any depth of ``__cause__``/``__context__``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        name = type(current).__name__
        if name in {
            "ConnectionError",
            "ChunkedEncodingError",
            "ProtocolError",
            "RemoteDisconnected",
            "ReadTimeout",
            "ConnectTimeout",
            "IncompleteRead",
        }:
            return True
        current = current.__cause__ or current.__context__
    return False


def unreachable(exc: BaseException) -> tuple[str, str] | None:
    """``(host, why)`` when ``exc`` (at any depth) is a host name that does not resolve or a
    refused connection, else None. ``host`` is the whole ``host[:port]`` the client asked for
    (requests' request URL, urllib3's connection or pool)."""
    why = ""
    host = ""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror) and not why:
            why = "its name does not resolve"
        elif isinstance(current, ConnectionRefusedError) and not why:
            why = "connection refused"
        if not host:
            host = _host_of(current)
        current = current.__cause__ or current.__context__
    if not why:
        return None
    return host or "the service", why


def _host_of(exc: BaseException) -> str:
    from urllib.parse import urlsplit

    url = getattr(getattr(exc, "request", None), "url", None)
    if isinstance(url, str) and urlsplit(url).netloc:
        return urlsplit(url).netloc.rpartition("@")[2]
    for holder in (getattr(exc, "conn", None), getattr(exc, "pool", None)):
        name = getattr(holder, "host", None)
        if isinstance(name, str) and name:
            port = getattr(holder, "port", None)
            return f"{name}:{port}" if isinstance(port, int) and port not in (80, 443) else name
    return ""


def describe(exc: BaseException) -> str:
    """A short one-line description of an exception, for messages."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _env_number(name: str, default: float, *, minimum: float, maximum: float = 3600) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"${name}: {raw[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"${name}: {raw[:40]!r} is not a finite number")
    if value < minimum:
        raise InputError(f"${name}: {raw[:40]} is below {minimum:g}")
    if value > maximum:
        raise InputError(f"${name}: {raw[:40]} is above {maximum:g}")
    return value


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
