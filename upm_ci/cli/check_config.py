"""``upm-ci check-config``: validate ``[tool.upm-release]`` without running anything."""

from __future__ import annotations

from pathlib import Path

import click

from upm_ci.cli._common import echo, option
from upm_ci.config import Config
from upm_ci.errors import InputError, UpmError


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
@click.pass_context
def command(ctx: click.Context, path: Path | None, project: Path | None) -> int:
    """Validate the project's [tool.upm-release] table (like `goreleaser check`).

    PATH is the project directory (or --project; default .). Unknown keys, wrong types and
    malformed test-suites are errors (exit 2) that name the key; files and suite directories
    the configuration names but that do not exist are warnings. The version is shown when it
    can be computed (a dynamic one asks the build backend); when it cannot, that is one error
    line after the rest (exit 2).
    """
    from upm_ci.project import load_project

    given_both = ctx.get_parameter_source("project") == click.core.ParameterSource.COMMANDLINE
    if path is not None and project is not None and given_both and path != project:
        raise click.UsageError(f"two projects given: PATH {path} and --project {project}")
    proj = load_project(path or project or Path("."))
    table = proj.pyproject.get("tool", {}).get("upm-release", {})
    _check_suites(proj.root, proj.config)
    warnings = _missing_files(proj.root, proj.config)
    version_error: UpmError | None = None
    try:
        version_line = f"  project {proj.name} {proj.version}, tag {proj.tag}"
    except UpmError as e:
        version_error = e
        version_line = f"  project {proj.name}, version not known (see below)"
    echo(f"{proj.root / 'pyproject.toml'}: [tool.upm-release] is valid")
    echo(version_line)
    echo(f"  {len(table)} of {len(Config.keys())} keys set; the others use their defaults")
    for warning in warnings:
        echo(f"  warning: {warning}", err=True)
    if version_error is not None:
        echo(f"upm-ci: error: {version_error}", err=True)
        return version_error.exit_code
    return 0


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
