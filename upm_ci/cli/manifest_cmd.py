"""``upm-ci manifest``: inspect, merge and extend the release manifest."""

from __future__ import annotations

import json
from pathlib import Path

import click

from upm_ci.cli_common import FILE, echo, manifest_option, option
from upm_ci.manifest import ImageRecord, Manifest, merge, rebase_paths
from upm_ci.tables import table


@click.group("manifest")
def group() -> None:
    """Inspect, merge (build matrix) and extend the release manifest."""


@group.command("show")
@manifest_option
@option("--json", "as_json", env="JSON", is_flag=True, help="Print the manifest as JSON.")
def show(manifest: Path, as_json: bool) -> int:
    """Print what the manifest holds."""
    m = Manifest.load(manifest)
    if as_json:
        echo(json.dumps(m.to_json(), indent=2))
        return 0
    p = m.project
    echo(f"{p.name} {p.version} (tag {p.tag}, commit {p.commit or '?'})")
    rows = [[a.kind, a.name, a.sha256[:16], str(a.size)] for a in m.artifacts]
    echo(table(["kind", "name", "sha256", "size"], rows))
    for phase, rec in m.phases.items():
        echo(f"phase {phase}: {rec.get('status')} at {rec.get('at')}")
    return 0


@group.command("digest")
@manifest_option
def digest_cmd(manifest: Path) -> int:
    """Print the hand-off digest: sha256 over every listed file's name and sha256 (publish's
    audit log left out); also the step output ``digest`` on GitHub Actions. ``upm-ci publish
    --handoff-digest`` checks it."""
    from upm_ci import gha
    from upm_ci.publish.handoff import handoff_digest

    value = handoff_digest(Manifest.load(manifest))
    gha.set_output("digest", value)
    echo(value)
    return 0


@group.command("image-hosts")
@manifest_option
def image_hosts(manifest: Path) -> int:
    """Print the registry hosts of the manifest's images (space-separated, sorted; nothing
    without images); also the step output `hosts`. The actions send registry credentials
    only to these hosts. The manifest is read with all of its own checks (size, depth, schema
    and version, each image's reference); unlike a phase, it is not held to a project's
    release (no --project)."""
    from upm_ci import gha
    from upm_ci.image.registry import parse_reference

    m = Manifest.load(manifest)
    hosts = sorted(
        {
            parse_reference(i.repository or i.ref, where=f"{m.path}: images[{n}]").host
            for n, i in enumerate(m.images)
        }
    )
    gha.set_output("hosts", " ".join(hosts))
    echo(" ".join(hosts))
    return 0


@group.command("merge")
@option(
    "--output",
    "-o",
    env="MANIFEST",
    type=FILE,
    required=True,
    help="Where to write the merged manifest.",
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
def merge_cmd(output: Path, inputs: tuple[Path, ...]) -> int:
    """Merge the manifests of several build jobs; fails on one name with two digests."""
    merged = merge([Manifest.load(p) for p in inputs])
    rebase_paths(merged, output)
    merged.save(output)
    echo(f"merged {len(inputs)} manifests into {output}: {len(merged.artifacts)} artifacts")
    return 0


@group.command("add-image")
@manifest_option
@option("--ref", env="IMAGE_REF", required=True, help="Image reference, e.g. ghcr.io/o/n:1.2.0.")
@option("--digest", env="IMAGE_DIGEST", required=True, help="The pushed digest (sha256:<64 hex>).")
@option(
    "--sbom",
    env="IMAGE_SBOM",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The image's SBOM file (syft); recorded as a release file, so it is signed and published.",
)
def add_image(manifest: Path, ref: str, digest: str, sbom: Path | None) -> int:
    """Record a container image built or pushed by the actions, and its SBOM."""
    import re

    from upm_ci.errors import InputError

    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise InputError(f"--digest: {digest!r} is not sha256:<64 hex digits>")
    if sbom is not None and not sbom.is_file():
        raise InputError(f"--sbom: {sbom}: file not found", hint="pass the SBOM syft wrote")
    m = Manifest.load(manifest)
    sbom_name = m.add_file(sbom, "sbom").name if sbom is not None else ""
    m.add_image(ImageRecord(ref=ref, digest=digest, sbom=sbom_name))
    m.save()
    echo(f"recorded image {ref}@{digest}")
    return 0
