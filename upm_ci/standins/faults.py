"""One fault-injection interface for every stand-in: a seeded plan, targeted rules, counts.

A :class:`FaultPlan` decides, per request, whether the stand-in answers as the service would or
fails the way real services fail at their edge: ``5xx`` (500, 502 or 503), ``429`` with
``Retry-After``, ``reset`` (the connection dropped before an answer), ``slow`` (the answer comes
``slow_seconds`` late). The GitHub stand-in adds its own kinds (``secondary``/``primary`` rate
limits, ``reset_after``: the connection dropped after the request took effect).

Random faults depend only on ``(seed, method, path, n-th time this request was seen)``, never on
a shared random stream, so a seeded run is reproducible even when clients send requests from
several threads. :class:`FaultRule` arms targeted faults ("the next N requests to this path fail
with K, after skipping S"); rules win over the random plan. Every injected fault is counted
by kind (:attr:`FaultPlan.injected`), so tests and ``upm-ci rehearse`` can say what happened.

Which stand-in injects what (only faults the real client side is meant to survive):

==========  ===========================================  ====================================
stand-in    where                                        kinds for ``fault_rate``
==========  ===========================================  ====================================
GitHub      its own HTTP handler                         5xx 429 secondary reset (+ primary
                                                         reset_after slow)
PyPI        the proxy in front of pypiserver            5xx 429 reset slow
OSV         its own HTTP handler (queries)               5xx 429 reset slow
Sigstore    a proxy in front of the Node server          5xx 429 reset slow
S3 + KMS    a proxy in front of moto_server              5xx reset slow
OIDC        none: sigstore-python's ambient-credential   none
            request is not retried
==========  ===========================================  ====================================

:class:`FaultProxy` is that proxy: a small threaded reverse proxy for a server that is not our
Python (pypiserver, the Node Sigstore server, moto), started only when faults are requested.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from upm_ci.standins._server import ServerThread

#: Every kind a plan knows; a stand-in injects the subset it supports (see the module doc).
FAULT_KINDS = (
    "5xx", "500", "502", "503", "429", "secondary", "primary", "reset", "reset_after", "slow",
)  # fmt: skip
#: What ``fault_rate`` draws from by default on the stand-ins other than GitHub.
DEFAULT_FAULT_KINDS = ("5xx", "429", "reset")
#: Kinds every stand-in handles the same way (status answers, dropped connection, delay).
COMMON_KINDS = ("5xx", "500", "502", "503", "429", "reset", "slow")
_STATUS = re.compile(r"^[1-5]\d\d$")
_MESSAGES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    429: "Too Many Requests",
}


def parse_kinds(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"5xx,429"`` (or a list) as a tuple of kinds, empty entries dropped."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(k.strip() for k in items if k.strip())


def check_kinds(kinds: Sequence[str], supported: Sequence[str], label: str) -> None:
    """Refuse kinds ``label`` cannot inject (ValueError naming them and the supported ones)."""
    unknown = [k for k in kinds if k not in supported]
    if unknown:
        raise ValueError(
            f"the {label} stand-in cannot inject {', '.join(unknown)}; it injects: "
            f"{', '.join(supported)}"
        )


@dataclass
class FaultRule:
    """A targeted fault: the next ``count`` requests matching ``method``/``path_regex`` (after
    ``skip`` of them pass) fail with ``kind``: a kind of :data:`FAULT_KINDS` or an HTTP status
    such as ``"403"``."""

    kind: str
    method: str | None = None
    path_regex: str | None = None
    count: int = 1
    skip: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS and not _STATUS.match(self.kind):
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {FAULT_KINDS} or a status")

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None


@dataclass
class FaultPlan:
    """Random faults that depend only on (seed, method, path, n-th time seen), plus rules.

    Hashing the request's identity instead of drawing from one RNG keeps a seeded run
    reproducible even when a client sends requests from several threads at once.
    """

    rate: float = 0.0
    seed: int = 0
    kinds: Sequence[str] = DEFAULT_FAULT_KINDS
    retry_after: int = 1
    slow_seconds: float = 0.2
    rules: list[FaultRule] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    injected: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        unknown = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {FAULT_KINDS}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")

    @property
    def active(self) -> bool:
        """Can this plan inject anything (a rate, or rules still armed)?"""
        with self.lock:
            return (self.rate > 0 and bool(self.kinds)) or any(r.count > 0 for r in self.rules)

    @property
    def total(self) -> int:
        """How many faults were injected so far."""
        with self.lock:
            return sum(self.injected.values())

    def counts(self) -> dict[str, int]:
        """Injected faults by concrete kind (``"503"``, ``"429"``, ``"reset"``...)."""
        with self.lock:
            return dict(sorted(self.injected.items()))

    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def decide(self, method: str, path: str) -> str | None:
        """The fault for this request (a concrete kind: ``"502"``, not ``"5xx"``), or None."""
        with self.lock:
            for rule in self.rules:
                if rule.count > 0 and rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.count -= 1
                    kind = _concrete(rule.kind, f"rule:{method} {path}:{rule.count}")
                    self.injected[kind] += 1
                    return kind
            if self.rate <= 0 or not self.kinds:
                return None
            key = f"{method} {path}"
            nth = self.seen.get(key, 0)
            self.seen[key] = nth + 1
            digest = hashlib.sha256(f"{self.seed}|{key}|{nth}".encode()).digest()
            draw = int.from_bytes(digest[:7], "big") / float(1 << 56)
            if draw >= self.rate:
                return None
            kind = _concrete(
                self.kinds[int.from_bytes(digest[7:11], "big") % len(self.kinds)], digest.hex()
            )
            self.injected[kind] += 1
            return kind


def _concrete(kind: str, salt: str) -> str:
    if kind != "5xx":
        return kind
    return ("500", "502", "503")[int(hashlib.sha256(salt.encode()).hexdigest()[:4], 16) % 3]


# --- answering with a fault ----------------------------------------------------------------
FaultBody = Callable[[int], tuple[str, bytes]]


def json_fault_body(status: int) -> tuple[str, bytes]:
    """``(content type, body)`` of a generic JSON error answer."""
    message = _MESSAGES.get(status, "injected fault")
    return "application/json", json.dumps({"message": f"{message} (stand-in fault)"}).encode()


def fault_status(kind: str) -> int:
    """The HTTP status of a status kind (``"429"`` -> 429)."""
    return int(kind)


def answer_fault(
    handler: BaseHTTPRequestHandler,
    kind: str,
    plan: FaultPlan,
    body: FaultBody = json_fault_body,
) -> bool:
    """Apply ``kind`` to ``handler``'s request (its body already read). True: the request is
    answered (a status) or dropped (``reset``); False: carry on (``slow`` only waited)."""
    if kind == "slow":
        time.sleep(plan.slow_seconds)
        return False
    if kind in ("reset", "reset_after"):
        drop_connection(handler)
        return True
    status = fault_status(kind)
    content_type, data = body(status)
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    if status in (429, 503):
        handler.send_header("Retry-After", str(plan.retry_after))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)
    return True


def drop_connection(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without an answer (the client sees a reset / remote disconnect)."""
    handler.close_connection = True
    try:
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# --- the proxy for servers that are not our Python ---------------------------------------
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)


@dataclass
class Forwarded:
    """One request the proxy forwarded, with the upstream's status (for capturing proxies)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    status: int


class FaultProxy:
    """A threaded reverse proxy to ``upstream_host:upstream_port`` that applies ``plan``.

    ``fault_body`` shapes status answers as the service would (S3 answers XML);
    ``on_forward`` sees every forwarded request with its answer's status; ``answer`` may
    answer a request itself (method, path, headers, body -> status, content type, body;
    None forwards it), after the plan had its say; ``key`` maps a path
    to what the plan decides on (e.g. without ids the server makes up, so a seed stays
    reproducible across runs).
    """

    def __init__(
        self,
        upstream_port: int,
        plan: FaultPlan,
        *,
        label: str,
        upstream_host: str = "127.0.0.1",
        fault_body: FaultBody = json_fault_body,
        on_forward: Callable[[Forwarded], None] | None = None,
        answer: Callable[[str, str, Mapping[str, str], bytes], tuple[int, str, bytes] | None]
        | None = None,
        exempt: Callable[[str], bool] = lambda path: False,
        key: Callable[[str], str] = lambda path: path,
    ) -> None:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self.upstream = (upstream_host, upstream_port)
        self.plan = plan
        self.fault_body = fault_body
        self.on_forward = on_forward
        self.answer = answer
        self.exempt = exempt
        self.key = key
        self._serving = ServerThread(
            ThreadingHTTPServer(("127.0.0.1", 0), Handler), f"{label.lower()}-fault-proxy"
        )

    @property
    def port(self) -> int:
        return self._serving.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._serving.close()


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet."""

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        owner = self.owner
        body = self._read_body()
        method = self.command
        if not owner.exempt(self.path):
            kind = owner.plan.decide(method, owner.key(self.path))
            if kind is not None and answer_fault(self, kind, owner.plan, owner.fault_body):
                return
        own = (
            owner.answer(method, self.path, dict(self.headers.items()), body)
            if owner.answer is not None
            else None
        )
        if own is not None:
            status, content_type, data = own
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)
            return
        # Host too: http.client names the upstream, as a client talking to it directly would.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
        if body or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*owner.upstream, timeout=120)
        try:
            upstream.request(method, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            reply = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
            status = answer.status
        except OSError:
            drop_connection(self)  # the upstream went away: so does the answer
            return
        finally:
            upstream.close()
        if owner.on_forward is not None:
            owner.on_forward(Forwarded(method, self.path, dict(self.headers.items()), body, status))
        self.send_response(status)
        for key, value in reply:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)


# --- command line ----------------------------------------------------------------------------
def add_fault_options(parser: argparse.ArgumentParser, default_kinds: Sequence[str]) -> None:
    """``--fault-rate/--fault-seed/--fault-kinds``, the same on every stand-in's command line."""
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of requests that fail (0..1)"
    )
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault plan")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(default_kinds),
        help=f"comma-separated kinds (default {','.join(default_kinds)})",
    )


def fault_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The constructor keywords of :func:`add_fault_options`' parsed options."""
    return {
        "fault_rate": args.fault_rate,
        "fault_seed": args.fault_seed,
        "fault_kinds": parse_kinds(args.fault_kinds),
    }


__all__ = [
    "COMMON_KINDS",
    "DEFAULT_FAULT_KINDS",
    "FAULT_KINDS",
    "FaultPlan",
    "FaultProxy",
    "FaultRule",
    "Forwarded",
    "add_fault_options",
    "answer_fault",
    "check_kinds",
    "drop_connection",
    "fault_kwargs",
    "json_fault_body",
    "parse_kinds",
]
