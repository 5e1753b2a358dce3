"""The audit log in S3 with KMS: real boto3 against the local S3+KMS (moto in server mode).

moto does not refuse a put by itself for a wrong or missing key; the refusals here are
arranged as on AWS (a bucket policy that denies other keys, a bucket whose default encryption
is something else) or by a botocore event hook on the real client (a request that loses its
encryption headers on the way, a throttled answer).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.fixtures.github import GITHUB_TOKEN, SAMPLE_NAME, SAMPLE_OWNER
from tests.fixtures.publish import publish_args
from tests.fixtures.pypi import make_release
from upm_ci.cli import main
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.layout import sha256_file
from upm_ci.manifest import Manifest
from upm_ci.project import load_project
from upm_ci.publish.audit_log import AuditLog
from upm_ci.publish.audit_store import (
    AuditStore,
    AuditStoreSettings,
    classify_botocore,
    key_matches,
    make_client,
    upload,
)
from upm_ci.publish.phase import PublishSettings, publish_release
from upm_ci.standins._server import free_port
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.s3 import S3StandIn
from upm_ci.standins.sigstore_server import SigstoreStandIn

REPO = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"
LOG = "upm-sample-1.2.0.audit.jsonl"


@pytest.fixture(scope="module")
def s3_standin() -> Iterator[S3StandIn]:
    with S3StandIn() as standin:
        yield standin


@pytest.fixture
def s3(s3_standin: S3StandIn, monkeypatch: pytest.MonkeyPatch) -> S3StandIn:
    """The stand-in, with this process's AWS chain pointed at it (dummy credentials)."""
    for name, value in s3_standin.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_standin


def _bucket(s3: S3StandIn, **kwargs: Any) -> str:
    name = f"audit-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name, **kwargs)
    return name


def _settings(s3: S3StandIn, bucket: str, key: str, prefix: str = "releases") -> AuditStoreSettings:
    return AuditStoreSettings(
        bucket=f"s3://{bucket}/{prefix}", kms_key=key, region=s3.region, endpoint_url=s3.url
    )


def _file(tmp_path: Path, text: str = '{"what": "x"}\n') -> tuple[Path, str]:
    path = tmp_path / LOG
    path.write_text(text)
    return path, sha256_file(path)


def _strip_encryption(store: AuditStore) -> None:
    """The request loses its SSE headers on the way: the service applies its own default."""

    def strip(request: Any, **_: Any) -> None:
        for header in list(request.headers.keys()):
            if header.lower().startswith("x-amz-server-side-encryption"):
                del request.headers[header]

    store.client.meta.events.register("before-sign.s3.PutObject", strip)


def _count(store: AuditStore, operation: str) -> list[str]:
    seen: list[str] = []
    store.client.meta.events.register(
        f"before-send.s3.{operation}", lambda request, **_: seen.append(request.url)
    )
    return seen


# --- put / head / get ------------------------------------------------------------------------
def test_put_stores_with_kms_checksum_and_object_lock(s3: S3StandIn, tmp_path: Path) -> None:
    key_arn = s3.create_key()
    bucket = _bucket(s3, object_lock_days=1)
    store = AuditStore(_settings(s3, bucket, key_arn))
    path, sha = _file(tmp_path)
    obj = store.put(path, f"releases/run-1/{LOG}", sha256=sha)
    assert obj.status == "uploaded" and obj.url == f"s3://{bucket}/releases/run-1/{LOG}"
    assert (obj.encryption, obj.kms_key_id, obj.sha256) == ("aws:kms", key_arn, sha)
    assert obj.version_id and obj.retention.startswith("GOVERNANCE until ")
    assert obj.problem(key_arn) == ""
    # The service itself says so, read with a client of its own.
    head = s3.s3().head_object(Bucket=bucket, Key=f"releases/run-1/{LOG}", ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_arn
    data, again = store.get(bucket, f"releases/run-1/{LOG}")
    assert data == path.read_bytes() and again.version_id == obj.version_id


def test_same_digest_is_kept_and_another_is_never_overwritten(
    s3: S3StandIn, tmp_path: Path
) -> None:
    key_arn = s3.create_key()
    bucket = _bucket(s3)
    store = AuditStore(_settings(s3, bucket, key_arn))
    path, sha = _file(tmp_path)
    first = store.put(path, f"p/{LOG}", sha256=sha)
    second = store.put(path, f"p/{LOG}", sha256=sha)
    assert (first.status, second.status) == ("uploaded", "kept")
    assert second.version_id == first.version_id
    versions = s3.s3().list_object_versions(Bucket=bucket, Prefix=f"p/{LOG}")["Versions"]
    assert len(versions) == 1

    path.write_text('{"what": "something else"}\n')
    with pytest.raises(PolicyError, match="another object is already there.*never overwritten"):
        store.put(path, f"p/{LOG}", sha256=sha256_file(path))
    versions = s3.s3().list_object_versions(Bucket=bucket, Prefix=f"p/{LOG}")["Versions"]
    assert [v["VersionId"] for v in versions] == [first.version_id]


@pytest.mark.parametrize("stored_as", ["unencrypted", "other-key"])
def test_object_already_there_without_the_key_is_reported_not_trusted(
    s3: S3StandIn, tmp_path: Path, stored_as: str
) -> None:
    key_arn, other = s3.create_key(), s3.create_key()
    bucket = _bucket(s3)
    settings = _settings(s3, bucket, key_arn)
    path, sha = _file(tmp_path)
    extra: dict[str, Any] = (
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": other}
        if stored_as == "other-key"
        else {}
    )
    object_key = settings.key_for("run-7", LOG)
    s3.s3().put_object(
        Bucket=bucket,
        Key=object_key,
        Body=path.read_bytes(),
        ChecksumAlgorithm="SHA256",
        **extra,
    )
    manifest = Manifest.load(make_release(tmp_path / "proj"))
    with pytest.raises(PolicyError, match="reported, not trusted") as caught:
        upload(manifest, AuditStore(settings), "run-7", [path])
    assert (other if stored_as == "other-key" else "no server-side encryption") in str(caught.value)
    saved = Manifest.load(manifest.path)  # type: ignore[arg-type]  # and it still loads
    entry = saved.ledger_entry("s3", f"s3://{bucket}/{object_key}")
    assert entry is not None and entry.state == "started" and entry.sha256 == sha
    assert "versionId=" in entry.url
    [reported] = saved.phases["publish"]["audit_store_untrusted"]
    assert reported["url"] == f"s3://{bucket}/{object_key}" and reported["sha256"] == sha


@pytest.mark.parametrize("default", ["aes256", "other-key"])
def test_service_that_stores_without_the_key_fails_the_upload(
    s3: S3StandIn, tmp_path: Path, default: str
) -> None:
    key_arn, other = s3.create_key(), s3.create_key()
    bucket = (
        _bucket(s3, default_aes256=True)
        if default == "aes256"
        else _bucket(s3, default_kms_key=other)
    )
    store = AuditStore(_settings(s3, bucket, key_arn))
    _strip_encryption(store)
    path, _ = _file(tmp_path)
    manifest = Manifest.load(make_release(tmp_path / "proj"))
    with pytest.raises(PolicyError, match="reported, not trusted") as caught:
        upload(manifest, store, "run-1", [path])
    assert ("AES256" if default == "aes256" else f"KMS key {other}") in str(caught.value)


def test_bucket_policy_refusal_is_exit_1_naming_the_permission_and_not_retried(
    s3: S3StandIn, tmp_path: Path
) -> None:
    key_arn, other = s3.create_key(), s3.create_key()
    bucket = _bucket(s3, deny_puts_without_key=other)
    store = AuditStore(_settings(s3, bucket, key_arn))
    sent = _count(store, "PutObject")
    path, sha = _file(tmp_path)
    with pytest.raises(PolicyError) as caught:
        store.put(path, f"releases/{LOG}", sha256=sha)
    assert caught.value.exit_code == 1
    assert "PutObject was denied" in str(caught.value)
    assert f"s3:PutObject on arn:aws:s3:::{bucket}/releases/{LOG}" in str(caught.value)
    assert len(sent) == 1


def test_missing_bucket_is_exit_2_naming_it(s3: S3StandIn, tmp_path: Path) -> None:
    store = AuditStore(_settings(s3, "no-such-audit-bucket", s3.create_key()))
    path, sha = _file(tmp_path)
    with pytest.raises(InputError, match="bucket no-such-audit-bucket does not exist"):
        store.put(path, f"releases/{LOG}", sha256=sha)


def test_throttling_and_5xx_are_retried(s3: S3StandIn, tmp_path: Path) -> None:
    key_arn = s3.create_key()
    store = AuditStore(_settings(s3, _bucket(s3), key_arn))
    answers = [
        (503, b"<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>"),
        (500, b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"),
    ]
    sent: list[int] = []

    def fault(request: Any, **_: Any) -> AWSResponse | None:
        sent.append(1)
        if not answers:
            return None
        status, body = answers.pop(0)
        raw = _Raw(body)
        headers: Any = {"content-type": "application/xml"}
        return AWSResponse(request.url, status, headers, raw)

    hook: Any = fault  # botocore takes the first non-None answer of a before-send hook
    store.client.meta.events.register("before-send.s3.PutObject", hook)
    path, sha = _file(tmp_path)
    assert store.put(path, f"r/{LOG}", sha256=sha).status == "uploaded"
    assert len(sent) == 3


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def test_service_down_is_exit_3_naming_the_unreachable_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3: S3StandIn
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "3")
    settings = AuditStoreSettings(
        bucket="s3://audit-down/x",
        kms_key="1234abcd-12ab-34cd-56ef-1234567890ab",
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
    )
    path, sha = _file(tmp_path)
    # A refused connection is an unreachable host, not a busy one: one quick retry, then it
    # is named (retry.py), however many attempts a busy service would get.
    with pytest.raises(ServiceError, match=r"host unreachable: 127\.0\.0\.1:\d+") as caught:
        AuditStore(settings).put(path, f"x/{LOG}", sha256=sha)
    assert caught.value.exit_code == 3


def test_classifier() -> None:
    def error(code: str, status: int) -> ClientError:
        answer: Any = {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return ClientError(answer, "PutObject")

    assert classify_botocore(error("SlowDown", 503)) == 0.0
    assert classify_botocore(error("ThrottlingException", 400)) == 0.0
    assert classify_botocore(error("InternalError", 500)) == 0.0
    assert classify_botocore(error("AccessDenied", 403)) is None
    assert classify_botocore(error("NoSuchBucket", 404)) is None
    assert classify_botocore(EndpointConnectionError(endpoint_url="http://x")) == 0.0
    assert classify_botocore(ValueError("no")) is None


def test_settings_are_checked_before_anything_is_sent() -> None:
    good = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    AuditStoreSettings("s3://upm-audit/releases", good).check()
    bad = [
        AuditStoreSettings("", good),
        AuditStoreSettings("s3://upm-audit/releases", ""),
        AuditStoreSettings("upm-audit/releases", good),
        AuditStoreSettings("s3://UP/x", good),
        AuditStoreSettings("s3://upm-audit/../x", good),
        AuditStoreSettings("s3://upm-audit", "alias/release-audit"),
        AuditStoreSettings("s3://upm-audit", good, endpoint_url="ftp://x"),
    ]
    for settings in bad:
        with pytest.raises(InputError):
            settings.check()
    assert AuditStoreSettings("s3://b-1/a/b/", good).key_for("9.1", LOG) == f"a/b/9.1/{LOG}"
    assert key_matches(good, "1234abcd-12ab-34cd-56ef-1234567890ab")
    assert key_matches("1234abcd-12ab-34cd-56ef-1234567890ab", good)
    assert not key_matches(good, good.replace("111122223333", "444455556666"))
    assert not key_matches("", good)


def test_no_credentials_is_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = AuditStoreSettings("s3://upm-audit/x", "k-1", region="us-east-1")
    with pytest.raises(InputError, match="no AWS credentials"):
        AuditStore(settings).check_credentials()
    make_client(settings)  # making a client needs none; sending does


# --- publish and verify, end to end ----------------------------------------------------------
@pytest.fixture
def gh() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(token={GITHUB_TOKEN: "bot"}) as standin:
        standin.add_commit(standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME), message="init", author="a")
        yield standin


def _publish_args(manifest: Path, gh: GitHubStandIn, *extra: str) -> list[str]:
    return publish_args(manifest, gh, "--skip-pypi", "--no-sign-audit-log", *extra)


def _release(gh: GitHubStandIn) -> dict[str, Any]:
    [release] = gh.snapshot()["repos"][0]["releases"]
    return release  # type: ignore[no-any-return]


def test_publish_uploads_before_undrafting_and_verify_reads_it_back(
    s3: S3StandIn,
    gh: GitHubStandIn,
    sigstore_standin: SigstoreStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.fixtures.release_kit import ReleaseSigner

    monkeypatch.setenv("GITHUB_RUN_ID", "5151")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    key_arn = s3.create_key()
    bucket = _bucket(s3, object_lock_days=1)
    manifest_path = make_release(tmp_path / "proj")
    settings = PublishSettings(
        repository=REPO,
        tag="v1.2.0",
        github_api_url=gh.api_url,
        github_token=GITHUB_TOKEN,
        skip_pypi=True,
        audit_store=_settings(s3, bucket, key_arn, prefix="upm-sample"),
    )
    drafts_at_upload: list[bool] = []
    s3_put = AuditStore.put

    def put(self: AuditStore, path: Path, key: str, *, sha256: str) -> Any:
        drafts_at_upload.append(_release(gh)["draft"])
        return s3_put(self, path, key, sha256=sha256)

    monkeypatch.setattr(AuditStore, "put", put)
    signer = ReleaseSigner(sigstore_standin)
    try:
        result = publish_release(
            load_project(manifest_path.parent),
            Manifest.load(manifest_path),
            settings,
            sign_file=signer.sign_file,
        )
    finally:
        signer.close()
    assert drafts_at_upload == [True, True]  # the log, then its bundle; both before un-drafting
    assert _release(gh)["draft"] is False
    url = f"s3://{bucket}/upm-sample/5151.2/{LOG}"
    assert [o.url for o in result.audit_objects] == [url, url + ".sigstore.json"]
    stored = result.published["audit_store"]
    assert stored["uploaded"] is True and stored["kms_key"] == key_arn
    [log_obj, bundle_obj] = stored["objects"]
    assert log_obj["encryption"] == "aws:kms" and log_obj["kms_key_id"] == key_arn
    assert log_obj["sha256"] == sha256_file(manifest_path.parent / LOG)
    assert log_obj["version_id"] and bundle_obj["version_id"]
    saved = Manifest.load(manifest_path)
    assert saved.ledger["s3"][url].state == "done"
    assert saved.phases["publish"]["audit_store"][0]["url"] == url

    verify = [
        "verify",
        "--project",
        str(manifest_path.parent),
        "--manifest",
        str(manifest_path),
        "--trust-config",
        str(sigstore_standin.trust_config_path),
        "--offline",
        "--audit-kms-key",
        key_arn,
    ]
    report = tmp_path / "verify.json"
    assert main([*verify, "--audit-log", url, "--report-json", str(report)]) == 0
    [entry] = json.loads(report.read_text())["artifacts"]
    assert entry["name"] == url and entry["passed"]
    assert {c["check"] for c in entry["checks"]} == {"s3-digest", "s3-encryption", "sigstore"}
    # By default verify reads back what the manifest records (here with the dist dir too).
    assert main([*verify, "--report-json", str(report)]) in (0, 1)
    read_back = {a["name"]: a for a in json.loads(report.read_text())["artifacts"]}
    assert read_back[url]["passed"]

    # Another key expected: exit 1, the object reported.
    capsys.readouterr()
    other = verify[:-1] + [s3.create_key(), "--audit-log", url]
    assert main(other) == 1
    assert "not trusted" in capsys.readouterr().out

    # Without the key (a consumer, who has no access to the bucket): the S3 copy is reported
    # not checked, never passed; in GitHub Actions (the pipeline's verify) it stays required.
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)  # this repository's CI runs there
    no_key = [*verify[:-2], "--report-json", str(report)]
    assert main(no_key) in (0, 1)  # as above: the dist dir's own verdict
    written = json.loads(report.read_text())
    rows = {a["name"]: a for a in written["artifacts"]}
    assert rows[url]["passed"] is False
    assert [c["status"] for c in rows[url]["checks"]] == ["not-checked"]
    assert written["not_checked"] == [f"{url}: audit log S3 copy"]
    assert "audit log S3 copy: not checked (" in capsys.readouterr().err
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(verify[:-2]) == 2
    assert "KMS key" in capsys.readouterr().err


def test_verify_fails_a_log_replaced_in_the_bucket(
    s3: S3StandIn,
    sigstore_standin: SigstoreStandIn,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.fixtures.release_kit import REPOSITORY, ReleaseSigner

    key_arn = s3.create_key()
    bucket = _bucket(s3)
    store = AuditStore(_settings(s3, bucket, key_arn))
    path, sha = _file(tmp_path)
    signer = ReleaseSigner(sigstore_standin)
    try:
        bundle = signer.sign_file(path)
    finally:
        signer.close()
    store.put(path, f"r/{LOG}", sha256=sha)
    store.put(bundle, f"r/{LOG}.sigstore.json", sha256=sha256_file(bundle))
    args = [
        "verify",
        "--audit-log",
        f"s3://{bucket}/r/{LOG}",
        "--repository",
        REPOSITORY,
        "--ref",
        "v1.2.0",
        "--trust-config",
        str(sigstore_standin.trust_config_path),
        "--offline",
        "--audit-kms-key",
        key_arn,
        "--project",
        str(tmp_path / "empty"),
    ]
    (tmp_path / "empty").mkdir()
    assert main(args) == 0
    # Someone with write access puts a new version over it: the signature no longer matches.
    s3.s3().put_object(
        Bucket=bucket,
        Key=f"r/{LOG}",
        Body=b'{"what": "rewritten"}\n',
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key_arn,
    )
    capsys.readouterr()
    assert main(args) == 1
    assert "sigstore" in capsys.readouterr().out


def test_s3_down_is_exit_3_then_a_rerun_resumes_with_the_same_log(
    s3: S3StandIn,
    gh: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    key_arn = s3.create_key()
    bucket = _bucket(s3)
    manifest_path = make_release(tmp_path / "proj")
    store_args = ["--audit-bucket", f"s3://{bucket}/logs", "--audit-kms-key", key_arn]
    down = f"http://127.0.0.1:{free_port()}"
    args = _publish_args(manifest_path, gh, *store_args)
    assert main([*args, "--audit-endpoint-url", down]) == 3
    assert _release(gh)["draft"] is True
    log_path = manifest_path.parent / LOG
    after_first = log_path.read_bytes()
    url = f"s3://{bucket}/logs/local/{LOG}"
    assert Manifest.load(manifest_path).ledger["s3"][url].state == "started"

    published = tmp_path / "published.json"
    capsys.readouterr()
    assert main([*args, "--published-json", str(published)]) == 0  # UPM_AUDIT_ENDPOINT_URL
    out = capsys.readouterr().out
    assert f"audit log: {url} (aws:kms {key_arn}" in out
    assert _release(gh)["draft"] is False
    assert log_path.read_bytes() == after_first  # sealed: not extended by the re-run
    whats = [e["what"] for e in AuditLog(log_path).entries()]
    assert whats.count("github-release-publish-requested") == 1
    body = s3.s3().get_object(Bucket=bucket, Key=f"logs/local/{LOG}")["Body"].read()
    assert body == after_first
    doc = json.loads(published.read_text())["audit_store"]
    assert doc["objects"][0]["url"] == url and doc["objects"][0]["encryption"] == "aws:kms"


def test_without_a_bucket_nothing_is_uploaded_and_the_summary_says_so(
    gh: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    published = tmp_path / "published.json"
    manifest_path = make_release(tmp_path / "proj")
    assert main([*_publish_args(manifest_path, gh), "--published-json", str(published)]) == 0
    said = "audit log: not uploaded to S3 (audit-bucket is not configured)"
    assert said in capsys.readouterr().out and said in summary.read_text()
    assert json.loads(published.read_text())["audit_store"]["uploaded"] is False
    assert "s3" not in json.loads(manifest_path.read_text())["ledger"]


def test_credentials_are_never_printed(
    s3: S3StandIn,
    gh: GitHubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY" + uuid.uuid4().hex[:6]
    token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN" + uuid.uuid4().hex[:6]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    key_arn, other = s3.create_key(), s3.create_key()
    denied = _bucket(s3, deny_puts_without_key=other)
    manifest_path = make_release(tmp_path / "proj")
    args = _publish_args(
        manifest_path, gh, "--audit-bucket", f"s3://{denied}/x", "--audit-kms-key", key_arn
    )
    assert main(["--debug", *args]) == 1
    captured = capsys.readouterr()
    assert "s3:PutObject" in captured.err
    texts = [captured.out, captured.err, summary.read_text() if summary.exists() else ""]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(secret in t or token in t for t in texts)


def test_dry_run_plans_the_upload(
    gh: GitHubStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest_path = make_release(tmp_path / "proj")
    key = "1234abcd-12ab-34cd-56ef-1234567890ab"
    args = _publish_args(manifest_path, gh, "--dry-run", "--audit-bucket", "s3://upm-audit/r")
    assert main([*args, "--audit-kms-key", key]) == 0
    assert f"s3: put s3://upm-audit/r/local/{LOG}" in capsys.readouterr().out
    assert main([*args, "--audit-kms-key", "alias/audit"]) == 2
