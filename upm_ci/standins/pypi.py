"""A local package index for real twine: pypiserver behind an optional capture proxy.

PyPI's upload API does not answer here, and pypiserver + passlib is a faithful enough
target: it refuses the same file twice (400) and a wrong password (403), and serves a PEP 503
simple index with ``#sha256=`` fragments. It ignores PEP 740 ``attestations``, so the capture
proxy (``capture=True``) sits in front of it, records the multipart fields of every upload
(to prove twine-style uploads carried them) and can be told to fail the next requests
(``fail_next``) so a client's retries meet a 503 or a dropped connection. The same proxy applies
a seeded fault plan (``fault_rate``/``fault_seed``/``fault_kinds``: 5xx, 429, reset, slow; see
:mod:`upm_ci.standins.faults`); it runs whenever capturing or faults are asked for.

Use::

    with PypiStandIn(password="pypi-secret", capture=True) as pypi:
        upload to pypi.upload_url (username ``__token__``), read pypi.simple_url,
        pypi.files() -> {file name: sha256}, pypi.uploads -> [CapturedUpload]
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from upm_ci.standins._server import StandIn, free_port, stop_process, wait_until_answering
from upm_ci.standins.faults import (
    COMMON_KINDS,
    DEFAULT_FAULT_KINDS,
    FaultPlan,
    FaultProxy,
    FaultRule,
    Forwarded,
    check_kinds,
)

DEFAULT_PASSWORD = "pypi-AgEIcHlwaS5vcmcCJGxvY2FsLXN0YW5kLWluLXRva2Vu"


@dataclass
class CapturedUpload:
    """One POST the proxy forwarded: its form fields (file parts by file name) and answer."""

    fields: dict[str, list[str]]
    filename: str
    status: int


class PypiStandIn(StandIn):
    """pypiserver on 127.0.0.1 with an htpasswd user; start with ``with`` (about 0.5 s)."""

    def __init__(
        self,
        username: str = "__token__",
        password: str = DEFAULT_PASSWORD,
        *,
        capture: bool = False,
        package_dir: Path | None = None,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Sequence[str] = DEFAULT_FAULT_KINDS,
        retry_after: int = 1,
    ) -> None:
        self.username = username
        self.password = password
        self.capture = capture
        self._owns_dir = package_dir is None
        self._tmp: Path | None = None
        self.package_dir = package_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._proxy: FaultProxy | None = None
        self.uploads: list[CapturedUpload] = []
        check_kinds(fault_kinds, COMMON_KINDS, "PyPI")
        self.faults = FaultPlan(
            rate=fault_rate, seed=fault_seed, kinds=fault_kinds, retry_after=retry_after
        )
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
        if self.capture or self.faults.active:
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
        assert self._process is not None
        try:
            wait_until_answering(
                self._process,
                self._log_path,
                lambda: (
                    requests.get(
                        f"{self.server_url}/simple/", auth=self.auth, timeout=1
                    ).status_code
                    == 200
                ),
                "pypi-server",
                timeout,
            )
        except RuntimeError:
            self.stop()
            raise

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
        for status in statuses:
            self.faults.add_rule(FaultRule("reset" if status == 0 else str(status)))

    # -- the capture (and fault) proxy ----------------------------------------------------------
    def _start_proxy(self) -> None:
        self._proxy = FaultProxy(
            self._port, self.faults, label="pypi", fault_body=_fault, on_forward=self._captured
        )

    def _captured(self, forwarded: Forwarded) -> None:
        if forwarded.method == "POST":
            content_type = forwarded.headers.get("Content-Type", "")
            fields, filename = _multipart_fields(content_type, forwarded.body)
            self.uploads.append(CapturedUpload(fields, filename, forwarded.status))


def _fault(status: int) -> tuple[str, bytes]:
    """An injected fault's body: plain text, as pypiserver's errors."""
    return "text/plain", f"injected fault: HTTP {status}\n".encode()


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
