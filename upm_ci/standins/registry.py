"""A real OCI registry on 127.0.0.1: Debian's ``docker-registry`` (distribution 2.8).

The binary runs with a generated config: only ``storage.filesystem`` in a temp dir and
``http.addr: 127.0.0.1:PORT`` (no auth), or with ``username``/``password`` an htpasswd realm
(bcrypt, what distribution's htpasswd auth reads) so tests can check that credentials are
sent and never printed. distribution 2.x has no referrers API: clients use the referrers tag
schema (``sha256-<hex>``), as the push code here does.

Use::

    problem = registry_problem()      # None, or why there is no registry (tests skip)
    with RegistryStandIn() as registry:
        registry.host                 # 127.0.0.1:PORT (what goes into an image reference)
        registry.url                  # http://127.0.0.1:PORT

:class:`RegistryProxy` sits in front of a registry for fault tests: it counts requests,
answers with a status of its choosing for a number of requests, and can hold the first
manifest PUT until released (a push killed at a known point, with no timing involved).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from upm_ci.standins._server import (
    StandIn,
    ThreadedStandIn,
    free_port,
    stop_process,
    wait_until_answering,
)

BINARY_ENV = "UPM_DOCKER_REGISTRY"
DEFAULT_BINARY = "/usr/bin/docker-registry"


def registry_binary() -> str | None:
    """Path of the ``docker-registry`` binary (``$UPM_DOCKER_REGISTRY``, PATH, Debian's)."""
    configured = os.environ.get(BINARY_ENV, "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("docker-registry")
    if found:
        return found
    return DEFAULT_BINARY if os.access(DEFAULT_BINARY, os.X_OK) else None


def registry_problem() -> str | None:
    """None when a registry can be started here, else a one-line reason (tests skip)."""
    if registry_binary() is None:
        return f"no docker-registry binary (apt-get install docker-registry, or set ${BINARY_ENV})"
    return None


def _bcrypt(password: str) -> str:
    """A bcrypt hash as distribution's htpasswd reads it."""
    with warnings.catch_warnings():
        # passlib imports the stdlib ``crypt`` (deprecated in 3.11) for its os_crypt backend.
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.hash import bcrypt

        return str(bcrypt.using(rounds=4).hash(password))


class RegistryStandIn(StandIn):
    """``docker-registry serve CONFIG`` on a free port of 127.0.0.1 (starts in well under 1 s).

    With ``username`` and ``password`` every request needs HTTP Basic credentials.
    """

    def __init__(self, *, username: str = "", password: str = "") -> None:
        self.username = username
        self.password = password
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._tmp: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> RegistryStandIn:
        if self._process is not None:
            return self
        binary = registry_binary()
        if binary is None:
            raise RuntimeError(registry_problem() or "no docker-registry")
        self._tmp = Path(tempfile.mkdtemp(prefix="upm-registry-"))
        self._port = free_port()
        config = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self._tmp / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self._port}",
        ]
        if self.username:
            htpasswd = self._tmp / "htpasswd"
            htpasswd.write_text(f"{self.username}:{_bcrypt(self.password)}\n", encoding="utf-8")
            config += ["auth:", "  htpasswd:", "    realm: upm-test", f"    path: {htpasswd}"]
        config_path = self._tmp / "config.yml"
        config_path.write_text("\n".join(config) + "\n", encoding="utf-8")
        log_path = self._tmp / "registry.log"
        with open(log_path, "wb") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        self._wait_ready(log_path)
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _wait_ready(self, log_path: Path, timeout: float = 30.0) -> None:
        assert self._process is not None
        try:
            # 200 when open, 401 with auth: either way it answers /v2/.
            wait_until_answering(
                self._process,
                log_path,
                lambda: requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401),
                f"docker-registry on port {self._port}",
                timeout,
            )
        except RuntimeError:
            self.stop()
            raise

    # -- where ----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._process is None:
            raise RuntimeError("the registry stand-in is not started")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def data_dir(self) -> Path:
        """Where the registry keeps its blobs (tests may look, never write)."""
        if self._tmp is None:
            raise RuntimeError("the registry stand-in is not started")
        return self._tmp / "data"


class RegistryProxy(ThreadedStandIn):
    """A forwarding proxy in front of ``upstream`` (``http://HOST:PORT``) for fault tests.

    - ``counts``: (method, path) -> how many requests arrived; ``log``: them in order;
    - ``fail(n, status)``: the next ``n`` requests get ``status`` (e.g. 503) unforwarded;
    - ``hold_manifest_puts``: the first manifest PUT waits until :meth:`release` (or the
      client is killed); ``manifest_put_seen`` is set when it arrives.
    """

    label = "registry-proxy"

    def __init__(self, upstream: str, *, hold_manifest_puts: bool = False) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.counts: Counter[tuple[str, str]] = Counter()
        self.log: list[tuple[str, str]] = []
        self.hold_manifest_puts = hold_manifest_puts
        self.manifest_put_seen = threading.Event()
        self._released = threading.Event()
        self._failures: list[int] = []
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fail(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._failures = [status] * n

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        super().stop()

    def _make_server(self) -> ThreadingHTTPServer:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                path = self.path.split("?", 1)[0]
                with proxy._lock:
                    proxy.counts[(self.command, path)] += 1
                    proxy.log.append((self.command, path))
                    status = proxy._failures.pop(0) if proxy._failures else 0
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if status:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.command == "PUT" and "/manifests/" in path and proxy.hold_manifest_puts:
                    proxy.manifest_put_seen.set()
                    proxy._released.wait()
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                answer = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=60,
                )
                self.send_response(answer.status_code)
                for k, v in answer.headers.items():
                    if k.lower() in ("content-length", "transfer-encoding", "connection"):
                        continue
                    if k.lower() == "location":
                        v = v.replace(proxy.upstream, f"http://{proxy.host}")
                    self.send_header(k, v)
                content = b"" if self.command == "HEAD" else answer.content
                self.send_header(
                    "Content-Length",
                    answer.headers.get("Content-Length", "0")
                    if self.command == "HEAD"
                    else str(len(content)),
                )
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return ThreadingHTTPServer((self._host, self._port), Handler)
