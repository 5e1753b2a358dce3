"""Release notes: the version's CHANGELOG section, the checksums, and how to verify.

RELEASE.md asks for ``CHANGELOG.md`` in the release notes (whatever the changelog's style, see
:mod:`upm_ci.changelog`); users also need to check what they
download without reading our docs, so the notes carry the exact commands, with the identity
the release workflow signs as.
"""

from __future__ import annotations

from pathlib import Path

from upm_ci.changelog import section_for
from upm_ci.errors import InputError
from upm_ci.layout import ATTESTATION_SUFFIX
from upm_ci.manifest import Manifest
from upm_ci.project import Project


def signing_identity(project: Project, repository: str, tag: str) -> str:
    """The certificate identity of the release workflow at this tag."""
    return f"https://github.com/{repository}/{project.config.release_workflow}@refs/tags/{tag}"


def _signer(project: Project, manifest: Manifest, repository: str, tag: str) -> tuple[str, str]:
    """The identity the sign phase expected (its manifest record: the reusable workflow's
    when it signed there) and the ``--repository``/``--ref`` pins that go with it; a
    reusable workflow's identity is the same for every caller, so the pins are never left out.
    """
    signed = manifest.phases.get("sign", {})
    record = signed if isinstance(signed, dict) else {}
    identity, repo, ref = (record.get(k) for k in ("identity", "repository", "ref"))
    if not (isinstance(identity, str) and identity):
        identity = signing_identity(project, repository, tag)
    repo = repo if isinstance(repo, str) and repo else repository
    ref = ref if isinstance(ref, str) and ref else f"refs/tags/{tag}"
    return identity, f"--repository {repo} --ref {ref}"


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
    bundles = {
        Path(s.subject).name: Path(s.file).name
        for s in manifest.signatures
        if s.method == "sigstore"
    }
    identity, pins = _signer(project, manifest, repository, tag)
    commands = [
        f"upm-ci verify --github-release {tag} --repository {repository}",
        "sha256sum -c SHA256SUMS --ignore-missing",
    ]
    for dist in manifest.distributions():
        bundle = bundles.get(dist.name, f"{dist.name}.sigstore.json")
        commands.append(
            f"sigstore verify github --cert-identity {identity} {pins}"
            f" --bundle {bundle} {dist.name}"
        )
    # The GitHub CLI checks the in-toto attestations (SLSA provenance, SBOM) from their assets,
    # signed by the workflow sign recorded (the reusable one, when the project calls it).
    signed_as = next((s.identity for s in manifest.signatures if s.method == "sigstore"), "")
    signer = (signed_as or identity).removeprefix("https://github.com/").partition("@")[0]
    for att in (a for a in manifest.attestations if a.file.endswith(ATTESTATION_SUFFIX)):
        slsa = att.predicate_type.startswith("https://slsa.dev/provenance/")  # gh's default
        kind = "" if slsa else f" --predicate-type {att.predicate_type}"
        commands += [
            f"gh attestation verify {s['name']} --repo {repository} --signer-workflow {signer} "
            f"--bundle {Path(att.file).name}{kind}"
            for s in att.subjects
        ]
    parts.append(
        "## Verify\n\nEverything at once (downloads, digests, signatures, identity, log "
        "inclusion, trust policy):\n\n```\n"
        + commands[0]
        + "\n```\n\nOr by hand, in the download directory:\n\n```\n"
        + "\n".join(commands[1:])
        + "\n```"
    )
    return "\n\n".join(parts) + "\n"
