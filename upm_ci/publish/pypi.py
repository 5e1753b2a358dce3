"""Upload the distributions to a package index with twine, safely re-runnable.

PyPI is immutable: a file once uploaded can never be replaced, and a half-finished upload
(sdist there, wheel not) cannot be taken back. So before uploading anything this module
reads what the index already holds (simple API, JSON or HTML with ``#sha256=`` fragments),
skips files that are there with the same digest, and refuses the whole upload when any file
is there with another digest. Uploads go through twine's ``PackageFile`` (the same form twine
sends, attestations included); retries are ours (:mod:`upm_ci.retry`), so they are logged
and bounded.

Trusted Publishing exchanges the job's OIDC token for a short-lived upload token, as
pypa/gh-action-pypi-publish does: ``GET <index>/_/oidc/audience``, an ID token for that
audience from the runner, ``POST <index>/_/oidc/mint-token``. PyPI matches the trusted
publisher's workflow file against the token's ``job_workflow_ref``: the workflow file the job
runs in. A job inside a reusable workflow of another repository (upm-release.yml) names that
file, which no project can register, so the exchange fails with ``invalid-publisher``
(pypi/warehouse#11096); :func:`preflight_claims` says so before anything runs. Publish from a
job of the calling workflow instead: the reusable workflow's ``publish: false`` hands the
signed release over to one (docs/actions.md).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from upm_ci import gha
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.identity import decode_claims
from upm_ci.layout import PEP740_SUFFIX
from upm_ci.retry import HttpStatusError, RetryPolicy, call_with_retry, classify

log = logging.getLogger(__name__)

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
TOKEN_USERNAME = "__token__"


@dataclass(frozen=True)
class IndexTarget:
    """Where distributions go and how to authenticate; ``password`` is masked when made.

    PEP 740 attestations (see :func:`attestations_to_send`): by default they are sent when
    every distribution has one; ``attestations`` requires them, ``skip_attestations`` never
    sends them.
    """

    upload_url: str
    index_url: str
    password: str
    username: str = TOKEN_USERNAME
    attestations: bool = False
    skip_attestations: bool = False


@dataclass(frozen=True)
class PlannedFile:
    """One distribution and what will happen to it: ``upload`` or ``skip`` (already there)."""

    name: str
    path: Path
    sha256: str
    action: str
    attestation: Path | None = None


@dataclass(frozen=True)
class UploadOutcome:
    name: str
    sha256: str
    status: str
    url: str


# --- checks --------------------------------------------------------------------------------
def check_distributions(paths: Sequence[Path]) -> None:
    """``twine check --strict``: a description PyPI would not render is a policy failure."""
    if not paths:
        raise InputError("no distributions to upload", hint="run `upm-ci build` first")
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
    )
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
        failing = [ln for ln in lines if "FAILED" in ln or "ERROR" in ln or "WARNING" in ln]
        raise PolicyError(
            "twine check --strict failed: " + "; ".join((failing or lines)[:4]),
            hint="fix the package metadata (long description, content type) and rebuild",
        )


# --- what the index holds -----------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def index_files(
    target: IndexTarget, project: str, *, policy: RetryPolicy | None = None
) -> dict[str, str]:
    """File name -> sha256 of the project's files on the index (empty for a new project)."""
    url = target.index_url.rstrip("/") + f"/{project}/"
    auth = _auth_for(target, url)

    def fetch() -> requests.Response:
        r = requests.get(
            url, headers={"Accept": f"{SIMPLE_JSON}, text/html;q=0.1"}, auth=auth, timeout=30
        )
        if r.status_code >= 500 or r.status_code == 429:
            raise HttpStatusError(r)
        return r

    response = call_with_retry(fetch, what=f"read {url}", classify=classify, policy=policy)
    if response.status_code == 404:
        return {}
    if response.status_code in (401, 403):
        raise InputError(
            f"{url}: the index refused the credentials ({response.status_code})",
            hint="check --pypi-token / UPM_PYPI_TOKEN and --pypi-index-url",
        )
    if response.status_code != 200:
        raise ServiceError(f"{url}: unexpected answer {response.status_code} {response.reason}")
    files: dict[str, str] = {}
    if response.headers.get("Content-Type", "").startswith(SIMPLE_JSON):
        for entry in response.json().get("files", []):
            digest = entry.get("hashes", {}).get("sha256", "")
            files[entry["filename"]] = digest
        return files
    parser = _Links()
    parser.feed(response.text)
    for href in parser.hrefs:
        path, _, fragment = href.partition("#")
        name = path.rstrip("/").rsplit("/", 1)[-1]
        match = re.match(r"sha256=([0-9a-f]{64})", fragment)
        files[name] = match.group(1) if match else ""
    return files


def plan_uploads(
    dists: Sequence[tuple[str, Path, str]],
    existing: dict[str, str],
    attestations: dict[str, Path] | None = None,
) -> list[PlannedFile]:
    """Decide per file; any file already there with another digest stops the whole upload.

    ``attestations``: the PEP 740 attestation to send with each distribution (by name).
    """
    plan: list[PlannedFile] = []
    conflicts: list[str] = []
    for name, path, sha256 in dists:
        there = existing.get(name)
        attestation = (attestations or {}).get(name)
        if there is None:
            plan.append(PlannedFile(name, path, sha256, "upload", attestation))
        elif there == sha256:
            plan.append(PlannedFile(name, path, sha256, "skip", attestation))
        elif not there:
            conflicts.append(f"{name} (the index shows no sha256 to compare)")
        else:
            conflicts.append(f"{name} (index sha256 {there[:12]}..., ours {sha256[:12]}...)")
    if conflicts:
        raise PolicyError(
            "the index already holds other bytes under the same name: " + "; ".join(conflicts),
            hint="index files can never be replaced; nothing was uploaded; "
            "bump the version and release again",
        )
    return plan


# --- PEP 740 attestations ------------------------------------------------------------------
#: Upload hosts of PyPI and TestPyPI: they accept attestations only from Trusted Publishing.
PYPI_UPLOAD_HOSTS = ("upload.pypi.org", "test.pypi.org")


def attestations_to_send(
    target: IndexTarget,
    dists: Sequence[tuple[str, Path, str]],
    recorded: dict[str, Path],
    *,
    trusted_publishing: bool,
) -> dict[str, Path]:
    """Which ``<dist>.publish.attestation`` goes with which distribution (name -> path).

    ``recorded`` maps a distribution's name to its attestation recorded in the manifest (its
    digest already checked). The rule, decided before anything is sent:

    - ``skip_attestations``: none.
    - PyPI and TestPyPI refuse attestations on uploads made with an API token (only Trusted
      Publishing may send them), so there they go only with ``trusted_publishing``;
      ``attestations`` (required) with a token is bad input.
    - Otherwise every distribution's attestation is sent when all have one; when only some
      have one, or ``attestations`` is set and one is missing, it is bad input (exit 2).
    """
    if target.skip_attestations:
        return {}
    missing = [name for name, _, _ in dists if name not in recorded]
    if target.attestations and missing:
        raise InputError(
            f"{missing[0]}.publish.attestation: not recorded in the manifest",
            hint="run `upm-ci sign` (it writes PEP 740 attestations), or publish without "
            "--attestations",
        )
    if missing and len(missing) < len(dists):
        raise InputError(
            f"{missing[0]}.publish.attestation: missing, while other distributions have one",
            hint="re-run `upm-ci sign`, or pass --no-attestations",
        )
    if missing:
        return {}
    if urlsplit(target.upload_url).hostname in PYPI_UPLOAD_HOSTS and not trusted_publishing:
        if target.attestations:
            raise InputError(
                f"{target.upload_url}: PyPI accepts attestations only with Trusted Publishing",
                hint="pass --trusted-publishing, or drop --attestations",
            )
        log.info("pypi: attestations not sent: PyPI takes them only from Trusted Publishing")
        return {}
    return {name: recorded[name] for name, _, _ in dists}


# --- upload ---------------------------------------------------------------------------------
def upload_fields(metadata: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The upload form's fields for twine's ``PackageFile.metadata_dictionary()``: what twine
    sends (warehouse's ``parse_form_metadata`` in reverse): a field per list item, project
    URLs as ``"name, url"``, keywords joined with ``", "``, the GPG signature as its tuple."""
    fields: list[tuple[str, Any]] = []
    for key, value in metadata.items():
        if key == "gpg_signature":
            fields.append((key, value))
        elif key == "project_urls":
            fields.extend((key, f"{name}, {url}") for name, url in dict(value).items())
        elif key == "keywords":
            fields.append((key, ", ".join(value)))
        elif isinstance(value, (list, tuple)):
            fields.extend((key, item) for item in value)
        else:
            fields.append((key, value))
    return fields


def upload(
    target: IndexTarget,
    project: str,
    plan: Sequence[PlannedFile],
    *,
    before: Callable[[PlannedFile], None] = lambda f: None,
    after: Callable[[UploadOutcome], None] = lambda o: None,
    policy: RetryPolicy | None = None,
) -> list[UploadOutcome]:
    """Upload the ``upload`` entries of ``plan`` in order (sdist first); report each one."""
    from twine.package import PackageFile

    outcomes: list[UploadOutcome] = []
    session = requests.Session()
    session.auth = (target.username, target.password)
    for item in plan:
        if item.action == "skip":
            outcome = UploadOutcome(item.name, item.sha256, "skipped", target.upload_url)
            outcomes.append(outcome)
            after(outcome)
            continue
        package = PackageFile.from_filename(str(item.path), None)
        attestation = item.attestation
        if attestation is None and target.attestations:
            # Required but not planned (a caller without a manifest): the file beside it.
            attestation = item.path.with_name(item.path.name + PEP740_SUFFIX)
            if not attestation.is_file():
                raise InputError(
                    f"{attestation}: attestation missing",
                    hint="sign the distributions first, or publish without --attestations",
                )
        if attestation is not None:
            package.add_attestations([str(attestation)])
        fields = upload_fields(package.metadata_dictionary())
        fields += [(":action", "file_upload"), ("protocol_version", "1")]
        before(item)

        def post(item: PlannedFile = item, fields: list[tuple[str, Any]] = fields) -> None:
            from requests_toolbelt import MultipartEncoder  # type: ignore[import-untyped]

            with open(item.path, "rb") as content:
                encoder = MultipartEncoder(
                    [*fields, ("content", (item.name, content, "application/octet-stream"))]
                )
                r = session.post(
                    target.upload_url,
                    data=encoder,
                    headers={"Content-Type": encoder.content_type},
                    allow_redirects=False,
                    timeout=300,
                )
            if r.status_code in (200, 201):
                return
            if r.status_code in (401, 403):
                raise InputError(
                    f"{target.upload_url}: the index refused the credentials "
                    f"({r.status_code} {r.reason}) uploading {item.name}",
                    hint="check --pypi-token / UPM_PYPI_TOKEN or the trusted publisher",
                )
            if 300 <= r.status_code < 400:
                raise InputError(
                    f"{target.upload_url}: redirected ({r.status_code})",
                    hint="use the index's exact upload URL",
                )
            if r.status_code >= 500 or r.status_code == 429:
                raise HttpStatusError(r)
            if index_files(target, project).get(item.name) == item.sha256:
                return  # an earlier attempt landed; only its answer was lost
            raise PolicyError(
                f"{target.upload_url}: {item.name} rejected: {r.status_code} {r.text.strip()[:200]}"
            )

        call_with_retry(post, what=f"upload {item.name}", classify=classify, policy=policy)
        outcome = UploadOutcome(item.name, item.sha256, "uploaded", target.upload_url)
        log.info("pypi: uploaded %s", item.name)
        outcomes.append(outcome)
        after(outcome)
    return outcomes


def _auth_for(target: IndexTarget, url: str) -> tuple[str, str] | None:
    """Credentials only for the host that issued them (never PyPI's token to another host)."""
    if urlsplit(url).netloc == urlsplit(target.upload_url).netloc:
        return (target.username, target.password)
    return None


# --- Trusted Publishing -------------------------------------------------------------------
def preflight_claims(claims: dict[str, Any]) -> list[str]:
    """Problems that make PyPI refuse the exchange, found before any upload starts."""
    problems: list[str] = []
    workflow_ref = str(claims.get("workflow_ref", ""))
    job_workflow_ref = str(claims.get("job_workflow_ref", ""))
    if not workflow_ref:
        problems.append("the token has no workflow_ref claim: not a GitHub Actions token")
    elif job_workflow_ref and job_workflow_ref.split("@")[0] != workflow_ref.split("@")[0]:
        problems.append(
            f"this job runs in a reusable workflow ({job_workflow_ref.split('@')[0]}) called "
            f"from {workflow_ref.split('@')[0]}: PyPI matches the trusted publisher against the "
            "job's own workflow file (job_workflow_ref), so publish from a job of the calling "
            "workflow (upm-release.yml's publish: false hands the signed release to one)"
        )
    if claims.get("event_name") in ("pull_request", "pull_request_target"):
        problems.append(f"refusing to publish from a {claims['event_name']} event")
    return problems


def _origin(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def trusted_publishing_token(
    upload_url: str,
    *,
    id_token: Callable[[str], str] | None = None,
    policy: RetryPolicy | None = None,
) -> str:
    """Exchange this job's OIDC identity for a short-lived upload token (masked at once)."""
    audience_url = _origin(upload_url, "/_/oidc/audience")

    def get_audience() -> requests.Response:
        r = requests.get(audience_url, timeout=30)
        if r.status_code >= 500 or r.status_code == 429:
            raise HttpStatusError(r)
        return r

    answer = call_with_retry(get_audience, what=audience_url, classify=classify, policy=policy)
    if answer.status_code != 200:
        raise InputError(
            f"{audience_url}: the index does not offer Trusted Publishing ({answer.status_code})",
            hint="use --pypi-token instead",
        )
    try:
        audience = str(answer.json()["audience"])
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f"{audience_url}: the index answered without an OIDC audience",
            hint="the index does not offer Trusted Publishing; use --pypi-token",
        ) from None
    oidc = (id_token or _actions_id_token)(audience)
    gha.mask(oidc)
    problems = preflight_claims(decode_claims(oidc).raw)
    if problems:
        raise InputError("trusted publishing: " + "; ".join(problems))
    mint_url = _origin(upload_url, "/_/oidc/mint-token")

    def mint() -> requests.Response:
        r = requests.post(mint_url, json={"token": oidc}, timeout=30)
        if r.status_code >= 500 or r.status_code == 429:
            raise HttpStatusError(r)
        return r

    minted = call_with_retry(mint, what=mint_url, classify=classify, policy=policy)
    try:
        doc = minted.json()
    except ValueError:
        doc = {}
    if minted.status_code != 200 or not doc.get("token"):
        reasons = "; ".join(
            f"{e.get('code')}: {e.get('description')}" for e in doc.get("errors", [])
        ) or str(doc.get("message") or minted.status_code)
        raise InputError(
            f"trusted publishing: {mint_url} refused the token: {reasons}",
            hint="check the trusted publisher on the index (owner, repository, workflow file, "
            "environment) against this job's claims",
        )
    token = str(doc["token"])
    gha.mask(token)
    return token


def _actions_id_token(audience: str) -> str:
    """The runner's OIDC token for ``audience`` (needs ``permissions: id-token: write``)."""
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise InputError(
            "trusted publishing needs an OIDC token: ACTIONS_ID_TOKEN_REQUEST_URL is not set",
            hint="give the job `permissions: id-token: write`, or use --pypi-token",
        )
    gha.mask(bearer)
    sep = "&" if "?" in url else "?"

    def fetch() -> requests.Response:
        r = requests.get(
            f"{url}{sep}audience={quote(audience, safe='')}",
            headers={"Authorization": f"bearer {bearer}"},
            timeout=30,
        )
        if r.status_code >= 500 or r.status_code == 429:
            raise HttpStatusError(r)
        return r

    answer = call_with_retry(fetch, what="OIDC token request", classify=classify)
    if answer.status_code != 200:
        raise InputError(f"OIDC token request refused ({answer.status_code})")
    try:
        return str(answer.json()["value"])
    except (ValueError, KeyError, TypeError):
        raise ServiceError(
            f"the runner's OIDC endpoint answered {answer.status_code} without a token",
            hint="re-run the job; check `permissions: id-token: write`",
        ) from None
