"""`upm-ci verify`: check a release directory, or what a GitHub release holds."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from upm_ci import gha
from upm_ci.cli_common import (
    FILE,
    audit_access_options,
    audit_store_settings,
    check_output_path,
    echo,
    echo_json,
    format_option,
    github_api_url_option,
    github_token_option,
    markdown_table,
    maybe_project,
    offline_option,
    option,
    project_option,
    repository_option,
    table,
    tag_word,
    trust_config_option,
)
from upm_ci.errors import EXIT_OK, EXIT_POLICY, InputError
from upm_ci.identity import GITHUB_ISSUER
from upm_ci.image.registry import credentials_options
from upm_ci.tables import fit_lines

if TYPE_CHECKING:
    from upm_ci.identity import ExpectedSigner
    from upm_ci.manifest import Manifest
    from upm_ci.project import Project
    from upm_ci.verify.report import VerifyReport


def _positive(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not (math.isfinite(value) and 0 < value <= 86400):
        raise click.BadParameter(f"{value}: give seconds, more than 0 and at most 86400")
    return value


@click.command("verify")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@project_option
@option(
    "--manifest",
    env="MANIFEST",
    type=FILE,
    default=None,
    help="Cross-check digests against this manifest, and record the verify phase in it.",
)
@option(
    "--github-release",
    env="GITHUB_RELEASE",
    metavar="TAG",
    callback=tag_word,
    help="Download and verify it.",
)
@github_api_url_option
@github_token_option
@repository_option
@option("--ref", env="REF", help="Tag or ref the signing workflow ran at [the release tag].")
@option("--workflow", env="WORKFLOW", help="Signing workflow path [config release-workflow].")
@option("--trigger", env="TRIGGER", help="Event that must have triggered it (e.g. push).")
@option("--identity", env="IDENTITY", help="Exact certificate identity (overrides the above).")
@option("--issuer", env="ISSUER", default=GITHUB_ISSUER, show_default=True, help="OIDC issuer.")
@trust_config_option
@offline_option
@option(
    "--audit-log",
    env="AUDIT_LOG",
    metavar="S3_URL",
    help="Read this s3://bucket/key audit log back: digest, Sigstore bundle (KEY.sigstore.json),"
    " aws:kms with the expected key [default: the uploads --manifest records].",
)
@audit_access_options
@option(
    "--gpg-public-key",
    env="GPG_PUBLIC_KEY",
    type=FILE,
    help="Check .asc signatures with this key only (a key shipped in the release is never"
    " trusted on its own).",
)
@option(
    "--gpg-fingerprint",
    env="GPG_FINGERPRINT",
    default=None,
    help="Only signatures by this key count [default: config gpg-fingerprint].",
)
@option("--report-json", env="REPORT_JSON", type=Path, help="Write the JSON report here.")
@option(
    "--processes",
    env="PROCESSES",
    type=click.IntRange(min=1),
    metavar="N",
    help="At most N processes verify bundles (Linux, large releases) [the CPUs available].",
)
@option(
    "--request-timeout",
    env="REQUEST_TIMEOUT",
    type=float,
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    callback=_positive,
    help="--github-release: each request, its answer and body included, within this time.",
)
@option(
    "--download-deadline",
    env="DOWNLOAD_DEADLINE",
    type=float,
    default=1800.0,
    show_default=True,
    metavar="SECONDS",
    callback=_positive,
    help="--github-release: the whole download, retries included, within this time (else exit 3).",
)
@option(
    "--max-download-bytes",
    env="MAX_DOWNLOAD_BYTES",
    type=click.IntRange(min=1),
    default=4 << 30,
    show_default=True,
    metavar="BYTES",
    help="--github-release: refuse a release whose assets declare more bytes than this.",
)
@option(
    "--skip-images",
    env="SKIP_IMAGES",
    is_flag=True,
    help="Do not verify the manifest's images in their registry (e.g. a rehearsal's, whose"
    " registry stopped with it): each is reported as not checked, never as a pass.",
)
@credentials_options
@format_option
def command(
    directory: Path | None,
    project: Path,
    manifest: Path | None,
    github_release: str | None,
    github_api_url: str | None,
    github_token: str,
    repository: str | None,
    ref: str | None,
    workflow: str | None,
    trigger: str | None,
    identity: str | None,
    issuer: str,
    trust_config: Path | None,
    offline: bool,
    audit_log: str | None,
    audit_kms_key: str | None,
    audit_region: str | None,
    audit_endpoint_url: str | None,
    gpg_public_key: Path | None,
    gpg_fingerprint: str | None,
    report_json: Path | None,
    processes: int | None,
    request_timeout: float,
    download_deadline: float,
    max_download_bytes: int,
    skip_images: bool,
    registry_username: str | None,
    registry_password: str | None,
    output_format: str,
) -> int:
    """Verify a release: bundles, identity, transparency log, SHA256SUMS, provenance, SBOM, GPG.

    DIRECTORY defaults to the project's dist dir; with --github-release TAG the release's
    assets are downloaded (into DIRECTORY if given, else a temporary one) and verified.
    Exit 1 names each failing artifact and why. Signatures must come from OWNER/REPO
    (--repository, the manifest, the project or $GITHUB_REPOSITORY) at the tag, by its
    release workflow or upm-release's reusable workflow (or the identity sign recorded in
    --manifest). Per bundle this is what plain sigstore does:

    \b
      sigstore --trust-config F verify github --offline \\
        --cert-identity https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/tags/TAG \\
        --repository OWNER/REPO --ref refs/tags/TAG [--trigger push] \\
        --bundle FILE.sigstore.json FILE

    (for a release made by the reusable workflow, --cert-identity is
    https://github.com/unexpected/upm-release/.github/workflows/upm-release.yml@UPM_REF)

    "Offline" covers everything but the trust root: inclusion proofs, checkpoints, SETs, SCTs
    and timestamps come from the bundles; --offline only stops the TUF refresh of Sigstore's
    root, and --trust-config needs no network at all.
    """
    from upm_ci.config import normalize_fingerprint
    from upm_ci.release_download import DownloadLimits
    from upm_ci.verify.phase import GitHubRelease, verify_phase

    _check_project(project)
    proj = maybe_project(project)
    loaded = _load_manifest(manifest, proj, github_release or ref, repository)
    if report_json is not None:
        check_output_path(report_json, "--report-json")
    fingerprint = normalize_fingerprint(
        gpg_fingerprint
        if gpg_fingerprint is not None
        else (proj.config.gpg_fingerprint if proj else ""),
        where="--gpg-fingerprint" if gpg_fingerprint is not None else "config gpg-fingerprint",
    )
    limits = DownloadLimits(request_timeout, download_deadline, max_download_bytes)
    policy = _policy(
        proj,
        loaded,
        repository=repository,
        ref=ref or github_release,
        workflow=workflow,
        trigger=trigger,
        identity=identity,
        issuer=issuer,
    )
    github = None
    if github_release:
        repo = (
            repository
            or (proj.repository if proj else "")
            or (loaded.project.repository if loaded else "")
        )
        if not repo:
            raise InputError("--github-release needs --repository owner/name")
        api = github_api_url or (proj.config.github_api_url if proj else "https://api.github.com")
        github = GitHubRelease(api, github_token, repo, github_release, limits)
    report = verify_phase(
        directory,
        project=proj,
        manifest=loaded,
        policy=policy,
        trust_config=trust_config,
        offline=offline,
        gpg_public_key=gpg_public_key,
        gpg_fingerprint=fingerprint,
        processes=processes,
        ignore=[p for p in (report_json, manifest) if p is not None],
        github=github,
        audit_log=audit_log,
        audit_store=audit_store_settings(proj, "", audit_kms_key, audit_region, audit_endpoint_url),
        skip_images=skip_images,
        registry_login=(registry_username or "", registry_password or ""),
    )
    if report_json is not None:
        report.write(report_json)
    _render(report, as_json=output_format == "json")
    return EXIT_OK if report.passed else EXIT_POLICY


def _load_manifest(
    path: Path | None, project: Project | None, tag: str | None, repository: str | None
) -> Manifest | None:
    """The manifest, refused when it is another release's than --project's (when given),
    or names another tag than --github-release/--ref or another repository than the one
    pinned (--repository, else the project's config or $GITHUB_REPOSITORY): a manifest never
    chooses whose signatures count."""
    from upm_ci.release import open_manifest

    if path is None:
        return None
    source = click.get_current_context().get_parameter_source("project")
    explicit = project if source is not click.core.ParameterSource.DEFAULT else None
    pinned = repository or (
        (project.config.repository if project else "") or os.environ.get("GITHUB_REPOSITORY", "")
    )
    tagged = tag if tag and (tag.startswith("refs/tags/") or not tag.startswith("refs/")) else None
    return open_manifest(path, explicit, tag=tagged, repository=pinned)[0]


def _check_project(project: Path) -> None:
    """``--project`` must name a directory (the default ``.`` always does)."""
    if not project.is_dir():
        raise InputError(
            f"--project {project}: no such directory",
            hint="name the project's directory, or leave --project out and pass --repository"
            " and --ref",
        )


def _policy(
    project: Project | None,
    manifest: Manifest | None,
    *,
    repository: str | None,
    ref: str | None,
    workflow: str | None,
    trigger: str | None,
    identity: str | None,
    issuer: str,
) -> ExpectedSigner:
    """Who must have signed (``identity.verification_signer``): the repository is
    ``--repository``, else the manifest's, the project's, or ``$GITHUB_REPOSITORY``; the tag
    ``--ref``/``--github-release``, else the manifest's or the project's."""
    from upm_ci.identity import verification_signer

    repo = (
        repository
        or (manifest.project.repository if manifest else "")
        or (project.repository if project else "")
        or os.environ.get("GITHUB_REPOSITORY", "")
    )
    recorded = manifest.recorded_signer() if manifest else None
    if identity:
        tag = ref or ""
    else:
        tag = ref or (manifest.project.tag if manifest else "") or (project.tag if project else "")
    return verification_signer(
        repository=repo,
        tag=tag,
        release_workflow=project.config.release_workflow if project else "",
        recorded=recorded.expected if recorded else None,
        workflow=workflow,
        trigger=trigger,
        identity=identity,
        issuer=issuer,
    )


def _render(report: VerifyReport, *, as_json: bool) -> None:
    headers = ["artifact", "result", "checks"]
    rows = []
    for a in report.artifacts:
        failed = [f"{c.check}: {c.reason}" for c in a.checks if c.status == "fail"]
        warned = [f"{c.check}: {c.reason}" for c in a.checks if c.status == "warn"]
        unchecked = [f"{c.check}: {c.reason}" for c in a.checks if c.status == "not-checked"]
        detail = "; ".join(failed or warned or unchecked) or ", ".join(c.check for c in a.checks)
        result = "ok" if a.passed else ("FAIL" if a.checked else "NOT CHECKED")
        rows.append([a.name, result, detail])
    if as_json:
        echo_json(report.to_json())
    else:
        echo(table(headers, rows))
    verdict = "passed" if report.passed else "FAILED"
    skipped = report.not_checked()
    for name, check in skipped:
        gha.annotate("warning", f"{name}: {check.check}: {check.reason}")
    if skipped and report.passed:
        verdict = f"passed for what was checked ({len(skipped)} not checked, listed above)"
    gha.add_summary(f"### Release verification {verdict}\n\n" + markdown_table(headers, rows))
    gha.set_output("passed", "true" if report.passed else "false")
    for name, check in report.failures():
        gha.annotate("error", f"{name}: {check.check}: {check.reason}")
    policy = "; ".join(f"{key} {value}" for key, value in report.policy.items())
    verdict_line = f"verification {verdict}: {len(report.artifacts)} files; policy: {policy}"
    echo("\n".join(fit_lines(verdict_line)), err=as_json)
