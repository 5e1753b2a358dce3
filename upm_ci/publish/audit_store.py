"""The release's audit log in S3, encrypted with KMS (RELEASE.md, "Audit Logs: S3+KMS upload").

publish writes, signs and attaches its own audit log (:mod:`upm_ci.publish.audit_log`); when
``audit-bucket`` and ``audit-kms-key`` are set, the signed log and its Sigstore bundle also go
to S3 (or an S3-compatible store) with boto3, the last step before the release is un-drafted:

- ``ServerSideEncryption=aws:kms`` with the configured key, a SHA-256 checksum the service
  checks (``ChecksumSHA256``; it also satisfies Object Lock's checksum rule, so a bucket with
  default retention locks the object), and ``If-None-Match: *``: an object already under the
  key is never overwritten. One with the same digest is kept; another digest is a failure.
- The service's answer is checked, not trusted: an object it stored without KMS or with
  another key is reported (the manifest's publish record ``audit_store_untrusted``) and fails
  the phase (exit 1).
- Keys are ``<prefix>/<run id>/<log name>`` (``GITHUB_RUN_ID.GITHUB_RUN_ATTEMPT``, ``local``
  outside Actions): every attempt's log is its own immutable object. Within one attempt a
  re-run resumes from the ledger: a log that was already sent is *sealed*, so it is neither
  extended nor signed again (see :func:`sealed`).
- Throttling, 5xx and dropped connections are retried by :func:`upm_ci.retry.call_with_retry`
  (botocore's own retries are off, so attempts do not multiply); access denied is exit 1 naming
  the permission, a missing bucket exit 2, no credentials exit 2.

:class:`AuditStore` is the small interface (``put``/``head``/``get``) over one boto3 client;
:func:`verify_uploads` reads the objects back for ``upm-ci verify``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upm_ci.config import check_http_url
from upm_ci.errors import InputError, PolicyError, UpmError
from upm_ci.layout import BUNDLE_SUFFIX, sha256_file
from upm_ci.retry import RetryPolicy, call_with_retry, describe

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from upm_ci.identity import ExpectedSigner
    from upm_ci.manifest import Manifest
    from upm_ci.verify.report import ArtifactReport

log = logging.getLogger(__name__)

#: The manifest ledger's destination for S3 objects (items are ``s3://bucket/key`` URLs).
LEDGER = "s3"
KMS = "aws:kms"

#: Error codes AWS (and S3-compatible stores) use for "slow down" and transient failures.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "SlowDown",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "ConditionalRequestConflict",
    }
)
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "Forbidden", "403"})


# --- settings ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditStoreSettings:
    """Where the audit log goes. ``bucket`` is ``s3://bucket/prefix``; empty: no upload."""

    bucket: str = ""
    kms_key: str = ""
    region: str = ""
    endpoint_url: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.bucket or self.kms_key)

    def check(self) -> None:
        """Bad settings are exit 2, before anything is sent anywhere."""
        if not self.bucket:
            raise InputError(
                "audit-kms-key is set but audit-bucket is empty",
                hint="set audit-bucket = s3://bucket/prefix (or UPM_AUDIT_BUCKET), or neither",
            )
        self.location()
        key = self.kms_key.strip()
        if not key:
            raise InputError(
                f"audit-bucket {self.bucket}: audit-kms-key is empty",
                hint="set audit-kms-key to the KMS key id or ARN (UPM_AUDIT_KMS_KEY)",
            )
        if key.startswith("alias/") or ":alias/" in key:
            raise InputError(
                f"audit-kms-key {key}: an alias can be re-pointed to another key",
                hint="give the key id or the key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)",
            )
        if any(c.isspace() for c in key):
            raise InputError(f"audit-kms-key {key!r}: contains whitespace")
        if self.endpoint_url:
            check_http_url(self.endpoint_url, where="audit-endpoint-url")

    def location(self) -> tuple[str, str]:
        """(bucket, prefix without slashes at either end)."""
        url = self.bucket.strip()
        if not url.startswith("s3://"):
            raise InputError(
                f"audit-bucket {url!r}: not an s3:// URL", hint="write s3://bucket/prefix"
            )
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not (3 <= len(bucket) <= 63) or not all(c.isalnum() or c in ".-" for c in bucket):
            raise InputError(
                f"audit-bucket {url!r}: {bucket!r} is not an S3 bucket name",
                hint="3-63 lower-case letters, digits, dots and hyphens",
            )
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise InputError(f"audit-bucket {url!r}: the prefix has an empty, . or .. part")
        return bucket, prefix

    def key_for(self, run: str, name: str) -> str:
        _, prefix = self.location()
        return "/".join(p for p in (prefix, run, name) if p)

    def url_for(self, run: str, name: str) -> str:
        bucket, _ = self.location()
        return f"s3://{bucket}/{self.key_for(run, name)}"


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); InputError when it names no object."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise InputError(f"{url!r}: not the s3://bucket/key URL of an object")
    return bucket, key


def key_matches(reported: str, expected: str) -> bool:
    """Is the key S3 reports the configured one? AWS reports the key ARN; S3-compatible stores
    may echo what was sent. A key id matches its ARN; two ARNs must be equal."""
    reported, expected = reported.strip(), expected.strip()
    if not reported or not expected:
        return False
    if reported == expected:
        return True
    if reported.startswith("arn:") and expected.startswith("arn:"):
        return False
    return reported.endswith(f":key/{expected}") or expected.endswith(f":key/{reported}")


# --- what the service holds --------------------------------------------------------------------
@dataclass(frozen=True)
class StoredObject:
    """One object as the service describes it (never what we asked for)."""

    url: str
    sha256: str  # hex; "" when the service reports no SHA-256 checksum
    version_id: str
    encryption: str  # ServerSideEncryption as reported ("" = none reported)
    kms_key_id: str
    retention: str = ""  # "GOVERNANCE until 2026-12-01T00:00:00+00:00", or ""
    status: str = ""  # uploaded | kept | (empty when read)

    def problem(self, expected_key: str) -> str:
        """Why this object must not be trusted as KMS-encrypted with ``expected_key``; ''."""
        if self.encryption != KMS:
            shown = self.encryption or "no server-side encryption"
            return f"the service stores it with {shown}, not {KMS}"
        if not key_matches(self.kms_key_id, expected_key):
            shown = self.kms_key_id or "no key id"
            return f"the service stores it with KMS key {shown}, not {expected_key}"
        return ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _sha256_hex(b64: str | None) -> str:
    if not b64:
        return ""
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        return ""
    return raw.hex() if len(raw) == 32 else ""


def _described(url: str, answer: dict[str, Any], status: str = "") -> StoredObject:
    until = answer.get("ObjectLockRetainUntilDate")
    mode = answer.get("ObjectLockMode") or ""
    retention = f"{mode} until {until.isoformat() if until else '?'}" if mode else ""
    return StoredObject(
        url=url,
        sha256=_sha256_hex(answer.get("ChecksumSHA256")),
        version_id=str(answer.get("VersionId") or ""),
        encryption=str(answer.get("ServerSideEncryption") or ""),
        kms_key_id=str(answer.get("SSEKMSKeyId") or ""),
        retention=retention,
        status=status,
    )


# --- errors and retries ------------------------------------------------------------------------
def _error(exc: BaseException) -> tuple[str, int, str]:
    """(code, HTTP status, message) of a botocore ClientError, else ('', 0, '')."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return "", 0, ""
    err = response.get("Error") or {}
    meta = response.get("ResponseMetadata") or {}
    return (
        str(err.get("Code", "")),
        int(meta.get("HTTPStatusCode") or 0),
        str(err.get("Message", "")),
    )


def classify_botocore(exc: BaseException) -> float | None:
    """Retry throttling, 5xx and dropped connections; never access denied or other 4xx."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    code, status, _ = _error(exc)
    if code or status:
        if code in RETRYABLE_CODES or status >= 500 or status == 429:
            headers = (getattr(exc, "response", {}).get("ResponseMetadata") or {}).get(
                "HTTPHeaders"
            ) or {}
            after = headers.get("retry-after")
            try:
                return max(0.0, float(after)) if after else 0.0
            except ValueError:
                return 0.0
        return None
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return 0.0
    return None


#: What each operation needs, for the message when it is refused.
PERMISSIONS = {
    "PutObject": "s3:PutObject on {arn} (with aws:kms and this key) and kms:GenerateDataKey on "
    "the key",
    "HeadObject": "s3:GetObject on {arn}",
    "GetObject": "s3:GetObject on {arn} and kms:Decrypt on the key",
}


def _refusal(exc: BaseException, operation: str, bucket: str, key: str) -> UpmError | None:
    """The UpmError a refused call means, or None when it is not one we understand."""
    from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return InputError(
            f"s3://{bucket}: no AWS credentials",
            hint="in Actions use aws-actions/configure-aws-credentials (role-to-assume); "
            "locally the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/...)",
        )
    if isinstance(exc, NoRegionError):
        return InputError("audit-region is empty and AWS has no default region", hint="set it")
    code, status, message = _error(exc)
    if not code and not status:
        return None
    where = f"s3://{bucket}/{key}"
    said = f" ({code}: {message})" if message else f" ({code or status})"
    if code == "NoSuchBucket":
        return InputError(
            f"audit-bucket: bucket {bucket} does not exist{said}",
            hint=f"create it (with versioning and Object Lock), or fix audit-bucket s3://{bucket}",
        )
    if code in DENIED_CODES or status == 403:
        permission = PERMISSIONS.get(operation, "access").format(arn=f"arn:aws:s3:::{bucket}/{key}")
        return PolicyError(
            f"{where}: {operation} was denied{said}",
            hint=f"the role needs {permission}; see docs/security.md",
        )
    if code.startswith("KMS.") or code.startswith("KMS"):
        return PolicyError(f"{where}: {operation} refused by KMS{said}", hint="check audit-kms-key")
    if code in ("NoSuchKey", "404") or status == 404:
        return PolicyError(f"{where}: no such object{said}")
    if 400 <= status < 500:
        return InputError(f"{where}: {operation} refused{said}")
    return None


# --- the interface -----------------------------------------------------------------------------
class AuditStore:
    """``put``/``head``/``get`` of audit-log objects over one boto3 S3 client, with retries.

    ``client`` replaces the boto3 client (tests register botocore event hooks on a real one).
    """

    def __init__(
        self,
        settings: AuditStoreSettings,
        *,
        client: S3Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        # verify reads objects by URL: it needs no bucket of its own.
        self.bucket, self.prefix = settings.location() if settings.bucket else ("", "")
        self.policy = policy
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    def check_credentials(self) -> None:
        """Exit 2 before anything is published when the AWS chain has no credentials."""
        import boto3

        if self._client is not None:
            return
        session = boto3.Session(region_name=self.settings.region or None)
        if session.get_credentials() is None:
            raise InputError(
                f"audit-bucket {self.settings.bucket}: no AWS credentials",
                hint="in Actions use aws-actions/configure-aws-credentials (role-to-assume); "
                "locally the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/...)",
            )

    def _call(self, fn: Callable[[], Any], operation: str, key: str, bucket: str = "") -> Any:
        bucket = bucket or self.bucket
        try:
            return call_with_retry(
                fn,
                what=f"S3 {operation} s3://{bucket}/{key}",
                classify=classify_botocore,
                policy=self.policy,
            )
        except UpmError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to one line, or re-raised
            refusal = _refusal(exc, operation, bucket, key)
            if refusal is None:
                raise
            raise refusal from None

    def put(self, path: Path, key: str, *, sha256: str) -> StoredObject:
        """Store ``path`` at ``key`` unless an object is there; see the module docstring.

        Returns the object as the service describes it (status ``uploaded`` or ``kept``);
        PolicyError when another object is there or the service did not encrypt it as asked.
        """
        from botocore.exceptions import ClientError

        data = path.read_bytes()
        digest = hashlib.sha256(data).digest()
        if digest.hex() != sha256:
            raise InputError(f"{path}: sha256 differs from the manifest's", hint="re-run publish")
        url = f"s3://{self.bucket}/{key}"

        def attempt() -> dict[str, Any] | None:
            try:
                answer = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentType="application/json"
                    if key.endswith(".json")
                    else "application/x-ndjson",
                    ServerSideEncryption="aws:kms",
                    SSEKMSKeyId=self.settings.kms_key,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=base64.b64encode(digest).decode(),
                    IfNoneMatch="*",
                    Metadata={"sha256": sha256},
                )
                return dict(answer)
            except ClientError as e:
                code, status, _ = _error(e)
                if status == 412 or code == "PreconditionFailed":
                    return None  # something is there already: compare below
                raise

        answer = self._call(attempt, "PutObject", key)
        if answer is None:
            there = self.head(key)
            if there is None:  # pragma: no cover - deleted between the two calls
                raise PolicyError(f"{url}: refused as existing, then not found; re-run publish")
            if there.sha256 != sha256:
                shown = there.sha256[:12] + "..." if there.sha256 else "no SHA-256 checksum"
                raise PolicyError(
                    f"{url}: another object is already there ({shown}, version "
                    f"{there.version_id or '-'}); it is never overwritten",
                    hint="find out who wrote it; this run's log is sha256 " + sha256[:12] + "...",
                )
            log.info("s3: %s is already there with the same digest: kept", url)
            return StoredObject(**{**there.to_json(), "status": "kept"})
        reported = _sha256_hex(answer.get("ChecksumSHA256"))
        if reported and reported != sha256:
            raise PolicyError(
                f"{url}: the service reports sha256 {reported[:12]}... for what was sent as "
                f"{sha256[:12]}...",
                hint="the object is reported, not trusted",
            )
        # Read back what was stored (version id, encryption, retention) from the service.
        there = self.head(key, version_id=str(answer.get("VersionId") or ""))
        stored = there or _described(url, answer)
        if not stored.sha256:
            stored = StoredObject(**{**stored.to_json(), "sha256": reported or ""})
        log.info("s3: uploaded %s (version %s)", url, stored.version_id or "-")
        return StoredObject(**{**stored.to_json(), "status": "uploaded"})

    def head(self, key: str, *, version_id: str = "") -> StoredObject | None:
        """The object at ``key`` as the service describes it; None when there is none."""
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}

        def attempt() -> dict[str, Any] | None:
            try:
                return dict(
                    self.client.head_object(
                        Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **extra
                    )
                )
            except ClientError as e:
                code, status, _ = _error(e)
                if status == 404 and code in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

        answer = self._call(attempt, "HeadObject", key)
        return None if answer is None else _described(f"s3://{self.bucket}/{key}", answer)

    def get(self, bucket: str, key: str) -> tuple[bytes, StoredObject]:
        """The bytes of ``s3://bucket/key`` and the object as described with them."""

        def attempt() -> tuple[bytes, dict[str, Any]]:
            answer = self.client.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
            return answer["Body"].read(), dict(answer)

        data, answer = self._call(attempt, "GetObject", key, bucket)
        return data, _described(f"s3://{bucket}/{key}", answer)


def make_client(settings: AuditStoreSettings) -> S3Client:
    """A boto3 S3 client: the standard credential chain, no retries of its own."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_supported",
    )
    client: S3Client = boto3.client(
        "s3",
        region_name=settings.region or None,
        endpoint_url=settings.endpoint_url or None,
        config=config,
    )
    return client


# --- publish: the steps, resumable from the ledger ----------------------------------------------
def sealed(manifest: Manifest, settings: AuditStoreSettings, run: str, path: Path) -> bool:
    """Was this log already sent (the ledger names its object with its current digest)?

    Then it is final: a resumed run neither adds lines to it nor signs it again, so the
    object it re-sends is byte for byte the one already there.
    """
    if not path.is_file():
        return False
    entry = manifest.ledger_entry(LEDGER, settings.url_for(run, path.name))
    return entry is not None and entry.sha256 == sha256_file(path)


def upload(
    manifest: Manifest,
    store: AuditStore,
    run: str,
    files: list[Path],
    *,
    on_object: Callable[[StoredObject], None] = lambda o: None,
) -> list[StoredObject]:
    """Send the audit log and its bundle; ledger ``started`` before each, ``done`` after."""
    stored: list[StoredObject] = []
    for path in files:
        key = store.settings.key_for(run, path.name)
        url = f"s3://{store.bucket}/{key}"
        sha = sha256_file(path)
        manifest.record_ledger(LEDGER, url, sha256=sha, state="started")
        obj = store.put(path, key, sha256=sha)
        problem = obj.problem(store.settings.kms_key)
        on_object(obj)
        if problem:
            # The step did not end well: the ledger keeps it "started" (naming the object), and
            # the publish record names what the service reported.
            manifest.record_ledger(LEDGER, url, sha256=sha, state="started", url=_versioned(obj))
            manifest.record_phase("publish", "fail", audit_store_untrusted=[obj.to_json()])
            if manifest.path:
                manifest.save()
            raise PolicyError(
                f"{url} (version {obj.version_id or '-'}): {problem}; the object is reported, "
                "not trusted, and the release stays a draft",
                hint="enforce SSE-KMS with this key on the bucket (default encryption and a "
                "bucket policy), then re-run publish",
            )
        manifest.record_ledger(LEDGER, url, sha256=sha, state="done", url=_versioned(obj))
        stored.append(obj)
    return stored


def _versioned(obj: StoredObject) -> str:
    return f"{obj.url}?versionId={obj.version_id}" if obj.version_id else obj.url


def plan(settings: AuditStoreSettings, run: str, name: str) -> str:
    return (
        f"s3: put {settings.url_for(run, name)} and its .sigstore.json bundle with {KMS} key "
        f"{settings.kms_key} (never overwritten)"
    )


# --- verify: read it back ----------------------------------------------------------------------
def verify_uploads(
    store: AuditStore,
    urls: list[tuple[str, str]],
    *,
    policy: ExpectedSigner,
    trust_config: Path | None,
    offline: bool,
) -> list[ArtifactReport]:
    """Read each audit log back (``(url, recorded sha256 or '')``): its digest, that the
    service reports aws:kms with the expected key for it and its bundle, and the bundle."""
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore_models.common.v1 import HashAlgorithm

    from upm_ci.sigstore_common import (
        bundle_json_problem,
        explain_failure,
        load_trusted_root,
        make_verifier,
        run_sigstore_check,
        verification_policy,
    )
    from upm_ci.verify.report import ArtifactReport

    verifier = make_verifier(load_trusted_root(trust_config, offline=offline))
    expected = store.settings.kms_key
    reports: list[ArtifactReport] = []
    for url, recorded in urls:
        bucket, key = parse_url(url)
        data, obj = store.get(bucket, key)
        actual = hashlib.sha256(data).hexdigest()
        entry = ArtifactReport(url, actual)
        reports.append(entry)
        if recorded and recorded != actual:
            entry.add("s3-digest", "fail", f"sha256 {actual[:12]}... is not the recorded one")
        elif obj.sha256 and obj.sha256 != actual:
            entry.add("s3-digest", "fail", "the service's SHA-256 checksum differs from the bytes")
        else:
            how = "as recorded" if recorded else "read back"
            entry.add(
                "s3-digest",
                "pass",
                f"sha256 {actual[:12]}... {how} (version {obj.version_id or '-'})",
            )
        bundle_url = url + BUNDLE_SUFFIX
        try:
            bundle_bytes, bundle_obj = store.get(bucket, key + BUNDLE_SUFFIX)
        except PolicyError as e:
            entry.add("s3-encryption", _status(obj.problem(expected)), _said(obj, expected))
            entry.add("sigstore", "fail", f"{bundle_url}: {e.message}")
            continue
        problems = [p for p in (obj.problem(expected), bundle_obj.problem(expected)) if p]
        if problems:
            entry.add("s3-encryption", "fail", "; ".join(problems) + ": reported, not trusted")
        else:
            entry.add("s3-encryption", "pass", _said(obj, expected) + " (log and bundle)")
        try:
            bundle = Bundle.from_json(bundle_bytes)
        except Exception as e:  # noqa: BLE001 - any parse failure means "not a bundle"
            reason = bundle_json_problem(bundle_bytes) or (
                f"not a valid Sigstore bundle: {describe(e)}"
            )
            entry.add("sigstore", "fail", f"{bundle_url}: {reason}")
            continue
        hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(actual))
        error = run_sigstore_check(
            functools.partial(verifier.verify_artifact, hashed, bundle, verification_policy(policy))
        )
        if error:
            entry.add("sigstore", "fail", f"{bundle_url}: {explain_failure(policy, bundle, error)}")
        else:
            entry.add("sigstore", "pass", f"{bundle_url}: signature and identity verified")
    return reports


def _status(problem: str) -> str:
    return "fail" if problem else "pass"


def _said(obj: StoredObject, expected: str) -> str:
    problem = obj.problem(expected)
    return problem if problem else f"{KMS} with {obj.kms_key_id}"


def recorded_uploads(manifest: Manifest) -> list[tuple[str, str]]:
    """(url, sha256) of every audit log the manifest records as uploaded, not bundles."""
    entries = manifest.ledger.get(LEDGER, {})
    return [
        (url, e.sha256)
        for url, e in sorted(entries.items())
        if e.state == "done" and not url.endswith(BUNDLE_SUFFIX)
    ]
