"""Everything Sigstore that sign, verify, publish and trust share.

- **Trust**: the Sigstore instance (a ``ClientTrustConfig`` file, else production via TUF)
  for signing (:func:`load_trust_config`) and its trust root for verifying
  (:func:`load_trusted_root`, :func:`make_verifier`: sigstore-python's stock ``Verifier``).
- **Expected signer**: a certificate checked against an :class:`~upm_ci.identity.ExpectedSigner`
  (:func:`verification_policy`, :func:`signer_mismatches`: a glob identity, the certificate's
  SANs, OIDC issuer and GitHub extensions).
- **Bundle verification**: a bundle of a file or an in-toto attestation
  (:func:`verify_bundle`), a PEP 740 publish attestation (:func:`verify_pep740`), what a
  bundle's public JSON says (DSSE or not, timestamps, log index), and how sigstore-python's
  errors are classified for retries (:func:`classify_sigstore`) or reported
  (:func:`run_sigstore_check`).

Only sigstore-python's public API is used; where it exposes nothing (the log index, whether a
bundle is DSSE) the bundle's public JSON form is read.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upm_ci import gha
from upm_ci.errors import InputError, PolicyError, ServiceError, UpmError
from upm_ci.identity import GITHUB_ISSUER, ExpectedSigner
from upm_ci.provenance import IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE, statement_subjects
from upm_ci.retry import (
    call_with_retry,
    classify_http,
    describe,
    http_failure,
    is_connection_error,
    unreachable,
)

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import VerificationPolicy

PYPI_PUBLISH_V1 = "https://docs.pypi.org/attestations/publish/v1"


class MissingTimestamp(Exception):
    """The TSA did not answer; sigstore-python only logs that, so the bundle has no time.

    Raised by a signer when the trust config offers a TSA and a fresh bundle carries no
    timestamp: :func:`classify_sigstore` makes it retryable, so the file is signed again."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, redacted and at most 300 characters."""
    text = gha.redact(str(exc)).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# --------------------------------------------------------------------------- trust


def load_trust_config(
    path: Path | None, rekor_version: int | None = None, *, offline: bool = False
) -> ClientTrustConfig:
    """The Sigstore instance: ``path`` (a ClientTrustConfig JSON) or production via TUF
    (``offline``: from the TUF cache). ``rekor_version`` forces the log version to sign with."""
    from sigstore.models import ClientTrustConfig

    if rekor_version not in (None, 1, 2):
        raise InputError(f"--rekor-version: {rekor_version} is not 1 or 2")
    if path is None:
        try:
            config = call_with_retry(
                lambda: ClientTrustConfig.production(offline=offline),
                what="Sigstore TUF",
                classify=classify_sigstore,
            )
        except UpmError:
            raise
        except Exception as e:  # noqa: BLE001 - TUF raises many kinds
            gone = unreachable(e)
            why = f"host unreachable: {gone[0]} ({gone[1]})" if gone else describe(e)
            raise ServiceError(
                f"Sigstore trust root could not be loaded from TUF: {why}",
                hint="pass --trust-config FILE, or --offline to use the cached root",
            ) from None
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(f"{path}: trust config cannot be read: {e.strerror}") from None
        try:
            config = ClientTrustConfig.from_json(text)
        except Exception as e:  # noqa: BLE001 - pydantic/json/protobuf errors all mean "malformed"
            raise InputError(
                f"{path}: not a Sigstore ClientTrustConfig: {first_line(e)}",
                hint="pass the file `sigstore` accepts as --trust-config",
            ) from None
    config.force_tlog_version = rekor_version
    return config


def load_trusted_root(trust_config: Path | None, *, offline: bool) -> TrustedRoot:
    """The trust root from a ClientTrustConfig file, else Sigstore production via TUF."""
    return load_trust_config(trust_config, offline=offline).trusted_root


def make_verifier(trusted_root: TrustedRoot) -> Verifier:
    """One verifier for a whole release: sigstore-python's own, on ``trusted_root``."""
    from sigstore.verify import Verifier

    return Verifier(trusted_root=trusted_root)


# --------------------------------------------------------------------------- expected signer


def verification_policy(signer: ExpectedSigner) -> VerificationPolicy:
    """The sigstore-python policy that checks everything ``signer`` pins."""
    from sigstore.verify import policy

    identities: list[policy.VerificationPolicy] = [
        _IdentityGlob(identity, signer.issuer)
        if "*" in identity
        else policy.Identity(identity=identity, issuer=signer.issuer)
        for identity in (signer.identity, *signer.alternatives)
    ]
    checks: list[policy.VerificationPolicy] = (
        identities[:1] if len(identities) == 1 else [policy.AnyOf(identities)]
    )
    if signer.repository:
        checks.append(policy.GitHubWorkflowRepository(signer.repository))
    if signer.ref:
        checks.append(policy.GitHubWorkflowRef(signer.ref))
    if signer.trigger:
        checks.append(policy.GitHubWorkflowTrigger(signer.trigger))
    return policy.AllOf(checks)


def signer_mismatches(signer: ExpectedSigner, cert: Certificate) -> list[str]:
    """What in ``cert`` differs from ``signer``, one "field: expected X, found Y" each
    (repository, ref, trigger, identity, issuer); empty when the certificate satisfies it.
    Read from the same certificate extensions sigstore's GitHub policies check."""
    from sigstore.verify import policy

    problems = [
        f"{label}: expected {wanted}, found {found or '(none)'}"
        for label, wanted, oid in (
            ("repository", signer.repository, policy.GitHubWorkflowRepository.oid),
            ("ref", signer.ref, policy.GitHubWorkflowRef.oid),
            ("trigger", signer.trigger, policy.GitHubWorkflowTrigger.oid),
        )
        if wanted and (found := _extension_text(cert, oid)) != wanted
    ]
    wanted = (signer.identity, *signer.alternatives)
    sans = certificate_identities(cert)
    if not any(
        fnmatch.fnmatchcase(san, w) if "*" in w else san == w for san in sans for w in wanted
    ):
        problems.append(
            f"identity: expected {' or '.join(wanted)}, found {', '.join(sorted(sans)) or '(none)'}"
        )
    issuer = certificate_issuer(cert)
    if issuer != signer.issuer:
        problems.append(f"issuer: expected {signer.issuer}, found {issuer or '(none)'}")
    return problems


def explain_failure(signer: ExpectedSigner, bundle: Bundle, error: str) -> str:
    """``error`` (a failed verification of ``bundle``) as the fields of its certificate that
    differ from ``signer``, when some do; else ``error`` itself."""
    try:
        problems = signer_mismatches(signer, bundle.signing_certificate)
    except Exception:  # noqa: BLE001 - a certificate we cannot read: keep sigstore's reason
        return error
    return "signer differs: " + "; ".join(problems) if problems else error


class _IdentityGlob:
    """Like ``policy.Identity`` but the identity is a glob (``fnmatchcase``)."""

    def __init__(self, pattern: str, issuer: str) -> None:
        self._pattern = pattern
        self._issuer = issuer

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError
        from sigstore.verify import policy

        policy.OIDCIssuer(self._issuer).verify(cert)
        sans = certificate_identities(cert)
        if not any(fnmatch.fnmatchcase(san, self._pattern) for san in sans):
            raise VerificationError(
                f"Certificate's SANs do not match {self._pattern}; actual SANs: {sorted(sans)}"
            )


def certificate_identities(cert: Certificate) -> set[str]:
    """The URI and e-mail SANs of a signing certificate."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.UniformResourceIdentifier)) | set(
        san.get_values_for_type(x509.RFC822Name)
    )


def _extension_text(cert: Certificate, oid: Any) -> str:
    """A Fulcio v1 extension's value (raw UTF-8, as sigstore's GitHub policies read it)."""
    from cryptography import x509

    try:
        raw = cert.extensions.get_extension_for_oid(oid).value.public_bytes()
    except x509.ExtensionNotFound:
        return ""
    return str(raw.decode("utf-8", "replace"))


def certificate_issuer(cert: Certificate) -> str:
    """The OIDC issuer Fulcio recorded in the certificate (v2 extension, else v1)."""
    from cryptography import x509
    from cryptography.hazmat import asn1

    v2, v1 = (x509.ObjectIdentifier(f"1.3.6.1.4.1.57264.1.{n}") for n in (8, 1))
    for oid in (v2, v1):
        try:
            raw = cert.extensions.get_extension_for_oid(oid).value.public_bytes()
        except x509.ExtensionNotFound:
            continue
        if oid == v2:
            return str(asn1.decode_der(str, raw))
        return raw.decode("utf-8", "replace")
    return ""


# --------------------------------------------------------------------------- bundles


def hashed_sha256(digest_hex: str) -> Any:
    """A sha256 digest (hex) as the prehashed input sigstore signs and verifies."""
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    return Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(digest_hex))


def verify_bundle(
    bundle: Bundle,
    *,
    verifier: Verifier,
    identity: str,
    issuer: str = GITHUB_ISSUER,
    subject_sha256: str | None = None,
    what: str = "bundle",
    policy: VerificationPolicy | None = None,
) -> dict[str, Any] | None:
    """Verify ``bundle`` against ``identity``/``issuer`` (and the subject's digest).

    Artifact bundles need ``subject_sha256``. For DSSE bundles the in-toto statement is
    returned; when ``subject_sha256`` is given it must be one of the statement's subjects.
    Any failure is a PolicyError naming ``what``. ``policy``, when given, is the prepared
    equivalent of ``identity``/``issuer`` (a signer builds it once and passes it every time).
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.verify.policy import Identity

    expected = policy or Identity(identity=identity, issuer=issuer)
    dsse = is_dsse_bundle(bundle)
    if not dsse and subject_sha256 is None:
        raise ValueError("an artifact bundle needs the subject's sha256")
    try:
        if not dsse:
            verifier.verify_artifact(hashed_sha256(str(subject_sha256)), bundle, expected)
            return None
        payload_type, payload = verifier.verify_dsse(bundle, expected)
    except SigstoreError as e:
        raise PolicyError(
            f"{what}: does not verify for {identity} ({issuer}): {first_line(e)}",
            hint="the signing identity must be the release workflow at the release tag",
        ) from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise PolicyError(f"{what}: DSSE payload is {payload_type}, not an in-toto statement")
    statement: dict[str, Any] = json.loads(payload)
    if subject_sha256 is not None and not any(
        s.get("digest", {}).get("sha256") == subject_sha256 for s in statement.get("subject", [])
    ):
        raise PolicyError(f"{what}: the statement has no subject with sha256 {subject_sha256}")
    return statement


def verify_pep740(
    raw: bytes,
    dist_name: str,
    dist_sha256: str,
    *,
    verifier: Verifier,
    policy: VerificationPolicy,
    explain: Callable[[Bundle, str], str] | None = None,
) -> str:
    """Verify a PEP 740 publish attestation (``<dist>.publish.attestation``) of one file.

    ``explain`` turns a failed verification into its reason (:func:`explain_failure`:
    the certificate field that differs).

    pypi-attestations' ``Attestation.verify`` only chooses between Sigstore production and
    staging, so a private or local trust root cannot be used with it. This runs the same
    checks with ``verifier`` (and its trust root): the DSSE envelope of the attestation's
    Sigstore bundle under ``policy``, then an in-toto statement with exactly one subject that
    is this file, by name and sha256, and the PyPI publish predicate. Returns a one-line
    summary; any failure is a PolicyError with the reason.
    """
    from pypi_attestations import Attestation
    from sigstore.errors import VerificationError

    try:
        bundle = Attestation.model_validate_json(raw).to_bundle()
    except Exception as e:  # noqa: BLE001 - pydantic, base64, X.509, log entry: all "malformed"
        raise PolicyError(f"not a PEP 740 attestation: {describe(e)}") from None
    try:
        payload_type, payload = verifier.verify_dsse(bundle, policy)
    except VerificationError as e:
        raise PolicyError(explain(bundle, str(e)) if explain else str(e)) from None
    except Exception as e:  # noqa: BLE001 - a malformed bundle may raise anything
        raise PolicyError(f"could not be verified: {describe(e)}") from None
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise PolicyError(f"payload type {payload_type!r}, not in-toto")
    try:
        statement = json.loads(payload)
    except ValueError as e:
        raise PolicyError(f"payload is not JSON: {e}") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise PolicyError(f"not an in-toto {STATEMENT_TYPE} statement")
    subjects = statement_subjects(statement.get("subject"))
    if subjects is None or len(subjects) != 1:
        raise PolicyError("the statement must have exactly one well-formed subject")
    ((name, digest),) = subjects.items()
    if name != dist_name:
        raise PolicyError(f"attests {name}, not {dist_name}")
    if digest != dist_sha256:
        raise PolicyError(f"subject sha256 {digest[:12]}... != {dist_name} {dist_sha256[:12]}...")
    if statement.get("predicateType") != PYPI_PUBLISH_V1:
        raise PolicyError(
            f"predicateType {statement.get('predicateType')!r}, not {PYPI_PUBLISH_V1}"
        )
    index = log_entry_json(bundle).get("logIndex", "?")
    return f"PEP 740 publish attestation verified (Rekor log index {index})"


def run_sigstore_check(fn: Callable[[], object]) -> str:
    """Run a sigstore verification; '' on success, else the reason (fail closed)."""
    from sigstore.errors import VerificationError

    try:
        fn()
    except VerificationError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - a malformed bundle may raise anything
        return f"could not be verified: {describe(e)}"
    return ""


def bundle_json_problem(raw: bytes | str) -> str:
    """What a bundle's JSON lacks that sigstore-python only reports as a parse error deep in
    its models: '' when nothing is found (the parser's own reason then stands)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    material = data.get("verificationMaterial") if isinstance(data, dict) else None
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    if isinstance(entries, list):
        for number, entry in enumerate(entries):
            if isinstance(entry, dict) and not entry.get("inclusionProof"):
                return (
                    f"inclusion proof missing (transparency log entry {number}): nothing"
                    " proves the signature is in the log"
                )
    return ""


def is_dsse_bundle(bundle: Bundle) -> bool:
    """True when ``bundle`` carries a DSSE envelope (an attestation), not a message signature."""
    return "dsseEnvelope" in json.loads(bundle.to_json())


def has_timestamp(bundle: Bundle) -> bool:
    """True when ``bundle`` carries at least one RFC 3161 timestamp from a TSA."""
    material = json.loads(bundle.to_json()).get("verificationMaterial", {})
    data = material.get("timestampVerificationData") or {}
    return bool(data.get("rfc3161Timestamps"))


def log_index(bundle_json: str) -> int | None:
    """The transparency log index recorded in a bundle's JSON."""
    try:
        entries = json.loads(bundle_json)["verificationMaterial"]["tlogEntries"]
        return int(entries[0]["logIndex"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def log_entry_json(bundle: Bundle) -> dict[str, Any]:
    """The bundle's (first) transparency log entry as JSON: sigstore-python exposes its
    log index, kind and proofs through no public attribute, so they are read from the
    bundle's public JSON form (camelCase, as the Sigstore bundle format writes it)."""
    entries = json.loads(bundle.to_json()).get("verificationMaterial", {}).get("tlogEntries")
    entry = entries[0] if isinstance(entries, list) and entries else {}
    return entry if isinstance(entry, dict) else {}


def classify_sigstore(exc: BaseException) -> float | None:
    """Retry decision for sigstore-python errors: they wrap ``requests`` errors (as cause,
    context or first argument), so look through the chain for an HTTP status or a reset."""
    if isinstance(exc, MissingTimestamp) or is_connection_error(exc):
        return 0.0
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        candidates = [current, *(a for a in current.args if isinstance(a, BaseException))]
        for candidate in candidates:
            failure = http_failure(candidate)
            if failure is not None:
                return classify_http(*failure)
        current = current.__cause__ or current.__context__
    return None
