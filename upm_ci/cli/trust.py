"""`upm-ci trust` (not implemented yet; its issue fills it in)."""

from __future__ import annotations

import click

from upm_ci.errors import InputError


@click.command("trust")
def command() -> int:
    """Not available yet in this version."""
    raise InputError("upm-ci trust is not implemented yet in this version")
