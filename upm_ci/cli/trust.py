"""`upm-ci trust`: RELEASE.md's Artifact Trust Policy applied to files."""

from __future__ import annotations

from pathlib import Path

import click

from upm_ci import gha
from upm_ci.cli._common import (
    FILE,
    echo,
    echo_json,
    format_option,
    markdown_table,
    maybe_project,
    offline_option,
    option,
    project_option,
    repository_option,
    table,
    trust_config_option,
)
from upm_ci.errors import EXIT_OK, EXIT_POLICY
from upm_ci.image.registry import credentials_options


@click.command("trust")
@click.argument("files", nargs=-1, required=True)
@project_option
@option("--approvals", env="TRUST_APPROVALS", type=FILE, help="Approval records [config].")
@repository_option
@option(
    "--official-identity",
    env="OFFICIAL_IDENTITIES",
    multiple=True,
    help="Also official: IDENTITY or IDENTITY|ISSUER (repeatable) [config].",
)
@trust_config_option
@offline_option
@credentials_options
@format_option
def command(
    files: tuple[str, ...],
    project: Path,
    approvals: Path | None,
    repository: str | None,
    official_identity: tuple[str, ...],
    trust_config: Path | None,
    offline: bool,
    registry_username: str | None,
    registry_password: str | None,
    output_format: str,
) -> int:
    """Decide each FILE by the Artifact Trust Policy: accepted, needs-review or blocked.

    A FILE's signature is FILE.sigstore.json next to it; a FILE written oci://HOST/NAME:TAG
    (or @sha256:...) is an image, judged by the Sigstore bundles stored next to it in the
    registry (row "Official Docker/Hub"). Official identities (this repository's
    release workflow, config official-identities) are accepted; other valid signers need an
    approval record (config trust-approvals: [{sha256, reviewer, date, reason}]); unsigned
    files and bad signatures are blocked. Exit 0 only when every FILE is accepted.
    With --format json: {schema, accepted, decisions: [{artifact, sha256, signer, row,
    decision, reason}]} on stdout.
    """
    from upm_ci import trust
    from upm_ci.extras import require
    from upm_ci.sigstore_trust import load_trusted_root, make_verifier

    if any(target.startswith("oci://") for target in files):
        require("trust of an image", "image")  # oras

    proj = maybe_project(project)
    repo = repository or (proj.repository if proj else "")
    identities = list(official_identity) or (proj.config.official_identities if proj else [])
    workflow = proj.config.release_workflow if proj else ".github/workflows/release.yml"
    official = trust.official_policies(repo, workflow, identities)
    if approvals is not None:
        records = trust.load_approvals(approvals, required=True)
    elif proj is not None:
        records = trust.load_approvals(proj.path(proj.config.trust_approvals), required=False)
    else:
        records = []
    verifier = make_verifier(load_trusted_root(trust_config, offline=offline))
    decisions = []
    for target in files:
        if target.startswith("oci://"):
            from upm_ci.image.registry import RegistryCredentials
            from upm_ci.image.trust import evaluate_image

            decisions.append(
                evaluate_image(
                    target,
                    official=official,
                    approvals=records,
                    verifier=verifier,
                    credentials=RegistryCredentials(
                        registry_username or "", registry_password or ""
                    ),
                )
            )
            continue
        path = Path(target)
        bundle = path.with_name(path.name + ".sigstore.json")
        decisions.append(
            trust.evaluate(
                path,
                bundle if bundle.is_file() else None,
                official=official,
                approvals=records,
                trust_config=trust_config,
                verifier=verifier,
            )
        )
    headers = ["artifact", "signer", "policy row", "decision", "why"]
    rows = [[d.artifact, d.signer or "-", d.row, d.decision, d.reason] for d in decisions]
    if output_format == "json":
        echo_json(trust.report_json(decisions))
    else:
        echo(table(headers, rows))
    gha.add_summary("### Artifact trust policy\n\n" + markdown_table(headers, rows))
    for d in decisions:
        if not d.accepted:
            gha.annotate(
                "error" if d.decision == "blocked" else "warning", f"{d.artifact}: {d.reason}"
            )
    return EXIT_OK if all(d.accepted for d in decisions) else EXIT_POLICY
