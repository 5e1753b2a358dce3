"""``upm-ci check-config``: validate ``[tool.upm-release]`` without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from upm_ci.cli_common import echo, echo_json, format_option, option
from upm_ci.config import Config
from upm_ci.errors import EXIT_INPUT, InputError, UpmError

SCHEMA = "upm-release/check-config/v1"


@click.command("check-config")
@click.argument(
    "path", required=False, default=None, type=click.Path(file_okay=False, path_type=Path)
)
@option(
    "--project",
    env="PROJECT",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The project, when PATH is not given [default: .].",
)
@format_option
@click.pass_context
def command(ctx: click.Context, path: Path | None, project: Path | None, output_format: str) -> int:
    """Validate the project's [tool.upm-release] table (like `goreleaser check`).

    PATH is the project directory (or --project; default .). Unknown keys (with the nearest
    valid key suggested), wrong types and malformed test-suites are errors (exit 2) that
    name the key, all of them reported at once; files and suite directories the
    configuration names but that do not exist are warnings. Without a [tool.upm-release]
    table every default applies. The version is shown when it can be computed (a dynamic
    one asks the build backend); when it cannot, that is one error line after the rest
    (exit 2). --format json prints {schema, pyproject, table, valid, errors, warnings,
    project, version, tag, keys-set} instead.
    """
    from upm_ci.config import ConfigErrors
    from upm_ci.project import load_project

    given_both = ctx.get_parameter_source("project") == click.core.ParameterSource.COMMANDLINE
    if path is not None and project is not None and given_both and path != project:
        raise click.UsageError(f"two projects given: PATH {path} and --project {project}")
    root = path or project or Path(".")
    pyproject = root / "pyproject.toml"
    report: dict[str, Any] = {"schema": SCHEMA, "pyproject": str(pyproject)}
    try:
        proj = load_project(root)
    except ConfigErrors as e:
        report.update(table=True, valid=False, errors=[str(p) for p in e.problems], warnings=[])
        return _finish(report, output_format)
    tool = proj.pyproject.get("tool", {})
    table = tool.get("upm-release") if isinstance(tool, dict) else None
    errors: list[str] = []
    try:
        _check_suites(proj.root, proj.config)
    except InputError as e:
        errors.append(str(e))
    report.update(
        table=table is not None,
        valid=not errors,
        errors=errors,
        warnings=_missing_files(proj.root, proj.config),
        project=proj.name,
        **{"keys-set": len(table or {})},
    )
    version_exit = 0
    if not errors:
        try:
            report.update(version=proj.version, tag=proj.tag)
        except UpmError as e:
            report["version-error"] = str(e)
            version_exit = e.exit_code
    return _finish(report, output_format, version_exit)


def _finish(report: dict[str, Any], output_format: str, version_exit: int = 0) -> int:
    """Print the report (text or JSON); exit 2 for errors, else the version's exit code."""
    errors: list[str] = report["errors"]
    if output_format == "json":
        echo_json(report)
        return EXIT_INPUT if errors else version_exit
    where = report["pyproject"]
    if errors:
        for error in errors:
            echo(f"upm-ci: error: {error}", err=True)
        return EXIT_INPUT
    if report["table"]:
        echo(f"{where}: [tool.upm-release] is valid")
    else:
        echo(f"{where}: no [tool.upm-release] table: defaults apply")
    if "version-error" in report:
        echo(f"  project {report['project']}, version not known (see below)")
    else:
        echo(f"  project {report['project']} {report['version']}, tag {report['tag']}")
    if report["table"]:
        echo(
            f"  {report['keys-set']} of {len(Config.keys())} keys set; "
            "the others use their defaults"
        )
    for warning in report["warnings"]:
        echo(f"  warning: {warning}", err=True)
    if "version-error" in report:
        echo(f"upm-ci: error: {report['version-error']}", err=True)
    return version_exit


def _check_suites(root: Path, config: Config) -> None:
    for name, spec in config.test_suites.items():
        kind, _, value = spec.partition(":")
        if kind not in ("path", "marker") or not value.strip():
            raise InputError(
                f"{root / 'pyproject.toml'}: [tool.upm-release] test-suites.{name} = {spec!r} "
                "is not 'path:DIR' or 'marker:NAME'"
            )


def _missing_files(root: Path, config: Config) -> list[str]:
    named = [config.changelog, *config.required_docs]
    if config.image:
        named.append(config.dockerfile)
    if config.version_module:
        named.append(config.version_module)
    out = [f"{n}: named in the configuration but missing" for n in named if not (root / n).exists()]
    for name, spec in config.test_suites.items():
        kind, _, value = spec.partition(":")
        if kind == "path" and not (root / value.strip()).is_dir():
            out.append(
                f"test-suites.{name}: directory {value.strip()} does not exist, so the suite "
                "will run no test and the gate's tests row fails"
            )
    if config.plugins and not any(root.glob(pattern) for pattern in config.plugins):
        out.append("plugins: no file matches " + ", ".join(config.plugins))
    return out
