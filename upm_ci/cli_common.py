"""What every subcommand shares: options readable from ``UPM_*`` variables, and output.

The CLI is the only layer that prints; everything it prints passes through :func:`echo`,
which redacts masked secrets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from upm_ci import gha
from upm_ci.tables import markdown_table as markdown_table  # re-exported for the CLI
from upm_ci.tables import table as table

if TYPE_CHECKING:
    from upm_ci.project import Project
    from upm_ci.publish.audit_store import AuditStoreSettings

F = TypeVar("F", bound=Callable[..., Any])

FILE = click.Path(dir_okay=False, path_type=Path)


def option(*decls: str, env: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that also reads ``UPM_<env>`` and shows it in ``--help``."""
    return click.option(*decls, envvar=f"UPM_{env}", show_envvar=True, **kwargs)


def project_option(f: F) -> F:
    return option(
        "--project",
        env="PROJECT",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="The project to release (its pyproject.toml holds [tool.upm-release]).",
    )(f)


def manifest_option(f: F) -> F:
    return option(
        "--manifest",
        env="MANIFEST",
        type=FILE,
        default=Path("release-manifest.json"),
        show_default=True,
        help="The release manifest every phase reads and extends.",
    )(f)


def _dist_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """``--dist-dir``: one line with no control character, else one line of bad input."""
    from upm_ci.layout import check_dist_dir_setting

    if not value:  # "" is the default, as an empty UPM_DIST_DIR is
        return None
    path = check_dist_dir_setting(Path(value), where="--dist-dir (UPM_DIST_DIR)")
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f"{value}: not a directory")
    return path


def dist_dir_option(f: F) -> F:
    return option(
        "--dist-dir",
        env="DIST_DIR",
        default=None,
        callback=_dist_dir,
        help="Artifacts directory [default: the project's dist-dir, `dist`].",
    )(f)


def dist_directory(project: Project, given: Path | None, manifest: Path) -> Path:
    """The artifacts directory: ``--dist-dir`` or the project's ``dist-dir``, checked before
    anything is written to lie inside the manifest's directory (every recorded path does)."""
    from upm_ci.layout import check_dist_dir_inside

    if given is not None:
        return check_dist_dir_inside(given, manifest.parent, where="--dist-dir (UPM_DIST_DIR)")
    return check_dist_dir_inside(
        project.path(project.config.dist_dir),
        manifest.parent,
        where=f"{project.root / 'pyproject.toml'}: [tool.upm-release] dist-dir",
    )


def phase_options(f: F) -> F:
    """``--project``, ``--manifest`` and ``--dist-dir``: what every artifact phase reads."""
    return project_option(manifest_option(dist_dir_option(f)))


def masked(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for secret options: mask the value the moment it is read."""
    if value:
        gha.mask(value)
    return value


def _github_token(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    token = value or os.environ.get("GITHUB_TOKEN", "")
    if token:
        gha.mask(token)
    return token


def http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback for URL options: an http(s) URL, or one line of bad input (exit 2)."""
    from upm_ci.config import http_url_problem

    if value:
        problem = http_url_problem(value)
        if problem:
            raise click.BadParameter(problem)
    return value


def github_api_url_option(f: F) -> F:
    return option(
        "--github-api-url",
        env="GITHUB_API_URL",
        default=None,
        callback=http_url,
        help="GitHub REST API base URL [default: config github-api-url].",
    )(f)


def github_token_option(f: F) -> F:
    """``--github-token``: falls back to ``$GITHUB_TOKEN``, masked; the value is a str."""
    return option(
        "--github-token",
        env="GITHUB_TOKEN",
        default=None,
        callback=_github_token,
        help="GitHub token [default: $GITHUB_TOKEN].",
    )(f)


def _repository(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--repository``: exactly ``owner/name``, else one line of bad input (exit 2)."""
    from upm_ci.config import check_repository

    if value:
        check_repository(value, where="--repository (UPM_REPOSITORY)")
    return value


def tag_word(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--tag``: one word for git (no control character, no leading dash)."""
    from upm_ci.config import check_word

    if value:
        check_word(value, where="--tag (UPM_TAG)")
    return value


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Click callback for float options: ``nan`` and ``inf`` pass click's ranges; not here."""
    import math

    from upm_ci.errors import InputError

    if value is not None and not math.isfinite(value):
        name = f"--{param.name.replace('_', '-')}" if param.name else "option"
        raise InputError(f"{name}: {value} is not a finite number", hint="give a number")
    return value


def repository_option(f: F) -> F:
    return option(
        "--repository",
        env="REPOSITORY",
        default=None,
        callback=_repository,
        help="GitHub owner/name [default: config, $GITHUB_REPOSITORY, git origin].",
    )(f)


def tag_option(f: F) -> F:
    return option(
        "--tag",
        env="TAG",
        default=None,
        callback=tag_word,
        help="Release tag [default: $GITHUB_REF if it is a tag, else tag-prefix + version].",
    )(f)


def osv_url_option(f: F) -> F:
    return option(
        "--osv-url",
        env="OSV_URL",
        default=None,
        callback=http_url,
        help="OSV query URL for the audit [default: config osv-url, else OSV itself].",
    )(f)


def identity_token_option(f: F) -> F:
    return option(
        "--identity-token",
        env="IDENTITY_TOKEN",
        default=None,
        callback=masked,
        help="OIDC token for Sigstore signing [default: the runner's ambient token].",
    )(f)


def trust_config_option(f: F) -> F:
    return option(
        "--trust-config",
        env="TRUST_CONFIG",
        type=FILE,
        default=None,
        help="Sigstore ClientTrustConfig JSON (staging, private or local instance) "
        "[default: public Sigstore].",
    )(f)


def audit_access_options(f: F) -> F:
    """``--audit-kms-key``/``--audit-region``/``--audit-endpoint-url``: publish and verify."""
    f = option(
        "--audit-endpoint-url",
        env="AUDIT_ENDPOINT_URL",
        default=None,
        help="S3 endpoint URL (S3-compatible stores, the local stand-in) [default: config "
        "audit-endpoint-url, else AWS].",
    )(f)
    f = option(
        "--audit-region",
        env="AUDIT_REGION",
        default=None,
        help="AWS region of the bucket [default: config audit-region, else the AWS chain's].",
    )(f)
    return option(
        "--audit-kms-key",
        env="AUDIT_KMS_KEY",
        default=None,
        help="KMS key id or ARN the audit log must be encrypted with [default: config "
        "audit-kms-key].",
    )(f)


def audit_store_options(f: F) -> F:
    """``--audit-bucket`` and :func:`audit_access_options`: where publish puts the log."""
    return option(
        "--audit-bucket",
        env="AUDIT_BUCKET",
        default=None,
        help="s3://bucket/prefix for the signed audit log [default: config audit-bucket; "
        "empty: no upload].",
    )(audit_access_options(f))


def audit_store_settings(
    project: Project | None,
    bucket: str | None,
    kms_key: str | None,
    region: str | None,
    endpoint_url: str | None,
) -> AuditStoreSettings:
    """Options over the project's config; AWS secrets in the environment are masked at once
    (boto3 reads them itself; they must never reach a log)."""
    from upm_ci.publish.audit_store import AuditStoreSettings

    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        if os.environ.get(name):
            gha.mask(os.environ[name])
    config = project.config if project is not None else None
    return AuditStoreSettings(
        bucket=bucket if bucket is not None else (config.audit_bucket if config else ""),
        kms_key=kms_key if kms_key is not None else (config.audit_kms_key if config else ""),
        region=region if region is not None else (config.audit_region if config else ""),
        endpoint_url=endpoint_url
        if endpoint_url is not None
        else (config.audit_endpoint_url if config else ""),
    )


def offline_option(f: F) -> F:
    return option(
        "--offline", env="OFFLINE", is_flag=True, help="Never refresh the trust root via TUF."
    )(f)


def maybe_project(root: Path) -> Project | None:
    """The project when ``root`` has a pyproject.toml (verify and trust also run without one)."""
    from upm_ci.project import load_project

    return load_project(root) if (root / "pyproject.toml").is_file() else None


def _set_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # eager: decided before any other option's callback masks a secret, so that in Actions
    # even ``::add-mask::`` goes to stderr and stdout holds nothing but the report
    gha.commands_to_stderr(value == "json")
    return value


def format_option(f: F) -> F:
    """``--format text|json``: json prints the command's report (what ``--report-json``
    writes) on stdout and nothing else there; logs and annotations stay on stderr."""
    return option(
        "--format",
        "output_format",
        env="FORMAT",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        is_eager=True,
        callback=_set_format,
        help="text: a table for people; json: the report on stdout, nothing else there.",
    )(f)


def echo_json(data: Any) -> None:
    """A JSON report on stdout, every string redacted."""
    click.echo(json.dumps(gha.redact_data(data), indent=2, ensure_ascii=False))


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print with every masked secret redacted and no line a workflow command."""
    click.echo(gha.safe_text(text), err=err, nl=nl)


def check_output_path(path: Path, option_name: str) -> None:
    """``path`` can be written: not a directory, in an existing, writable directory."""
    from upm_ci.errors import InputError

    if path.is_dir():
        raise InputError(f"{option_name} {path}: is a directory", hint="give a file path")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(
            f"{option_name} {path}: {parent} {what}",
            hint="give a path in an existing directory",
        )
    if not os.access(parent, os.W_OK):
        raise InputError(f"{option_name} {path}: {parent} is not writable")
