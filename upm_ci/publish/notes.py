"""Release notes: the version's CHANGELOG section, the checksums, and how to verify.

RELEASE.md asks for ``CHANGELOG.md`` in the release notes (whatever the changelog's style, see
:mod:`upm_ci.changelog`); users also need to check what they download without reading our
docs, so the notes carry the exact commands (:func:`verify_commands`, the one place that writes
them). Each command is as strict as ``upm-ci verify``: it pins the repository, the workflow that
signed (its exact certificate identity: the reusable workflow's when it signed there), the tag
ref and the trigger (the OIDC issuer; the event, the runner and the commit when sign recorded
them), so a dry run signed on a branch, or another repository's release by the same reusable
workflow, never passes. ``upm-ci verify`` has no commit pin; gh and sigstore get one.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from upm_ci.changelog import section_for
from upm_ci.errors import InputError
from upm_ci.identity import GITHUB_ISSUER, RecordedSigner, notes_signer
from upm_ci.layout import (
    ATTESTATION_SUFFIX,
    BUNDLE_SUFFIX,
    CHECKSUMS,
    RELEASE_STATEMENT,
    VSA_PREDICATE_TYPE,
)
from upm_ci.manifest import Manifest
from upm_ci.project import Project
from upm_ci.provenance import SLSA_PROVENANCE_V1, statement_subjects

#: How a consumer installs the CLI the notes' first command runs.
INSTALL_COMMANDS = ("pipx install upm-release", "pip install upm-release")


@dataclass(frozen=True)
class VerifyCommands:
    """The commands the release notes print, each a line to paste into a shell."""

    download: str
    install: tuple[str, ...]
    all_at_once: str
    by_hand: list[str]


def recorded_signer(
    project: Project, manifest: Manifest, repository: str, tag: str
) -> RecordedSigner:
    """The signer sign recorded in the manifest (the reusable workflow's identity when it signed
    there), else the project's release workflow at the tag; always pinned to ``repository``
    and the tag's ref (a reusable workflow's identity is the same for every caller)."""
    return notes_signer(
        manifest.recorded_signer(),
        repository=repository,
        tag=tag,
        release_workflow=project.config.release_workflow,
    )


def verify_commands(
    project: Project, manifest: Manifest, *, repository: str, tag: str
) -> VerifyCommands:
    """Every command the notes print (see the module docstring for what each pins)."""
    signer = recorded_signer(project, manifest, repository, tag)
    exp = signer.expected
    q = shlex.quote
    trigger = ["--trigger", signer.trigger] if signer.trigger else []
    upm = [
        "--repository", exp.repository, "--ref", exp.ref, "--identity", exp.identity,
        *(["--issuer", exp.issuer] if exp.issuer != GITHUB_ISSUER else []),
        *trigger,
    ]  # fmt: skip
    all_at_once = _line("upm-ci", "verify", "--github-release", tag, *upm)
    by_hand = [_line("upm-ci", "verify", ".", *upm)]
    # sigstore verify github pins the GitHub issuer itself; with several files it reads each
    # one's bundle from FILE.sigstore.json. SHA256SUMS is trusted only once its bundle verifies.
    signed = sorted(
        {Path(s.subject).name for s in manifest.signatures if s.method == "sigstore"},
        key=lambda n: (n != CHECKSUMS, n),
    )
    if signed and exp.issuer == GITHUB_ISSUER:
        bundles = {
            Path(s.subject).name: Path(s.file).name
            for s in manifest.signatures
            if s.method == "sigstore"
        }
        pins = [
            "--cert-identity", exp.identity, "--repository", exp.repository, "--ref", exp.ref,
            *trigger, *(["--sha", signer.sha] if signer.sha else []),
        ]  # fmt: skip
        odd = [n for n in signed if bundles[n] != n + BUNDLE_SUFFIX]
        plain = [n for n in signed if n not in odd]
        check_sums = f" && sha256sum -c {CHECKSUMS}" if CHECKSUMS in plain else ""
        if plain:
            by_hand.append(_line("sigstore", "verify", "github", *pins, *plain) + check_sums)
        by_hand += [
            _line("sigstore", "verify", "github", *pins, "--bundle", bundles[n], n) for n in odd
        ]
    gh = [
        "--repo", exp.repository, "--cert-identity", exp.identity,
        "--cert-oidc-issuer", exp.issuer, "--source-ref", exp.ref,
        *(["--source-digest", signer.sha] if signer.sha else []),
        *(["--deny-self-hosted-runners"] if signer.runner_environment == "github-hosted" else []),
    ]  # fmt: skip
    for att in (a for a in manifest.attestations if a.file.endswith(ATTESTATION_SUFFIX)):
        kind = (
            []
            if att.predicate_type == SLSA_PROVENANCE_V1  # gh's default
            else ["--predicate-type", att.predicate_type]
        )
        by_hand += [
            _line("gh", "attestation", "verify", s["name"], *gh, "--bundle", Path(att.file).name)
            + (" " + " ".join(q(k) for k in kind) if kind else "")
            for s in att.subjects
        ]
    statement = manifest.artifact(RELEASE_STATEMENT)
    if statement is not None:
        by_hand += [
            _line(
                "gh",
                "attestation",
                "verify",
                name,
                *gh,
                "--bundle",
                RELEASE_STATEMENT,
                "--predicate-type",
                VSA_PREDICATE_TYPE,
            )  # fmt: skip
            for name in _statement_subjects(manifest.resolve(statement))
        ]
    return VerifyCommands(
        download=_line("gh", "release", "download", tag, "--repo", exp.repository),
        install=INSTALL_COMMANDS,
        all_at_once=all_at_once,
        by_hand=by_hand,
    )


def _line(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _statement_subjects(path: Path) -> list[str]:
    """The file names the release statement (a DSSE bundle) lists, in its order."""
    try:
        envelope = json.loads(path.read_bytes())["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"], validate=True))
        subjects = statement_subjects(statement.get("subject"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise InputError(
            f"{path}: cannot read the release statement's subjects ({type(e).__name__})",
            hint="the statement is written by `upm-ci sign`; sign again",
        ) from None
    if subjects is None:
        raise InputError(
            f"{path}: the release statement's subject list is malformed",
            hint="the statement is written by `upm-ci sign`; sign again",
        )
    # An image digest is a subject too; gh checks files, so only plain file names.
    return [n for n in subjects if n and "/" not in n and ":" not in n]


def release_notes(project: Project, manifest: Manifest, *, repository: str, tag: str) -> str:
    """Markdown body of the GitHub release."""
    changelog = project.path(project.config.changelog)
    section = section_for(changelog, project.version)
    if section is None:
        raise InputError(
            f"{changelog}: no released section for {project.version}",
            hint=f"add a section for {project.version} with the changes, headed the way the "
            "changelog heads its other versions",
        )
    parts = [section.body or "_No changes listed._"]
    checksums = manifest.of_kind("checksums")
    if checksums:
        path = manifest.resolve(checksums[0])
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(
                f"{path}: cannot read the checksums as UTF-8 text ({e})",
                hint="SHA256SUMS is written by `upm-ci build`; rebuild",
            ) from None
    else:
        text = "\n".join(f"{a.sha256}  {a.name}" for a in manifest.distributions())
    parts.append(f"## Checksums (SHA256SUMS)\n\n```\n{text}\n```")
    commands = verify_commands(project, manifest, repository=repository, tag=tag)
    listed = (
        f"\n\nThe release statement (`{RELEASE_STATEMENT}`) is signed like every other file and"
        f" names each file of the release by name and SHA-256 ({VSA_PREDICATE_TYPE})."
        if manifest.artifact(RELEASE_STATEMENT) is not None
        else ""
    )
    parts.append(
        "## Verify\n\nInstall upm-ci (`"
        + "` or `".join(commands.install)
        + "`), then check everything at once (downloads, digests, signatures, identity, log "
        "inclusion, trust policy):\n\n```\n"
        + commands.all_at_once
        + "\n```\n\nOr by hand, in an empty directory holding the download (`"
        + commands.download
        + "`):\n\n```\n"
        + "\n".join(commands.by_hand)
        + "\n```"
        + listed
    )
    return "\n\n".join(parts) + "\n"
