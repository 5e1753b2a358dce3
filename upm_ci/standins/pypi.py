"""A local package index for real twine: pypiserver behind an optional capture proxy.

PyPI's upload API does not answer here, and pypiserver + passlib is a faithful enough
target: it refuses the same file twice (400) and a wrong password (403), and serves a PEP 503
simple index with ``#sha256=`` fragments. It ignores PEP 740 ``attestations``, so the capture
proxy (``capture=True``) sits in front of it, records the multipart fields of every upload
(to prove twine-style uploads carried them) and can be told to fail the next requests
(``fail_next``) so a client's retries meet a 503 or a dropped connection. The same proxy applies
a seeded fault plan (``fault_rate``/``fault_seed``/``fault_kinds``: 5xx, 429, reset, slow; see
:mod:`upm_ci.standins.faults`); it runs whenever capturing, faults or the Integrity API are
asked for.

``integrity=True`` serves PyPI's Integrity API (PEP 740 provenance) from the proxy:
:attr:`PypiStandIn.integrity` is the :class:`~upm_ci.standins.integrity.IntegrityStore` the
tests and the rehearsal fill (real attestations through the local Sigstore) and switch.

Trusted Publishing (``trusted_publisher=TrustedPublisher(repository, workflow)``): the proxy
also answers ``GET /_/oidc/audience`` and ``POST /_/oidc/mint-token`` as PyPI does. A token is
exchanged only when it is one the OIDC stand-in minted (its signature checks), for audience
``pypi``, unexpired, of the publisher's repository, and its ``job_workflow_ref`` is the
publisher's workflow file in that repository (and its ``environment`` the publisher's, when one
is set). PyPI matches ``job_workflow_ref``, the workflow file the *job* runs in, so a job of a
reusable workflow of another repository (upm-release.yml called from the project) is refused
with ``invalid-publisher``, however it was called: pypi/warehouse#11096. The upload token it
hands out is the stand-in's upload password (pypiserver has one user). With a trusted
publisher the index also checks each upload's PEP 740 attestations as PyPI does for a GitHub
publisher: the signing certificate's Source Repository URI must be the publisher's repository
and its Build Config URI (the *calling* workflow, from ``workflow_ref``) the publisher's
workflow file; otherwise the upload is refused (400) and nothing is stored. So attestations
signed inside upm-release's reusable workflow, called from the publisher's release.yml, pass.

Use::

    with PypiStandIn(password="pypi-secret", capture=True) as pypi:
        upload to pypi.upload_url (username ``__token__``), read pypi.simple_url,
        pypi.files() -> {file name: sha256}, pypi.uploads -> [CapturedUpload]
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
#: The audience PyPI's ``/_/oidc/audience`` names.
PYPI_AUDIENCE = "pypi"


@dataclass(frozen=True)
class TrustedPublisher:
    """A GitHub trusted publisher as a project registers it on PyPI."""

    repository: str
    workflow: str = ".github/workflows/release.yml"
    environment: str = ""


@dataclass
class Exchange:
    """One Trusted Publishing exchange: the token's claims and PyPI's answer."""

    claims: dict[str, Any]
    status: int
    errors: list[dict[str, str]] = field(default_factory=list)


def publisher_problems(publisher: TrustedPublisher, claims: dict[str, Any] | None) -> list[str]:
    """Why PyPI refuses to exchange a token with these claims for ``publisher`` (none: ok)."""
    from upm_ci.standins.oidc import GITHUB_ISSUER

    if claims is None:
        return ["the token's signature does not verify"]
    problems = []
    if claims.get("iss") != GITHUB_ISSUER:
        problems.append(f"issuer {claims.get('iss')!r} is not GitHub Actions")
    if claims.get("aud") != PYPI_AUDIENCE:
        problems.append(f"audience {claims.get('aud')!r} is not {PYPI_AUDIENCE!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= time.time():
        problems.append("the token has expired")
    if claims.get("repository") != publisher.repository:
        problems.append(
            f"repository {claims.get('repository')!r} has no publisher"
            f" (the publisher is {publisher.repository})"
        )
    called = str(claims.get("job_workflow_ref", "")).split("@", 1)[0]
    wanted = f"{publisher.repository}/{publisher.workflow}"
    if called != wanted:
        problems.append(f"job_workflow_ref {called or '(none)'} is not the publisher's {wanted}")
    if publisher.environment and claims.get("environment") != publisher.environment:
        problems.append(
            f"environment {claims.get('environment')!r} is not the publisher's"
            f" {publisher.environment!r}"
        )
    return problems


#: Fulcio's certificate extensions PyPI reads from an attestation (DER UTF8String values).
SOURCE_REPOSITORY_URI_OID = "1.3.6.1.4.1.57264.1.12"
BUILD_CONFIG_URI_OID = "1.3.6.1.4.1.57264.1.18"


def attestation_problems(publisher: TrustedPublisher, attestation: dict[str, Any]) -> list[str]:
    """Why PyPI refuses this PEP 740 attestation from ``publisher`` (none: ok); the signature
    itself is not checked here (upm-ci verify does that)."""
    import base64

    from cryptography import x509

    try:
        der = base64.b64decode(attestation["verification_material"]["certificate"])
        cert = x509.load_der_x509_certificate(der)
    except (KeyError, TypeError, ValueError) as e:
        return [f"no readable signing certificate ({type(e).__name__})"]
    found: dict[str, str] = {}
    for ext in cert.extensions:
        if isinstance(ext.value, x509.UnrecognizedExtension):
            raw = ext.value.value
            if len(raw) >= 2 and raw[0] == 0x0C and raw[1] < 0x80:  # short-form UTF8String
                found[ext.oid.dotted_string] = raw[2 : 2 + raw[1]].decode("utf-8", "replace")
            elif len(raw) >= 3 and raw[0] == 0x0C and raw[1] == 0x81:
                found[ext.oid.dotted_string] = raw[3 : 3 + raw[2]].decode("utf-8", "replace")
    problems = []
    repository = f"https://github.com/{publisher.repository}"
    if found.get(SOURCE_REPOSITORY_URI_OID) != repository:
        problems.append(
            f"source repository {found.get(SOURCE_REPOSITORY_URI_OID) or '(none)'} is not"
            f" {repository}"
        )
    config = found.get(BUILD_CONFIG_URI_OID, "").split("@", 1)[0]
    if config != f"{repository}/{publisher.workflow}":
        problems.append(
            f"build config {config or '(none)'} is not {repository}/{publisher.workflow}"
        )
    return problems


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
        trusted_publisher: TrustedPublisher | None = None,
        integrity: bool = False,
    ) -> None:
        from upm_ci.standins.integrity import IntegrityStore

        self.username = username
        self.trusted_publisher = trusted_publisher
        self.exchanges: list[Exchange] = []
        self.rejected_attestations: list[tuple[str, list[str]]] = []
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
        self.serve_integrity = integrity
        self.integrity = IntegrityStore()

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
        if (
            self.capture
            or self.faults.active
            or self.trusted_publisher is not None
            or self.serve_integrity
        ):
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
    def integrity_url(self) -> str:
        """The Integrity API's base: ``<url>/integrity/<project>/<version>/<file>/provenance``."""
        return f"{self.url}/integrity/"

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
            self._port,
            self.faults,
            label="pypi",
            fault_body=_fault,
            on_forward=self._captured,
            answer=self._answer,
        )

    def _answer(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, bytes] | None:
        """The proxy's own answers: the Integrity API, then Trusted Publishing; None: forward."""
        if self.serve_integrity:
            own = self.integrity.answer(method, path)
            if own is not None:
                return own
        if self.trusted_publisher is not None:
            return self._oidc(method, path, headers, body)
        return None

    def _oidc(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, bytes] | None:
        """Trusted Publishing's two endpoints (see the module docstring); None: forward."""
        from upm_ci.standins.oidc import check_jwt

        publisher = self.trusted_publisher
        if publisher is None:
            return None
        if method == "GET" and path == "/_/oidc/audience":
            return _json(200, {"audience": PYPI_AUDIENCE})
        if method == "POST" and path != "/_/oidc/mint-token":
            return self._check_attestations(publisher, headers.get("Content-Type", ""), body)
        if path != "/_/oidc/mint-token":
            return None
        if method != "POST":
            return _json(405, {"message": "Method Not Allowed"})
        try:
            token = json.loads(body)["token"]
        except (ValueError, KeyError, TypeError):
            return _json(422, _token_errors("invalid-payload", "missing or malformed token"))
        claims = check_jwt(token) if isinstance(token, str) else None
        problems = publisher_problems(publisher, claims)
        if problems:
            errors = [
                {"code": "invalid-publisher", "description": f"valid token, but {p}"}
                for p in problems
            ]
            self.exchanges.append(Exchange(claims or {}, 422, errors))
            return _json(422, {"message": "Token request failed", "errors": errors})
        self.exchanges.append(Exchange(claims or {}, 200))
        return _json(200, {"success": True, "token": self.password, "expires": 0})

    def _check_attestations(
        self, publisher: TrustedPublisher, content_type: str, body: bytes
    ) -> tuple[int, str, bytes] | None:
        """An upload whose attestations PyPI would refuse is answered 400 (not forwarded)."""
        fields, filename = _multipart_fields(content_type, body)
        problems: list[str] = []
        for text in fields.get("attestations", []):
            try:
                attestations = json.loads(text)
            except ValueError:
                problems.append("attestations are not JSON")
                continue
            for attestation in attestations if isinstance(attestations, list) else [None]:
                if not isinstance(attestation, dict):
                    problems.append("an attestation is not a JSON object")
                    continue
                problems += attestation_problems(publisher, attestation)
        if not problems:
            return None
        self.rejected_attestations.append((filename, problems))
        message = f"Invalid attestations supplied during upload: {'; '.join(problems)}\n"
        return 400, "text/plain", message.encode()

    @property
    def minted(self) -> list[dict[str, Any]]:
        """Claims of the tokens exchanged for an upload token."""
        return [e.claims for e in self.exchanges if e.status == 200]

    @property
    def refused(self) -> list[Exchange]:
        """The exchanges refused, with PyPI's errors."""
        return [e for e in self.exchanges if e.status != 200]

    def _captured(self, forwarded: Forwarded) -> None:
        if forwarded.method == "POST":
            content_type = forwarded.headers.get("Content-Type", "")
            fields, filename = _multipart_fields(content_type, forwarded.body)
            self.uploads.append(CapturedUpload(fields, filename, forwarded.status))


def _json(status: int, doc: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(doc).encode()


def _token_errors(code: str, description: str) -> dict[str, Any]:
    return {
        "message": "Token request failed",
        "errors": [{"code": code, "description": description}],
    }


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


__all__ = [
    "DEFAULT_PASSWORD",
    "PYPI_AUDIENCE",
    "CapturedUpload",
    "Exchange",
    "PypiStandIn",
    "TrustedPublisher",
    "attestation_problems",
    "publisher_problems",
]
