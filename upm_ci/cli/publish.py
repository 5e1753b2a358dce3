"""``upm-ci publish``: the GitHub release (draft first, published last) and the package index."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from upm_ci import gha
from upm_ci.cli_common import (
    FILE,
    audit_store_options,
    audit_store_settings,
    check_output_path,
    echo,
    github_api_url_option,
    github_token_option,
    http_url,
    identity_token_option,
    markdown_table,
    masked,
    option,
    phase_options,
    repository_option,
    table,
    tag_option,
    trust_config_option,
)
from upm_ci.errors import InputError
from upm_ci.image.registry import credentials_options

if TYPE_CHECKING:
    pass


@click.command("publish")
@phase_options
@github_api_url_option
@github_token_option
@repository_option
@tag_option
@option(
    "--pypi-upload-url",
    "--repository-url",
    env="PYPI_UPLOAD_URL",
    default=None,
    callback=http_url,
    help="Index upload URL [default: config pypi-upload-url].",
)
@option(
    "--pypi-index-url",
    env="PYPI_INDEX_URL",
    default=None,
    callback=http_url,
    help="Index simple URL, read for files already there [default: config pypi-index-url].",
)
@option(
    "--pypi-token",
    env="PYPI_TOKEN",
    default=None,
    callback=masked,
    help="Index API token (user __token__).",
)
@option(
    "--trusted-publishing",
    env="TRUSTED_PUBLISHING",
    is_flag=True,
    help="Exchange the job's OIDC token for an upload token instead of --pypi-token.",
)
@option(
    "--attestations/--no-attestations",
    env="ATTESTATIONS",
    default=None,
    help="PEP 740 <dist>.publish.attestation files: require and send them, or never send them "
    "[default: send when every distribution has one, except with an API token to PyPI].",
)
@option("--skip-github", env="SKIP_GITHUB", is_flag=True, help="Do not touch the GitHub release.")
@option("--skip-pypi", env="SKIP_PYPI", is_flag=True, help="Do not upload to the index.")
@option(
    "--replace",
    env="REPLACE",
    is_flag=True,
    help="Overwrite draft assets whose digest differs (never a published release).",
)
@option(
    "--make-latest",
    env="MAKE_LATEST",
    type=click.Choice(["true", "false", "legacy"]),
    default=None,
    help="Release make_latest [default: config make-latest].",
)
@option("--dry-run", env="DRY_RUN", is_flag=True, help="Print the plan and change nothing.")
@option(
    "--published-json",
    env="PUBLISHED_JSON",
    type=FILE,
    default=None,
    help=(
        "Write what the release and the index hold afterwards here (a dry run writes its"
        ' plan, marked "dry_run": true).'
    ),
)
@option(
    "--expect-signer",
    env="EXPECT_SIGNER",
    default="",
    metavar="reusable|IDENTITY",
    help="The release was signed in another job: before anything is sent, verify every file"
    " (bundles, provenance, SBOM and PEP 740 attestations, SHA256SUMS, manifest digests) as"
    " signed by upm-release's reusable workflow (`reusable`) or this certificate identity,"
    " pinned to --repository and the tag.",
)
@option(
    "--handoff-digest",
    env="HANDOFF_DIGEST",
    default="",
    metavar="sha256:HEX",
    help="The reusable workflow's signed-artifact-digest output: the manifest's files and"
    " digests must be the ones it handed over (`upm-ci manifest digest`).",
)
@identity_token_option
@trust_config_option
@option(
    "--sign-audit-log/--no-sign-audit-log",
    env="SIGN_AUDIT_LOG",
    default=True,
    show_default=True,
    help="Sign the audit log (Sigstore) when an identity is available.",
)
@audit_store_options
@credentials_options
def command(
    project: Path,
    manifest: Path,
    dist_dir: Path | None,
    github_api_url: str | None,
    github_token: str,
    repository: str | None,
    tag: str | None,
    pypi_upload_url: str | None,
    pypi_index_url: str | None,
    pypi_token: str | None,
    trusted_publishing: bool,
    attestations: bool | None,
    skip_github: bool,
    skip_pypi: bool,
    replace: bool,
    make_latest: str | None,
    dry_run: bool,
    published_json: Path | None,
    expect_signer: str,
    handoff_digest: str,
    identity_token: str | None,
    trust_config: Path | None,
    sign_audit_log: bool,
    audit_bucket: str | None,
    audit_kms_key: str | None,
    audit_region: str | None,
    audit_endpoint_url: str | None,
    registry_username: str | None,
    registry_password: str | None,
) -> int:
    """Publish the release: attach every file to one draft GitHub release, upload the
    distributions to the index, then un-draft. Safe to re-run: what is there with the same
    digest is skipped; exit 1 when something there has other bytes.
    """
    from upm_ci.extras import require

    require("publish", "pipeline")
    from upm_ci.identity import handoff_signer
    from upm_ci.manifest import write_json_atomic
    from upm_ci.project import load_project, resolve_tag
    from upm_ci.publish.phase import PublishSettings, publish_release
    from upm_ci.publish.pypi import IndexTarget
    from upm_ci.release import open_manifest

    _check_options(
        skip_github=skip_github,
        skip_pypi=skip_pypi,
        trusted_publishing=trusted_publishing,
        pypi_token=pypi_token,
        published_json=published_json,
    )
    # a dynamic version is the build's: this job (contents: write, index token) runs no backend
    release, proj = open_manifest(manifest, load_project(project), tag=tag)
    config = proj.config
    repo = repository or proj.repository
    release_tag = resolve_tag(proj, tag)
    settings = PublishSettings(
        repository=repo,
        tag=release_tag,
        github_api_url=github_api_url or config.github_api_url,
        github_token=github_token,
        pypi=IndexTarget(
            upload_url=pypi_upload_url or config.pypi_upload_url,
            index_url=pypi_index_url or config.pypi_index_url,
            password=pypi_token or "",
            attestations=attestations is True,
            skip_attestations=attestations is False,
        ),
        trusted_publishing=trusted_publishing,
        skip_github=skip_github,
        skip_pypi=skip_pypi,
        replace=replace,
        make_latest=make_latest or config.make_latest,
        dry_run=dry_run,
        dist_dir=dist_dir,
        audit_store=audit_store_settings(
            proj, audit_bucket, audit_kms_key, audit_region, audit_endpoint_url
        ),
        expect_signer=(
            handoff_signer(expect_signer, repository=repo, tag=release_tag)
            if expect_signer
            else None
        ),
        handoff_digest=handoff_digest,
        trust_config=trust_config,
        registry_login=(registry_username or "", registry_password or ""),
        sign_audit_log=sign_audit_log,
        identity_token=identity_token or "",
    )
    result = publish_release(proj, release, settings)
    if published_json is not None:
        write_json_atomic(published_json, result.published)
    if dry_run:
        echo("Plan (dry run, nothing changed):")
        for step in result.plan:
            echo(f"  - {step}")
        return 0
    rows = [[i.destination, i.name, i.status] for i in result.items]
    rows += [
        [f"oci://{p.repository}", step.item, step.state] for p in result.images for step in p.steps
    ]
    echo(table(["where", "file", "status"], rows))
    github_items = [i for i in result.items if i.destination == "github"]
    if result.nothing_to_do:
        echo(f"nothing to do: {len(github_items)} assets already published")
    if result.release_url:
        echo(f"release: {result.release_url}")
        gha.set_output("release-url", result.release_url)
    if result.release_id is not None:
        gha.set_output("release-id", str(result.release_id))
    stored = _audit_store_line(result.published.get("audit_store") or {})
    echo(stored)
    headline = (
        f"nothing to do: {len(github_items)} assets already published"
        if result.nothing_to_do
        else f"{sum(i.status != 'skipped' for i in result.items)} files published"
    )
    gha.add_summary(
        f"### Publish {settings.tag}: {headline}\n\n"
        + (f"Release: {result.release_url}\n\n" if result.release_url else "")
        + markdown_table(["where", "file", "status"], rows)
        + f"\n\n{stored}\n"
    )
    return 0


def _audit_store_line(doc: dict[str, object]) -> str:
    """One line on where the audit log is kept besides the release."""
    objects = doc.get("objects")
    if not doc.get("uploaded") or not isinstance(objects, list):
        return "audit log: not uploaded to S3 (audit-bucket is not configured)"
    shown = [
        f"{o.get('url')} ({o.get('encryption')} {o.get('kms_key_id')}, version "
        f"{o.get('version_id') or '-'})"
        for o in objects
        if isinstance(o, dict)
    ]
    return "audit log: " + "; ".join(shown)


def _check_options(
    *,
    skip_github: bool,
    skip_pypi: bool,
    trusted_publishing: bool,
    pypi_token: str | None,
    published_json: Path | None,
) -> None:
    """Refuse what cannot be meant, before anything is read or uploaded: a publish that
    crashes on a bad output path after its uploads cannot be taken back."""
    if skip_github and skip_pypi:
        raise InputError(
            "--skip-github and --skip-pypi together leave nothing to publish",
            hint="drop one of them (or use --dry-run to see the plan)",
        )
    if trusted_publishing and pypi_token:
        raise InputError(
            "--trusted-publishing and --pypi-token (UPM_PYPI_TOKEN) together: which one?",
            hint="trusted publishing needs no token; unset the token or drop the flag",
        )
    if published_json is not None:
        check_output_path(published_json, "--published-json")
