"""`upm-ci trust`: RELEASE.md's Artifact Trust Policy applied to files (`upm-ci trust FILE...`)
and to the release's dependencies (`upm-ci trust lock` writes the provenance lock)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from upm_ci import gha
from upm_ci.cli_common import (
    FILE,
    echo,
    echo_json,
    format_option,
    http_url,
    markdown_table,
    maybe_project,
    offline_option,
    option,
    project_option,
    repository_option,
    table,
    trust_config_option,
)
from upm_ci.errors import EXIT_OK, EXIT_POLICY, InputError
from upm_ci.image.registry import credentials_options


class _TrustGroup(click.Group):
    """``upm-ci trust FILE...`` stays the file check; ``upm-ci trust lock`` is the lock command
    (a file named like a subcommand is given as ``./lock``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group("trust", cls=_TrustGroup)
def command() -> None:
    """Decide each FILE by the Artifact Trust Policy (`trust FILE...`); `trust lock` records
    the dependencies' PEP 740 publishers."""


@command.command("check")
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
def check(
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
    from upm_ci import artifact_policy, identity
    from upm_ci.extras import require
    from upm_ci.sigstore_common import load_trusted_root, make_verifier

    if any(target.startswith("oci://") for target in files):
        require("trust of an image", "image")  # oras

    proj = maybe_project(project)
    repo = repository or (proj.repository if proj else "")
    identities = list(official_identity) or (proj.config.official_identities if proj else [])
    workflow = proj.config.release_workflow if proj else None
    official = identity.official_signers(repo, workflow, identities)
    if approvals is not None:
        records = artifact_policy.load_approvals(approvals, required=True)
    elif proj is not None:
        records = artifact_policy.load_approvals(
            proj.path(proj.config.trust_approvals), required=False
        )
    else:
        records = []
    verifier = make_verifier(load_trusted_root(trust_config, offline=offline))
    decisions = []
    for target in files:
        if target.startswith("oci://"):
            from upm_ci.image.artifact_policy import evaluate_image
            from upm_ci.image.registry import RegistryCredentials

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
            artifact_policy.evaluate(
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
        echo_json(artifact_policy.report_json(decisions))
    else:
        echo(table(headers, rows))
    gha.add_summary("### Artifact trust policy\n\n" + markdown_table(headers, rows))
    for d in decisions:
        if not d.accepted:
            gha.annotate(
                "error" if d.decision == "blocked" else "warning", f"{d.artifact}: {d.reason}"
            )
    return EXIT_OK if all(d.accepted for d in decisions) else EXIT_POLICY


@command.command("lock")
@project_option
@option(
    "--pypi-index-url",
    env="PYPI_INDEX_URL",
    default=None,
    callback=http_url,
    help="Index whose Integrity API serves the provenance [default: config pypi-index-url].",
)
@trust_config_option
@offline_option
@option(
    "--accept-changed",
    env="ACCEPT_CHANGED",
    multiple=True,
    help="Record this package's new publisher after reviewing the change (repeatable).",
)
@option(
    "--approve-unsigned",
    env="APPROVE_UNSIGNED",
    multiple=True,
    help="Approve this unsigned package (repeatable); needs --by, --reason and --until.",
)
@option("--by", "approved_by", env="APPROVED_BY", default="", help="Who approves.")
@option("--reason", env="APPROVAL_REASON", default="", help="Why it is approved.")
@option("--until", env="APPROVED_UNTIL", default="", help="Approval expiry, YYYY-MM-DD.")
def lock(
    project: Path,
    pypi_index_url: str | None,
    trust_config: Path | None,
    offline: bool,
    accept_changed: tuple[str, ...],
    approve_unsigned: tuple[str, ...],
    approved_by: str,
    reason: str,
    until: str,
) -> int:
    """Write or update the provenance lock (config provenance-lock, upm-provenance.json).

    Resolves the runtime dependencies to the files that would be installed, fetches and
    verifies each file's PEP 740 provenance, and records every new package's publisher
    (running this is the review of a new publisher). A changed publisher is recorded only with
    --accept-changed NAME; an unsigned package only with --approve-unsigned NAME --by WHO
    --reason WHY --until DATE. Exit 0 when every dependency is recorded, 1 when some are not.
    """
    from upm_ci import dependency_provenance as dp
    from upm_ci.project import load_project
    from upm_ci.sigstore_common import load_trusted_root, make_verifier

    approval = _approval(approve_unsigned, approved_by, reason, until)
    loaded = load_project(project)
    lock_path = loaded.path(loaded.config.provenance_lock)
    current = dp.load_lock(lock_path)
    files = dp.shipped_files(loaded)
    verifier = make_verifier(load_trusted_root(trust_config, offline=offline))
    fetcher = dp.ProvenanceFetcher(pypi_index_url or loaded.config.pypi_index_url, verifier)
    observations = fetcher.observe_all(files)
    update = dp.update_lock(
        current,
        observations,
        now=lambda: dt.datetime.now(dt.timezone.utc),
        accept_changed=accept_changed,
        unsigned=approval,
        unsigned_names=approve_unsigned,
    )
    current.save()
    rows = [["recorded", line] for line in update.added]
    rows += [["unchanged", line] for line in update.kept]
    rows += [["NOT recorded", line] for line in update.refused]
    echo(table(["lock", "package"], rows))
    gha.add_summary("### Provenance lock\n\n" + markdown_table(["lock", "package"], rows))
    for line in update.refused:
        gha.annotate("error", line, title="provenance lock")
    echo(f"upm-ci: wrote {lock_path}", err=True)
    return EXIT_OK if update.complete else EXIT_POLICY


def _approval(names: tuple[str, ...], by: str, reason: str, until: str) -> Any:
    from upm_ci.dependency_provenance import Approval

    if not names:
        if by or reason or until:
            raise InputError("--by/--reason/--until need --approve-unsigned NAME")
        return None
    missing = [
        flag for flag, v in (("--by", by), ("--reason", reason), ("--until", until)) if not v
    ]
    if missing:
        raise InputError(f"--approve-unsigned needs {', '.join(missing)}")
    try:
        expires = dt.date.fromisoformat(until)
    except ValueError:
        raise InputError(f"--until: {until!r} is not a YYYY-MM-DD date") from None
    return Approval(by.strip(), reason.strip(), expires)
