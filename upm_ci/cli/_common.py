"""What every subcommand shares: options readable from ``UPM_*`` variables, and output.

The CLI is the only layer that prints; everything it prints passes through :func:`echo`,
which redacts masked secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from upm_ci import gha

F = TypeVar("F", bound=Callable[..., Any])


def option(*decls: str, env: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option that also reads ``UPM_<env>`` and shows it in ``--help``."""
    return click.option(*decls, envvar=f"UPM_{env}", show_envvar=True, **kwargs)


def project_option(f: F) -> F:
    return option(
        "--project",
        env="PROJECT",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="The project to release (its pyproject.toml holds [tool.upm-release]).",
    )(f)


def manifest_option(f: F) -> F:
    return option(
        "--manifest",
        env="MANIFEST",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path("release-manifest.json"),
        show_default=True,
        help="The release manifest every phase reads and extends.",
    )(f)


def dist_dir_option(f: F) -> F:
    return option(
        "--dist-dir",
        env="DIST_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Artifacts directory [default: the project's dist-dir, `dist`].",
    )(f)


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print with every masked secret redacted."""
    click.echo(gha.redact(text), err=err, nl=nl)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table for the terminal (Markdown tables go to the job summary)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table for the job summary; pipes in cells are escaped."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
