"""Phase 3, sbom: CycloneDX and SPDX of the wheel's runtime environment, and its audit.

The environment is a fresh venv with only the built wheel installed (and what it pulls in),
so the SBOM lists what a user of the wheel actually runs. Components outside the wheel's
dependency closure (pip, setuptools or wheel that a venv can bring along) are dropped: they
are the venv's, not the wheel's. Both documents name the wheel, with its sha256, as what they
describe, so an SBOM is bound to one artifact digest.

Never an invalid SBOM: each document is validated (cyclonedx-python-lib's JSON schema
validator, spdx-tools' validator) before anything is written, and written atomically. The
vulnerability audit runs over exactly the components in the CycloneDX document.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from upm_ci import __version__
from upm_ci.child_env import project_env
from upm_ci.config import AuditAllowance
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.image.sbom import ImageSbomResult, Scan, make_image_sboms, start_image_scans
from upm_ci.jsonschema_formats import import_jsonschema
from upm_ci.layout import check_dist_dir_inside, sha256_file
from upm_ci.manifest import Artifact, Manifest, SbomRecord, write_text_atomic
from upm_ci.project import Project
from upm_ci.sbom_validation import validate_cyclonedx, validate_spdx
from upm_ci.timings import timed
from upm_ci.venvs import cache_from_env as venv_cache_from_env
from upm_ci.venvs import wheel_venv

if TYPE_CHECKING:
    from upm_ci.dependency_provenance import ShippedDependency
    from upm_ci.vulnerability_audit import AuditOutcome

log = logging.getLogger(__name__)

Auditor = Callable[..., "AuditOutcome"]


@dataclass(frozen=True)
class Component:
    """One runtime dependency of the wheel, as the SBOMs list it."""

    name: str
    version: str
    purl: str
    ref: str
    depends_on: tuple[str, ...]


@dataclass
class SbomResult:
    """The two SBOMs, what they describe, and the audit of their components."""

    cyclonedx: Artifact
    spdx: Artifact
    wheel: Artifact
    components: list[Component]
    audit: AuditOutcome
    #: The image step: SBOMs and audit of each image the build recorded with a layout.
    images: list[ImageSbomResult] = field(default_factory=list)
    #: Why no image SBOM was made although the project configures an image ("" otherwise).
    image_skipped: str = ""

    @property
    def failed_images(self) -> list[ImageSbomResult]:
        return [r for r in self.images if not r.audit.passed]


class AuditFailed(PolicyError):
    """The SBOMs were written, but the audit of their components (the wheel's, else an
    image's) did not pass (exit 1); ``result`` is the whole phase's, for the report."""

    def __init__(self, result: SbomResult) -> None:
        if result.audit.passed and result.failed_images:
            image = result.failed_images[0]
            super().__init__(
                f"vulnerability audit of the image SBOM failed: {image.summary()}",
                hint="rebuild on a fixed base image or upgrade the package, or allow-list it "
                "with a reason and an expiry date",
            )
        else:
            super().__init__(
                f"vulnerability audit of the SBOM's components failed: {result.audit.summary()}",
                hint="upgrade the dependency, or allow-list it with a reason and an expiry date",
            )
        self.result = result


# --- the wheel and its environment ------------------------------------------------------------
def built_wheel(manifest: Manifest) -> tuple[Artifact, Path]:
    """The manifest's wheel, checked to be the very bytes the build recorded."""
    wheels = manifest.of_kind("wheel")
    if len(wheels) != 1:
        raise InputError(
            f"{manifest.path}: expected one wheel in the manifest, found {len(wheels)}",
            hint="run `upm-ci build` first",
        )
    wheel = wheels[0]
    path = manifest.resolve(wheel)
    if not path.is_file():
        raise InputError(f"{path}: the manifest's wheel is missing", hint="run `upm-ci build`")
    if sha256_file(path) != wheel.sha256:
        raise PolicyError(
            f"{path.name}: its sha256 is not the one the build recorded in {manifest.path}",
            hint="the wheel changed after the build; rebuild it",
        )
    return wheel, path


def environment_bom(wheel: Path) -> dict[str, Any]:
    """``cyclonedx-py environment`` over a venv holding only ``wheel`` and its deps (a fresh
    one; in a rehearsal, the cached one build's smoke test used: :mod:`upm_ci.venvs`)."""
    with (
        tempfile.TemporaryDirectory(prefix="upm-sbom-") as tmp,
        wheel_venv(wheel, phase="sbom", cache=venv_cache_from_env()) as made,
    ):
        python, installed = made.python, made.installed
        if installed.returncode != 0:
            raise ServiceError(
                f"{wheel.name}: installing it to inventory its environment failed: "
                + _last_line(installed.stderr or installed.stdout),
                hint="the package index may be unreachable; re-run",
            )
        out = Path(tmp) / "env.cdx.json"
        with timed("sbom: cyclonedx-py"):
            proc = subprocess.run(
                [sys.executable, "-m", "cyclonedx_py", "environment", str(python)]
                + ["--output-reproducible", "--of", "JSON", "--sv", "1.6", "-o", str(out)]
                # The document is validated once, after it is bound to the wheel
                # (validate_cyclonedx); cyclonedx-py's own validation of the unbound one would
                # double the slowest step.
                + ["--no-validate"],
                capture_output=True,
                text=True,
                # cyclonedx-py starts the venv's python: a .pth file of the wheel runs there
                env=project_env(),
            )
        if proc.returncode != 0:
            raise PolicyError(f"cyclonedx-py failed: {_last_line(proc.stderr or proc.stdout)}")
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return data


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def bind_to_wheel(
    bom: dict[str, Any], *, name: str, version: str, wheel: Artifact
) -> tuple[dict[str, Any], list[Component]]:
    """Make the wheel the BOM's subject (with its digest) and keep only its dependency closure."""
    components = {c["bom-ref"]: c for c in bom.get("components", [])}
    graph = {d["ref"]: list(d.get("dependsOn", [])) for d in bom.get("dependencies", [])}
    root_ref = next(
        (
            ref
            for ref, c in components.items()
            if canonicalize_name(c.get("name", "")) == canonicalize_name(name)
        ),
        None,
    )
    if root_ref is None:
        raise PolicyError(f"{wheel.name}: not found in its own environment's SBOM")
    closure: list[str] = []
    pending = list(graph.get(root_ref, []))
    while pending:
        ref = pending.pop(0)
        if ref in closure or ref == root_ref or ref not in components:
            continue
        closure.append(ref)
        pending.extend(graph.get(ref, []))
    dropped = sorted(set(components) - set(closure) - {root_ref})
    if dropped:
        log.info("sbom: dropped components outside the wheel's closure: %s", ", ".join(dropped))

    purl = f"pkg:pypi/{canonicalize_name(name)}@{version}"
    bom["metadata"]["component"] = {
        "type": "library",
        "bom-ref": root_ref,
        "name": name,
        "version": version,
        "purl": purl,
        "hashes": [{"alg": "SHA-256", "content": wheel.sha256}],
        "externalReferences": [
            {
                "type": "distribution",
                "url": wheel.name,
                "hashes": [{"alg": "SHA-256", "content": wheel.sha256}],
            }
        ],
    }
    kept = []
    for ref in sorted(closure, key=lambda r: components[r]["name"].lower()):
        comp = dict(components[ref])
        comp.setdefault(
            "purl", f"pkg:pypi/{canonicalize_name(comp['name'])}@{comp.get('version', '')}"
        )
        kept.append(comp)
    bom["components"] = kept
    keep_refs = {root_ref, *closure}
    bom["dependencies"] = [
        {"ref": ref, "dependsOn": [d for d in graph.get(ref, []) if d in keep_refs]}
        for ref in [root_ref, *sorted(closure)]
    ]
    parsed = [
        Component(
            name=c["name"],
            version=c.get("version", ""),
            purl=c["purl"],
            ref=c["bom-ref"],
            depends_on=tuple(d for d in graph.get(c["bom-ref"], []) if d in keep_refs),
        )
        for c in kept
    ]
    return bom, parsed


PUBLISHER_PROPERTY = "upm-release:pep740:publisher"


def provenance_by_ref(
    components: Sequence[Component], shipped: Sequence[ShippedDependency]
) -> dict[str, ShippedDependency]:
    """Component ref -> the gate's record of the same package and version (PEP 740)."""
    by_pin = {(canonicalize_name(d.name), d.version): d for d in shipped}
    out = {}
    for c in components:
        found = by_pin.get((canonicalize_name(c.name), c.version))
        if found is not None:
            out[c.ref] = found
    return out


def annotate_provenance(bom: dict[str, Any], provenance: dict[str, ShippedDependency]) -> None:
    """Each component the gate checked carries its publisher (a property) and a reference to
    its PEP 740 attestation (``attestation``: the Integrity API URL, the file's sha256)."""
    for comp in bom.get("components", []):
        dep = provenance.get(comp.get("bom-ref", ""))
        if dep is None:
            continue
        publisher = (
            dep.publisher.describe() if dep.publisher else "unsigned (no PEP 740 provenance)"
        )
        comp.setdefault("properties", []).append({"name": PUBLISHER_PROPERTY, "value": publisher})
        if dep.publisher is None or not dep.provenance:
            continue
        log_index = f", Rekor log index {dep.log_index}" if dep.log_index else ""
        comp.setdefault("externalReferences", []).append(
            {
                "type": "attestation",
                "url": dep.provenance,
                "comment": f"PEP 740 provenance of {dep.file}{log_index}",
                "hashes": [{"alg": "SHA-256", "content": dep.sha256}],
            }
        )


# --- SPDX -------------------------------------------------------------------------------------
def _spdx_id(text: str) -> str:
    return "SPDXRef-Package-" + re.sub(r"[^A-Za-z0-9.-]+", "-", text)


def spdx_document(
    *,
    name: str,
    version: str,
    wheel: Artifact,
    root_ref: str,
    root_depends_on: Sequence[str],
    components: Sequence[Component],
    created: dt.datetime,
    provenance: dict[str, ShippedDependency] | None = None,
) -> Any:
    """An SPDX 2.3 document (spdx-tools model): the wheel DESCRIBED, its deps DEPENDS_ON."""
    from spdx_tools.spdx.model.actor import Actor, ActorType
    from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
    from spdx_tools.spdx.model.document import CreationInfo, Document
    from spdx_tools.spdx.model.package import (
        ExternalPackageRef,
        ExternalPackageRefCategory,
        Package,
    )
    from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
    from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion

    def package(spdx_id: str, pname: str, pversion: str, purl: str) -> Package:
        return Package(
            spdx_id=spdx_id,
            name=pname,
            version=pversion,
            download_location=SpdxNoAssertion(),
            files_analyzed=False,
            license_concluded=SpdxNoAssertion(),
            license_declared=SpdxNoAssertion(),
            copyright_text=SpdxNoAssertion(),
            external_references=[
                ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)
            ],
        )

    root_id = _spdx_id(f"{name}-{version}")
    root = package(root_id, name, version, f"pkg:pypi/{canonicalize_name(name)}@{version}")
    root.file_name = wheel.name
    root.checksums = [Checksum(ChecksumAlgorithm.SHA256, wheel.sha256)]
    ids = {root_ref: root_id} | {c.ref: _spdx_id(f"{c.name}-{c.version}") for c in components}
    packages = [root] + [package(ids[c.ref], c.name, c.version, c.purl) for c in components]
    for c, pkg in zip(components, packages[1:], strict=True):
        dep = (provenance or {}).get(c.ref)
        if dep is None:
            continue
        if dep.publisher is None:
            pkg.comment = "PEP 740 publisher: unsigned (no provenance on the index)"
            continue
        pkg.comment = f"PEP 740 publisher: {dep.publisher.describe()}"
        if dep.provenance:
            pkg.external_references.append(
                ExternalPackageRef(
                    ExternalPackageRefCategory.OTHER,
                    "pep740-provenance",
                    dep.provenance,
                    f"PEP 740 provenance of {dep.file} (sha256 {dep.sha256})",
                )
            )
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, root_id)]
    relationships += [
        Relationship(root_id, RelationshipType.DEPENDS_ON, ids[ref])
        for ref in root_depends_on
        if ref in ids
    ]
    for c in components:
        relationships += [
            Relationship(ids[c.ref], RelationshipType.DEPENDS_ON, ids[d])
            for d in c.depends_on
            if d in ids
        ]
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=f"{name}-{version}",
        document_namespace=f"https://spdx.org/spdxdocs/{canonicalize_name(name)}-{version}-{wheel.sha256}",
        creators=[Actor(ActorType.TOOL, f"upm-ci-{__version__}")],
        created=created,
    )
    return Document(info, packages=packages, relationships=relationships)


def _created(manifest: Manifest) -> dt.datetime:
    """The build's SOURCE_DATE_EPOCH when known (same inputs, same SBOM), else now."""
    epoch = str(manifest.phases.get("build", {}).get("source_date_epoch", ""))
    if epoch.isascii() and epoch.isdigit():
        return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc)
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


# --- the phase --------------------------------------------------------------------------------
@timed("sbom: load the SPDX validator")
def load_spdx_validator() -> None:
    """Import spdx-tools' validator (license expressions and all: a second or so)."""
    import spdx_tools.spdx.validation.document_validator  # noqa: F401


@timed("sbom: load the CycloneDX validator")
def load_cyclonedx_validator() -> None:
    """Import CycloneDX's validator, jsonschema's IRI parser deferred to the first URL the
    fast check does not settle (:func:`~upm_ci.jsonschema_formats.import_jsonschema`)."""
    import_jsonschema()
    import cyclonedx.validation.json  # noqa: F401


def make_sboms(
    project: Project,
    manifest: Manifest,
    *,
    dist_dir: Path,
    osv_url: str,
    today: dt.date,
    auditor: Auditor | None = None,
) -> SbomResult:
    """Write and record both SBOMs of the manifest's wheel, audit their components, then the
    image step: SBOMs and audit of each image the build recorded (:mod:`upm_ci.image.sbom`).

    Raises :class:`AuditFailed` (a PolicyError carrying the result) when an audit does not
    pass; the SBOMs are written and recorded either way, the phase marked ``fail``. A failed
    wheel audit stops the phase before the image step. The phase is recorded once.
    """
    from upm_ci.dependency_provenance import recorded_dependencies

    dist_dir = check_dist_dir_inside(dist_dir, manifest.base, where="dist directory")
    wheel, wheel_path = built_wheel(manifest)
    name, version = manifest.project.name, manifest.project.version
    if auditor is None:
        from upm_ci.vulnerability_audit import audit_packages

        auditor = audit_packages
    allow: Sequence[AuditAllowance] = project.config.audit_allow
    audit = timed("sbom: vulnerability audit")(auditor)
    # No step waits on one it does not need: the validators load while the venv and
    # cyclonedx-py run, and the audit (pip-audit, a process of its own) runs while the
    # CycloneDX document is validated. It starts once the SPDX document is valid, and its
    # outcome counts only once both documents are valid and written.
    # syft scans the images meanwhile; the image step uses its documents once the wheel's
    # audit passed.
    with (
        ThreadPoolExecutor(1) as loader,
        ThreadPoolExecutor(1) as audits,
        ThreadPoolExecutor(1) as scanner,
    ):
        scans = start_image_scans(manifest, scanner)
        spdx_loaded = loader.submit(load_spdx_validator)
        cdx_loaded = loader.submit(load_cyclonedx_validator)
        raw = environment_bom(wheel_path)
        bom, components = bind_to_wheel(raw, name=name, version=version, wheel=wheel)
        provenance = provenance_by_ref(components, recorded_dependencies(manifest.phases))
        annotate_provenance(bom, provenance)
        root_ref = bom["metadata"]["component"]["bom-ref"]
        root_deps = next(d["dependsOn"] for d in bom["dependencies"] if d["ref"] == root_ref)
        doc = spdx_document(
            name=name,
            version=version,
            wheel=wheel,
            root_ref=root_ref,
            root_depends_on=root_deps,
            components=components,
            created=_created(manifest),
            provenance=provenance,
        )
        spdx_loaded.result()
        spdx_text = validate_spdx(doc)  # an invalid SPDX document is never audited
        log.info("sbom: %d components; auditing them", len(components))
        packages = [(c.name, c.version) for c in components]
        auditing = audits.submit(audit, packages, osv_url=osv_url, allow=allow, today=today)
        cdx_text = json.dumps(bom, indent=2, sort_keys=True) + "\n"
        with timed("sbom: wait for the CycloneDX validator"):
            cdx_loaded.result()
        validate_cyclonedx(cdx_text)

        dist_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{project.dist_name}-{version}"
        cdx_path, spdx_path = dist_dir / f"{stem}.cdx.json", dist_dir / f"{stem}.spdx.json"
        write_text_atomic(cdx_path, cdx_text)
        write_text_atomic(spdx_path, spdx_text)
        cdx_art = manifest.add_file(cdx_path, "sbom")
        spdx_art = manifest.add_file(spdx_path, "sbom")
        for art, fmt in ((cdx_art, "cyclonedx-1.6+json"), (spdx_art, "spdx-2.3+json")):
            manifest.add_sbom(SbomRecord(art.name, fmt, wheel.name, wheel.sha256))
        manifest.save()
        with timed("sbom: wait for the audit"):
            outcome = auditing.result()
        result = SbomResult(cdx_art, spdx_art, wheel, components, outcome)
        if outcome.passed:
            _image_step(
                project,
                manifest,
                result,
                dist_dir=dist_dir,
                osv_url=osv_url,
                today=today,
                scans=scans,
            )
        else:
            for scan in scans.values():
                scan.cancel()  # one not yet started never starts; a running one finishes
    details = {"components": len(components), "audit": outcome.summary()}
    if result.images:
        details["image"] = "; ".join(r.summary() for r in result.images)
    passed = outcome.passed and not result.failed_images
    manifest.record_phase("sbom", "pass" if passed else "fail", **details)
    manifest.save()
    if not passed:
        raise AuditFailed(result)
    return result


def _image_step(
    project: Project,
    manifest: Manifest,
    result: SbomResult,
    *,
    dist_dir: Path,
    osv_url: str,
    today: dt.date,
    scans: Mapping[str, Future[Scan]] | None = None,
) -> None:
    """The images' SBOMs and audit into ``result`` (``scans``: syft's documents, started
    beside the wheel's SBOMs); or why there are none to make."""
    if not any(i.layout for i in manifest.images):
        if project.config.image:
            shown = str(manifest.phases.get("build", {}).get("image", "image: skipped (not built)"))
            result.image_skipped = shown if shown.startswith("image:") else f"image: {shown}"
        return
    with timed("sbom: images"):
        result.images = make_image_sboms(
            manifest,
            dist_dir=dist_dir,
            osv_url=osv_url,
            allow=project.config.audit_allow,
            today=today,
            scans=scans,
        )
