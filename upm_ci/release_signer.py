"""The release's signer: one ephemeral key and one Fulcio certificate for a whole release.

:class:`ReleaseSigner` signs files (Sigstore bundles, concurrently: sigstore-python's Rekor
and TSA clients keep a session per thread), in-toto statements (DSSE) and PEP 740 publish
attestations, and verifies every bundle against the expected identity before it is written.
Transient Fulcio/Rekor/TSA failures (5xx, 429, resets) are retried, 4xx never.
:func:`sign_statement_file` writes a statement's bundle, keeping one that still verifies.

The sign phase (:mod:`upm_ci.sign`), the image's signatures and attestations
(:mod:`upm_ci.image.attest`) and publish's audit log all sign with it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from upm_ci import gha, identity
from upm_ci.errors import InputError, PolicyError, ServiceError, UpmError
from upm_ci.layout import BUNDLE_SUFFIX, PEP740_SUFFIX, sha256_file
from upm_ci.manifest import write_text_atomic
from upm_ci.retry import RetryPolicy, call_with_retry
from upm_ci.sigstore_common import (
    MissingTimestamp,
    classify_sigstore,
    first_line,
    has_timestamp,
    hashed_sha256,
    load_trust_config,
    verify_bundle,
    verify_pep740,
)

if TYPE_CHECKING:
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import Signer, SigningContext
    from sigstore.verify import Verifier
    from sigstore.verify.policy import VerificationPolicy

log = logging.getLogger(__name__)

#: Files signed at once (threads), at most.
DEFAULT_WORKERS = 64


class ReleaseSigner:
    """One ephemeral key and one certificate for a whole release.

    ``with ReleaseSigner(token, expected=..., trust_config=...) as signer:`` then
    ``signer.sign_file(path)`` writes and returns ``<path>.sigstore.json``, and
    ``signer.sign_statement(statement)`` returns a DSSE bundle's JSON. Both verify what they
    made against the expected signer first, and are safe to call from several threads.
    """

    def __init__(
        self,
        identity_token: str,
        *,
        expected: identity.ExpectedSigner,
        trust_config: Path | None = None,
        rekor_version: int | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """``expected``: whom every bundle must verify for (:mod:`upm_ci.identity` builds
        it): its identity and issuer, and whatever else it pins (the certificate's GitHub
        workflow repository and ref: a reusable workflow's SAN is the same for every caller)."""
        gha.mask(identity_token)
        self._token = identity_token
        self.expected = expected
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
        # Everything the expected signer pins; a bare SAN is sigstore's plain Identity policy.
        expected = self.expected
        pinned = expected.repository or expected.ref or expected.trigger or expected.alternatives
        self._policy = (
            verification_policy(expected)
            if pinned
            else policy.Identity(identity=expected.identity, issuer=expected.issuer)
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
    def expected_identity(self) -> str:
        """The certificate identity (SAN) every bundle must carry."""
        return self.expected.identity

    @property
    def issuer(self) -> str:
        """The OIDC issuer every bundle's certificate must name."""
        return self.expected.issuer

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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"
