"""A local S3 + KMS on 127.0.0.1: moto in server mode (``moto_server``), one process for both.

S3 and KMS do not answer on these machines. moto answers as AWS does for what the audit-log
upload uses: ``put_object`` with ``ServerSideEncryption=aws:kms`` and ``SSEKMSKeyId``,
``ChecksumSHA256``, ``If-None-Match: *`` (412 when an object is there), versioning, Object Lock
default retention, bucket default encryption, and it enforces ``Deny`` statements of a bucket
policy (403). What it does not check, so tests must not rely on it: that the KMS key exists
(a made-up key id is accepted), and that ``ChecksumSHA256`` matches the body.

Use::

    with S3StandIn() as s3:
        key_arn = s3.create_key()
        s3.create_bucket("upm-audit", object_lock_days=1)
        boto3.client("s3", endpoint_url=s3.url, **s3.credentials)...

The credentials are dummies that moto accepts (``AWS_ACCESS_KEY_ID=testing``...);
:meth:`S3StandIn.env` gives them with the endpoint and region as the ``AWS_*``/``UPM_AUDIT_*``
variables a phase process reads.

``fault_rate``/``fault_seed``/``fault_kinds`` put a small proxy (:class:`FaultProxy`) in front of
moto that applies the shared seeded fault plan (:mod:`upm_ci.standins.faults`): 5xx answers
with S3's XML error bodies (500 ``InternalError``, 502, 503 ``SlowDown``), reset and slow.
Not 429: S3 throttles with 503 SlowDown. :attr:`S3StandIn.url` is then the proxy's; the
stand-in's own setup calls (:meth:`create_key`, :meth:`create_bucket`) go to moto directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from upm_ci.standins._server import StandIn, free_port, stop_process, wait_until_answering
from upm_ci.standins.faults import FaultPlan, FaultProxy, check_kinds

#: What the S3 stand-in injects (S3 throttles with 503 SlowDown, not 429).
S3_FAULT_KINDS = ("5xx", "500", "502", "503", "reset", "slow")
S3_DEFAULT_FAULT_KINDS = ("5xx", "reset")

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
#: moto accepts any credentials; these are the ones its documentation uses.
CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing-secret-for-the-local-s3",
    "aws_session_token": "testing-session-token",
}


class S3StandIn(StandIn):
    """``moto_server`` on a free port of 127.0.0.1; start with ``with`` (about 1 s)."""

    label = "S3"

    def __init__(
        self,
        *,
        region: str = REGION,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Sequence[str] = S3_DEFAULT_FAULT_KINDS,
        retry_after: int = 1,
    ) -> None:
        self.region = region
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._tmp: Path | None = None
        check_kinds(fault_kinds, S3_FAULT_KINDS, self.label)
        self.faults = FaultPlan(
            rate=fault_rate, seed=fault_seed, kinds=fault_kinds, retry_after=retry_after
        )
        self._proxy: FaultProxy | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> S3StandIn:
        if self._process is not None:
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="upm-s3-"))
        self._port = free_port()
        binary = Path(sys.executable).parent / "moto_server"
        command = [str(binary), "-H", "127.0.0.1", "-p", str(self._port)]
        if not binary.exists():
            command[:1] = [sys.executable, "-m", "moto.server"]
        log_path = self._tmp / "moto.log"
        with open(log_path, "wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready(log_path)
        if self.faults.active:
            self._proxy = FaultProxy(
                self._port,
                self.faults,
                label="s3",
                fault_body=_s3_fault,
                exempt=lambda path: path.startswith("/moto-api/"),
                key=_without_version_id,
            )
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

    def _wait_ready(self, log_path: Path, timeout: float = 30.0) -> None:
        assert self._process is not None
        try:
            wait_until_answering(
                self._process,
                log_path,
                lambda: requests.get(f"{self.moto_url}/moto-api/data.json", timeout=1).ok,
                f"moto_server on port {self._port}",
                timeout,
            )
        except RuntimeError:
            self.stop()
            raise

    # -- where ----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._process is None:
            raise RuntimeError("the S3 stand-in is not started")
        return self._port

    @property
    def url(self) -> str:
        """The endpoint URL for both S3 and KMS (the fault proxy's when faults are asked for)."""
        if self._proxy is not None:
            return self._proxy.url
        return self.moto_url

    @property
    def moto_url(self) -> str:
        """moto itself, bypassing any fault proxy."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        return dict(CREDENTIALS)

    def env(self) -> dict[str, str]:
        """What a phase process needs to reach this S3 with boto3's standard chain."""
        return {
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": CREDENTIALS["aws_session_token"],
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "UPM_AUDIT_ENDPOINT_URL": self.url,
            "UPM_AUDIT_REGION": self.region,
        }

    # -- clients and setup ----------------------------------------------------------------------
    def s3(self) -> S3Client:
        """A boto3 S3 client of this stand-in."""
        import boto3

        client: S3Client = boto3.client("s3", **self._where())
        return client

    def kms(self) -> Any:
        """A boto3 KMS client of this stand-in."""
        import boto3

        return boto3.client("kms", **self._where())

    def _where(self) -> Any:
        return {"endpoint_url": self.moto_url, "region_name": self.region, **CREDENTIALS}

    def create_key(self, description: str = "upm-release audit log") -> str:
        """A new symmetric KMS key; returns its ARN."""
        answer = self.kms().create_key(Description=description)
        return str(answer["KeyMetadata"]["Arn"])

    def create_bucket(
        self,
        name: str,
        *,
        object_lock_days: int = 0,
        default_kms_key: str = "",
        default_aes256: bool = False,
        deny_puts_without_key: str = "",
    ) -> None:
        """A bucket (versioned, with Object Lock GOVERNANCE retention when ``object_lock_days``),
        optionally with default encryption and a policy that denies any put not encrypted with
        ``deny_puts_without_key`` (the refusal moto makes when the policy says so)."""
        s3 = self.s3()
        where: Any = (
            {}
            if self.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
        if object_lock_days:
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True, **where)
            s3.put_object_lock_configuration(
                Bucket=name,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": object_lock_days}},
                },
            )
        else:
            s3.create_bucket(Bucket=name, **where)
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if default_kms_key or default_aes256:
            rule: dict[str, Any] = (
                {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": default_kms_key}
                if default_kms_key
                else {"SSEAlgorithm": "AES256"}
            )
            config: Any = {"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]}
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=config)
        if deny_puts_without_key:
            statement = {
                "Sid": "DenyOtherKeys",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{name}/*",
                "Condition": {
                    "StringNotEquals": {
                        "s3:x-amz-server-side-encryption-aws-kms-key-id": deny_puts_without_key
                    }
                },
            }
            s3.put_bucket_policy(
                Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
            )


def _s3_fault(status: int) -> tuple[str, bytes]:
    """An injected fault's body, as S3 writes its errors (botocore reads the code)."""
    code = {500: "InternalError", 503: "SlowDown"}.get(status, "ServiceUnavailable")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>stand-in fault (HTTP {status})</Message>"
        "<RequestId>0000000000000000</RequestId></Error>"
    )
    return "application/xml", xml.encode()


def _without_version_id(path: str) -> str:
    """What the fault plan decides on: the request without the ``versionId`` moto made up
    (random per run), so one seed gives the same faults run after run."""
    base, _, query = path.partition("?")
    kept = [part for part in query.split("&") if part and not part.startswith("versionId=")]
    return f"{base}?{'&'.join(kept)}" if kept else base
