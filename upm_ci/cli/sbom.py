"""``upm-ci sbom``: CycloneDX + SPDX of the built wheel's environment, and their audit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from upm_ci import gha
from upm_ci.cli_common import dist_directory, echo, osv_url_option, phase_options
from upm_ci.tables import markdown_table, table

if TYPE_CHECKING:
    from upm_ci.manifest import Manifest
    from upm_ci.sbom import SbomResult


@click.command("sbom")
@phase_options
@osv_url_option
def command(project: Path, manifest: Path, dist_dir: Path | None, osv_url: str | None) -> int:
    """Write CycloneDX 1.6 and SPDX 2.3 SBOMs bound to the wheel's digest; audit their components.

    Exit 1 when a component has a vulnerability the allow-list does not accept, or when any
    component could not be checked (the SBOMs are still written and recorded). Images the
    build recorded get syft SBOMs bound to their digest and the same audit (PyPI and Debian
    packages; exit 1 on fixable findings or an SBOM of another image).
    """
    from upm_ci.extras import require

    require("sbom", "pipeline")
    from upm_ci.project import load_project
    from upm_ci.release import open_manifest
    from upm_ci.sbom import AuditFailed, make_sboms

    found = load_project(project)
    dist = dist_directory(found, dist_dir, manifest)
    # A dynamic version is not asked of the backend here: the build recorded it.
    man, proj = open_manifest(manifest, found)
    try:
        result = make_sboms(
            proj,
            man,
            dist_dir=dist,
            osv_url=proj.config.osv_url if osv_url is None else osv_url,
            today=dt.date.today(),
        )
    except AuditFailed as failed:
        _report(failed.result)
        _report_images(failed.result, man)
        for vuln in failed.result.audit.blocking:
            gha.annotate("error", vuln.describe(), title="vulnerable dependency")
        for r in failed.result.failed_images:
            for vuln in r.audit.blocking:
                gha.annotate("error", vuln.describe(), title="vulnerable image component")
        raise
    _report(result)
    _report_images(result, man)
    return 0


def _report_images(result: SbomResult, man: Manifest) -> None:
    """The image step's SBOMs and findings; says so when the build skipped the image."""
    if result.image_skipped:
        echo(result.image_skipped)
    results = result.images
    if not results:
        return
    from upm_ci.image.build import layout_path

    rows = [[r.cyclonedx.name, r.spdx.name, r.record.digest] for r in results]
    # for the action's scan step (trivy on the layout) and its outputs
    gha.set_output("image-layout", str(layout_path(man, results[0].record)))
    gha.set_output("image-cyclonedx", str(man.resolve(results[0].cyclonedx)))
    gha.set_output("image-spdx", str(man.resolve(results[0].spdx)))
    echo(table(["image cyclonedx", "image spdx", "describes"], rows))
    findings = []
    for r in results:
        echo(f"image audit: {'pass' if r.audit.passed else 'FAIL'}: {r.summary()}")
        findings += [
            [v.describe(), "allowed" if v.allowed_by else "blocking"]
            for v in r.audit.vulnerabilities
        ]
        findings += [[f"{s.name}: not checked ({s.reason})", "blocking"] for s in r.audit.skipped]
        findings += [[p, "blocking"] for p in r.audit.problems]
        findings += [[v.describe(), "no fix yet"] for v in r.unfixed]
    if findings:
        echo(table(["image finding", "status"], findings))
    gha.add_summary(
        "### Image SBOM\n\n"
        + markdown_table(["cyclonedx", "spdx", "describes"], [[f"`{c}`" for c in r] for r in rows])
        + "\n\n"
        + "\n".join(f"- {r.summary()}" for r in results)
        + ("\n\n" + markdown_table(["finding", "status"], findings) if findings else "")
    )


def _report(result: SbomResult) -> None:
    audit = result.audit
    files = [[a.name, str(a.size), a.sha256] for a in (result.cyclonedx, result.spdx)]
    echo(table(["sbom", "size", "sha256"], files))
    echo(f"describes {result.wheel.name} (sha256 {result.wheel.sha256})")
    echo(f"audit: {'pass' if audit.passed else 'FAIL'}: {audit.summary()}")
    rows = [
        [v.describe(), "allowed" if v.allowed_by else "blocking"] for v in audit.vulnerabilities
    ]
    rows += [[f"{s.name}: not checked ({s.reason})", "blocking"] for s in audit.skipped]
    rows += [[f"allow-list entry {e.id} expired {e.expires}", "blocking"] for e in audit.expired]
    rows += [[p, "blocking"] for p in audit.problems]
    if rows:
        echo(table(["finding", "status"], rows))
    components = [[c.name, c.version, c.purl] for c in result.components]
    gha.set_output("cyclonedx", result.cyclonedx.name)
    gha.set_output("spdx", result.spdx.name)
    gha.add_summary(
        f"### SBOM: {result.wheel.name}\n\n"
        + markdown_table(
            ["sbom", "size", "sha256"], [[f"`{r[0]}`", r[1], f"`{r[2]}`"] for r in files]
        )
        + f"\n\nBound to `{result.wheel.name}` sha256 `{result.wheel.sha256}`; "
        + f"{len(result.components)} runtime components.\n\n"
        + f"**Audit: {'pass' if audit.passed else 'FAIL'}**: {audit.summary()}\n\n"
        + (markdown_table(["finding", "status"], rows) + "\n\n" if rows else "")
        + "<details><summary>components</summary>\n\n"
        + markdown_table(["name", "version", "purl"], components)
        + "\n\n</details>"
    )
