"""The publish phase: the container images, the GitHub release and the package index,
re-runnable at any point.

Order, chosen so that nothing irreversible happens before everything that can fail has
been checked: (1) check the inputs (manifest, files on disk and their digests, tag), twine
check, the index's current files (a conflict stops everything), the Trusted Publishing
exchange; then push the manifest's images by digest with their signature and attestations
(:func:`upm_ci.image.registry.publish_images`: a refused tag or a registry that is down
stops the release while nothing else was sent); (2) find or create the one draft release
and attach every file; (3) upload to the index (cannot be undone); (4) complete, sign and
attach the audit log, and put it with its bundle in S3 with KMS when ``audit-bucket`` is set
(:mod:`upm_ci.publish.audit_store`); (5) re-read every asset and un-draft (cannot be undone
for immutable releases). Each step is written to the manifest ledger as it starts and ends,
so a killed run resumes where it stopped.

Signed elsewhere (``expect_signer``, ``handoff_digest``): a release handed over by
upm-release's reusable workflow to the caller's own publish job is verified first, every file
against that signer pinned to the repository and tag, before step (1)
(:mod:`upm_ci.publish.handoff`); a tampered or swapped file stops it with nothing published.

PEP 740: the ``<dist>.publish.attestation`` files sign wrote (kind ``pep740-attestation`` in
the manifest) go to the index with their distribution, in twine's ``attestations`` field,
when every distribution has one; the rule is :func:`upm_ci.publish.pypi.attestations_to_send`
(never with an API token to PyPI, which refuses them; ``--attestations`` requires them,
``--no-attestations`` never sends them). Like every manifest file they are also attached to
the GitHub release, where users of the index's provenance can fetch them too.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import Version

from upm_ci import identity
from upm_ci.config import repository_problem
from upm_ci.errors import InputError, PolicyError
from upm_ci.identity import ExpectedSigner
from upm_ci.image.registry import PushResult, RegistryCredentials, publish_images
from upm_ci.layout import sha256_file
from upm_ci.manifest import Manifest, SignatureRecord
from upm_ci.project import Project, version_from_tag
from upm_ci.publish.audit_log import AuditLog, audit_log_name
from upm_ci.publish.audit_store import AuditStoreSettings, StoredObject
from upm_ci.publish.github_release import AssetOutcome, ExpectedAsset, GitHubReleases
from upm_ci.publish.notes import release_notes
from upm_ci.publish.pypi import IndexTarget, PlannedFile, UploadOutcome
from upm_ci.release import check_release
from upm_ci.release_signer import ReleaseSigner
from upm_ci.timings import timed

log = logging.getLogger(__name__)

SignFile = Callable[[Path], Path]


@dataclass(frozen=True)
class PublishSettings:
    """Where to publish; ``github_token``/``pypi.password`` are secrets (masked by the CLI).

    ``expect_signer``/``handoff_digest``/``trust_config``: check a release signed in another
    job before anything (:func:`check_handoff`).
    """

    repository: str
    tag: str
    github_api_url: str
    github_token: str = ""
    pypi: IndexTarget | None = None
    trusted_publishing: bool = False
    skip_github: bool = False
    skip_pypi: bool = False
    replace: bool = False
    make_latest: str = "true"
    dry_run: bool = False
    dist_dir: Path | None = None
    audit_store: AuditStoreSettings = field(default_factory=AuditStoreSettings)
    expect_signer: ExpectedSigner | None = None
    handoff_digest: str = ""
    trust_config: Path | None = None
    #: The images' registry login, (user, password); empty: anonymous.
    registry_login: tuple[str, str] = field(default=("", ""), repr=False)
    #: Sign the audit log (Sigstore) as the release's signer, with ``identity_token`` or else
    #: the job's ambient token; with neither, it is attached unsigned (warned).
    sign_audit_log: bool = False
    identity_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class ItemResult:
    destination: str  # github | pypi
    name: str
    status: str  # uploaded | skipped | replaced | planned
    url: str = ""


@dataclass
class PublishResult:
    items: list[ItemResult] = field(default_factory=list)
    release_url: str = ""
    release_id: int | None = None
    nothing_to_do: bool = False
    plan: list[str] = field(default_factory=list)
    published: dict[str, Any] = field(default_factory=dict)
    audit_objects: list[StoredObject] = field(default_factory=list)
    #: What was pushed to the images' registries.
    images: list[PushResult] = field(default_factory=list)


def publish_release(
    project: Project,
    manifest: Manifest,
    settings: PublishSettings,
    *,
    sign_file: SignFile | None = None,
) -> PublishResult:
    """Publish what the manifest lists; see the module docstring for the order.
    ``sign_file`` signs the audit log; without one, ``settings.sign_audit_log`` makes one
    (:func:`audit_signer`); with neither it is attached unsigned, with a warning."""
    if sign_file is None and settings.sign_audit_log and not settings.dry_run:
        signer = audit_signer(project, settings.identity_token, settings.trust_config)
        if signer is not None:
            with signer as active:
                return publish_release(project, manifest, settings, sign_file=active.sign_file)
    check_handoff(project, manifest, settings)
    _check_inputs(project, manifest, settings)
    check_ready(manifest)
    store = None
    if settings.audit_store.enabled:
        from upm_ci.publish.audit_store import AuditStore

        settings.audit_store.check()
        store = AuditStore(settings.audit_store)
    audit_path = _audit_path(project, manifest, settings)
    own = {audit_path.name, f"{audit_path.name}.sigstore.json"}
    check_signed(manifest, own)
    assets = [
        ExpectedAsset(a.name, manifest.resolve(a), a.sha256)
        for a in manifest.artifacts
        if a.name not in own
    ]
    dists = [(a.name, manifest.resolve(a), a.sha256) for a in manifest.distributions()]
    prerelease = Version(project.version).is_prerelease
    if settings.dry_run:
        plan = _plan(settings, assets, dists, prerelease, audit_path, manifest=manifest)
        plan += [f"push image {i.repository}@{i.digest}, then {i.tags}" for i in manifest.images]
        # Nothing was published: say so, and what would have been (the plan).
        doc = {"project": project.name, "version": project.version, "dry_run": True}
        doc |= {"repository": settings.repository, "tag": settings.tag, "plan": plan}
        return PublishResult(plan=plan, published=doc)

    from upm_ci.publish import pypi

    pypi_target = None
    pypi_plan: list[PlannedFile] = []
    if not settings.skip_pypi:
        pypi_target = _pypi_target(settings)
        sending = pypi.attestations_to_send(
            pypi_target,
            dists,
            recorded_attestations(manifest),
            trusted_publishing=settings.trusted_publishing,
        )
        with timed("publish: twine check"):
            pypi.check_distributions([path for _, path, _ in dists])
        existing = pypi.index_files(pypi_target, project.normalized_name)
        pypi_plan = pypi.plan_uploads(dists, existing, sending)

    if store is not None:
        store.check_credentials()
    result = PublishResult()
    if manifest.images:  # before the GitHub release and the index; a re-run resumes
        dist_dir = settings.dist_dir or project.path(project.config.dist_dir)
        with timed("publish: images"):
            result.images = publish_images(
                manifest, dist_dir, credentials=RegistryCredentials(*settings.registry_login)
            )
    audit = AuditLog(audit_path)
    releases: GitHubReleases | None = None
    title = f"{project.name} {project.version}"
    body = ""
    draft = None
    if not settings.skip_github:
        if not settings.github_token:
            raise InputError("no GitHub token", hint="set UPM_GITHUB_TOKEN or GITHUB_TOKEN")
        body = release_notes(project, manifest, repository=settings.repository, tag=settings.tag)
        releases = GitHubReleases(
            settings.github_api_url, settings.github_token, settings.repository
        )
        draft, created = releases.find_or_create_draft(
            settings.tag,
            name=title,
            body=body,
            prerelease=prerelease,
            make_latest=settings.make_latest,
            target_commitish=manifest.project.commit,
        )
        result.release_id, result.release_url = draft.id, draft.html_url
        if not draft.draft:
            _verify_published(releases, draft, assets, own, result)
        else:
            _ledger(manifest, "github-release", settings.tag, "", "started", draft.html_url)
            if created:
                audit.record(
                    "github-draft-created", settings.repository, settings.tag, url=draft.html_url
                )
            else:
                releases.update_notes(draft, name=title, body=body, prerelease=prerelease)

            def before(exp: ExpectedAsset) -> None:
                _ledger(manifest, "github", exp.name, exp.sha256, "started")

            def after(outcome: AssetOutcome) -> None:
                _ledger(manifest, "github", outcome.name, outcome.sha256, "done", outcome.url)
                if outcome.status != "skipped":
                    audit.record(
                        f"github-asset-{outcome.status}",
                        settings.repository,
                        outcome.name,
                        outcome.sha256,
                        outcome.url,
                    )
                result.items.append(ItemResult("github", outcome.name, outcome.status, outcome.url))

            with timed(f"publish: GitHub release, {len(assets)} assets"):
                releases.sync_assets(
                    draft, assets, replace=settings.replace, keep=own, before=before, after=after
                )

    if pypi_target is not None:
        with timed("publish: PyPI upload"):
            uploads = _upload_pypi(project, manifest, pypi_target, pypi_plan, audit, result)
        if result.nothing_to_do and uploads:
            result.nothing_to_do = False

    if releases is not None and draft is not None and draft.draft:
        with timed("publish: audit log (signed, attached, S3)"):
            final = _attach_audit_log(manifest, releases, draft, audit, sign_file, result, store)
        problems = releases.missing_or_wrong(draft, [*assets, *final])
        if problems:
            raise PolicyError(
                f"release {settings.tag} is not complete, so it stays a draft: "
                + "; ".join(problems),
                hint="re-run `upm-ci publish`; it uploads only what is missing",
            )
        published = releases.publish(
            draft, name=title, body=body, prerelease=prerelease, make_latest=settings.make_latest
        )
        result.release_url = published.html_url
        _ledger(manifest, "github-release", settings.tag, "", "done", published.html_url)
    objects = [o.to_json() for o in result.audit_objects]
    if not objects and store is not None:  # a re-run: what an earlier run recorded
        objects = list(manifest.phases.get("publish", {}).get("audit_store") or [])
    manifest.record_phase(
        "publish",
        "pass",
        release=result.release_url,
        **({"audit_store": objects} if objects else {}),
    )
    if manifest.path and not result.nothing_to_do:
        manifest.save()
    result.published = read_published(project, settings, releases, result.release_id, pypi_target)
    result.published["audit_store"] = _published_audit_store(settings.audit_store, store, objects)
    return result


def _published_audit_store(
    settings: AuditStoreSettings, store: Any, objects: list[dict[str, str]]
) -> dict[str, Any]:
    """The audit log objects as the service describes them now (read back, not remembered)."""
    if store is None:
        return {"uploaded": False, "reason": "audit-bucket is not configured"}
    from upm_ci.publish.audit_store import parse_url

    now = []
    for recorded in objects:
        _, key = parse_url(recorded["url"])
        there = store.head(key, version_id=recorded.get("version_id", ""))
        now.append(there.to_json() if there is not None else {**recorded, "status": "missing"})
    return {
        "uploaded": bool(now),
        "bucket": settings.bucket,
        "kms_key": settings.kms_key,
        "objects": now,
    }


# --- steps ----------------------------------------------------------------------------------
def check_handoff(project: Project, manifest: Manifest, settings: PublishSettings) -> None:
    """A release signed in another job (``settings.expect_signer``, ``handoff_digest``) must
    verify as that signer's before anything is sent; nothing to do otherwise."""
    if settings.expect_signer is None and not settings.handoff_digest:
        return
    from upm_ci.publish import handoff

    audit = audit_log_name(project.normalized_name, project.version)
    handoff.check_handoff(
        manifest,
        _handoff_dir(project, manifest, settings),
        signer=settings.expect_signer,
        digest=settings.handoff_digest,
        trust_config=settings.trust_config,
        gpg_fingerprint=project.config.gpg_fingerprint,
        own={audit, f"{audit}.sigstore.json"},
    )


def _handoff_dir(project: Project, manifest: Manifest, settings: PublishSettings) -> Path:
    """The dist directory: ``dist_dir``, else where the manifest's distributions are."""
    if settings.dist_dir is not None:
        return settings.dist_dir
    dirs = {manifest.resolve(a).parent for a in manifest.distributions()}
    return dirs.pop() if len(dirs) == 1 else project.path(project.config.dist_dir)


#: Phases that must have passed before anything irreversible happens.
READY_PHASES = ("gate", "build", "sbom", "sign")


def check_ready(manifest: Manifest) -> None:
    """Fail closed before publishing: every earlier phase passed and every distribution
    carries a Sigstore signature over its current digest.

    Each phase refuses on its own failure, but the CLI and the single phase actions can be
    called in any order; PyPI cannot take an upload back, so publish checks the ledger.
    """
    where = str(manifest.path or "manifest")
    for phase in READY_PHASES:
        status = manifest.phases.get(phase, {}).get("status")
        if status != "pass":
            said = f"ended with {status!r}" if status else "has not run"
            raise PolicyError(
                f"{where}: phase {phase} {said}; nothing was published",
                hint=f"run `upm-ci {phase}` until it passes",
            )
    signed = {(s.subject, s.subject_sha256) for s in manifest.signatures if s.method == "sigstore"}
    unsigned = [a.name for a in manifest.distributions() if (a.name, a.sha256) not in signed]
    if unsigned:
        raise PolicyError(
            f"{where}: no Sigstore signature over {', '.join(unsigned)}; nothing was published",
            hint="run `upm-ci sign`",
        )


def check_signed(manifest: Manifest, own: set[str]) -> None:
    """Only signed files become release assets: every artifact is a signature or a signed
    attestation the records name, or the subject of a signature over its current digest.

    The exceptions are publish's own: its audit log (``own``, signed by publish when a signer
    is configured) and the GPG public key sign exports, so users can check the ``.asc``
    files (a key cannot vouch for itself; verify trusts only a key it is given). A manifest
    that lists anything else unsigned is bad input (exit 2), found before any upload.
    """
    unsigned = [
        a.name for a in manifest.unsigned() if a.name not in own and a.kind != "gpg-public-key"
    ]
    if unsigned:
        raise InputError(
            f"{manifest.path or 'manifest'}: lists {', '.join(unsigned)} with no signature "
            "record over its digest; nothing was published",
            hint="only signed files are published: run `upm-ci sign`, or remove the entry",
        )


def _check_inputs(project: Project, manifest: Manifest, settings: PublishSettings) -> None:
    """Bad input is found before anything is sent anywhere."""
    where = str(manifest.path or "manifest")
    check_release(manifest, project, tag=settings.tag)
    tagged = version_from_tag(settings.tag, project.config.tag_prefix)
    if tagged != Version(project.version):
        raise InputError(
            f"tag {settings.tag} does not match version {project.version}",
            hint=f"release tag {project.tag}",
        )
    if not settings.skip_github and repository_problem(settings.repository):
        raise InputError(
            f"repository {settings.repository!r} is not exactly owner/name",
            hint="pass --repository or set [tool.upm-release] repository",
        )
    if not manifest.artifacts:
        raise InputError(f"{where}: lists no files to publish", hint="run `upm-ci build` first")
    own = audit_log_name(project.normalized_name, project.version)
    for artifact in manifest.artifacts:
        if artifact.name in (own, f"{own}.sigstore.json"):
            continue
        path = manifest.resolve(artifact)
        if not path.is_file():
            raise InputError(
                f"{where}: {artifact.name} is listed but {path} does not exist",
                hint="restore the dist directory next to the manifest, or rebuild",
            )
        if sha256_file(path) != artifact.sha256:
            raise InputError(
                f"{path}: sha256 differs from the manifest's",
                hint="the file changed after it was built and signed; rebuild",
            )
    if not settings.skip_pypi and not manifest.distributions():
        raise InputError(f"{where}: lists no sdist or wheel", hint="or pass --skip-pypi")


def _audit_path(project: Project, manifest: Manifest, settings: PublishSettings) -> Path:
    base = settings.dist_dir or manifest.base
    return base / audit_log_name(project.normalized_name, project.version)


def _pypi_target(settings: PublishSettings) -> IndexTarget:
    from upm_ci.publish import pypi

    if settings.pypi is None:
        raise InputError("no package index configured", hint="pass --pypi-upload-url")
    target = settings.pypi
    if settings.trusted_publishing:
        token = pypi.trusted_publishing_token(target.upload_url)
        return dataclasses.replace(target, password=token, username=pypi.TOKEN_USERNAME)
    if not target.password:
        raise InputError(
            "no PyPI token", hint="set UPM_PYPI_TOKEN, or use --trusted-publishing in Actions"
        )
    return target


def recorded_attestations(manifest: Manifest) -> dict[str, Path]:
    """Distribution name -> its PEP 740 attestation, as the manifest records them."""
    from upm_ci.layout import PEP740_SUFFIX

    return {
        a.name[: -len(PEP740_SUFFIX)]: manifest.resolve(a)
        for a in manifest.of_kind("pep740-attestation")
        if a.name.endswith(PEP740_SUFFIX)
    }


def _ledger(
    manifest: Manifest, destination: str, item: str, sha256: str, state: str, url: str = ""
) -> None:
    entry = manifest.ledger_entry(destination, item)
    if entry and entry.state == "done" and entry.sha256 == sha256 and state == "done":
        return
    manifest.record_ledger(destination, item, sha256=sha256, state=state, url=url)


def _verify_published(
    releases: GitHubReleases,
    release: Any,
    assets: list[ExpectedAsset],
    own: set[str],
    result: PublishResult,
) -> None:
    """A published release can only be checked: complete and right, or a policy failure."""
    remote = {a.name for a in releases.list_assets(release)}
    records = [ExpectedAsset(n, Path(n), "", own_record=True) for n in sorted(own) if n in remote]
    problems = releases.missing_or_wrong(release, [*assets, *records], names_only=True)
    if problems:
        raise PolicyError(
            f"release {release.tag} is already published and differs: " + "; ".join(problems),
            hint="published releases are immutable; release a new version",
        )
    result.nothing_to_do = True
    for exp in [*assets, *records]:
        result.items.append(ItemResult("github", exp.name, "skipped"))
    log.info("github: nothing to do: %d assets already published", len(assets) + len(records))


def _upload_pypi(
    project: Project,
    manifest: Manifest,
    target: IndexTarget,
    plan: list[PlannedFile],
    audit: AuditLog,
    result: PublishResult,
) -> int:
    from upm_ci.publish import pypi

    uploaded = 0

    def before(item: PlannedFile) -> None:
        _ledger(manifest, "pypi", item.name, item.sha256, "started")

    def after(outcome: UploadOutcome) -> None:
        nonlocal uploaded
        if outcome.status == "uploaded":
            uploaded += 1
            audit.record("pypi-uploaded", target.upload_url, outcome.name, outcome.sha256)
        _ledger(manifest, "pypi", outcome.name, outcome.sha256, "done", outcome.url)
        result.items.append(ItemResult("pypi", outcome.name, outcome.status, outcome.url))

    pypi.upload(target, project.normalized_name, plan, before=before, after=after)
    return uploaded


def _attach_audit_log(
    manifest: Manifest,
    releases: GitHubReleases,
    draft: Any,
    audit: AuditLog,
    sign_file: SignFile | None,
    result: PublishResult,
    store: Any = None,
) -> list[ExpectedAsset]:
    """Finish, sign and attach the audit log (and put it in S3 when a store is configured):
    the last thing before the release is public."""
    from upm_ci.publish import audit_store

    final = store is not None and audit_store.sealed(
        manifest, store.settings, audit.run, audit.path
    )
    if not final:
        audit.record(
            "github-release-publish-requested", releases.repository, draft.tag, url=draft.html_url
        )
    files = [audit.path]
    manifest.add_file(audit.path, "audit-log")
    if sign_file is not None:
        bundle = _signed_before(manifest, audit.path) if final else None
        bundle = bundle or sign_file(audit.path)
        files.append(bundle)
        manifest.add_file(bundle, "sigstore-bundle")
        manifest.add_signature(
            SignatureRecord(
                subject=audit.path.name,
                subject_sha256=sha256_file(audit.path),
                file=bundle.name,
                method="sigstore",
            )
        )
    else:
        log.warning("github: no signer given; the audit log is attached unsigned")
    if store is not None:
        result.audit_objects = audit_store.upload(manifest, store, audit.run, files)
        for obj in result.audit_objects:
            result.items.append(ItemResult("s3", obj.url, obj.status, obj.url))
    own = [ExpectedAsset(p.name, p, sha256_file(p), own_record=True) for p in files]
    remote = {a.name: a for a in releases.list_assets(draft)}
    for exp in own:
        outcome = releases.sync_one(draft, exp, remote.get(exp.name))
        _ledger(manifest, "github", outcome.name, outcome.sha256, "done", outcome.url)
        result.items.append(ItemResult("github", outcome.name, outcome.status, outcome.url))
    return own


def _signed_before(manifest: Manifest, path: Path) -> Path | None:
    """The bundle an earlier run of this attempt made over ``path`` as it is now, if kept."""
    sha = sha256_file(path)
    for record in manifest.signatures:
        bundle = path.with_name(record.file)
        if record.subject == path.name and record.subject_sha256 == sha and bundle.is_file():
            return bundle
    return None


def _plan(
    settings: PublishSettings,
    assets: list[ExpectedAsset],
    dists: list[tuple[str, Path, str]],
    prerelease: bool,
    audit_path: Path,
    *,
    manifest: Manifest,
) -> list[str]:
    """What a real run would do, and which steps cannot be undone."""
    from upm_ci.publish import pypi

    steps: list[str] = []
    sending: dict[str, Path] = {}
    if not settings.skip_pypi and settings.pypi is not None:
        sending = pypi.attestations_to_send(
            settings.pypi,
            dists,
            recorded_attestations(manifest),
            trusted_publishing=settings.trusted_publishing,
        )
    if not settings.skip_pypi:
        url = settings.pypi.upload_url if settings.pypi else "(no index configured)"
        how = "Trusted Publishing" if settings.trusted_publishing else "API token"
        steps.append(f"check: twine check --strict on {len(dists)} distributions")
        steps.append(
            f"check: read {settings.pypi.index_url if settings.pypi else '-'} "
            "for files already there (another digest stops everything)"
        )
        for name, _, sha in dists:
            with_att = f" with {sending[name].name}" if name in sending else ""
            steps.append(
                f"pypi: upload {name} (sha256 {sha[:12]}...){with_att} to {url} via {how} "
                "[CANNOT BE UNDONE]"
            )
    if not settings.skip_github:
        kind = "prerelease" if prerelease else "release"
        steps.append(
            f"github: find or create the draft {kind} {settings.tag} "
            f"in {settings.repository} ({settings.github_api_url})"
        )
        for exp in assets:
            steps.append(f"github: attach {exp.name} (sha256 {exp.sha256[:12]}...)")
        steps.append(
            f"github: attach {audit_path.name} (the audit log, signed when a signer is configured)"
        )
        if settings.audit_store.enabled:
            from upm_ci.publish import audit_store
            from upm_ci.publish.audit_log import run_id

            settings.audit_store.check()
            steps.append(audit_store.plan(settings.audit_store, run_id(), audit_path.name))
        else:
            steps.append("s3: no upload of the audit log (audit-bucket is not configured)")
        steps.append(
            f"github: publish {settings.tag} (make_latest={settings.make_latest}) "
            "[CANNOT BE UNDONE for immutable releases: no asset changes afterwards]"
        )
    return steps


def read_published(
    project: Project,
    settings: PublishSettings,
    releases: GitHubReleases | None,
    release_id: int | None,
    target: IndexTarget | None,
) -> dict[str, Any]:
    """What the release and the index hold now, read back through their APIs."""
    from upm_ci.publish import pypi

    doc: dict[str, Any] = {"project": project.name, "version": project.version}
    if releases is not None and release_id is not None:
        release = releases.read_release(release_id)
        doc["github"] = {
            "repository": settings.repository,
            "tag": release.tag,
            "id": release.id,
            "draft": release.draft,
            "immutable": release.immutable,
            "html_url": release.html_url,
            "assets": [
                {
                    "name": a.name,
                    "state": a.state,
                    "size": a.size,
                    "sha256": releases.asset_sha256(a) if a.state == "uploaded" else "",
                    "url": a.browser_download_url,
                }
                for a in sorted(releases.list_assets(release), key=lambda a: a.name)
            ],
        }
    if target is not None:
        doc["pypi"] = {
            "index": target.index_url,
            "files": pypi.index_files(target, project.normalized_name),
        }
    return doc


def audit_signer(project: Project, token: str, trust_config: Path | None) -> ReleaseSigner | None:
    """A signer of the release's identity for the audit log when a token is at hand (``token``,
    else the job's ambient one); None otherwise."""
    token = token or identity.ambient_token() or ""
    if not token:
        return None
    expected = identity.signer_for_token(
        token,
        repository=project.repository,
        tag=project.tag,
        release_workflow=project.config.release_workflow,
        source=project.root / "pyproject.toml",
    )
    return ReleaseSigner(token, expected=expected, trust_config=trust_config)
