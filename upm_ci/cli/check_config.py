"""``upm-ci check-config``: validate ``[tool.upm-release]`` without running anything."""

from __future__ import annotations

from pathlib import Path

import click

from upm_ci.cli._common import echo, project_option
from upm_ci.config import Config


@click.command("check-config")
@project_option
def command(project: Path) -> int:
    """Validate the project's [tool.upm-release] table (like `goreleaser check`).

    Unknown keys and wrong types are errors (exit 2) that list the valid keys; files the
    configuration names but that do not exist are reported as warnings.
    """
    from upm_ci.project import load_project

    proj = load_project(project)
    table = proj.pyproject.get("tool", {}).get("upm-release", {})
    warnings = _missing_files(proj.root, proj.config)
    echo(f"{proj.root / 'pyproject.toml'}: [tool.upm-release] is valid")
    echo(f"  project {proj.name} {proj.version}, tag {proj.tag}")
    echo(f"  {len(table)} of {len(Config.keys())} keys set; the others use their defaults")
    for warning in warnings:
        echo(f"  warning: {warning}", err=True)
    return 0


def _missing_files(root: Path, config: Config) -> list[str]:
    named = [config.changelog, *config.required_docs]
    if config.image:
        named.append(config.dockerfile)
    if config.version_module:
        named.append(config.version_module)
    out = [f"{n}: named in the configuration but missing" for n in named if not (root / n).exists()]
    if not any(root.glob(pattern) for pattern in config.plugins):
        out.append("plugins: no file matches " + ", ".join(config.plugins))
    return out
