"""``upm-ci sign``: Sigstore bundles, SLSA provenance, SBOM attestation and GPG signatures.

The identity token comes from ``--identity-token`` (``UPM_IDENTITY_TOKEN``); else, on GitHub
Actions, from the runner (``permissions: id-token: write``); else, on a terminal, from
sigstore's interactive browser flow against the trust config's OIDC issuer (not for CI).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from upm_ci import gha
from upm_ci.cli_common import (
    dist_directory,
    echo,
    identity_token_option,
    markdown_table,
    masked,
    option,
    phase_options,
    table,
    trust_config_option,
)
from upm_ci.errors import InputError
from upm_ci.layout import RELEASE_STATEMENT

if TYPE_CHECKING:
    from upm_ci.manifest import Manifest


@click.command("sign")
@phase_options
@identity_token_option
@trust_config_option
@option(
    "--rekor-version",
    env="REKOR_VERSION",
    type=click.IntRange(1, 2),
    default=None,
    help="Force Rekor v1 or v2 [default: the trust config's first log].",
)
@option(
    "--expected-identity",
    env="EXPECTED_IDENTITY",
    default=None,
    help=(
        "Identity every bundle must verify for, always pinned to the repository and tag"
        " [default: the called workflow in a reusable workflow, else release-workflow at the tag]."
    ),
)
@option(
    "--gpg-key",
    env="GPG_PRIVATE_KEY",
    default=None,
    callback=masked,
    help="Armored GPG private key (or a file holding one): also write .asc signatures.",
)
@option(
    "--gpg-passphrase",
    env="GPG_PASSPHRASE",
    default=None,
    callback=masked,
    help="Passphrase of --gpg-key.",
)
@option(
    "--dry-run",
    env="DRY_RUN",
    is_flag=True,
    help="A dry run (e.g. dispatched from a branch): pin the ref that ran, not the release tag.",
)
def command(
    project: Path,
    manifest: Path,
    dist_dir: Path | None,
    identity_token: str | None,
    trust_config: Path | None,
    rekor_version: int | None,
    expected_identity: str | None,
    gpg_key: str | None,
    gpg_passphrase: str | None,
    dry_run: bool,
) -> int:
    """Sign every release file keylessly (Sigstore), attest provenance and SBOM, and GPG-sign.

    Every bundle is verified against the expected identity before the manifest records it;
    a re-run keeps what still verifies.
    """
    from upm_ci import identity, sign
    from upm_ci.project import load_project
    from upm_ci.release import open_manifest

    if gpg_passphrase and not gpg_key:
        raise InputError(
            "--gpg-passphrase (UPM_GPG_PASSPHRASE) without --gpg-key: nothing to unlock",
            hint="pass the key as --gpg-key / UPM_GPG_PRIVATE_KEY, or drop the passphrase",
        )
    found = load_project(project)
    dist = dist_directory(found, dist_dir, manifest)  # checked before anything is read or written
    # a dynamic version is the build's: this job (id-token, GPG key) runs no build backend
    release, proj = open_manifest(manifest, found)
    token = identity_token or identity.ambient_token() or _interactive_token(trust_config)
    expected = identity.signer_for_token(
        token,
        repository=proj.repository,
        tag=proj.tag,
        release_workflow=proj.config.release_workflow,
        source=proj.root / "pyproject.toml",
        identity=expected_identity,
        dry_run=dry_run,
    )
    result = sign.sign_release(
        proj,
        release,
        dist_dir=dist,
        identity_token=token,
        trust_config=trust_config,
        rekor_version=rekor_version,
        gpg_key=gpg_key,
        gpg_passphrase=gpg_passphrase,
        expected_identity=expected,
        event=identity.load_event(),
    )
    images = result.images
    rows = [
        [s.subject, s.file, "" if s.log_index is None else str(s.log_index), _state(s.reused)]
        for s in result.signed
    ]
    rows += [[", ".join(_subjects(release, a)), a, "", "signed"] for a in result.attestations]
    rows += [[f"image {m.image}", m.bundle, "", _state(m.reused)] for m in images]
    headers = ["file", "signature", "log index", "state"]
    echo(table(headers, rows))
    echo(f"\nidentity: {result.identity}")
    echo(f"pinned to: repository {result.repository}, ref {result.ref}")
    gha.add_summary(
        f"### Sign: {len(result.signed)} signatures, {len(result.attestations)} attestations\n\n"
        f"Identity `{result.identity}` ({result.issuer}), repository `{result.repository}`,"
        f" ref `{result.ref}`\n\n" + markdown_table(headers, rows)
    )
    gha.set_output("bundles", "\n".join(result.bundles))
    gha.set_output("manifest", str(release.path))
    return 0


def _state(reused: bool) -> str:
    return "kept" if reused else "signed"


def _subjects(release: Manifest, attestation: str) -> list[str]:
    record = next((a for a in release.attestations if a.file == attestation), None)
    if record is not None and attestation == RELEASE_STATEMENT:
        return [f"the release ({len(record.subjects)} files and images)"]
    return [s["name"] for s in record.subjects] if record else []


def _interactive_token(trust_config: Path | None) -> str:
    """sigstore's browser flow, only on a terminal; CI never gets here."""
    if not sys.stdin.isatty():
        raise InputError(
            "no identity token: set UPM_IDENTITY_TOKEN, or run on GitHub Actions with "
            "`permissions: id-token: write`"
        )
    from sigstore.oidc import Issuer

    from upm_ci.sigstore_common import load_trust_config

    config = load_trust_config(trust_config)
    token = str(Issuer(config.signing_config.get_oidc_url()).identity_token())
    gha.mask(token)
    return token
