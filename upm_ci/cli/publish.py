"""`upm-ci publish` (not implemented yet; its issue fills it in)."""

from __future__ import annotations

import click

from upm_ci.errors import InputError


@click.command("publish")
def command() -> int:
    """Not available yet in this version."""
    raise InputError("upm-ci publish is not implemented yet in this version")
