"""`upm-ci build` (not implemented yet; its issue fills it in)."""

from __future__ import annotations

import click

from upm_ci.errors import InputError


@click.command("build")
def command() -> int:
    """Not available yet in this version."""
    raise InputError("upm-ci build is not implemented yet in this version")
