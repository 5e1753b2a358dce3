"""Bounded answers from the vulnerability service (OSV): a size per answer, in total, and a
deadline, for every audit (the gate's, the sbom phase's and the image's).

The vulnerability service is treated like every other server upm-ci talks to: it may answer
slowly, or without end. One audit gets an :class:`OsvSession` holding the limits
(:class:`OsvLimits`):

- every answer is read one ``recv`` at a time, at most ``max_answer`` bytes (one byte more
  ends the audit: the answer is never used);
- all answers of the audit together at most ``max_total`` bytes;
- the whole audit (retries and pauses included) at most ``deadline`` seconds; a server that
  drips its headers or body is noticed between reads, and the status line is awaited on a
  helper thread that is left behind when time is up.

pip-audit (the PyPI packages) cannot be given such limits, so it does not talk to OSV
itself: :class:`BoundedOsvProxy` listens on 127.0.0.1 and pip-audit's ``--osv-url`` points
at it. The proxy forwards each query to the configured OSV URL through the session and hands
pip-audit only an answer within the limits; past a limit it answers 502 and the session
records why (:attr:`OsvSession.exceeded`), which the audit reports instead of pip-audit's
words. So pip-audit's memory never sees more than one bounded answer. The image's Debian
packages are asked through :meth:`OsvSession.post` directly.

The limits are settings (environment variables, for large images or slow links):
``UPM_OSV_DEADLINE`` (seconds), ``UPM_OSV_MAX_ANSWER`` and ``UPM_OSV_MAX_TOTAL`` (bytes).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from upm_ci.errors import InputError
from upm_ci.retry import NoAnswerInTime, answered_within

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

CHUNK = 1 << 16
#: A query upm-ci or pip-audit sends is a few hundred bytes; more is not a query.
MAX_QUERY_BYTES = 1 << 20
#: The body of an error answer (5xx) kept for the message.
MAX_ERROR_BYTES = 64 << 10


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB" if size >= 1 << 20 else f"{size} bytes"


@dataclass(frozen=True)
class OsvLimits:
    """How long and how much one audit may take from the vulnerability service."""

    deadline: float = 600.0
    max_answer: int = 32 << 20
    max_total: int = 256 << 20
    request_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.deadline) and self.deadline > 0):
            raise InputError(f"UPM_OSV_DEADLINE {self.deadline}: must be a positive number")
        for name in ("max_answer", "max_total"):
            if getattr(self, name) < 1:
                raise InputError(f"UPM_OSV_{name.upper()} {getattr(self, name)}: must be >= 1")

    @classmethod
    def from_env(cls) -> OsvLimits:
        """The defaults, or ``UPM_OSV_DEADLINE``, ``UPM_OSV_MAX_ANSWER``, ``UPM_OSV_MAX_TOTAL``."""

        def number(name: str, default: float) -> float:
            raw = os.environ.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise InputError(
                    f"{name}={raw[:40]!r} is not a number",
                    hint=f"unset it, or give e.g. {default:g}",
                ) from None
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name}={raw[:40]!r}: must be a positive number")
            return value

        return cls(
            deadline=number("UPM_OSV_DEADLINE", cls.deadline),
            max_answer=int(number("UPM_OSV_MAX_ANSWER", cls.max_answer)),
            max_total=int(number("UPM_OSV_MAX_TOTAL", cls.max_total)),
        )


class OsvLimitExceeded(Exception):
    """An answer was larger than a limit, or the audit ran past its deadline (never retried).

    The message names the URL, the limit and the setting that changes it."""


class OsvUnavailable(Exception):
    """The service could not be reached (``reason`` in words), or answered 5xx/429: retried."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def unreachable_reason(exc: BaseException) -> str:
    """Why a request failed on the way, in words for users (no class names)."""
    text = f"{type(exc).__name__} {exc}"
    for needle, words in (
        (("Connection refused", "ECONNREFUSED", "Errno 111"), "connection refused"),
        (
            ("NameResolution", "Name or service not known", "nodename nor servname",
             "getaddrinfo", "Temporary failure in name resolution"),
            "its host name does not resolve",
        ),
        (("SSLError", "CERTIFICATE_VERIFY_FAILED"), "TLS failed"),
        (("Timeout", "timed out"), "no answer in time"),
        (("reset", "RemoteDisconnected", "aborted", "ChunkedEncodingError", "Protocol"),
         "connection dropped"),
    ):  # fmt: skip
        if any(n.lower() in text.lower() for n in needle):
            return words
    return "the connection failed"


class OsvSession:
    """One audit's requests to one OSV URL: a deadline and byte budget they share.

    Thread-safe: the proxy serves pip-audit's queries on several threads."""

    def __init__(self, url: str, limits: OsvLimits | None = None) -> None:
        self.url = url
        self.limits = limits or OsvLimits.from_env()
        self.end = time.monotonic() + self.limits.deadline
        self.total = 0
        self.exceeded: str = ""
        self.unavailable: OsvUnavailable | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def record_unavailable(self, problem: OsvUnavailable | None) -> None:
        """What the last failed request met (the proxy's; ``None`` before a new attempt)."""
        with self._lock:
            self.unavailable = problem

    def _exceed(self, message: str) -> OsvLimitExceeded:
        with self._lock:
            self.exceeded = self.exceeded or message
        return OsvLimitExceeded(message)

    def check_deadline(self) -> None:
        """Raise :class:`OsvLimitExceeded` once the audit's deadline has passed."""
        if self.remaining() <= 0:
            raise self._exceed(
                f"the vulnerability service at {self.url} did not finish answering within the "
                f"audit's deadline of {self.limits.deadline:g} s (UPM_OSV_DEADLINE)"
            )

    def sleep(self, seconds: float) -> None:
        """A retry pause that never outlasts the deadline."""
        time.sleep(max(0.0, min(seconds, self.remaining())))
        self.check_deadline()

    def post(self, body: bytes) -> bytes:
        """POST ``body`` (JSON) to the URL and return the 2xx answer's body, within the limits.

        Raises :class:`OsvLimitExceeded` (a limit), :class:`OsvUnavailable` (unreachable,
        5xx or 429: worth another try), or :class:`OsvAnswerError` (another status)."""
        self.check_deadline()
        response = self._send(body)
        try:
            if response.status_code >= 500 or response.status_code == 429:
                raise OsvUnavailable(f"answered HTTP {response.status_code}", response.status_code)
            if not 200 <= response.status_code < 300:
                text = self._read(response, MAX_ERROR_BYTES, truncate=True)
                raise OsvAnswerError(response.status_code, text.decode("utf-8", "replace"))
            return self._read(response, self.limits.max_answer)
        finally:
            response.close()

    def _send(self, body: bytes) -> requests.Response:
        """``requests.post`` (streamed), awaited until the deadline at most
        (:func:`~upm_ci.retry.answered_within`)."""
        import requests

        limit = max(0.001, min(self.limits.request_timeout, self.remaining()))

        def post() -> requests.Response:
            return requests.post(
                self.url,
                data=body,
                # Uncompressed: the limits count what arrives, and no gzip bomb unfolds.
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Accept-Encoding": "identity",
                },
                stream=True,
                allow_redirects=False,
                timeout=(limit, limit),
            )

        try:
            return answered_within(post, limit, "upm-osv")
        except NoAnswerInTime:
            self.check_deadline()
            raise OsvUnavailable("no answer in time") from None
        except BaseException as e:  # noqa: BLE001 - every failure to answer is one kind
            raise OsvUnavailable(unreachable_reason(e)) from e

    def _read(self, response: requests.Response, limit: int, *, truncate: bool = False) -> bytes:
        parts: list[bytes] = []
        got = 0
        ends = time.monotonic() + self.limits.request_timeout
        while True:
            self.check_deadline()
            if time.monotonic() > ends:
                raise OsvUnavailable("no answer in time")
            try:
                chunk = response.raw.read1(min(CHUNK, limit + 1 - got), decode_content=False)
            except Exception as e:  # noqa: BLE001 - urllib3's errors, in words
                self.check_deadline()
                raise OsvUnavailable(unreachable_reason(e)) from e
            if not chunk:
                body = b"".join(parts)
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                if encoding not in ("", "identity") and not truncate:
                    raise self._exceed(
                        f"the vulnerability service at {self.url} answered compressed "
                        f"(Content-Encoding {encoding[:30]!r}) though asked not to: its answers "
                        "are held to their size as sent"
                    )
                return body
            got += len(chunk)
            with self._lock:
                self.total += len(chunk)
                total = self.total
            if got > limit:
                if truncate:
                    parts.append(chunk[: len(chunk) - (got - limit)])
                    return b"".join(parts)
                raise self._exceed(
                    f"the vulnerability service at {self.url} sent an answer larger than the "
                    f"limit of {_mib(limit)} per answer (UPM_OSV_MAX_ANSWER); the answer was "
                    "not used"
                )
            if total > self.limits.max_total:
                raise self._exceed(
                    f"the vulnerability service at {self.url} sent more than the limit of "
                    f"{_mib(self.limits.max_total)} in total for one audit (UPM_OSV_MAX_TOTAL)"
                )
            parts.append(chunk)


class OsvAnswerError(Exception):
    """The service answered a 4xx other than 429 (not retried)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"answered HTTP {status}")
        self.status, self.text = status, text


class BoundedOsvProxy:
    """An HTTP server on 127.0.0.1 that forwards every POST to ``session.url`` within the
    session's limits; ``query_url`` is what pip-audit's ``--osv-url`` gets.

    An answer within the limits is handed on with its status; otherwise the answer is 502
    (unreachable, over a limit) and the session says why."""

    def __init__(self, session: OsvSession) -> None:
        self.session = session
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle and the client's delayed
            # ACK hold each answer about 40 ms.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 <= length <= MAX_QUERY_BYTES:
                    self._answer(413, b'{"message": "query too large"}')
                    return
                query = self.rfile.read(length)
                try:
                    body = proxy.session.post(query)
                except OsvLimitExceeded as e:
                    self._answer(502, str(e).encode())
                except OsvUnavailable as e:
                    proxy.session.record_unavailable(e)
                    self._answer(e.status or 502, str(e).encode())
                except OsvAnswerError as e:
                    self._answer(e.status, e.text.encode())
                else:
                    self._answer(200, body)

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("osv proxy: " + format, *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits for a poll: 0.5 s by default
            name="upm-osv-proxy",
            daemon=True,
        )

    @property
    def query_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/query"

    def __enter__(self) -> BoundedOsvProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
