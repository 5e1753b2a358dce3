"""The verify phase: verify a release directory (or what a GitHub release holds) end to end,
the audit log's copy in S3 and the images in their registry, and record the result.

:func:`verify_phase` is the phase (download, :func:`verify_release`, the audit log read
back, the images, the manifest's ``verify`` record); :func:`verify_release` checks one
directory.

Every file gets an entry with one status per check, so a user sees which artifact failed and
why: its Sigstore bundle under the expected identity policy, its line in ``SHA256SUMS``, its
GPG signature, its place among the provenance subjects, and (wheel, SBOMs) the SBOM binding.
Anything that cannot be checked fails: an artifact without a bundle, an unlisted distribution,
a provenance that does not name exactly the distributions. PEP 740 publish attestations
(``<dist>.publish.attestation``) are optional, but each one must verify for its distribution
under the identity policy, and once one distribution has one, every distribution must.

What "offline" covers: verification never talks to Rekor or Fulcio. The bundle carries the
evidence (certificate with its embedded SCT, the log entry with its inclusion proof and signed
checkpoint, the Rekor v1 signed entry timestamp, RFC 3161 timestamps) and sigstore-python
checks all of it against the keys in the trust root. The only network use is fetching that
trust root from Sigstore's TUF repository when no ``--trust-config`` is given; ``--offline``
then uses the TUF cache instead. With ``--trust-config`` nothing goes over the network.

Where things are: :mod:`upm_ci.verify.checks` (the checks, and the forked processes for a
large release's bundles), :mod:`upm_ci.verify.report` (the report), :mod:`upm_ci.sigstore_common`
(trust root, identity policy, bundle verification), :mod:`upm_ci.release_download` (fetching
a GitHub release to verify).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from upm_ci import gha
from upm_ci.config import normalize_fingerprint
from upm_ci.errors import InputError
from upm_ci.identity import ExpectedSigner
from upm_ci.image.registry import RegistryCredentials
from upm_ci.manifest import Manifest
from upm_ci.project import Project
from upm_ci.release_download import DownloadLimits, download_release
from upm_ci.retry import describe
from upm_ci.sigstore_common import load_trusted_root, make_verifier
from upm_ci.timings import timed
from upm_ci.verify.checks import ReleaseVerification, available_cpus, release_files
from upm_ci.verify.report import FAIL, NOT_CHECKED, ArtifactReport, Check, VerifyReport

if TYPE_CHECKING:
    from sigstore.verify import Verifier

    from upm_ci.publish.audit_store import AuditStoreSettings

__all__ = ["GitHubRelease", "image_files", "verify_phase", "verify_release"]

log = logging.getLogger(__name__)


def image_files(manifest: Manifest | None, directories: Collection[Path]) -> list[Path]:
    """The images' OCI layouts in these dist directories: the image is verified from its
    registry (a row per image), not as a release file. Its bundles are release files
    (:mod:`upm_ci.image.release_assets`), checked here and in the registry."""
    if manifest is None or not manifest.images:
        return []
    from upm_ci.image.registry import layout_dir

    return [layout_dir(manifest, record, d) for record in manifest.images for d in directories]


def verify_release(
    directory: Path,
    *,
    policy: ExpectedSigner,
    trust_config: Path | None,
    offline: bool,
    manifest: Manifest | None,
    gpg_public_key: Path | None,
    gpg_fingerprint: str = "",
    ignore: Collection[Path] = (),
    verifier: Verifier | None = None,
    processes: int | None = None,
    published: bool = True,
) -> VerifyReport:
    """Verify every file in ``directory``; the report says what passed, per file and check.

    ``published``: False for a release checked before publish (the hand-off), which cannot
    hold yet the files the release statement says publish adds (its audit log).

    ``ignore``: files in the directory that are not part of the release (the report itself).
    ``verifier``: a prepared verifier to reuse (its trust root wins over ``trust_config``).
    ``processes``: at most this many processes check bundles (default: the CPUs this process
    may use); see :func:`upm_ci.verify.checks.bundle_processes`.
    ``gpg_public_key`` / ``gpg_fingerprint``: the pinned GPG key (see
    ``ReleaseVerification.check_gpg``).
    """
    if processes is not None and processes < 1:
        raise InputError(f"--processes {processes}: must be at least 1")
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: release directory not found", hint="pass the dist dir")
    if gpg_public_key is not None and not gpg_public_key.is_file():
        raise InputError(f"{gpg_public_key}: GPG public key not found")
    irregular: dict[str, str] = {}
    files = release_files(directory, ignore, irregular)
    if verifier is None:
        root = load_trusted_root(trust_config, offline=offline)
        try:
            verifier = make_verifier(root)
        except Exception as e:  # noqa: BLE001 - sigstore raises several kinds for a bad root
            raise InputError(
                f"{trust_config or 'Sigstore trust root'}: unusable trust root: {describe(e)}"
            ) from None
    run = ReleaseVerification(directory, files, policy, verifier, processes or available_cpus())
    fingerprint = normalize_fingerprint(gpg_fingerprint, where="--gpg-fingerprint")
    run.published = published
    run.verify_all(manifest, gpg_public_key, fingerprint)
    for name, kind in irregular.items():
        run.entry(name).add(
            "regular-file",
            FAIL,
            f"{kind}, not a regular file: a release directory holds regular files only",
        )
    log.info("verified %d files in %s", len(files), directory)
    return VerifyReport(policy=policy.fields(), artifacts=run.ordered(), directory=str(directory))


@dataclass(frozen=True)
class GitHubRelease:
    """A published GitHub release to download and verify (``--github-release``)."""

    api_url: str
    token: str
    repository: str
    tag: str
    limits: DownloadLimits = field(default_factory=DownloadLimits)


def verify_phase(
    directory: Path | None,
    *,
    project: Project | None,
    manifest: Manifest | None,
    policy: ExpectedSigner,
    trust_config: Path | None,
    offline: bool,
    gpg_public_key: Path | None = None,
    gpg_fingerprint: str = "",
    processes: int | None = None,
    ignore: Sequence[Path] = (),
    github: GitHubRelease | None = None,
    audit_log: str | None = None,
    audit_store: AuditStoreSettings | None = None,
    skip_images: bool = False,
    registry_login: tuple[str, str] = ("", ""),
) -> VerifyReport:
    """The verify phase: the release files (``directory``, else the project's dist dir; with
    ``github``, downloaded into ``directory`` or a temporary one), the audit log read back
    from S3 (``audit_log``, else what ``manifest`` records), the manifest's images from their
    registry (``skip_images``: each one a not-checked row), then the ``verify`` record in the
    manifest (when it has a path). ``ignore``: files that are not release files (the report,
    the manifest); the images' layouts are never release files (their bundles are).
    ``registry_login``: (user, password) for the images' registry (empty: anonymous)."""
    dist = project.path(project.config.dist_dir) if project else None
    ignore = [*ignore, *image_files(manifest, [d for d in (directory, dist) if d])]

    def run(dest: Path) -> VerifyReport:
        return verify_release(
            dest,
            policy=policy,
            trust_config=trust_config,
            offline=offline,
            manifest=manifest,
            gpg_public_key=gpg_public_key,
            gpg_fingerprint=gpg_fingerprint,
            ignore=ignore,
            processes=processes,
        )

    if github is not None:
        with tempfile.TemporaryDirectory(prefix="upm-verify-") as tmp:
            dest = directory or Path(tmp)
            with timed("verify: download the release"):
                download_release(
                    github.api_url,
                    github.token,
                    github.repository,
                    github.tag,
                    dest,
                    limits=github.limits,
                )
            with timed("verify: the release's files"):
                report = run(dest)
    elif audit_log and directory is None:  # only the audit log in S3
        report = VerifyReport(policy=policy.fields(), artifacts=[])
    else:
        report = run(directory or dist or Path("dist"))
    report.artifacts.extend(
        audit_log_reports(
            manifest,
            policy,
            trust_config=trust_config,
            offline=offline,
            audit_log=audit_log,
            settings=audit_store,
        )
    )
    if manifest is not None and manifest.images and skip_images:
        report.artifacts.extend(skipped_images(manifest))
    elif manifest is not None and manifest.images:
        with timed("verify: images"):
            images = image_reports(
                manifest,
                policy,
                trust_config,
                offline,
                registry=RegistryCredentials(*registry_login),
            )
        report.artifacts.extend(images)
    if manifest is not None and manifest.path is not None:
        unchecked = [f"{name}: {c.check}" for name, c in report.not_checked()]
        manifest.record_phase(
            "verify",
            "pass" if report.passed else "fail",
            **({"not_checked": unchecked} if unchecked else {}),
        )
        manifest.save()
    return report


def skipped_images(manifest: Manifest) -> list[ArtifactReport]:
    """A not-checked row per image of the manifest (``--skip-images``)."""
    reason = "not checked (--skip-images: an image is verified in its registry)"
    return [
        ArtifactReport(
            f"{record.repository or record.ref}@{record.digest}",
            record.digest.removeprefix("sha256:"),
            [Check("image", NOT_CHECKED, reason)],
        )
        for record in manifest.images
    ]


def image_reports(
    manifest: Manifest,
    policy: ExpectedSigner,
    trust_config: Path | None,
    offline: bool,
    *,
    registry: RegistryCredentials | None = None,
) -> list[ArtifactReport]:
    """One row per image of the manifest, verified from its registry (digest, tags, the
    signature and attestations stored next to it) for the same identity policy."""
    from upm_ci.extras import require

    require("verify of the manifest's images", "image")  # oras
    from upm_ci.image.verify import verify_images

    verifier = make_verifier(load_trusted_root(trust_config, offline=offline))
    return verify_images(
        manifest.images,
        verifier=verifier,
        policy=policy,
        credentials=registry or RegistryCredentials(),
    )


def audit_log_reports(
    manifest: Manifest | None,
    policy: ExpectedSigner,
    *,
    trust_config: Path | None,
    offline: bool,
    audit_log: str | None,
    settings: AuditStoreSettings | None,
) -> list[ArtifactReport]:
    """The audit log read back from S3: ``audit_log``, else what the manifest records."""
    from upm_ci.publish import audit_store

    recorded = audit_store.recorded_uploads(manifest) if manifest is not None else []
    if audit_log:
        audit_store.parse_url(audit_log)
        urls = [(audit_log, dict(recorded).get(audit_log, ""))]
    else:
        urls = recorded
    if not urls:
        return []
    settings = settings or audit_store.AuditStoreSettings()
    if not settings.kms_key and not audit_log and not gha.in_actions():
        # The read-back from S3 is the pipeline's own check of its copy (publish wrote it; in
        # GitHub Actions, the pipeline's verify job, a missing key stays an error below); the
        # log itself is a release file, verified with the others. A consumer without access
        # to the bucket is told it was not checked (never a pass).
        return [
            ArtifactReport(
                url,
                sha256,
                [
                    Check(
                        "audit log S3 copy",
                        NOT_CHECKED,
                        "not checked (no S3 access given: the read-back is the pipeline's own"
                        " check; pass --audit-kms-key KEY with credentials for the bucket to"
                        " read it back)",
                    )
                ],
            )
            for url, sha256 in urls
        ]
    if not settings.kms_key:
        raise InputError(
            "verify: the audit log in S3 needs the KMS key it must be encrypted with",
            hint="pass --audit-kms-key (key id or ARN) or set config audit-kms-key",
        )
    from upm_ci.extras import require

    require("verify of the audit log in S3", "pipeline")  # boto3
    store = audit_store.AuditStore(settings)
    return audit_store.verify_uploads(
        store, urls, policy=policy, trust_config=trust_config, offline=offline
    )
