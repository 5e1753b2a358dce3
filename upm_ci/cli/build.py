"""``upm-ci build``: clean, build sdist + wheel, check them, write SHA256SUMS, record them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click

from upm_ci import gha
from upm_ci.cli_common import dist_directory, echo, option, phase_options, tag_option
from upm_ci.tables import markdown_table, table

if TYPE_CHECKING:
    from upm_ci.project import Project


@click.command("build")
@phase_options
@tag_option
@option(
    "--check-reproducible/--no-check-reproducible",
    env="CHECK_REPRODUCIBLE",
    default=None,
    help="Build twice and fail on any byte difference [default: config check-reproducible].",
)
@option("--no-smoke-test", env="NO_SMOKE_TEST", is_flag=True, help="Skip the install smoke test.")
@option(
    "--image",
    env="IMAGE",
    default=None,
    help="Image repository to build (`ghcr.io/owner/name`, no tag) for this run; overrides "
    "the config key `image` [default: the project's `image`; empty: no image].",
)
@option(
    "--dockerfile",
    env="DOCKERFILE",
    default=None,
    help="Dockerfile of the image, relative to the project [default: the config key "
    "`dockerfile`, `Dockerfile`].",
)
@option(
    "--skip-image",
    env="SKIP_IMAGE",
    is_flag=True,
    help="Build no image even when one is configured (e.g. every build runner but the first, "
    "so that one image is merged and published).",
)
@option(
    "--image-base",
    env="IMAGE_BASE",
    default=None,
    help="Base image for the Dockerfile's BASE_IMAGE build arg (when an image is built); "
    "e.g. a mirror of the base, or one made by `python -m upm_ci.standins.base_image`.",
)
def command(
    project: Path,
    manifest: Path,
    dist_dir: Path | None,
    tag: str | None,
    check_reproducible: bool | None,
    no_smoke_test: bool,
    image: str | None,
    dockerfile: str | None,
    skip_image: bool,
    image_base: str | None,
) -> int:
    """Build the sdist and the wheel (from the sdist) reproducibly, check and checksum them.

    Exit 2 when the project does not build (the build's last lines are shown); exit 1 when an
    artifact is wrong: metadata not matching the tag, twine check, smoke test, reproducibility.
    With `image` configured the Dockerfile is built too (OCI layout under <dist>/oci-image/):
    exit 2 when the Dockerfile is missing, exit 1 when it fails; with no Docker engine the
    image is reported as skipped. `--image` (UPM_IMAGE) names the repository for this run
    instead of the config key; exit 2 when it is not HOST/NAME. `--skip-image` builds none.
    """
    from upm_ci.extras import require

    require("build", "pipeline")
    from upm_ci.build import build_release
    from upm_ci.child_env import isolate_process
    from upm_ci.project import load_project, resolve_tag, version_from_tag
    from upm_ci.release import open_manifest

    # The build backend, the smoke test and the Dockerfile are the project's code; the build
    # needs no credential at all.
    isolate_process()
    proj = load_project(project)
    if image or dockerfile:
        proj = _with_image(proj, image, dockerfile)
    version_from_tag(resolve_tag(proj, tag), proj.config.tag_prefix)  # a malformed tag first
    dist = dist_directory(proj, dist_dir, manifest)
    man, proj = open_manifest(manifest, proj, tag=tag, new=True)
    result = build_release(
        proj,
        man,
        dist_dir=dist,
        check_reproducible=(
            proj.config.check_reproducible if check_reproducible is None else check_reproducible
        ),
        tag=tag,
        smoke=not no_smoke_test,
        image_base=image_base,
        skip_image="--skip-image (UPM_SKIP_IMAGE)" if skip_image and proj.config.image else "",
    )
    artifacts = [result.sdist, result.wheel, result.sha256sums]
    rows = [[a.name, str(a.size), a.sha256] for a in artifacts]
    built = result.image
    if built is not None and built.record is not None:
        rows.append([built.record.ref, "image", built.record.digest])
    echo(table(["name", "size", "sha256"], rows))
    checks = [
        f"version {result.version} matches tag `{result.tag}`",
        "twine check --strict passed",
        "smoke test passed" if result.smoke_tested else "smoke test skipped",
        "reproducible (built twice, identical)"
        if result.reproducible_checked
        else "reproducibility not checked",
    ]
    if built is not None and proj.config.image:
        checks.append(built.summary())
    echo("; ".join(checks))
    if built is not None and built.record is not None:
        gha.set_output("image-digest", built.record.digest)
        gha.set_output("image-ref", built.record.ref)
    gha.set_output("wheel", str(man.resolve(result.wheel)))
    gha.set_output("sdist", str(man.resolve(result.sdist)))
    gha.set_output("sha256sums", result.sums_text.rstrip("\n"))
    gha.set_output("manifest", str(man.path))
    gha.add_summary(
        f"### Build: {man.project.name} {result.version}\n\n"
        + markdown_table(
            ["artifact", "size", "sha256"], [[f"`{r[0]}`", r[1], f"`{r[2]}`"] for r in rows]
        )
        + "\n\n"
        + "\n".join(f"- {c}" for c in checks)
        + f"\n- SOURCE_DATE_EPOCH {result.source_date_epoch or 'unset'}, commit "
        + f"`{result.commit or 'unknown'}`"
    )
    return 0


def _with_image(proj: Project, image: str | None, dockerfile: str | None) -> Project:
    """``proj`` with the config keys `image` (a repository, no tag or digest; "" builds none)
    and `dockerfile` overridden where given."""
    from upm_ci.errors import InputError
    from upm_ci.image.registry import parse_reference

    config = proj.config
    if image:
        name = parse_reference(image, where="--image (UPM_IMAGE)")
        if name.tag or name.digest:
            raise InputError(
                f"--image (UPM_IMAGE): {image!r} names a tag or digest",
                hint="give the repository only, e.g. ghcr.io/owner/name; the tag is the version",
            )
        image = name.repository
    if image is not None:
        config = dataclasses.replace(config, image=image)
    if dockerfile:
        from upm_ci.layout import check_confined

        check_confined(proj.root, dockerfile, where="--dockerfile (UPM_DOCKERFILE)")
        config = dataclasses.replace(config, dockerfile=dockerfile)
    return dataclasses.replace(proj, config=config)
