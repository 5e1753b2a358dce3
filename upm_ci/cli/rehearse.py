"""``upm-ci rehearse``: the whole release against local stand-ins, before you tag it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from upm_ci import gha
from upm_ci.cli._common import echo, finite, option
from upm_ci.errors import InputError
from upm_ci.tables import markdown_table, table

if TYPE_CHECKING:
    from upm_ci.rehearse import RehearsalResult


@click.command("rehearse")
@click.argument(
    "project", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
@option(
    "--out",
    env="REHEARSAL_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("rehearsal"),
    show_default=True,
    help="Output directory (new, empty, or an earlier rehearsal's: it is replaced).",
)
@option(
    "--rekor-version",
    env="REKOR_VERSION",
    type=click.Choice(["1", "2"]),
    default="1",
    show_default=True,
    help="Transparency log version the local Sigstore offers.",
)
@option(
    "--github-fault-rate",
    env="GITHUB_FAULT_RATE",
    type=click.FloatRange(0, 0.5),
    callback=finite,
    default=0.0,
    show_default=True,
    help="Fraction of GitHub requests that fail transiently (exercises retries).",
)
@option(
    "--fault-seed",
    env="REHEARSAL_FAULT_SEED",
    type=click.IntRange(0),
    default=None,
    help="Every stand-in (GitHub, PyPI, OSV, Sigstore, S3; not the OIDC endpoint) fails some "
    "requests transiently, seeded by this number (reproducible); the release must still pass "
    "through upm-ci's retries. The summary says how many faults each injected.",
)
@option(
    "--fault-rate",
    env="REHEARSAL_FAULT_RATE",
    type=click.FloatRange(0, 0.5),
    callback=finite,
    default=0.2,
    show_default=True,
    help="With --fault-seed: the fraction of requests that fail.",
)
@option(
    "--fault-kinds",
    env="REHEARSAL_FAULT_KINDS",
    default="",
    help="With --fault-seed: comma-separated kinds (5xx, 500, 502, 503, 429, secondary, "
    "primary, reset, slow); each stand-in injects those it supports [default: each stand-in's "
    "own: 5xx, 429, reset, slow; GitHub also secondary; S3 no 429].",
)
@option(
    "--osv-url",
    env="REHEARSAL_OSV_URL",
    default="",
    help="Use this OSV /v1/query URL instead of the local OSV stand-in.",
)
@option(
    "--test-python",
    env="REHEARSAL_TEST_PYTHON",
    default="",
    help="Run the project's tests with this interpreter (your own test environment) "
    "[default: the gate's new venv with the project and its test dependencies].",
)
@option(
    "--tag",
    env="REHEARSAL_TAG",
    default="",
    help="Release tag to rehearse [default: tag-prefix + the version; for a dynamic version "
    "without a tag at HEAD, + the changelog's top version, tagged in the rehearsal's copy].",
)
@option(
    "--image-base",
    env="IMAGE_BASE",
    default="",
    help="Base image for the Dockerfile's BASE_IMAGE build arg (with `image` configured); "
    "`standin` makes one from this machine's Python [default: the Dockerfile's own base when "
    "the engine has it, else `standin`: a rehearsal pulls nothing].",
)
@option(
    "--fresh",
    env="REHEARSAL_FRESH",
    is_flag=True,
    default=False,
    help="Make the gate's test venv anew instead of reusing the cached one (outside CI a "
    "venv is reused while the project's dependencies and the interpreter are unchanged).",
)
@option(
    "--timings",
    env="REHEARSAL_TIMINGS",
    is_flag=True,
    default=False,
    help="Print where the time went: each stand-in's start-up, each phase, the steps in them.",
)
def command(
    project: Path,
    out: Path,
    rekor_version: str,
    github_fault_rate: float,
    fault_seed: int | None,
    fault_rate: float,
    fault_kinds: str,
    osv_url: str,
    test_python: str,
    tag: str,
    image_base: str,
    fresh: bool,
    timings: bool,
) -> int:
    """Try the whole release before you tag it: gate, build, sbom, sign, publish, verify.

    Runs each phase as CI would, against local stand-ins for GitHub, PyPI, OSV, Sigstore and
    the runner's OIDC token, all on 127.0.0.1. OUT holds gate-report.json,
    release-manifest.json, dist/, published.json, verify-report.json, logs/ and
    trusted_root.jsonl (the local Sigstore's root, for gh attestation verify
    --custom-trusted-root) with .sigstore/trust-config.json (the same root, for upm-ci and
    sigstore --trust-config).
    Needs Node.js (Sigstore's own @sigstore/mock runs the local Sigstore).
    """
    from upm_ci.extras import require

    require("rehearse", "rehearse", "pipeline", "image")
    from upm_ci.rehearse import SUPPORTED, FaultSettings, rehearse
    from upm_ci.standins.faults import parse_kinds

    faults = None
    if fault_seed is not None:
        kinds = parse_kinds(fault_kinds)
        known = {k for supported in SUPPORTED.values() for k in supported}
        if unknown := [k for k in kinds if k not in known]:
            raise InputError(
                f"--fault-kinds: unknown kind {', '.join(unknown)}",
                hint=f"use some of {', '.join(sorted(known))}",
            )
        faults = FaultSettings(seed=fault_seed, rate=fault_rate, kinds=kinds)
    result = rehearse(
        project,
        out,
        rekor_version=int(rekor_version),
        github_fault_rate=github_fault_rate,
        osv_url=osv_url,
        test_python=test_python,
        tag=tag,
        on_progress=lambda line: echo(line, err=True),
        faults=faults,
        image_base=image_base,
        fresh=fresh,
    )
    echo()
    echo(summary_text(project, result, timings=timings))
    headers, rows = _summary_rows(result)
    image = "".join(f"\n    {line}" for line in result.image)
    gha.add_summary(
        "## upm-ci rehearse\n\n" + markdown_table(headers, rows) + (f"\n{image}\n" if image else "")
    )
    return result.exit_code


def _summary_rows(result: RehearsalResult) -> tuple[list[str], list[list[str]]]:
    headers = ["phase", "status", "duration", "produced"]
    rows = [[p.phase, p.status, f"{p.seconds:.1f} s", p.produced] for p in result.phases]
    return headers, rows


def summary_text(
    project: Path, result: RehearsalResult, *, width: int | None = None, timings: bool = False
) -> str:
    """The rehearsal's terminal summary: the phase table sized to ``width`` [default: the
    terminal's], the faults injected, the image's steps, the gate's test venv, where the time
    went (``timings``) and the verdict."""
    from upm_ci.tables import fit_lines, terminal_width

    width = terminal_width() if width is None else width
    out = [table(*_summary_rows(result), width=width), ""]
    for label, counts in result.faults.items():
        shown = ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "none"
        out.append(f"faults injected by the {label} stand-in: {sum(counts.values())} ({shown})")
    out += result.image
    out.append(f"gate's tests ran in {result.test_venv}")
    if timings:
        steps = [[t.step, f"{t.seconds:.2f}"] for t in result.timings]
        out += ["", table(["step", "seconds"], steps, width=width), ""]
    verdict = "every phase passed" if result.passed else "the release would fail"
    out.append(f"rehearsal of {project}: {verdict}; output in {result.out_dir}")
    return "\n".join(fit_lines("\n".join(out), width))
