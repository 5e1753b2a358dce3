"""Phase 4: sign the release: keyless Sigstore bundles, SLSA provenance, SBOM attestation, GPG.

One ephemeral key and one Fulcio certificate sign the whole release (``ReleaseSigner``);
independent files are signed concurrently (sigstore-python's Rekor and TSA clients keep a
session per thread), and every bundle is verified against the expected identity before it is
written. Transient Fulcio/Rekor/TSA failures (5xx, 429, resets) are retried, 4xx never.

Files written next to each subject, all verifiable with ``sigstore verify identity``:

- ``<file>.sigstore.json``: a Sigstore bundle for every distribution, SBOM, ``SHA256SUMS``,
  project manifest (config ``sign-files``) and, with ``sign-plugins``, plugin file.
- ``<name>-<version>.intoto.jsonl``: SLSA v1 provenance over the distributions (GitHub's
  ``workflow/v1`` build type, as actions/attest-build-provenance writes it), a DSSE bundle
  serialised on one line: what ``gh attestation verify --bundle`` reads. Scorecard's
  Signed-Releases check looks for ``.intoto.jsonl``;
  ``sigstore verify identity --bundle <name>-<version>.intoto.jsonl <wheel>`` accepts it,
  because sigstore-python verifies a DSSE bundle and then requires the file's digest to be
  one of the statement's subjects.
- ``<wheel>.cdx.intoto.jsonl``: the CycloneDX SBOM as an in-toto attestation bound to the
  wheel's digest (same format and same ``sigstore verify`` use).
- ``<dist>.publish.attestation``: a PEP 740 publish attestation of each distribution
  (pypi-attestations' format, which twine uploads with ``--attestations``). Its log entry is
  always a Rekor v1 one, whatever ``--rekor-version`` says: the format carries no RFC 3161
  timestamps yet (pypi/pypi-attestations#142), so a Rekor v2 entry could not be verified by
  anyone, PyPI included. With no Rekor v1 log in the trust config none are made (warned).
- With a GPG key: ``<file>.asc`` for distributions, SBOMs and ``SHA256SUMS`` (RELEASE.md:
  ``gpg --detach-sign --armor``) and the public key as ``<name>-<version>.pub.asc``.

A re-run keeps every bundle that still verifies for the subject's current digest.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from upm_ci import __version__, gha, identity, provenance
from upm_ci.errors import InputError, PolicyError, ServiceError, UpmError
from upm_ci.gpg import GpgSigner
from upm_ci.identity import GITHUB_ISSUER
from upm_ci.layout import (
    ATTESTATION_SUFFIX,
    BUNDLE_SUFFIX,
    CHECKSUMS,
    GPG_KEY_SUFFIX,
    GPG_SIG_SUFFIX,
    PEP740_SUFFIX,
    RELEASE_STATEMENT,
    SBOM_ATTESTATION_SUFFIX,
    TOOLCHAIN_SBOM,
    VSA_PREDICATE_TYPE,
    check_dist_dir_inside,
    check_plain_name,
    confined_file,
    release_file_name,
    sha256_file,
)
from upm_ci.manifest import (
    Artifact,
    AttestationRecord,
    Manifest,
    SignatureRecord,
    utcnow,
    write_text_atomic,
)
from upm_ci.project import Project
from upm_ci.retry import (
    RetryPolicy,
    call_with_retry,
)
from upm_ci.sigstore_common import (
    PYPI_PUBLISH_V1,
    MissingTimestamp,
    classify_sigstore,
    first_line,
    has_timestamp,
    hashed_sha256,
    load_trust_config,
    log_index,
    verify_bundle,
    verify_pep740,
)

if TYPE_CHECKING:
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import Signer, SigningContext
    from sigstore.verify import Verifier
    from sigstore.verify.policy import VerificationPolicy

    from upm_ci.image.attest import ImageSigned

log = logging.getLogger(__name__)

#: Kinds that get a Sigstore bundle of their own (from the manifest, or copied in by sign).
GPG_KINDS = ("sdist", "wheel", "sbom", "checksums")
PEP740_KINDS = ("sdist", "wheel")
DEFAULT_WORKERS = 64


# --------------------------------------------------------------------------- ReleaseSigner


class ReleaseSigner:
    """One ephemeral key and one certificate for a whole release.

    ``with ReleaseSigner(token, trust_config=..., expected_identity=...) as signer:`` then
    ``signer.sign_file(path)`` writes and returns ``<path>.sigstore.json``, and
    ``signer.sign_statement(statement)`` returns a DSSE bundle's JSON. Both verify what they
    made against the expected identity first, and are safe to call from several threads.
    """

    def __init__(
        self,
        identity_token: str,
        *,
        expected_identity: str,
        trust_config: Path | None = None,
        rekor_version: int | None = None,
        issuer: str = GITHUB_ISSUER,
        retry: RetryPolicy | None = None,
        source_repository: str = "",
        source_ref: str = "",
    ) -> None:
        """``source_repository``/``source_ref``: also pin the certificate's GitHub workflow
        repository and ref (a reusable workflow's SAN is the same for every caller)."""
        gha.mask(identity_token)
        self._token = identity_token
        self.expected_identity = expected_identity
        self.issuer = issuer
        self.source_repository = source_repository
        self.source_ref = source_ref
        self._trust_config_path = trust_config
        self._rekor_version = rekor_version
        self._retry = retry
        self._signer: Signer | None = None
        self._pep740_signer: Signer | None = None
        self._pep740_context: SigningContext | None = None
        self._release_on_v1 = False
        self._verifier: Verifier | None = None
        self._policy: VerificationPolicy | None = None
        self._tsa_expected = False
        self._context: SigningContext | None = None
        self._identity: IdentityToken | None = None
        self._lock = threading.Lock()
        self._failure: UpmError | None = None
        self._signers = contextlib.ExitStack()

    def __enter__(self) -> ReleaseSigner:
        from sigstore.oidc import IdentityError, IdentityToken
        from sigstore.sign import SigningContext
        from sigstore.verify import policy

        from upm_ci.sigstore_common import make_verifier, verification_policy

        config = load_trust_config(self._trust_config_path, self._rekor_version)
        context = SigningContext.from_trust_config(config)
        self._tsa_expected = bool(config.signing_config.get_tsas())
        # Every bundle is verified right after signing, by sigstore's own Verifier.
        self._verifier = make_verifier(config.trusted_root)
        self._policy = (
            verification_policy(
                identity.ExpectedSigner(
                    identity=self.expected_identity,
                    issuer=self.issuer,
                    repository=self.source_repository,
                    ref=self.source_ref,
                )
            )
            if self.source_repository or self.source_ref
            else policy.Identity(identity=self.expected_identity, issuer=self.issuer)
        )
        self._pep740_context, self._release_on_v1 = _pep740_context(config)
        try:
            self._identity = IdentityToken(self._token)
        except IdentityError as e:
            raise InputError(f"identity token: refused by sigstore: {first_line(e)}") from None
        self._context = context
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._signer = None
        self._pep740_signer = None
        self._context = None
        self._signers.close()

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            raise RuntimeError("ReleaseSigner is not entered")
        return self._verifier

    @property
    def policy(self) -> VerificationPolicy:
        """The expected identity as one policy object (see ``verify_bundle``)."""
        if self._policy is None:
            raise RuntimeError("ReleaseSigner is not entered")
        return self._policy

    @property
    def pep740_available(self) -> bool:
        """True when the trust config has the Rekor v1 log PEP 740 attestations need."""
        return self._pep740_context is not None

    def _call(self, fn: Any, what: str) -> Any:
        from sigstore.errors import Error as SigstoreError

        try:
            return call_with_retry(fn, what=what, classify=classify_sigstore, policy=self._retry)
        except ServiceError:
            raise
        except (SigstoreError, OSError, ValueError) as e:
            raise ServiceError(f"{what}: refused: {first_line(e)}") from None
        except Exception as e:  # noqa: BLE001 - sigstore's client errors share no base class
            if type(e).__module__.startswith(("sigstore", "requests", "urllib3")):
                raise ServiceError(f"{what}: refused, not retried: {_describe(e)}") from None
            raise

    def _checked(self, bundle: Bundle) -> Bundle:
        if self._tsa_expected and not has_timestamp(bundle):
            raise MissingTimestamp("the timestamp authority did not answer")
        return bundle

    def _new_signer(self, context: SigningContext) -> Signer:
        """A signer of ``context``: one ephemeral key and one Fulcio certificate, asked now."""
        if self._identity is None:
            raise RuntimeError("ReleaseSigner is not entered")
        token = self._identity
        # cache=True (the default): one key and certificate for all files (False is broken).
        signer: Signer = self._call(
            lambda: self._signers.enter_context(context.signer(token)), "Fulcio certificate"
        )
        return signer

    def _active(self) -> Signer:
        """The signer, created on first use: a resumed release needs no new certificate."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._signer is None:
                if self._context is None:
                    raise RuntimeError("ReleaseSigner is not entered")
                try:
                    self._signer = self._new_signer(self._context)
                except UpmError as e:
                    self._failure = e  # the other threads fail with it, not ask again
                    raise
            return self._signer

    def sign_file(
        self, path: Path, bundle_path: Path | None = None, *, sha256: str | None = None
    ) -> Path:
        """Sign ``path``, verify, write ``<path>.sigstore.json`` atomically; return its path.

        ``sha256``: the digest the manifest recorded; a file that no longer has it is refused
        (the bytes signed are the bytes hashed here, once).
        """
        digest = sha256_file(path)
        if sha256 is not None and digest != sha256:
            raise PolicyError(
                f"{path.name}: changed after it was recorded in the manifest",
                hint="rebuild; never sign altered files",
            )
        signer = self._active()
        bundle = self._call(
            lambda: self._checked(signer.sign_artifact(hashed_sha256(digest))),
            f"Sigstore signing of {path.name}",
        )
        verify_bundle(
            bundle,
            verifier=self.verifier,
            identity=self.expected_identity,
            issuer=self.issuer,
            subject_sha256=digest,
            what=f"{path.name}{BUNDLE_SUFFIX}",
            policy=self.policy,
        )
        out = bundle_path or path.with_name(path.name + BUNDLE_SUFFIX)
        write_text_atomic(out, bundle.to_json())
        return out

    def _pep740(self) -> Signer:
        """The signer submitting to the Rekor v1 log: the release's own when the release
        signs with Rekor v1; else a second signer of the v1 context (sigstore-python has no
        public way to sign with one key and certificate through two logs), so a Rekor v2
        release's attestations carry a second certificate for the same identity."""
        base = self._active()
        with self._lock:
            if self._pep740_signer is None:
                if self._pep740_context is None:
                    raise PolicyError(
                        "PEP 740 attestations need a Rekor v1 log in the trust config"
                    )
                if self._release_on_v1:
                    self._pep740_signer = base
                else:
                    try:
                        self._pep740_signer = self._new_signer(self._pep740_context)
                    except UpmError as e:
                        self._failure = e  # the other threads fail with it, not ask again
                        raise
            return self._pep740_signer

    def sign_pep740(self, path: Path, out: Path | None = None) -> Path:
        """Write ``<dist>.publish.attestation`` (PEP 740) for a distribution, verified first."""
        from pypi_attestations import Attestation

        digest = sha256_file(path)
        dist = pep740_distribution(path.name, digest)
        signer = self._pep740()
        attestation = self._call(
            lambda: Attestation.sign(signer, dist), f"PEP 740 attestation of {path.name}"
        )
        text = attestation.model_dump_json()
        out = out or path.with_name(path.name + PEP740_SUFFIX)
        self._verify_pep740(text.encode(), path.name, digest, what=out.name)
        write_text_atomic(out, text)
        return out

    def _verify_pep740(self, raw: bytes, dist_name: str, digest: str, *, what: str) -> None:
        try:
            verify_pep740(raw, dist_name, digest, verifier=self.verifier, policy=self.policy)
        except PolicyError as e:
            raise PolicyError(
                f"{what}: does not verify for {self.expected_identity} ({self.issuer}): {e}",
                hint="the signing identity must be the release workflow at the release tag",
            ) from None

    def existing_pep740_verifies(self, attestation: Path, dist_name: str, digest: str) -> bool:
        """True if ``attestation`` exists and verifies for this file, digest and identity."""
        if not attestation.is_file():
            return False
        try:
            self._verify_pep740(attestation.read_bytes(), dist_name, digest, what=attestation.name)
        except PolicyError as e:
            log.info("%s: re-signing (%s)", attestation.name, first_line(e))
            return False
        return True

    def sign_files(self, paths: list[Path], *, workers: int = DEFAULT_WORKERS) -> list[Path]:
        """Sign independent files concurrently (one thread per file, up to ``workers``)."""
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(paths)))) as pool:
            return list(pool.map(self.sign_file, paths))

    def sign_statement(
        self, statement: Mapping[str, Any] | bytes, *, what: str = "statement"
    ) -> str:
        """Sign an in-toto statement as DSSE, verify it, and return the bundle's JSON."""
        from sigstore import dsse
        from sigstore.errors import Error as SigstoreError

        raw = statement if isinstance(statement, bytes) else json.dumps(statement).encode()
        try:
            parsed = dsse.Statement(raw)
        except SigstoreError as e:
            raise InputError(f"{what}: not an in-toto statement: {first_line(e)}") from None
        signer = self._active()
        bundle = self._call(lambda: self._checked(signer.sign_dsse(parsed)), f"signing {what}")
        verify_bundle(
            bundle,
            verifier=self.verifier,
            identity=self.expected_identity,
            issuer=self.issuer,
            what=what,
            policy=self.policy,
        )
        return str(bundle.to_json())

    def existing_bundle_verifies(self, bundle_path: Path, subject_sha256: str) -> bool:
        """True if ``bundle_path`` exists and verifies for this digest and identity (resume)."""
        from sigstore.models import Bundle

        if not bundle_path.is_file():
            return False
        try:
            bundle = Bundle.from_json(bundle_path.read_text(encoding="utf-8"))
            verify_bundle(
                bundle,
                verifier=self.verifier,
                identity=self.expected_identity,
                issuer=self.issuer,
                subject_sha256=subject_sha256,
                what=bundle_path.name,
                policy=self.policy,
            )
        except Exception as e:  # noqa: BLE001 - anything that does not verify is re-signed
            log.info("%s: re-signing (%s)", bundle_path.name, first_line(e))
            return False
        return True


# --------------------------------------------------------------------------- the phase


@dataclass
class SignedFile:
    """One signature made (or kept) by this run."""

    subject: str
    file: str
    method: str
    log_index: int | None = None
    reused: bool = False


@dataclass
class SignResult:
    identity: str
    issuer: str
    signed: list[SignedFile] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)
    gpg_public_key: str = ""
    skipped: list[str] = field(default_factory=list)
    #: The pinned source repository and ref (see ``identity.ExpectedSigner``).
    repository: str = ""
    ref: str = ""
    #: Each image's signature and attestations (:mod:`upm_ci.image.attest`).
    images: list[ImageSigned] = field(default_factory=list)

    @property
    def bundles(self) -> list[str]:
        """Every Sigstore bundle and attestation file of the release."""
        return [s.file for s in self.signed if s.method == "sigstore"] + self.attestations


@dataclass
class _Subject:
    path: Path
    kind: str
    sha256: str


def sign_release(
    project: Project,
    manifest: Manifest,
    *,
    dist_dir: Path,
    identity_token: str,
    trust_config: Path | None,
    rekor_version: int | None,
    gpg_key: str | None,
    gpg_passphrase: str | None,
    expected_identity: str | identity.ExpectedSigner,
    event: Mapping[str, Any] | None = None,
    workers: int = DEFAULT_WORKERS,
) -> SignResult:
    """Sign everything the release carries; see the module docstring for what is written.

    Inputs and the token's claims are all checked before the first file is written.
    ``expected_identity``: the signer every bundle must verify for (``identity.expected_signer``);
    a plain SAN is pinned to the project's repository and release tag.
    """
    expected = identity.pinned_signer(
        expected_identity, repository=project.repository, tag=project.tag
    )
    expected_identity = expected.identity
    gha.mask(identity_token)
    if gpg_key:
        gha.mask(gpg_key)
    if gpg_passphrase:
        gha.mask(gpg_passphrase)
    dist_dir = check_dist_dir_inside(Path(dist_dir), manifest.base, where="dist directory")
    if not dist_dir.is_dir():
        raise InputError(f"{dist_dir}: dist directory not found", hint="run upm-ci build first")
    subjects = _manifest_subjects(manifest)
    # SHA256SUMS is written again and signed last, once it can list every other file.
    sums = next(s for s in subjects if s.kind == "checksums")
    subjects = [s for s in subjects if s.kind != "checksums"]
    policy_file = _policy_file(project)
    dists = [s for s in subjects if s.kind in PEP740_KINDS]
    for s in dists:
        pep740_distribution(s.path.name, s.sha256)  # a bad file name: InputError before writing
    extras = _extra_files(project, dist_dir)
    from upm_ci.image import attest  # images are signed with the release's signer

    image_plans = attest.plan_images(manifest, dist_dir)

    claims = identity.decode_claims(identity_token)
    problems = identity.preflight(
        claims,
        expected_identity=expected_identity,
        expected_repository=expected.repository or project.repository or None,
        expected_ref=expected.ref or None,
        event=event,
    )
    if problems:
        raise PolicyError(
            "sign preflight: " + "; ".join(problems),
            hint="nothing was signed",
        )
    if rekor_version not in (None, 1, 2):
        raise InputError(f"--rekor-version: {rekor_version} is not 1 or 2")

    result = SignResult(
        identity=expected_identity,
        issuer=GITHUB_ISSUER,
        repository=expected.repository,
        ref=expected.ref,
    )
    with contextlib.ExitStack() as stack:
        gpg = stack.enter_context(GpgSigner(gpg_key, gpg_passphrase)) if gpg_key else None
        load_trust_config(trust_config, rekor_version)  # bad file: InputError before writing
        subjects.append(_toolchain_subject(dist_dir, claims))
        for src, kind in extras:
            dest = dist_dir / release_file_name(src.name)
            if not dest.exists() or sha256_file(dest) != sha256_file(src):
                shutil.copy2(src, dest)
            subjects.append(_Subject(dest, kind, sha256_file(dest)))
        signer = stack.enter_context(
            ReleaseSigner(
                identity_token,
                expected_identity=expected_identity,
                trust_config=trust_config,
                rekor_version=rekor_version,
                source_repository=expected.repository,
                source_ref=expected.ref,
            )
        )
        log.info("signing %d files as %s", len(subjects), expected.describe())
        if not signer.pep740_available:
            log.warning("no Rekor v1 log in the trust config: no PEP 740 attestations made")
            dists = []
        jobs = len(subjects) + len(dists) + 2
        with ThreadPoolExecutor(max_workers=max(1, min(workers, jobs))) as pool:
            bundle_jobs = [pool.submit(_sign_subject, signer, s) for s in subjects]
            pep740_jobs = [pool.submit(_sign_pep740, signer, s) for s in dists]
            provenance_job = pool.submit(
                _sign_provenance, signer, project, manifest, claims, dist_dir
            )
            sbom_jobs = [
                pool.submit(_sign_sbom_attestation, signer, manifest, sbom, dist_dir)
                for sbom in manifest.of_kind("sbom")
                if provenance.is_cyclonedx(manifest.resolve(sbom))
                and not _describes_image(manifest, sbom)
            ]
            signed = [job.result() for job in bundle_jobs]
            attestations = [provenance_job.result(), *(job.result() for job in sbom_jobs)]
            attestations += [job.result() for job in pep740_jobs]
        result.images = attest.sign_planned(
            signer, project, manifest, image_plans, dist_dir, claims
        )
        gpg_signed: list[SignedFile] = []
        if gpg is not None:
            for s in subjects:
                if s.kind in GPG_KINDS:
                    asc = s.path.with_name(s.path.name + GPG_SIG_SUFFIX)
                    reused = gpg.verifies(asc, s.path)
                    if not reused:
                        gpg.sign(s.path)
                    gpg_signed.append(SignedFile(s.path.name, asc.name, "gpg", reused=reused))
            pub = gpg.export_public(
                dist_dir / f"{project.dist_name}-{project.version}{GPG_KEY_SUFFIX}"
            )
            result.gpg_public_key = pub.name

        # Everything verified: record it.
        by_name = {s.path.name: s for s in subjects}
        for s in subjects:
            if s.kind in ("project-manifest", "plugin", "toolchain-sbom"):
                manifest.add_file(s.path, s.kind)
        for item in signed:
            bundle_path = by_name[item.subject].path.with_name(item.file)
            manifest.add_file(bundle_path, "sigstore-bundle")
            manifest.add_signature(
                SignatureRecord(
                    subject=item.subject,
                    subject_sha256=by_name[item.subject].sha256,
                    file=item.file,
                    method="sigstore",
                    identity=expected_identity,
                    issuer=GITHUB_ISSUER,
                    log_index=item.log_index,
                )
            )
        for path, kind, record in attestations:
            manifest.add_file(path, kind)
            manifest.add_attestation(record)
            result.attestations.append(path.name)
        for item in gpg_signed:
            manifest.add_file(by_name[item.subject].path.with_name(item.file), "gpg-signature")
            manifest.add_signature(
                SignatureRecord(
                    subject=item.subject,
                    subject_sha256=by_name[item.subject].sha256,
                    file=item.file,
                    method="gpg",
                    identity=gpg.fingerprint if gpg else "",
                )
            )
        if result.gpg_public_key:
            manifest.add_file(dist_dir / result.gpg_public_key, "gpg-public-key")
        sealed = _seal(
            signer,
            gpg,
            project,
            manifest,
            sums,
            policy_file=policy_file,
            repository=expected.repository or project.repository,
        )
        signed += [s for s in sealed if s.method == "sigstore"]
        gpg_signed += [s for s in sealed if s.method == "gpg"]
        result.attestations.append(RELEASE_STATEMENT)
        result.signed = signed + gpg_signed
    manifest.record_phase(
        "sign",
        "pass",
        identity=expected_identity,
        issuer=GITHUB_ISSUER,
        repository=expected.repository,
        ref=expected.ref,
        trigger=claims.event_name,
        runner_environment=claims.runner_environment,
        sha=claims.sha,
        bundles=len(signed),
        attestations=len(attestations),
        gpg=bool(gpg_signed),
        reused=sum(1 for s in result.signed if s.reused),
    )
    manifest.save()
    return result


def _policy_file(project: Project) -> Path:
    """The policy the gate checked: RELEASE.md as upm-release carries it (its Pre-Release
    Checklist is the gate's rows, :mod:`upm_ci.gate.report`)."""
    from upm_ci import release_statement

    return release_statement.POLICY_FILE


def _toolchain_subject(dist_dir: Path, claims: identity.TokenClaims) -> _Subject:
    """``TOOLCHAIN_SBOM`` of the running tool, kept when only its serial and time would
    change (a re-run keeps its bundle)."""
    from upm_ci import toolchain

    path = dist_dir / TOOLCHAIN_SBOM
    text = toolchain.toolchain_sbom({k: str(v) for k, v in claims.raw.items()})
    if not (path.is_file() and toolchain.same_toolchain(path.read_text("utf-8", "replace"), text)):
        write_text_atomic(path, text)
    return _Subject(path, "toolchain-sbom", sha256_file(path))


def published_later(project: Project) -> list[str]:
    """The files publish adds after signing: the audit log and its bundle."""
    from upm_ci.publish.audit_log import audit_log_name

    log_name = audit_log_name(project.normalized_name, project.version)
    return [log_name, log_name + BUNDLE_SUFFIX]


def _seal(
    signer: ReleaseSigner,
    gpg: GpgSigner | None,
    project: Project,
    manifest: Manifest,
    sums: _Subject,
    *,
    policy_file: Path,
    repository: str,
) -> list[SignedFile]:
    """Write ``SHA256SUMS`` over every other release file and sign it (Sigstore, and GPG with
    a key); then sign the release statement over every file, SHA256SUMS included. Both are
    recorded in the manifest; returns SHA256SUMS's signatures."""
    from upm_ci.build import sha256sums_text
    from upm_ci.release_statement import POLICY_URI, GateRow, build_statement, one_line

    later = published_later(project)
    unsummed = {
        CHECKSUMS,
        CHECKSUMS + BUNDLE_SUFFIX,
        CHECKSUMS + GPG_SIG_SUFFIX,
        RELEASE_STATEMENT,
        *later,
    }
    listed = [
        manifest.resolve(a)
        for a in manifest.artifacts
        if a.name not in unsummed and a.kind != "audit-log"
    ]
    write_text_atomic(sums.path, sha256sums_text(listed))
    sums_art = manifest.add_file(sums.path, "checksums")
    final = _Subject(sums.path, "checksums", sums_art.sha256)
    made = [_sign_subject(signer, final)]
    manifest.add_file(sums.path.with_name(made[0].file), "sigstore-bundle")
    manifest.add_signature(
        SignatureRecord(
            subject=CHECKSUMS,
            subject_sha256=final.sha256,
            file=made[0].file,
            method="sigstore",
            identity=signer.expected_identity,
            issuer=signer.issuer,
            log_index=made[0].log_index,
        )
    )
    if gpg is not None:
        asc = sums.path.with_name(CHECKSUMS + GPG_SIG_SUFFIX)
        reused = gpg.verifies(asc, sums.path)
        if not reused:
            gpg.sign(sums.path)
        made.append(SignedFile(CHECKSUMS, asc.name, "gpg", reused=reused))
        manifest.add_file(asc, "gpg-signature")
        manifest.add_signature(
            SignatureRecord(
                subject=CHECKSUMS,
                subject_sha256=final.sha256,
                file=asc.name,
                method="gpg",
                identity=gpg.fingerprint,
            )
        )

    gate = manifest.phases.get("gate", {})
    raw_checks, raw_summaries = gate.get("checks"), gate.get("summaries")
    checks: dict[str, Any] = raw_checks if isinstance(raw_checks, dict) else {}
    summaries: dict[str, Any] = raw_summaries if isinstance(raw_summaries, dict) else {}
    rows = [
        GateRow(str(name), str(status), one_line(str(summaries.get(name, ""))))
        for name, status in checks.items()
    ]
    files = {
        a.name: a.sha256
        for a in manifest.artifacts
        if a.name not in (RELEASE_STATEMENT, *later) and a.kind != "audit-log"
    }
    out = sums.path.with_name(RELEASE_STATEMENT)
    images = {
        _image_name(i.repository, i.ref): i.digest.removeprefix("sha256:") for i in manifest.images
    }
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    statement = build_statement(
        files,
        images=images,
        published_later=later,
        gate_rows=rows,
        gate_passed=gate.get("status") == "pass",
        time_verified=str(gate.get("at") or _previous_time(out) or utcnow()),
        resource_uri=f"{server}/{repository}/releases/tag/{project.tag}",
        policy_uri=POLICY_URI,
        policy_sha256=sha256_file(policy_file),
        tool_version=__version__,
    )
    sign_statement_file(signer, out, statement, "release statement")
    manifest.add_file(out, "release-statement")
    manifest.add_attestation(
        AttestationRecord(RELEASE_STATEMENT, VSA_PREDICATE_TYPE, statement["subject"])
    )
    return made


def _previous_time(statement_bundle: Path) -> str:
    """The timeVerified of the statement a previous run signed, so that a re-run without a
    gate record makes the same statement (and keeps its bundle); "" when there is none."""
    import base64

    try:
        envelope = json.loads(statement_bundle.read_text(encoding="utf-8"))["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        value = statement["predicate"]["timeVerified"]
    except (OSError, ValueError, TypeError, KeyError):
        return ""
    return value if isinstance(value, str) else ""


def _image_name(repository: str, ref: str) -> str:
    """An image's repository without tag or digest (``ghcr.io/o/n``): its subject name."""
    if repository:
        return repository
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def _manifest_subjects(manifest: Manifest) -> list[_Subject]:
    """The build's and sbom's files, each checked against the digest the manifest recorded."""
    if not manifest.distributions():
        raise InputError(f"{manifest.path}: no sdist or wheel recorded", hint="run upm-ci build")
    if not manifest.of_kind("checksums"):
        raise InputError(f"{manifest.path}: no SHA256SUMS recorded", hint="run upm-ci build")
    if not manifest.of_kind("sbom"):
        raise InputError(f"{manifest.path}: no SBOM recorded", hint="run upm-ci sbom")
    subjects = []
    for art in manifest.of_kind("sdist", "wheel", "sbom", "checksums"):
        path = manifest.resolve(art)
        if not path.is_file():
            raise InputError(f"{path}: recorded in the manifest but missing", hint="re-run build")
        digest = sha256_file(path)
        if digest != art.sha256:
            raise PolicyError(
                f"{path.name}: sha256 {digest[:16]}... differs from the manifest's "
                f"{art.sha256[:16]}...",
                hint="the file changed after it was built; rebuild, never sign altered files",
            )
        subjects.append(_Subject(path, art.kind, digest))
    return subjects


def _extra_files(project: Project, dist_dir: Path) -> list[tuple[Path, str]]:
    """Project manifests (``sign-files``) and, with ``sign-plugins``, plugin files."""
    found: list[tuple[Path, str]] = []
    where = f"{project.root / 'pyproject.toml'}: [tool.upm-release]"
    for rel in project.config.sign_files:
        path = confined_file(project.root, rel, where=f"{where} sign-files")
        if path is not None:
            found.append((path, "project-manifest"))
        else:
            log.warning("sign-files: %s not found in the project; not signed", rel)
    if project.config.sign_plugins:
        excluded = {
            p for pattern in project.config.plugin_exclude for p in project.root.glob(pattern)
        }
        for pattern in project.config.plugins:
            for path in sorted(project.root.glob(pattern)):
                if path not in excluded and (path.is_file() or path.is_symlink()):
                    rel = path.relative_to(project.root).as_posix()
                    confined = confined_file(project.root, rel, where=f"{where} plugins")
                    if confined is not None:
                        found.append((confined, "plugin"))
    names: dict[str, Path] = {}
    for path, kind in found:
        field = "sign-files" if kind == "project-manifest" else "plugins"
        check_plain_name(release_file_name(path.name), where=f"{where} {field} ({path})")
        other = names.setdefault(release_file_name(path.name), path)
        if other != path:
            raise InputError(
                f"sign: {other} and {path} would both be {dist_dir / release_file_name(path.name)}",
                hint="rename one, or narrow [tool.upm-release] plugins / sign-files",
            )
    return found


def _sign_subject(signer: ReleaseSigner, subject: _Subject) -> SignedFile:
    bundle = subject.path.with_name(subject.path.name + BUNDLE_SUFFIX)
    reused = signer.existing_bundle_verifies(bundle, subject.sha256)
    if not reused:
        signer.sign_file(subject.path, bundle, sha256=subject.sha256)
    return SignedFile(
        subject=subject.path.name,
        file=bundle.name,
        method="sigstore",
        log_index=log_index(bundle.read_text(encoding="utf-8")),
        reused=reused,
    )


def _sign_pep740(signer: ReleaseSigner, dist: _Subject) -> tuple[Path, str, AttestationRecord]:
    out = dist.path.with_name(dist.path.name + PEP740_SUFFIX)
    if not signer.existing_pep740_verifies(out, dist.path.name, dist.sha256):
        signer.sign_pep740(dist.path, out)
    subjects = [provenance.subject(dist.path.name, dist.sha256)]
    return out, "pep740-attestation", AttestationRecord(out.name, PYPI_PUBLISH_V1, subjects)


def pep740_distribution(name: str, sha256: str) -> Any:
    """pypi-attestations' Distribution; InputError when the name is no sdist/wheel name."""
    from pypi_attestations import Distribution

    try:
        return Distribution(name=name, digest=sha256)
    except ValueError as e:
        raise InputError(
            f"{name}: not a valid sdist or wheel file name, so no PEP 740 attestation can name "
            f"it: {first_line(e)}",
            hint="rebuild with a standard build backend",
        ) from None


def _pep740_context(config: ClientTrustConfig) -> tuple[SigningContext | None, bool]:
    """The signing context PEP 740 attestations use: the trust config's Rekor v1 log and no
    TSA (the attestation format drops timestamps, see the module doc), or None when the
    config has no Rekor v1 log; and whether the release itself signs with that v1 log."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.sign import SigningContext

    v1 = copy.copy(config)  # the same trust config, its log choice forced to Rekor v1
    v1.force_tlog_version = 1
    try:
        signing = v1.signing_config
        context = SigningContext(
            fulcio=signing.get_fulcio(),
            rekor=signing.get_tlogs()[0],
            trusted_root=config.trusted_root,
            tsa_clients=[],
        )
    except SigstoreError:
        return None, False
    on_v1 = config.force_tlog_version == 1
    if config.force_tlog_version is None:
        v2 = copy.copy(config)
        v2.force_tlog_version = 2
        try:
            v2.signing_config  # noqa: B018 - raises when the config has no Rekor v2 log
        except SigstoreError:
            on_v1 = True
    return context, on_v1


def sign_statement_file(
    signer: ReleaseSigner, out: Path, statement: dict[str, Any], what: str
) -> bool:
    """Write the statement's DSSE bundle on one line, unless ``out`` already holds a valid one
    of the same statement (an older provenance shape or a changed SBOM is signed anew); True
    when the existing bundle was kept. Release files and images' attestations alike."""
    from sigstore.models import Bundle

    if out.is_file():
        try:
            existing = Bundle.from_json(out.read_text(encoding="utf-8"))
            kept = verify_bundle(
                existing,
                verifier=signer.verifier,
                identity=signer.expected_identity,
                issuer=signer.issuer,
                what=out.name,
                policy=signer.policy,
            )
            if kept == statement:  # same subjects, predicate type and predicate
                return True
        except Exception as e:  # noqa: BLE001 - anything that does not verify is re-signed
            log.info("%s: re-signing (%s)", out.name, first_line(e))
    bundle_json = signer.sign_statement(statement, what=what)
    write_text_atomic(out, json.dumps(json.loads(bundle_json), separators=(",", ":")) + "\n")
    return False


def _sign_provenance(
    signer: ReleaseSigner,
    project: Project,
    manifest: Manifest,
    claims: identity.TokenClaims,
    dist_dir: Path,
) -> tuple[Path, str, AttestationRecord]:
    from upm_ci.dependency_provenance import recorded_dependencies

    subjects = [provenance.subject(a.name, a.sha256) for a in manifest.distributions()]
    dependencies = [
        provenance.dependency_descriptor(
            d.purl,
            d.file,
            d.sha256,
            d.publisher.describe() if d.publisher else "unsigned",
            d.provenance,
        )
        for d in recorded_dependencies(manifest.phases)
    ]
    statement = provenance.slsa_provenance(
        subjects,
        claims,
        server_url=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
        tag=project.tag,
        tool_version=__version__,
        dependencies=dependencies,
    )
    out = dist_dir / f"{project.dist_name}-{project.version}{ATTESTATION_SUFFIX}"
    sign_statement_file(signer, out, statement, "SLSA provenance")
    return out, "provenance", AttestationRecord(out.name, provenance.SLSA_PROVENANCE_V1, subjects)


def _describes_image(manifest: Manifest, sbom: Artifact) -> bool:
    """An image's SBOM: its attestation is stored next to the image in the registry
    (:mod:`upm_ci.image.attest`), with the image digest as subject, not as a release file."""
    record = next((r for r in manifest.sboms if Path(r.file).name == sbom.name), None)
    images = {i.digest.removeprefix("sha256:") for i in manifest.images}
    return record is not None and record.describes_sha256 in images


def _sign_sbom_attestation(
    signer: ReleaseSigner, manifest: Manifest, sbom: Artifact, dist_dir: Path
) -> tuple[Path, str, AttestationRecord]:
    record = next((r for r in manifest.sboms if Path(r.file).name == sbom.name), None)
    wheels = manifest.of_kind("wheel")
    if record is not None:
        describes, digest = record.describes, record.describes_sha256
    elif len(wheels) == 1:
        describes, digest = wheels[0].name, wheels[0].sha256
    else:
        raise InputError(
            f"{manifest.path}: SBOM {sbom.name} is not bound to an artifact", hint="run upm-ci sbom"
        )
    statement = provenance.sbom_statement(manifest.resolve(sbom), describes, digest)
    out = dist_dir / f"{describes}{SBOM_ATTESTATION_SUFFIX}"
    sign_statement_file(signer, out, statement, f"SBOM attestation of {describes}")
    subjects = statement["subject"]
    return out, "sbom-attestation", AttestationRecord(out.name, provenance.CYCLONEDX_BOM, subjects)


# --------------------------------------------------------------------------- helpers


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"
