"""GitHub Actions OIDC stand-in: test tokens and the ``ACTIONS_ID_TOKEN_REQUEST_URL`` endpoint.

Keyless signing on a runner starts with ``sigstore.oidc.detect_credential()`` asking the
runner's token endpoint for a JWT. ``OidcStandIn`` serves that endpoint on 127.0.0.1, so the
rehearsal and the tests take exactly the code path a GitHub runner takes. Neither the
Sigstore stand-in nor sigstore-python checks the token's signature, so the tokens are
signed with a fixed HMAC key: well-formed, never trusted by anything real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from upm_ci.standins._server import ThreadedStandIn, send_json

__all__ = [
    "GITHUB_ISSUER",
    "UPM_RELEASE_WORKFLOW",
    "OidcJob",
    "OidcStandIn",
    "check_jwt",
    "decode_claims",
    "github_claims",
    "mint_github_token",
    "mint_jwt",
]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
DEFAULT_AUDIENCE = "sigstore"
_SIGNING_KEY = b"upm-ci-standin-not-a-secret"
_TIME_CLAIMS = ("iat", "nbf", "exp")
#: upm-release's reusable workflow, as a caller's ``uses:`` names it (without ``@ref``).
UPM_RELEASE_WORKFLOW = "unexpected/upm-release/.github/workflows/upm-release.yml"
_CLAIM_PARAMS = frozenset(
    {
        "repository",
        "ref",
        "workflow_path",
        "event_name",
        "sha",
        "workflow",
        "environment",
        "audience",
        "lifetime",
        "now",
        "run_id",
        "run_attempt",
        "runner_environment",
        "reusable_workflow",
        "reusable_workflow_sha",
    }
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_jwt(claims: Mapping[str, Any]) -> str:
    """Encode ``claims`` as an HS256 JWT; claims whose value is ``None`` are left out."""
    header = {"alg": "HS256", "typ": "JWT", "kid": "upm-ci-standin"}
    payload = {k: v for k, v in claims.items() if v is not None}
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    )
    sig = hmac.new(_SIGNING_KEY, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(sig)}"


def check_jwt(token: str) -> dict[str, Any] | None:
    """The claims of a token this module minted (its HMAC checks out), else None.

    What a relying party such as PyPI does first with an ID token: check it was issued by
    the issuer it trusts. Expiry and audience are the caller's to check.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = hmac.new(_SIGNING_KEY, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(_b64url(expected), parts[2]):
        return None
    try:
        return decode_claims(token)
    except ValueError:
        return None


def decode_claims(token: str) -> dict[str, Any]:
    """Return a JWT's claims without checking anything: for assertions in tests."""
    payload = token.split(".")[1]
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    claims: dict[str, Any] = json.loads(data)
    return claims


def github_claims(
    repository: str = "unexpected/upm-sample",
    ref: str = "refs/tags/v1.2.0",
    workflow_path: str = ".github/workflows/release.yml",
    event_name: str = "push",
    sha: str | None = None,
    *,
    workflow: str = "Release",
    environment: str | None = None,
    audience: str = DEFAULT_AUDIENCE,
    lifetime: int = 300,
    now: int | None = None,
    run_id: str = "1234567890",
    run_attempt: str = "1",
    runner_environment: str = "github-hosted",
    reusable_workflow: str | None = None,
    reusable_workflow_sha: str | None = None,
) -> dict[str, Any]:
    """Claims shaped like a GitHub Actions ID token for a workflow in ``repository``.

    The derived claims (``sub``, ``workflow_ref``, ``job_workflow_ref``...) follow GitHub's
    rules, so a certificate issued for them carries what a real runner's certificate does.

    ``reusable_workflow`` (``OWNER/REPO/.github/workflows/X.yml@REF``, e.g.
    ``UPM_RELEASE_WORKFLOW + "@refs/tags/v1"``) makes it the token of a job inside that called
    workflow, as GitHub mints it: ``job_workflow_ref``/``job_workflow_sha`` name the called
    workflow (and its commit, ``reusable_workflow_sha`` or one derived from the ref), while
    ``sub``, ``repository``, ``ref``, ``sha``, ``workflow``, ``workflow_ref`` and
    ``workflow_sha`` stay the caller's (``workflow_path`` in ``repository``). Fulcio then puts
    the called workflow in the certificate's SAN and the caller's repository and ref in its
    source-repository extensions.
    """
    owner = repository.split("/", 1)[0]
    if sha is None:
        sha = hashlib.sha1(f"{repository}@{ref}".encode()).hexdigest()
    issued = int(time.time()) if now is None else now
    ref_type = "tag" if ref.startswith("refs/tags/") else "branch"
    sub = f"repo:{repository}:" + (f"environment:{environment}" if environment else f"ref:{ref}")
    workflow_ref = f"{repository}/{workflow_path}@{ref}"
    repo_id = str(int(hashlib.sha256(repository.encode()).hexdigest()[:8], 16))
    owner_id = str(int(hashlib.sha256(owner.encode()).hexdigest()[:8], 16))
    return {
        "jti": secrets.token_hex(16),
        "iss": GITHUB_ISSUER,
        "aud": audience,
        "sub": sub,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "ref": ref,
        "ref_type": ref_type,
        "ref_protected": "false",
        "sha": sha,
        "repository": repository,
        "repository_id": repo_id,
        "repository_owner": owner,
        "repository_owner_id": owner_id,
        "repository_visibility": "public",
        "actor": owner,
        "actor_id": owner_id,
        "workflow": workflow,
        "workflow_ref": workflow_ref,
        "workflow_sha": sha,
        "job_workflow_ref": reusable_workflow or workflow_ref,
        "job_workflow_sha": _job_workflow_sha(reusable_workflow, reusable_workflow_sha, sha),
        "event_name": event_name,
        "environment": environment,
        "runner_environment": runner_environment,
        "run_id": run_id,
        "run_number": "7",
        "run_attempt": run_attempt,
        "head_ref": "",
        "base_ref": "",
    }


def _job_workflow_sha(reusable: str | None, reusable_sha: str | None, caller_sha: str) -> str:
    if not reusable:
        return caller_sha
    if reusable_sha:
        return reusable_sha
    ref = reusable.rpartition("@")[2]
    if re.fullmatch(r"[0-9a-f]{40}", ref):
        return ref  # called at a commit: that commit is the workflow's
    return hashlib.sha1(reusable.encode()).hexdigest()


def _split(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    params = {k: v for k, v in kwargs.items() if k in _CLAIM_PARAMS}
    extra = {k: v for k, v in kwargs.items() if k not in _CLAIM_PARAMS}
    return params, extra


def mint_github_token(**claims: Any) -> str:
    """Mint a GitHub Actions ID token.

    Keyword arguments named like ``github_claims`` parameters (``repository``, ``ref``,
    ``workflow_path``, ``sha``, ``audience``, ``lifetime``...) derive the claims; any other
    keyword sets that claim directly, and ``None`` removes it.
    """
    params, extra = _split(claims)
    return mint_jwt({**github_claims(**params), **extra})


class OidcJob:
    """One job's ID-token endpoint: its own URL and request token, as GitHub gives each job.

    ``claims`` are that job's (without ``iat``/``nbf``/``exp``/``aud``, added per request).
    """

    def __init__(self, base_url: str, claims: dict[str, Any]) -> None:
        self.claims = claims
        self.request_token = secrets.token_urlsafe(24)
        self.path = (
            "/_apis/distributedtask/hubs/Actions/plans/"
            f"{secrets.token_hex(8)}/jobs/{secrets.token_hex(8)}/idtoken"
        )
        self._base_url = base_url

    @property
    def url(self) -> str:
        return f"{self._base_url}{self.path}?api-version=2.0"

    def env(self) -> dict[str, str]:
        """The variables this job gets with ``permissions: id-token: write``."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }


class OidcStandIn(ThreadedStandIn):
    """The runner's ID-token endpoint, as ``detect_credential()`` calls it.

    Several jobs of one run (``add_job``) each get their own endpoint and request token and
    are minted their own claims, as GitHub mints them: a job of a called (reusable) workflow
    gets ``job_workflow_ref`` naming that workflow, the caller's own jobs their workflow's;
    ``workflow_ref``, ``repository`` and ``ref`` are the caller's in both.

    ``GET <url>&audience=A`` with ``Authorization: bearer <request token>`` answers
    ``{"value": <jwt>}`` whose ``aud`` is A; a wrong or missing request token gets 401, as
    on GitHub. ``claims`` may be changed between requests (``standin.claims.update(...)``);
    fresh ``iat``/``nbf``/``exp`` are added per request unless set explicitly.
    """

    label = "OIDC"

    def __init__(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        request_token: str | None = None,
        lifetime: int = 300,
        job_of: Callable[[tuple[str, int]], str | None] | None = None,
        **github_params: Any,
    ) -> None:
        """``github_params`` go to ``github_claims``; ``claims`` override the result.

        ``job_of``: for runners that give every job the same endpoint (act), which of
        ``jobs`` a request to the default endpoint comes from, by the client's address (None:
        the default claims)."""
        super().__init__()
        base = github_claims(**github_params)
        for key in _TIME_CLAIMS:
            base.pop(key)
        base.pop("aud")
        self.claims: dict[str, Any] = {**base, **(claims or {})}
        self.request_token = request_token or secrets.token_urlsafe(24)
        self.lifetime = lifetime
        self.requests: list[dict[str, Any]] = []
        self._faults: list[list[int]] = []
        self._lock = threading.Lock()
        self._path = (
            "/_apis/distributedtask/hubs/Actions/plans/"
            f"{secrets.token_hex(8)}/jobs/{secrets.token_hex(8)}/idtoken"
        )
        self.jobs: dict[str, OidcJob] = {}
        self.job_of = job_of
        self._github_params = github_params

    def _make_server(self) -> ThreadingHTTPServer:
        return ThreadingHTTPServer((self._host, self._port), _make_handler(self))

    # -- what a runner exposes

    @property
    def url(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_URL``: already has a query, as on GitHub."""
        return f"{super().url}{self._path}?api-version=2.0"

    def env(self) -> dict[str, str]:
        """The variables a job with ``permissions: id-token: write`` gets."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def add_job(
        self, name: str, claims: Mapping[str, Any] | None = None, **github_params: Any
    ) -> OidcJob:
        """Another job of the same run: the constructor's ``github_params`` overridden by
        these (e.g. ``reusable_workflow=None`` for the caller's own job), then ``claims``.
        The run's ``run_id``/``sha`` stay shared unless given."""
        params = {**self._github_params, **github_params}
        base = github_claims(**params)
        for key in (*_TIME_CLAIMS, "aud", "jti"):
            base.pop(key, None)
        if "run_id" not in params:
            base["run_id"] = self.claims.get("run_id", base["run_id"])
        job = OidcJob(super().url, {**base, **(claims or {})})
        self.jobs[name] = job
        return job

    def token(self, audience: str = DEFAULT_AUDIENCE, job: str | None = None) -> str:
        """Mint the token the endpoint (or ``job``'s) would serve now for ``audience``."""
        now = int(time.time())
        times = {"iat": now, "nbf": now, "exp": now + self.lifetime}
        claims = self.jobs[job].claims if job is not None else self.claims
        return mint_jwt({**times, "jti": secrets.token_hex(16), **claims, "aud": audience})

    def _job_at(self, path: str) -> tuple[str | None, str] | None:
        """(job name or None for the default endpoint, its request token) served at ``path``."""
        if path == self._path:
            return None, self.request_token
        for name, job in self.jobs.items():
            if path == job.path:
                return name, job.request_token
        return None

    def inject_fault(self, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` token requests with ``status``."""
        with self._lock:
            self._faults.append([status, count])

    def _take_fault(self) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault[1] > 0:
                    fault[1] -= 1
                    return fault[0]
        return None


def _make_handler(standin: OidcStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "upm-ci-oidc-standin"

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet: tests read ``standin.requests`` instead."""

        def _send(self, status: int, body: Mapping[str, Any]) -> None:
            send_json(self, status, body, "application/json; charset=utf-8")

        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query)
            owner = str(standin.claims.get("repository_owner", ""))
            audience = query.get("audience", [f"https://github.com/{owner}"])[0]
            auth = self.headers.get("Authorization", "")
            scheme, _, presented = auth.partition(" ")
            found = standin._job_at(parsed.path)
            record: dict[str, Any] = {"path": parsed.path, "audience": audience}
            with standin._lock:
                standin.requests.append(record)
            if found is None:
                record["status"] = 404
                self._send(404, {"message": "Not Found"})
                return
            job, request_token = found
            if job is None and standin.job_of is not None:
                named = standin.job_of(self.client_address[:2])
                job = named if named in standin.jobs else None
            record["job"] = job
            authorized = scheme.lower() == "bearer" and hmac.compare_digest(
                presented.strip(), request_token
            )
            if not authorized:
                record["status"] = 401
                self._send(401, {"message": "Bad credentials"})
                return
            fault = standin._take_fault()
            if fault is not None:
                record["status"] = fault
                self._send(fault, {"message": f"injected fault ({fault})"})
                return
            record["status"] = 200
            self._send(200, {"count": 1, "value": standin.token(audience, job)})

    return Handler
