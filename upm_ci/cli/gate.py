"""``upm-ci gate``: run RELEASE.md's Pre-Release Checklist and block the release on a failure.

Prints the filled-in checklist, adds it to the job summary, annotates every finding of a
failed check, sets the outputs ``passed`` and ``report``, and records the phase in the
release manifest. Exit 1 when the release is blocked.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import click

from upm_ci import gha
from upm_ci.cli_common import (
    FILE,
    echo,
    echo_json,
    format_option,
    github_api_url_option,
    github_token_option,
    http_url,
    manifest_option,
    option,
    osv_url_option,
    project_option,
    repository_option,
    tag_option,
    trust_config_option,
)
from upm_ci.errors import EXIT_OK, EXIT_POLICY, InputError


@click.command("gate")
@project_option
@tag_option
@option(
    "--junit-xml",
    env="JUNIT_XML",
    type=FILE,
    default=None,
    help="Judge this JUnit XML instead of running test-command.",
)
@option(
    "--test-python",
    env="TEST_PYTHON",
    default="",
    help="Run test-command's `python` with this interpreter (your own test environment) "
    "[default: a new venv with the project and its test dependencies].",
)
@option(
    "--test-install",
    env="TEST_INSTALL",
    default="",
    help="pip arguments for the new test venv, e.g. '.[test]' [default: config test-install, "
    "else the project's test extra or dependency group].",
)
@option(
    "--report-json",
    env="REPORT_JSON",
    type=FILE,
    default=None,
    help="Also write the report as JSON (schema upm-release/gate-report/v1).",
)
@option(
    "--only",
    env="ONLY",
    multiple=True,
    help="Run only this check (repeatable), e.g. code-review in a step of its own that runs "
    "none of the project's code; its result goes into the manifest.",
)
@option(
    "--skip",
    env="SKIP",
    multiple=True,
    help="Do not run this check (repeatable): take the result an `--only` run recorded in the "
    "manifest (none recorded: the check fails).",
)
@manifest_option
@github_api_url_option
@github_token_option
@repository_option
@osv_url_option
@format_option
@option(
    "--pypi-index-url",
    env="PYPI_INDEX_URL",
    default=None,
    callback=http_url,
    help="Index whose Integrity API serves the dependencies' PEP 740 provenance [config].",
)
@trust_config_option
def command(
    project: Path,
    tag: str | None,
    junit_xml: Path | None,
    test_python: str,
    test_install: str,
    report_json: Path | None,
    only: tuple[str, ...],
    skip: tuple[str, ...],
    manifest: Path,
    github_api_url: str | None,
    github_token: str,
    repository: str | None,
    osv_url: str | None,
    output_format: str,
    pypi_index_url: str | None,
    trust_config: Path | None,
) -> int:
    """Run the Pre-Release Checklist (RELEASE.md); exit 1 if the release is blocked."""
    from upm_ci.extras import require

    require("gate", "pipeline")
    from upm_ci.child_env import isolate_process
    from upm_ci.config import display_path
    from upm_ci.gate.checklist import gate_release
    from upm_ci.gate.model import GitHubAccess
    from upm_ci.gate.report import render_markdown, render_text
    from upm_ci.manifest import write_json_atomic
    from upm_ci.project import load_project
    from upm_ci.release import open_manifest

    # The token (already read) is for the code-review check only; the tests, the test venv's
    # install and a dynamic version's backend are the project's code.
    isolate_process()
    loaded = load_project(project)
    if test_install:
        loaded = dataclasses.replace(
            loaded, config=dataclasses.replace(loaded.config, test_install=test_install)
        )
    if junit_xml is not None and not junit_xml.is_file():
        raise InputError(f"{junit_xml}: JUnit XML not found", hint="check --junit-xml")
    github = None
    if github_token:
        github = GitHubAccess(
            api_url=(github_api_url or loaded.config.github_api_url).rstrip("/"),
            token=github_token,
            repository=repository or loaded.repository,
        )
    # Refuse another release's manifest first; a gate re-run may re-stamp the tag.
    release, loaded = open_manifest(
        manifest, loaded, tag=tag, repository=repository or "", new=True, restamp=True
    )
    report = gate_release(
        loaded,
        release,
        tag=release.project.tag,
        junit_xml=junit_xml.resolve() if junit_xml else None,
        github=github,
        osv_url=osv_url if osv_url is not None else loaded.config.osv_url,
        test_python=test_python,
        only=only,
        skip=skip,
        index_url=pypi_index_url or loaded.config.pypi_index_url,
        trust_config=trust_config,
    )

    if output_format == "text":
        echo(render_text(report))
    gha.add_summary(render_markdown(report))
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd())
    for check in report.checks:
        if check.status not in ("fail", "warn"):
            continue
        level: gha.Level = "error" if check.status == "fail" else "warning"
        if not check.findings:
            gha.annotate(level, f"{check.task}: {check.reason}", title=check.task)
        for finding in check.findings:
            file = display_path(loaded.root / finding.file, workspace) if finding.file else None
            gha.annotate(level, finding.message, file=file, line=finding.line, title=check.task)

    data = gha.redact_data(report.to_json())  # test output may hold secrets
    if report_json is not None:
        write_json_atomic(report_json.resolve(), data)

    gha.set_output("passed", "true" if report.passed else "false")
    gha.set_output("report", json.dumps(data, separators=(",", ":")))
    if output_format == "json":
        echo_json(data)
    if report.passed:
        return EXIT_OK
    failed = ", ".join(check.id for check in report.failed)
    echo(f"upm-ci: release blocked by the gate: {failed}", err=True)
    return EXIT_POLICY
