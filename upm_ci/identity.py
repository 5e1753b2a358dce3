"""Who signs a release: the one home of the expected signer.

- :class:`ExpectedSigner`, the one type for whom a release must be signed by (sign, verify,
  publish, trust and the image all take it; :mod:`upm_ci.sigstore_common` checks a
  certificate against it), :data:`DEFAULT_RELEASE_WORKFLOW` and :func:`tag_ref`, the one rule
  a tag becomes a ref by.
- Every construction of it: for signing from the token (:func:`expected_signer`,
  :func:`signer_for_token`), for verifying (:func:`verification_signer`,
  :func:`release_signer`), the hand-off (:func:`handoff_signer`), the release notes
  (:func:`notes_signer`, from the sign phase's :class:`RecordedSigner`) and the Artifact Trust
  Policy's official signers (:func:`official_signers`).
- The OIDC token's claims, the identity its certificate will carry, and a preflight that
  refuses untrusted triggers before anything is signed or published.

Fulcio puts ``https://github.com/<job_workflow_ref>`` in a GitHub Actions certificate, so
a release signed from a reusable workflow (upm-release.yml) carries the *called* workflow's
identity, while the *caller's* repository and ref go into the certificate's source-repository
extensions (and PyPI Trusted Publishing matches the job's ``job_workflow_ref``, so it cannot
trust the called workflow). The same reusable workflow called from any other repository gets
the same SAN, so an expected signer is always the SAN **and** the caller's repository and ref.
Tokens are never echoed: messages name claims, not the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from upm_ci import gha
from upm_ci.errors import InputError, PolicyError, ServiceError

__all__ = [
    "DEFAULT_RELEASE_WORKFLOW",
    "GITHUB_ISSUER",
    "SIGSTORE_AUDIENCE",
    "UPM_RELEASE_IDENTITY",
    "REUSABLE",
    "ExpectedSigner",
    "RecordedSigner",
    "TokenClaims",
    "ambient_token",
    "certificate_identity",
    "decode_claims",
    "expected_signer",
    "handoff_signer",
    "load_event",
    "notes_signer",
    "official_signers",
    "pinned_signer",
    "preflight",
    "release_signer",
    "signer_for_token",
    "tag_ref",
    "verification_signer",
    "workflow_identity",
]

log = logging.getLogger(__name__)

#: The OIDC issuer of GitHub Actions' tokens (the issuer every GitHub signer is held to).
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
#: The workflow whose identity signs a release unless ``release-workflow`` names another.
DEFAULT_RELEASE_WORKFLOW = ".github/workflows/release.yml"
SIGSTORE_AUDIENCE = "sigstore"
#: Triggers whose runs may execute code from outside the repository with its secrets.
UNTRUSTED_TRIGGERS = {
    "pull_request_target": "runs with the base repository's secrets on a pull request's code",
    "workflow_run": "is started by another workflow, possibly one a fork's pull request ran",
}
_CLOCK_SKEW = 60
#: The SAN of every signature made in upm-release's reusable workflow, at any upm-release ref
#: (a glob): only ever accepted together with the caller's repository (and ref).
UPM_RELEASE_IDENTITY = (
    "https://github.com/unexpected/upm-release/.github/workflows/upm-release.yml@*"
)


def tag_ref(tag: str) -> str:
    """The git ref of a release tag: ``v1.2.0`` -> ``refs/tags/v1.2.0``; a full ref (``refs/...``)
    stays as it is. The one rule every tag becomes a ref by."""
    return tag if tag.startswith("refs/") else f"refs/tags/{tag}"


def workflow_identity(repository: str, workflow_path: str, ref: str) -> str:
    """The certificate identity of ``workflow_path`` in ``repository`` run at ``ref``."""
    return f"https://github.com/{repository}/{workflow_path}@{ref}"


@dataclass(frozen=True)
class TokenClaims:
    """The claims of an OIDC identity token (signature unchecked: Fulcio checks it)."""

    raw: dict[str, Any]

    def _text(self, key: str) -> str:
        value = self.raw.get(key)
        return value if isinstance(value, str) else ""

    @property
    def issuer(self) -> str:
        return self._text("iss")

    @property
    def subject(self) -> str:
        return self._text("sub")

    @property
    def audiences(self) -> list[str]:
        aud = self.raw.get("aud")
        if isinstance(aud, str):
            return [aud]
        return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []

    @property
    def repository(self) -> str:
        return self._text("repository")

    @property
    def repository_owner(self) -> str:
        return self._text("repository_owner")

    @property
    def ref(self) -> str:
        return self._text("ref")

    @property
    def sha(self) -> str:
        return self._text("sha")

    @property
    def event_name(self) -> str:
        return self._text("event_name")

    @property
    def workflow_ref(self) -> str:
        return self._text("workflow_ref")

    @property
    def job_workflow_ref(self) -> str:
        return self._text("job_workflow_ref")

    @property
    def runner_environment(self) -> str:
        return self._text("runner_environment")

    @property
    def run_id(self) -> str:
        return str(self.raw.get("run_id", ""))

    @property
    def run_attempt(self) -> str:
        return str(self.raw.get("run_attempt", ""))

    @property
    def expires_at(self) -> int | None:
        exp = self.raw.get("exp")
        return exp if isinstance(exp, int) and not isinstance(exp, bool) else None

    @property
    def is_github_actions(self) -> bool:
        return self.issuer == GITHUB_ISSUER

    @property
    def workflow_path(self) -> str:
        """``.github/workflows/release.yml`` from ``workflow_ref`` (the calling workflow)."""
        return _path_of(self.workflow_ref, self.repository)


@dataclass(frozen=True)
class ExpectedSigner:
    """Who must have signed: the certificate's identity (SAN) and OIDC issuer, pinned to the
    source repository and ref, and optionally the trigger.

    ``repository`` and ``ref`` are the caller's ``repository`` and ``ref`` claims, which Fulcio
    records in the certificate (GitHub Workflow Repository/Ref extensions, as checked by
    ``sigstore verify github --repository --ref``). Empty means not pinned. ``identity`` may
    contain ``*`` (e.g. ``...release.yml@refs/tags/*``: any tag); then it is matched as a glob
    against the certificate's SANs. ``alternatives`` are identities also accepted in its place
    (e.g. upm-release's reusable workflow); the repository, ref and trigger pins apply
    whichever identity signed. Checked against a certificate by
    :mod:`upm_ci.sigstore_common` (``verification_policy``, ``signer_mismatches``).
    """

    identity: str
    repository: str = ""
    ref: str = ""
    issuer: str = GITHUB_ISSUER
    trigger: str = ""
    alternatives: tuple[str, ...] = ()

    @property
    def reusable(self) -> bool:
        """True when the SAN is not a workflow of the pinned repository (a called workflow)."""
        return bool(self.repository) and not self.identity.startswith(
            f"https://github.com/{self.repository}/"
        )

    def describe(self) -> str:
        pins = [f"repository {self.repository}"] if self.repository else []
        pins += [f"ref {self.ref}"] if self.ref else []
        return self.identity + (f" ({', '.join(pins)})" if pins else "")

    def fields(self) -> dict[str, str]:
        """The pins that are set, by name (a verify report's ``policy``)."""
        return {
            k: ", ".join(v) if isinstance(v, (tuple, list)) else v
            for k, v in asdict(self).items()
            if v
        }


def release_signer(
    repository: str,
    ref: str,
    *,
    workflow: str = DEFAULT_RELEASE_WORKFLOW,
    trigger: str = "",
    issuer: str = GITHUB_ISSUER,
) -> ExpectedSigner:
    """The release workflow of ``repository`` at ``ref`` (a tag name or a full ref)."""
    full_ref = tag_ref(ref)
    return ExpectedSigner(
        identity=workflow_identity(repository, workflow, full_ref),
        repository=repository,
        ref=full_ref,
        issuer=issuer,
        trigger=trigger,
    )


def expected_signer(
    claims: TokenClaims,
    *,
    repository: str,
    tag: str,
    release_workflow: str,
    identity: str | None = None,
    dry_run: bool = False,
) -> ExpectedSigner:
    """The signer a release of ``repository`` at ``tag`` must have, given the signing token.

    ``identity`` (``--expected-identity``) wins. Else a job in a called (reusable) workflow,
    ``job_workflow_ref`` != ``workflow_ref``, expects the called workflow's identity, as Fulcio
    will certify it; any other job expects ``release_workflow`` of ``repository`` at the tag.
    Either way the repository and the tag are pinned, so the same reusable workflow called
    from another repository, or at another ref, never passes. A dry run (a rehearsal from a
    branch, before the tag exists) pins the ref that ran instead: its signatures are for trying
    the release, and never verify as the tag's.
    """
    ref = claims.ref if dry_run and claims.ref else tag_ref(tag)
    if not identity:
        called = claims.job_workflow_ref
        if claims.is_github_actions and called and called != claims.workflow_ref:
            identity = f"https://github.com/{called}"
        else:
            identity = workflow_identity(repository, release_workflow, ref)
    return ExpectedSigner(identity=identity, repository=repository, ref=ref)


def pinned_signer(signer: str | ExpectedSigner, *, repository: str, tag: str) -> ExpectedSigner:
    """``signer`` as is, or a plain certificate identity pinned to ``repository`` and ``tag``."""
    if isinstance(signer, ExpectedSigner):
        return signer
    return ExpectedSigner(identity=signer, repository=repository, ref=tag_ref(tag))


def signer_for_token(
    token: str,
    *,
    repository: str,
    tag: str,
    release_workflow: str,
    source: Path,
    identity: str | None = None,
    dry_run: bool = False,
) -> ExpectedSigner:
    """Who the release's signatures must come from, for the signing ``token`` (see
    :func:`expected_signer`); ``source``: where the repository is configured (its
    ``pyproject.toml``), named when the repository is unknown."""
    if not repository:
        raise InputError(
            f"{source}: the GitHub repository is unknown",
            hint="set [tool.upm-release] repository, $GITHUB_REPOSITORY or a github.com origin",
        )
    return expected_signer(
        decode_claims(token),
        repository=repository,
        tag=tag,
        release_workflow=release_workflow,
        identity=identity,
        dry_run=dry_run,
    )


#: ``--expect-signer`` for a release signed in upm-release's reusable workflow.
REUSABLE = "reusable"


def handoff_signer(value: str, *, repository: str, tag: str) -> ExpectedSigner:
    """``--expect-signer``: ``reusable`` or an ``https://`` certificate identity, pinned to
    ``repository`` and ``tag``; InputError for anything else."""
    if "/" not in repository:
        raise InputError(
            f"--expect-signer: repository {repository!r} is not owner/name",
            hint="pass --repository owner/name (the repository that released)",
        )
    ref = tag_ref(tag)
    if value == REUSABLE:
        return ExpectedSigner(identity=UPM_RELEASE_IDENTITY, repository=repository, ref=ref)
    if value.startswith("https://") and " " not in value:
        return ExpectedSigner(identity=value, repository=repository, ref=ref)
    raise InputError(
        f"--expect-signer {value!r}: not {REUSABLE!r} or an https:// certificate identity",
        hint=f"pass {REUSABLE!r} for a release signed by upm-release's reusable workflow",
    )


@dataclass(frozen=True)
class RecordedSigner:
    """Who signed the release, as the sign phase recorded it in the manifest: the expected
    signer (exact certificate identity, pinned repository and ref), and the trigger, runner
    and commit of the signing job (``Manifest.recorded_signer``)."""

    expected: ExpectedSigner
    trigger: str = ""
    runner_environment: str = ""
    #: The commit the workflow ran at (the token's ``sha``, the certificate's source digest).
    sha: str = ""


def notes_signer(
    recorded: RecordedSigner | None, *, repository: str, tag: str, release_workflow: str
) -> RecordedSigner:
    """The signer the release notes name: what sign recorded (the reusable workflow's
    identity when it signed there), else ``release_workflow`` at the tag; always pinned to a
    repository and the tag's ref."""
    if recorded is None:
        recorded = RecordedSigner(ExpectedSigner(identity=""))
    exp = recorded.expected
    ref = exp.ref or tag_ref(tag)
    expected = ExpectedSigner(
        identity=exp.identity or workflow_identity(repository, release_workflow, ref),
        repository=exp.repository or repository,
        ref=ref,
        issuer=exp.issuer or GITHUB_ISSUER,
    )
    return RecordedSigner(expected, recorded.trigger, recorded.runner_environment, recorded.sha)


def verification_signer(
    *,
    repository: str,
    tag: str,
    release_workflow: str = "",
    recorded: ExpectedSigner | None = None,
    workflow: str | None = None,
    trigger: str | None = None,
    identity: str | None = None,
    issuer: str = GITHUB_ISSUER,
) -> ExpectedSigner:
    """Who must have signed a release ``upm-ci verify`` checks. A GitHub identity is always
    pinned to ``repository`` (the caller resolves it: ``--repository``, else the manifest's,
    the project's, or ``$GITHUB_REPOSITORY``).

    ``identity`` (``--identity``) wins, pinned to ``tag`` when one is given. Else the signer
    sign ``recorded`` in the manifest when it is for this repository and tag (and no
    ``workflow`` is asked for), else ``workflow`` (or ``release_workflow``, or the default) at
    the tag, or upm-release's reusable workflow (any of its refs) when no ``workflow`` is
    asked for, both only for that repository and tag.
    """
    if identity:
        if not repository and issuer == GITHUB_ISSUER:
            raise InputError(
                "verify: --identity names no repository: a reusable workflow's identity is the"
                " same for every repository that calls it",
                hint="also pass --repository owner/name (the repository that released)",
            )
        return ExpectedSigner(
            identity=identity,
            issuer=issuer,
            repository=repository if issuer == GITHUB_ISSUER else "",
            ref=tag_ref(tag) if tag else "",
            trigger=trigger or "",
        )
    if not repository or not tag:
        raise InputError(
            "verify: cannot tell which identity must have signed",
            hint="pass --repository owner/name and --ref TAG (or --identity), or --project",
        )
    full_ref = tag_ref(tag)
    if (
        recorded is not None
        and recorded.identity
        and not workflow
        and recorded.repository == repository
        and recorded.ref == full_ref
    ):
        # The sign phase recorded exactly whom it expected for this repository and tag.
        return ExpectedSigner(
            identity=recorded.identity,
            issuer=issuer,
            repository=repository,
            ref=full_ref,
            trigger=trigger or "",
        )
    signer = release_signer(
        repository,
        tag,
        workflow=workflow or release_workflow or DEFAULT_RELEASE_WORKFLOW,
        trigger=trigger or "",
        issuer=issuer,
    )
    if workflow:
        return signer
    return replace(signer, alternatives=(UPM_RELEASE_IDENTITY,))


def official_signers(
    repository: str, release_workflow: str | None, official_identities: Sequence[str]
) -> list[ExpectedSigner]:
    """The Artifact Trust Policy's official signers: this repository's release workflow
    (``release_workflow``, None or "": the default) at any tag, upm-release's reusable
    workflow run for this repository, plus the configured identities.

    A configured entry is ``IDENTITY from OWNER/REPO`` (GitHub Actions issuer, signed in a run
    of OWNER/REPO), or a plain ``IDENTITY``, then pinned to ``repository`` (an InputError when
    it is unknown), or ``IDENTITY|ISSUER`` for another OIDC issuer (an e-mail, say: nothing to
    pin). ``*`` in the identity matches anything.
    """
    policies: list[ExpectedSigner] = []
    if repository:
        identity = workflow_identity(
            repository, release_workflow or DEFAULT_RELEASE_WORKFLOW, tag_ref("*")
        )
        policies.append(ExpectedSigner(identity=identity, repository=repository))
        policies.append(ExpectedSigner(identity=UPM_RELEASE_IDENTITY, repository=repository))
    for entry in official_identities:
        policies.append(_official_entry(entry, repository))
    return policies


def _official_entry(entry: str, repository: str) -> ExpectedSigner:
    text, sep, pinned = entry.strip().rpartition(" from ")
    if not sep:
        text, pinned = entry.strip(), ""
    identity, _, issuer = text.partition("|")
    identity, issuer, pinned = identity.strip(), issuer.strip() or GITHUB_ISSUER, pinned.strip()
    where = f"official-identities: {entry!r}"
    if not identity:
        raise InputError(f"{where}: no identity", hint="write 'IDENTITY from OWNER/REPO'")
    if issuer != GITHUB_ISSUER:
        if pinned:
            raise InputError(f"{where}: only GitHub Actions identities have a repository")
        return ExpectedSigner(identity=identity, issuer=issuer)
    pinned = pinned or repository
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", pinned):
        raise InputError(
            f"{where}: names no repository, and the project's is unknown: the same workflow"
            " identity signs for every repository that runs it",
            hint=f"write '{identity} from OWNER/REPO'",
        )
    return ExpectedSigner(identity=identity, issuer=issuer, repository=pinned)


def _path_of(workflow_ref: str, repository: str) -> str:
    path = workflow_ref.split("@", 1)[0]
    return path.removeprefix(f"{repository}/") if repository else path


def certificate_identity(claims: TokenClaims) -> str:
    """The SAN Fulcio will put in the certificate for this token."""
    if claims.is_github_actions and claims.job_workflow_ref:
        return f"https://github.com/{claims.job_workflow_ref}"
    return claims.subject


def decode_claims(token: str) -> TokenClaims:
    """Decode a JWT's payload without checking its signature; InputError if not a JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts):
        raise InputError(
            "identity token: not a JWT (expected three dot-separated parts)",
            hint="pass the OIDC token itself in UPM_IDENTITY_TOKEN, or leave it unset on Actions",
        )
    payload = parts[1]
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InputError(
            "identity token: its payload is not base64url JSON",
            hint="pass an unmodified OIDC token",
        ) from None
    if not isinstance(data, dict):
        raise InputError("identity token: its payload is not a JSON object")
    return TokenClaims(raw=data)


def load_event(path: str | None = None) -> dict[str, Any] | None:
    """The triggering event's payload (``$GITHUB_EVENT_PATH``), or None when unavailable."""
    where = path or os.environ.get("GITHUB_EVENT_PATH")
    if not where:
        return None
    try:
        data = json.loads(Path(where).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fork_of(event: Mapping[str, Any] | None, repository: str) -> str | None:
    """The fork's ``owner/name`` if the pull request comes from one; "" if not; None unknown."""
    if event is None:
        return None
    pull = event.get("pull_request")
    head = pull.get("head") if isinstance(pull, dict) else None
    repo = head.get("repo") if isinstance(head, dict) else None
    if not isinstance(repo, dict):
        return None
    name = str(repo.get("full_name", ""))
    if repo.get("fork") is True or (name and name != repository):
        return name or "a fork"
    return ""


def preflight(
    claims: TokenClaims,
    *,
    expected_identity: str | None,
    expected_repository: str | None,
    event: Mapping[str, Any] | None = None,
    now: float | None = None,
    expected_ref: str | None = None,
) -> list[str]:
    """Everything that makes this token unfit to sign the release, as one sentence each.

    ``event`` is the triggering event's payload (``load_event()``): for ``pull_request`` it
    tells whether the code comes from a fork; without it such a run is refused (fail closed).
    """
    problems: list[str] = []
    if claims.issuer != GITHUB_ISSUER:
        problems.append(
            f"token issuer is {claims.issuer or '(none)'!r}, not GitHub Actions ({GITHUB_ISSUER}):"
            " releases are signed by the release workflow only"
        )
    if SIGSTORE_AUDIENCE not in claims.audiences:
        problems.append(
            f"token audience is {claims.audiences or '(none)'}, not {SIGSTORE_AUDIENCE!r}:"
            " Fulcio refuses it; request the token for audience 'sigstore'"
        )
    current = time.time() if now is None else now
    if claims.expires_at is None:
        problems.append("token has no 'exp' claim: Fulcio refuses it")
    elif claims.expires_at <= current:
        problems.append(
            f"token expired {int(current - claims.expires_at)} s ago: request a fresh one"
        )
    nbf = claims.raw.get("nbf")
    if isinstance(nbf, int) and nbf > current + _CLOCK_SKEW:
        problems.append("token is not valid yet ('nbf' is in the future): check the clock")
    event_name = claims.event_name
    if event_name in UNTRUSTED_TRIGGERS:
        problems.append(
            f"untrusted trigger {event_name!r}: it {UNTRUSTED_TRIGGERS[event_name]};"
            " sign releases from a tag push (on: push: tags) instead"
        )
    elif event_name == "pull_request":
        fork = _fork_of(event, claims.repository)
        if fork is None:
            problems.append(
                "trigger 'pull_request' and the event payload ($GITHUB_EVENT_PATH) cannot be"
                " read, so a fork's code cannot be ruled out: sign from a tag push instead"
            )
        elif fork:
            problems.append(
                f"untrusted trigger: a pull request from the fork {fork}; a fork's code never"
                " signs a release: sign from a tag push instead"
            )
    if expected_repository and claims.repository != expected_repository:
        problems.append(
            f"token is for repository {claims.repository or '(none)'!r}, but the release is of"
            f" {expected_repository!r}: run the release workflow in {expected_repository}"
        )
    if expected_ref and claims.ref != expected_ref:
        problems.append(
            f"token is for ref {claims.ref or '(none)'!r}, but the release is {expected_ref!r}:"
            " run the release workflow on a push of that tag"
        )
    cert_identity = certificate_identity(claims)
    if expected_identity and cert_identity != expected_identity:
        if claims.job_workflow_ref and claims.job_workflow_ref != claims.workflow_ref:
            problems.append(
                f"signing from the reusable workflow {claims.job_workflow_ref}: the certificate"
                f" will carry {cert_identity}, but verify expects {expected_identity} (and PyPI"
                " Trusted Publishing takes only a job of the calling workflow"
                f" {claims.workflow_path!r}, never one of the called workflow);"
                " leave --expected-identity unset (the called workflow is then expected, pinned"
                " to this repository and tag), or sign in the calling workflow"
            )
        else:
            problems.append(
                f"the certificate will carry {cert_identity or '(no identity)'}, but verify"
                f" expects {expected_identity}: run the workflow set as release-workflow at the"
                " release tag, or pass the right --expected-identity"
            )
    return problems


def ambient_token() -> str | None:
    """The runner's OIDC token for Sigstore, or None outside a CI that provides one.

    On GitHub Actions without ``permissions: id-token: write`` this is a PolicyError that
    says so. Transient failures of the token endpoint are retried.
    """
    if gha.in_actions() and not (
        os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
        and os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    ):
        raise PolicyError(
            "GitHub Actions gave this job no OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL is unset)",
            hint="add `permissions: id-token: write` to the signing job",
        )
    from sigstore.oidc import IdentityError, detect_credential

    from upm_ci.retry import call_with_retry, classify_http

    def classify(exc: BaseException) -> float | None:
        if not isinstance(exc, IdentityError):
            return None
        text = str(exc)
        if "timed out" in text:
            return 0.0
        m = re.search(r"code=(\d{3})", text)
        return classify_http(int(m.group(1)), {}) if m else None

    try:
        token = call_with_retry(detect_credential, what="OIDC token request", classify=classify)
    except IdentityError as e:
        raise ServiceError(f"OIDC token request failed: {str(e).splitlines()[0]}") from None
    if token:
        gha.mask(token)
    return token
