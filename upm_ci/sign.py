"""Phase 4: sign the release: keyless Sigstore bundles, SLSA provenance, SBOM attestation, GPG.

One ephemeral key and one Fulcio certificate sign the whole release
(:class:`upm_ci.release_signer.ReleaseSigner`); independent files are signed concurrently,
and every bundle is verified against the expected identity before it is written. Images are
signed with the same signer (:mod:`upm_ci.image.attest`).

Files written next to each subject, all verifiable with ``sigstore verify identity``:

- ``<file>.sigstore.json``: a Sigstore bundle for every distribution, SBOM, ``SHA256SUMS``,
  project manifest (config ``sign-files``) and, with ``sign-plugins``, plugin file.
- ``<name>-<version>.intoto.jsonl``: SLSA v1 provenance over the distributions (GitHub's
  ``workflow/v1`` build type, as actions/attest-build-provenance writes it), a DSSE bundle
  serialised on one line: what ``gh attestation verify --bundle`` reads. Scorecard's
  Signed-Releases check looks for ``.intoto.jsonl``;
  ``sigstore verify identity --bundle <name>-<version>.intoto.jsonl <wheel>`` accepts it,
  because sigstore-python verifies a DSSE bundle and then requires the file's digest to be
  one of the statement's subjects.
- ``<wheel>.cdx.intoto.jsonl``: the CycloneDX SBOM as an in-toto attestation bound to the
  wheel's digest (same format and same ``sigstore verify`` use).
- ``<dist>.publish.attestation``: a PEP 740 publish attestation of each distribution
  (pypi-attestations' format, which twine uploads with ``--attestations``). Its log entry is
  always a Rekor v1 one, whatever ``--rekor-version`` says: the format carries no RFC 3161
  timestamps yet (pypi/pypi-attestations#142), so a Rekor v2 entry could not be verified by
  anyone, PyPI included. With no Rekor v1 log in the trust config none are made (warned).
- With a GPG key: ``<file>.asc`` for distributions, SBOMs and ``SHA256SUMS`` (RELEASE.md:
  ``gpg --detach-sign --armor``) and the public key as ``<name>-<version>.pub.asc``.

A re-run keeps every bundle that still verifies for the subject's current digest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec

from upm_ci import __version__, gha, identity, provenance
from upm_ci.errors import InputError, PolicyError, UpmError
from upm_ci.gpg import GpgSigner
from upm_ci.identity import GITHUB_ISSUER
from upm_ci.image import attest
from upm_ci.image.attest import ImageSigned
from upm_ci.layout import (
    ATTESTATION_SUFFIX,
    BUNDLE_SUFFIX,
    CHECKSUMS,
    GPG_KEY_SUFFIX,
    GPG_SIG_SUFFIX,
    PEP740_SUFFIX,
    RELEASE_STATEMENT,
    SBOM_ATTESTATION_SUFFIX,
    TOOLCHAIN_SBOM,
    VSA_PREDICATE_TYPE,
    check_dist_dir_inside,
    check_plain_name,
    confined_file,
    release_file_name,
    sha256_file,
)
from upm_ci.manifest import (
    Artifact,
    AttestationRecord,
    Manifest,
    SignatureRecord,
    utcnow,
    write_text_atomic,
)
from upm_ci.project import Project
from upm_ci.release_signer import (
    DEFAULT_WORKERS,
    ReleaseSigner,
    pep740_distribution,
    sign_statement_file,
)
from upm_ci.sigstore_common import (
    PYPI_PUBLISH_V1,
    load_trust_config,
    log_index,
)
from upm_ci.timings import timed

log = logging.getLogger(__name__)
_P = ParamSpec("_P")

#: Kinds that get a Sigstore bundle of their own (from the manifest, or copied in by sign).
GPG_KINDS = ("sdist", "wheel", "sbom", "checksums")
PEP740_KINDS = ("sdist", "wheel")


# --------------------------------------------------------------------------- the phase


@dataclass
class SignedFile:
    """One signature made (or kept) by this run."""

    subject: str
    file: str
    method: str
    log_index: int | None = None
    reused: bool = False


@dataclass
class SignResult:
    identity: str
    issuer: str
    signed: list[SignedFile] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)
    gpg_public_key: str = ""
    skipped: list[str] = field(default_factory=list)
    #: The pinned source repository and ref (see ``identity.ExpectedSigner``).
    repository: str = ""
    ref: str = ""
    #: Each image's signature and attestations (:mod:`upm_ci.image.attest`).
    images: list[ImageSigned] = field(default_factory=list)

    @property
    def bundles(self) -> list[str]:
        """Every Sigstore bundle and attestation file of the release."""
        return [s.file for s in self.signed if s.method == "sigstore"] + self.attestations


@dataclass
class _Subject:
    path: Path
    kind: str
    sha256: str


def _failure_recorded(
    sign: Callable[Concatenate[Project, Manifest, _P], SignResult],
) -> Callable[Concatenate[Project, Manifest, _P], SignResult]:
    """The sign phase records its failure when the release has images: publish must never
    push a half-signed image (its readiness check reads the record)."""

    @functools.wraps(sign)
    def phase(
        project: Project, manifest: Manifest, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> SignResult:
        try:
            return sign(project, manifest, *args, **kwargs)
        except UpmError as e:
            if manifest.images:
                manifest.record_phase("sign", "fail", reason=str(e))
                manifest.save()
            raise

    return phase


@_failure_recorded
def sign_release(
    project: Project,
    manifest: Manifest,
    *,
    dist_dir: Path,
    identity_token: str,
    trust_config: Path | None,
    rekor_version: int | None,
    gpg_key: str | None,
    gpg_passphrase: str | None,
    expected_identity: str | identity.ExpectedSigner,
    event: Mapping[str, Any] | None = None,
    workers: int = DEFAULT_WORKERS,
) -> SignResult:
    """Sign everything the release carries; see the module docstring for what is written.

    Inputs and the token's claims are all checked before the first file is written.
    ``expected_identity``: the signer every bundle must verify for (``identity.expected_signer``);
    a plain SAN is pinned to the project's repository and release tag.
    """
    expected = identity.pinned_signer(
        expected_identity, repository=project.repository, tag=project.tag
    )
    expected_identity = expected.identity
    gha.mask(identity_token)
    if gpg_key:
        gha.mask(gpg_key)
    if gpg_passphrase:
        gha.mask(gpg_passphrase)
    dist_dir = check_dist_dir_inside(Path(dist_dir), manifest.base, where="dist directory")
    if not dist_dir.is_dir():
        raise InputError(f"{dist_dir}: dist directory not found", hint="run upm-ci build first")
    # Images first: an image SBOM named only by its image becomes a release file to sign.
    image_plans = attest.plan_images(manifest, dist_dir)
    subjects = _manifest_subjects(manifest)
    # SHA256SUMS is written again and signed last, once it can list every other file.
    sums = next(s for s in subjects if s.kind == "checksums")
    subjects = [s for s in subjects if s.kind != "checksums"]
    policy_file = _policy_file(project)
    dists = [s for s in subjects if s.kind in PEP740_KINDS]
    for s in dists:
        pep740_distribution(s.path.name, s.sha256)  # a bad file name: InputError before writing
    extras = _extra_files(project, dist_dir)

    claims = identity.decode_claims(identity_token)
    problems = identity.preflight(
        claims,
        expected_identity=expected_identity,
        expected_repository=expected.repository or project.repository or None,
        expected_ref=expected.ref or None,
        event=event,
    )
    if problems:
        raise PolicyError(
            "sign preflight: " + "; ".join(problems),
            hint="nothing was signed",
        )
    if rekor_version not in (None, 1, 2):
        raise InputError(f"--rekor-version: {rekor_version} is not 1 or 2")

    result = SignResult(
        identity=expected_identity,
        issuer=GITHUB_ISSUER,
        repository=expected.repository,
        ref=expected.ref,
    )
    with contextlib.ExitStack() as stack:
        # The toolchain SBOM takes seconds (cyclonedx's imports, the schema validation): it is
        # made meanwhile, then written and signed with the others once the signer is ready.
        claim_values = {k: str(v) for k, v in claims.raw.items()}
        toolchain_text = stack.enter_context(_toolchain_maker()).submit(
            _toolchain_text, claim_values
        )
        gpg = stack.enter_context(GpgSigner(gpg_key, gpg_passphrase)) if gpg_key else None
        load_trust_config(trust_config, rekor_version)  # bad file: InputError before writing
        toolchain_at = len(subjects)  # its place among the subjects, after the manifest's
        for src, kind in extras:
            dest = dist_dir / release_file_name(src.name)
            if not dest.exists() or sha256_file(dest) != sha256_file(src):
                shutil.copy2(src, dest)
            subjects.append(_Subject(dest, kind, sha256_file(dest)))
        signer = stack.enter_context(
            ReleaseSigner(
                identity_token,
                expected=expected,
                trust_config=trust_config,
                rekor_version=rekor_version,
            )
        )
        log.info("signing %d files as %s", len(subjects) + 1, expected.describe())
        if not signer.pep740_available:
            log.warning("no Rekor v1 log in the trust config: no PEP 740 attestations made")
            dists = []
        jobs = len(subjects) + len(dists) + 3
        with (
            timed(f"sign: {len(subjects) + 1} bundles and the attestations, side by side"),
            ThreadPoolExecutor(max_workers=max(1, min(workers, jobs))) as pool,
        ):
            bundle_jobs = [pool.submit(_sign_subject, signer, s) for s in subjects]
            toolchain_job = pool.submit(
                _sign_toolchain, signer, dist_dir, toolchain_text, claim_values
            )
            pep740_jobs = [pool.submit(_sign_pep740, signer, s) for s in dists]
            provenance_job = pool.submit(
                _sign_provenance, signer, project, manifest, claims, dist_dir
            )
            sbom_jobs = [
                pool.submit(_sign_sbom_attestation, signer, manifest, sbom, dist_dir)
                for sbom in manifest.of_kind("sbom")
                if provenance.is_cyclonedx(manifest.resolve(sbom))
                and not _describes_image(manifest, sbom)
            ]
            signed = [job.result() for job in bundle_jobs]
            toolchain_subject, toolchain_signed = toolchain_job.result()
            subjects.insert(toolchain_at, toolchain_subject)
            signed.insert(toolchain_at, toolchain_signed)
            attestations = [provenance_job.result(), *(job.result() for job in sbom_jobs)]
            attestations += [job.result() for job in pep740_jobs]
        with timed("sign: images"):
            result.images = attest.sign_planned(
                signer, project, manifest, image_plans, dist_dir, claims
            )
        gpg_signed: list[SignedFile] = []
        if gpg is not None:
            for s in subjects:
                if s.kind in GPG_KINDS:
                    asc = s.path.with_name(s.path.name + GPG_SIG_SUFFIX)
                    reused = gpg.verifies(asc, s.path)
                    if not reused:
                        gpg.sign(s.path)
                    gpg_signed.append(SignedFile(s.path.name, asc.name, "gpg", reused=reused))
            pub = gpg.export_public(
                dist_dir / f"{project.dist_name}-{project.version}{GPG_KEY_SUFFIX}"
            )
            result.gpg_public_key = pub.name

        # Everything verified: record it.
        by_name = {s.path.name: s for s in subjects}
        for s in subjects:
            if s.kind in ("project-manifest", "plugin", "toolchain-sbom"):
                manifest.add_file(s.path, s.kind)
        for item in signed:
            bundle_path = by_name[item.subject].path.with_name(item.file)
            manifest.add_file(bundle_path, "sigstore-bundle")
            manifest.add_signature(
                SignatureRecord(
                    subject=item.subject,
                    subject_sha256=by_name[item.subject].sha256,
                    file=item.file,
                    method="sigstore",
                    identity=expected_identity,
                    issuer=GITHUB_ISSUER,
                    log_index=item.log_index,
                )
            )
        for path, kind, record in attestations:
            manifest.add_file(path, kind)
            manifest.add_attestation(record)
            result.attestations.append(path.name)
        for item in gpg_signed:
            manifest.add_file(by_name[item.subject].path.with_name(item.file), "gpg-signature")
            manifest.add_signature(
                SignatureRecord(
                    subject=item.subject,
                    subject_sha256=by_name[item.subject].sha256,
                    file=item.file,
                    method="gpg",
                    identity=gpg.fingerprint if gpg else "",
                )
            )
        if result.gpg_public_key:
            manifest.add_file(dist_dir / result.gpg_public_key, "gpg-public-key")
        with timed("sign: SHA256SUMS and the release statement"):
            sealed = _seal(
                signer,
                gpg,
                project,
                manifest,
                sums,
                policy_file=policy_file,
                repository=expected.repository or project.repository,
            )
        signed += [s for s in sealed if s.method == "sigstore"]
        gpg_signed += [s for s in sealed if s.method == "gpg"]
        result.attestations.append(RELEASE_STATEMENT)
        result.signed = signed + gpg_signed
    manifest.record_phase(
        "sign",
        "pass",
        identity=expected_identity,
        issuer=GITHUB_ISSUER,
        repository=expected.repository,
        ref=expected.ref,
        trigger=claims.event_name,
        runner_environment=claims.runner_environment,
        sha=claims.sha,
        bundles=len(signed),
        attestations=len(attestations),
        gpg=bool(gpg_signed),
        reused=sum(1 for s in result.signed if s.reused),
    )
    manifest.save()
    return result


def _policy_file(project: Project) -> Path:
    """The policy the gate checked: RELEASE.md as upm-release carries it (its Pre-Release
    Checklist is the gate's rows, :mod:`upm_ci.gate.report`)."""
    from upm_ci import release_statement

    return release_statement.POLICY_FILE


def _toolchain_maker() -> Executor:
    """Where the toolchain SBOM is made: on Linux a process forked from this one (its imports
    and schema validation are seconds of pure Python, which a thread would take from the
    signing, under the GIL), elsewhere a thread."""
    if sys.platform.startswith("linux") and hasattr(os, "fork"):
        import multiprocessing

        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(max_workers=1)


def _toolchain_text(claims: Mapping[str, str]) -> str:
    """The running tool's toolchain SBOM (nothing written)."""
    from upm_ci import toolchain

    with timed("sign: toolchain SBOM"):
        return toolchain.toolchain_sbom(claims)


def _sign_toolchain(
    signer: ReleaseSigner, dist_dir: Path, text: Future[str], claims: Mapping[str, str]
) -> tuple[_Subject, SignedFile]:
    """Write the toolchain SBOM once it is made, and sign it. When its maker failed, it is
    made again here, where any error of its own is raised as itself."""
    try:
        made = text.result()
    except Exception as e:  # noqa: BLE001 - a broken worker, or the SBOM's own error
        log.debug("toolchain SBOM: made again in this process (%s: %s)", type(e).__name__, e)
        made = _toolchain_text(claims)
    subject = _toolchain_subject(dist_dir, made)
    return subject, _sign_subject(signer, subject)


def _toolchain_subject(dist_dir: Path, text: str) -> _Subject:
    """``TOOLCHAIN_SBOM`` with ``text``, kept when only its serial and time would change (a
    re-run keeps its bundle)."""
    from upm_ci import toolchain

    path = dist_dir / TOOLCHAIN_SBOM
    if not (path.is_file() and toolchain.same_toolchain(path.read_text("utf-8", "replace"), text)):
        write_text_atomic(path, text)
    return _Subject(path, "toolchain-sbom", sha256_file(path))


def published_later(project: Project) -> list[str]:
    """The files publish adds after signing: the audit log and its bundle."""
    from upm_ci.publish.audit_log import audit_log_name

    log_name = audit_log_name(project.normalized_name, project.version)
    return [log_name, log_name + BUNDLE_SUFFIX]


def _seal(
    signer: ReleaseSigner,
    gpg: GpgSigner | None,
    project: Project,
    manifest: Manifest,
    sums: _Subject,
    *,
    policy_file: Path,
    repository: str,
) -> list[SignedFile]:
    """Write ``SHA256SUMS`` over every other release file and sign it (Sigstore, and GPG with
    a key); then sign the release statement over every file, SHA256SUMS included. Both are
    recorded in the manifest; returns SHA256SUMS's signatures."""
    from upm_ci.build import sha256sums_text
    from upm_ci.release_statement import POLICY_URI, GateRow, build_statement, one_line

    later = published_later(project)
    unsummed = {
        CHECKSUMS,
        CHECKSUMS + BUNDLE_SUFFIX,
        CHECKSUMS + GPG_SIG_SUFFIX,
        RELEASE_STATEMENT,
        *later,
    }
    listed = [
        manifest.resolve(a)
        for a in manifest.artifacts
        if a.name not in unsummed and a.kind != "audit-log"
    ]
    write_text_atomic(sums.path, sha256sums_text(listed))
    sums_art = manifest.add_file(sums.path, "checksums")
    final = _Subject(sums.path, "checksums", sums_art.sha256)
    made = [_sign_subject(signer, final)]
    manifest.add_file(sums.path.with_name(made[0].file), "sigstore-bundle")
    manifest.add_signature(
        SignatureRecord(
            subject=CHECKSUMS,
            subject_sha256=final.sha256,
            file=made[0].file,
            method="sigstore",
            identity=signer.expected_identity,
            issuer=signer.issuer,
            log_index=made[0].log_index,
        )
    )
    if gpg is not None:
        asc = sums.path.with_name(CHECKSUMS + GPG_SIG_SUFFIX)
        reused = gpg.verifies(asc, sums.path)
        if not reused:
            gpg.sign(sums.path)
        made.append(SignedFile(CHECKSUMS, asc.name, "gpg", reused=reused))
        manifest.add_file(asc, "gpg-signature")
        manifest.add_signature(
            SignatureRecord(
                subject=CHECKSUMS,
                subject_sha256=final.sha256,
                file=asc.name,
                method="gpg",
                identity=gpg.fingerprint,
            )
        )

    gate = manifest.phases.get("gate", {})
    raw_checks, raw_summaries = gate.get("checks"), gate.get("summaries")
    checks: dict[str, Any] = raw_checks if isinstance(raw_checks, dict) else {}
    summaries: dict[str, Any] = raw_summaries if isinstance(raw_summaries, dict) else {}
    rows = [
        GateRow(str(name), str(status), one_line(str(summaries.get(name, ""))))
        for name, status in checks.items()
    ]
    files = {
        a.name: a.sha256
        for a in manifest.artifacts
        if a.name not in (RELEASE_STATEMENT, *later) and a.kind != "audit-log"
    }
    out = sums.path.with_name(RELEASE_STATEMENT)
    images = {
        _image_name(i.repository, i.ref): i.digest.removeprefix("sha256:") for i in manifest.images
    }
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    statement = build_statement(
        files,
        images=images,
        published_later=later,
        gate_rows=rows,
        gate_passed=gate.get("status") == "pass",
        time_verified=str(gate.get("at") or _previous_time(out) or utcnow()),
        resource_uri=f"{server}/{repository}/releases/tag/{project.tag}",
        policy_uri=POLICY_URI,
        policy_sha256=sha256_file(policy_file),
        tool_version=__version__,
    )
    sign_statement_file(signer, out, statement, "release statement")
    manifest.add_file(out, "release-statement")
    manifest.add_attestation(
        AttestationRecord(RELEASE_STATEMENT, VSA_PREDICATE_TYPE, statement["subject"])
    )
    return made


def _previous_time(statement_bundle: Path) -> str:
    """The timeVerified of the statement a previous run signed, so that a re-run without a
    gate record makes the same statement (and keeps its bundle); "" when there is none."""
    import base64

    try:
        envelope = json.loads(statement_bundle.read_text(encoding="utf-8"))["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        value = statement["predicate"]["timeVerified"]
    except (OSError, ValueError, TypeError, KeyError):
        return ""
    return value if isinstance(value, str) else ""


def _image_name(repository: str, ref: str) -> str:
    """An image's repository without tag or digest (``ghcr.io/o/n``): its subject name."""
    if repository:
        return repository
    name = ref.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def _manifest_subjects(manifest: Manifest) -> list[_Subject]:
    """The build's and sbom's files, each checked against the digest the manifest recorded."""
    if not manifest.distributions():
        raise InputError(f"{manifest.path}: no sdist or wheel recorded", hint="run upm-ci build")
    if not manifest.of_kind("checksums"):
        raise InputError(f"{manifest.path}: no SHA256SUMS recorded", hint="run upm-ci build")
    if not manifest.of_kind("sbom"):
        raise InputError(f"{manifest.path}: no SBOM recorded", hint="run upm-ci sbom")
    subjects = []
    for art in manifest.of_kind("sdist", "wheel", "sbom", "checksums"):
        path = manifest.resolve(art)
        if not path.is_file():
            raise InputError(f"{path}: recorded in the manifest but missing", hint="re-run build")
        digest = sha256_file(path)
        if digest != art.sha256:
            raise PolicyError(
                f"{path.name}: sha256 {digest[:16]}... differs from the manifest's "
                f"{art.sha256[:16]}...",
                hint="the file changed after it was built; rebuild, never sign altered files",
            )
        subjects.append(_Subject(path, art.kind, digest))
    return subjects


def _extra_files(project: Project, dist_dir: Path) -> list[tuple[Path, str]]:
    """Project manifests (``sign-files``) and, with ``sign-plugins``, plugin files."""
    found: list[tuple[Path, str]] = []
    where = f"{project.root / 'pyproject.toml'}: [tool.upm-release]"
    for rel in project.config.sign_files:
        path = confined_file(project.root, rel, where=f"{where} sign-files")
        if path is not None:
            found.append((path, "project-manifest"))
        else:
            log.warning("sign-files: %s not found in the project; not signed", rel)
    if project.config.sign_plugins:
        excluded = {
            p for pattern in project.config.plugin_exclude for p in project.root.glob(pattern)
        }
        for pattern in project.config.plugins:
            for path in sorted(project.root.glob(pattern)):
                if path not in excluded and (path.is_file() or path.is_symlink()):
                    rel = path.relative_to(project.root).as_posix()
                    confined = confined_file(project.root, rel, where=f"{where} plugins")
                    if confined is not None:
                        found.append((confined, "plugin"))
    names: dict[str, Path] = {}
    for path, kind in found:
        field = "sign-files" if kind == "project-manifest" else "plugins"
        check_plain_name(release_file_name(path.name), where=f"{where} {field} ({path})")
        other = names.setdefault(release_file_name(path.name), path)
        if other != path:
            raise InputError(
                f"sign: {other} and {path} would both be {dist_dir / release_file_name(path.name)}",
                hint="rename one, or narrow [tool.upm-release] plugins / sign-files",
            )
    return found


def _sign_subject(signer: ReleaseSigner, subject: _Subject) -> SignedFile:
    bundle = subject.path.with_name(subject.path.name + BUNDLE_SUFFIX)
    reused = signer.existing_bundle_verifies(bundle, subject.sha256)
    if not reused:
        signer.sign_file(subject.path, bundle, sha256=subject.sha256)
    return SignedFile(
        subject=subject.path.name,
        file=bundle.name,
        method="sigstore",
        log_index=log_index(bundle.read_text(encoding="utf-8")),
        reused=reused,
    )


def _sign_pep740(signer: ReleaseSigner, dist: _Subject) -> tuple[Path, str, AttestationRecord]:
    out = dist.path.with_name(dist.path.name + PEP740_SUFFIX)
    if not signer.existing_pep740_verifies(out, dist.path.name, dist.sha256):
        signer.sign_pep740(dist.path, out)
    subjects = [provenance.subject(dist.path.name, dist.sha256)]
    return out, "pep740-attestation", AttestationRecord(out.name, PYPI_PUBLISH_V1, subjects)


def _sign_provenance(
    signer: ReleaseSigner,
    project: Project,
    manifest: Manifest,
    claims: identity.TokenClaims,
    dist_dir: Path,
) -> tuple[Path, str, AttestationRecord]:
    from upm_ci.dependency_provenance import recorded_dependencies

    subjects = [provenance.subject(a.name, a.sha256) for a in manifest.distributions()]
    dependencies = [
        provenance.dependency_descriptor(
            d.purl,
            d.file,
            d.sha256,
            d.publisher.describe() if d.publisher else "unsigned",
            d.provenance,
        )
        for d in recorded_dependencies(manifest.phases)
    ]
    statement = provenance.slsa_provenance(
        subjects,
        claims,
        server_url=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
        tag=project.tag,
        tool_version=__version__,
        dependencies=dependencies,
    )
    out = dist_dir / f"{project.dist_name}-{project.version}{ATTESTATION_SUFFIX}"
    sign_statement_file(signer, out, statement, "SLSA provenance")
    return out, "provenance", AttestationRecord(out.name, provenance.SLSA_PROVENANCE_V1, subjects)


def _describes_image(manifest: Manifest, sbom: Artifact) -> bool:
    """An image's SBOM: its attestation is stored next to the image in the registry
    (:mod:`upm_ci.image.attest`), with the image digest as subject, not as a release file."""
    record = next((r for r in manifest.sboms if Path(r.file).name == sbom.name), None)
    images = {i.digest.removeprefix("sha256:") for i in manifest.images}
    return record is not None and record.describes_sha256 in images


def _sign_sbom_attestation(
    signer: ReleaseSigner, manifest: Manifest, sbom: Artifact, dist_dir: Path
) -> tuple[Path, str, AttestationRecord]:
    record = next((r for r in manifest.sboms if Path(r.file).name == sbom.name), None)
    wheels = manifest.of_kind("wheel")
    if record is not None:
        describes, digest = record.describes, record.describes_sha256
    elif len(wheels) == 1:
        describes, digest = wheels[0].name, wheels[0].sha256
    else:
        raise InputError(
            f"{manifest.path}: SBOM {sbom.name} is not bound to an artifact", hint="run upm-ci sbom"
        )
    statement = provenance.sbom_statement(manifest.resolve(sbom), describes, digest)
    out = dist_dir / f"{describes}{SBOM_ATTESTATION_SUFFIX}"
    sign_statement_file(signer, out, statement, f"SBOM attestation of {describes}")
    subjects = statement["subject"]
    return out, "sbom-attestation", AttestationRecord(out.name, provenance.CYCLONEDX_BOM, subjects)
