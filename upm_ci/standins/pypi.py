"""A local package index for real twine: pypiserver behind an optional capture proxy.

PyPI's upload API does not answer here, and pypiserver + passlib is a faithful enough
target: it refuses the same file twice (400) and a wrong password (403), and serves a PEP 503
simple index with ``#sha256=`` fragments. It ignores PEP 740 ``attestations``, so the capture
proxy (``capture=True``) sits in front of it, records the multipart fields of every upload
(to prove twine-style uploads carried them) and can be told to fail the next requests
(``fail_next``) so a client's retries meet a 503 or a dropped connection.

Use::

    with PypiStandIn(password="pypi-secret", capture=True) as pypi:
        upload to pypi.upload_url (username ``__token__``), read pypi.simple_url,
        pypi.files() -> {file name: sha256}, pypi.uploads -> [CapturedUpload]
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import http.client
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from upm_ci.standins._server import ServerThread, StandIn, free_port, stop_process

DEFAULT_PASSWORD = "pypi-AgEIcHlwaS5vcmcCJGxvY2FsLXN0YW5kLWluLXRva2Vu"


@dataclass
class CapturedUpload:
    """One POST the proxy forwarded: its form fields (file parts by file name) and answer."""

    fields: dict[str, list[str]]
    filename: str
    status: int


@dataclass
class _Faults:
    """Answers the proxy gives instead of forwarding: an HTTP status, or 0 to drop."""

    pending: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        with self.lock:
            return self.pending.pop(0) if self.pending else None


class PypiStandIn(StandIn):
    """pypiserver on 127.0.0.1 with an htpasswd user; start with ``with`` (about 0.5 s)."""

    def __init__(
        self,
        username: str = "__token__",
        password: str = DEFAULT_PASSWORD,
        *,
        capture: bool = False,
        package_dir: Path | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.capture = capture
        self._owns_dir = package_dir is None
        self._tmp: Path | None = None
        self.package_dir = package_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._proxy: ServerThread | None = None
        self.uploads: list[CapturedUpload] = []
        self._faults = _Faults()
        self._log_path: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> PypiStandIn:
        from passlib.apache import HtpasswdFile

        self._tmp = Path(tempfile.mkdtemp(prefix="upm-pypi-"))
        if self.package_dir is None:
            self.package_dir = self._tmp / "packages"
        self.package_dir.mkdir(parents=True, exist_ok=True)
        htpasswd = self._tmp / "htpasswd"
        users = HtpasswdFile(str(htpasswd), new=True)
        users.set_password(self.username, self.password)
        users.save()
        self._port = free_port()
        self._log_path = self._tmp / "pypiserver.log"
        command = [
            str(Path(sys.executable).parent / "pypi-server"),
            "run",
            "-p",
            str(self._port),
            "-i",
            "127.0.0.1",
            "-a",
            "update,download,list",
            "-P",
            str(htpasswd),
            "--disable-fallback",
            "--hash-algo",
            "sha256",
            str(self.package_dir),
        ]
        if not Path(command[0]).exists():
            command[:1] = [sys.executable, "-m", "pypiserver"]
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        if self.capture:
            self._start_proxy()
        return self

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log = self._log_path.read_text(errors="replace") if self._log_path else ""
                raise RuntimeError(f"pypi-server exited at start:\n{log[-2000:]}")
            try:
                answer = requests.get(
                    f"{self.server_url}/simple/", auth=self.auth, timeout=1
                ).status_code
                if answer == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pypi-server did not answer within {timeout:.0f} s")

    # -- addresses ----------------------------------------------------------------------------
    @property
    def server_url(self) -> str:
        """pypiserver itself, bypassing the proxy."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """Where clients talk to: the proxy when capturing, else pypiserver."""
        if self._proxy is not None:
            return f"http://127.0.0.1:{self._proxy.port}"
        return self.server_url

    @property
    def upload_url(self) -> str:
        return f"{self.url}/"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    # -- observation --------------------------------------------------------------------------
    def files(self) -> dict[str, str]:
        """File name -> sha256 of every distribution the index holds."""
        assert self.package_dir is not None
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.package_dir.iterdir())
            if p.is_file()
        }

    def fail_next(self, *statuses: int) -> None:
        """The proxy answers the next requests with these statuses (0: drop the connection)."""
        if self._proxy is None:
            raise RuntimeError("fail_next needs PypiStandIn(capture=True)")
        with self._faults.lock:
            self._faults.pending.extend(statuses)

    # -- the capture proxy --------------------------------------------------------------------
    def _start_proxy(self) -> None:
        standin = self

        class Handler(_ProxyHandler):
            owner = standin

        self._proxy = ServerThread(ThreadingHTTPServer(("127.0.0.1", 0), Handler), "pypi-proxy")


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: PypiStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.owner._faults.take()
        if fault == 0:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None:
            self._reply(fault, {"Content-Type": "text/plain"}, b"injected fault\n")
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.owner._port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        upstream.request(method, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        reply_headers = {
            k: v
            for k, v in answer.getheaders()
            if k.lower() not in ("transfer-encoding", "connection", "content-length")
        }
        upstream.close()
        if method == "POST":
            fields, filename = _multipart_fields(self.headers.get("Content-Type", ""), body)
            self.owner.uploads.append(CapturedUpload(fields, filename, answer.status))
        self._reply(answer.status, reply_headers, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _multipart_fields(content_type: str, body: bytes) -> tuple[dict[str, list[str]], str]:
    """Form fields of a multipart body; file parts are recorded by their file name."""
    if "multipart/form-data" not in content_type:
        return {}, ""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, list[str]] = {}
    filename = ""
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        part_file = part.get_filename()
        if part_file:
            filename = part_file
            fields.setdefault(name, []).append(part_file)
            continue
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        fields.setdefault(name, []).append(text)
    return fields, filename


__all__ = ["DEFAULT_PASSWORD", "CapturedUpload", "PypiStandIn"]
