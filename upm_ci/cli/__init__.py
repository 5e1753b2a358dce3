"""``upm-ci``: one subcommand per release phase, plus ``rehearse``.

This is the only place that maps errors to exit codes (0 ok, 1 policy failure, 2 bad input or
usage, 3 a service still failing after retries). Subcommand modules import their phase's
heavy dependencies (sigstore, PyGithub, pip-audit) only when they run, so ``--help`` is fast.
"""

from __future__ import annotations

import errno
import io
import logging
import sys
import traceback
from collections.abc import Sequence

import click

from upm_ci import __version__, gha
from upm_ci.cli import (
    build,
    check_config,
    gate,
    manifest_cmd,
    publish,
    rehearse,
    sbom,
    sign,
    trust,
    verify,
)
from upm_ci.cli_common import echo, option
from upm_ci.errors import EXIT_INPUT, EXIT_SERVICE, UpmError


class _PipelineOrderGroup(click.Group):
    """Lists subcommands in pipeline order, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return gha.safe_text(super().format(record))


@click.group(
    cls=_PipelineOrderGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="upm-ci")
@option("--debug", env="DEBUG", is_flag=True, help="Show tracebacks and debug logging.")
@option("-q", "--quiet", env="QUIET", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Carry out a release the way UPM's RELEASE.md demands, one phase at a time.

    Phases in pipeline order: gate, build, sbom, sign, publish, verify. Each reads and extends
    the release manifest. `rehearse` runs them all against local stand-ins.

    Exit codes: 0 ok; 1 policy failure (gate blocked, vulnerability, verification failed);
    2 bad input or usage; 3 a service still failing after retries.
    """
    from upm_ci.retry import RetryPolicy

    RetryPolicy.from_env()  # a bad UPM_RETRY_* is bad input at start, whether or not retried
    ctx.obj = {"debug": debug}
    gha.commands_to_stderr(False)  # until a subcommand's --format json says otherwise
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("upm-ci: %(message)s"))
    root = logging.getLogger("upm_ci")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    root.propagate = False


for _module in (gate, build, sbom, sign, publish, verify, trust, rehearse, check_config):
    cli.add_command(_module.command)
cli.add_command(manifest_cmd.group)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (callable from tests without a subprocess)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or _env_flag("UPM_DEBUG")
    try:
        result = cli.main(args=args, prog_name="upm-ci", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        echo("upm-ci: aborted", err=True)
        return 130
    except click.ClickException as e:
        shown = io.StringIO()
        e.show(file=shown)  # click's usage text, made safe like everything else printed
        echo(shown.getvalue().rstrip("\n"), err=True)
        return EXIT_INPUT if e.exit_code != 0 else 0
    except UpmError as e:
        if debug:
            traceback.print_exc()
        echo(f"upm-ci: error: {e}", err=True)
        if gha.in_actions():
            gha.annotate("error", str(e))
        return e.exit_code
    except KeyboardInterrupt:
        echo("upm-ci: interrupted", err=True)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that catches everything
        if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:  # only a user's path
            echo(f"upm-ci: error: {e.filename}: file name too long", err=True)
            return EXIT_INPUT
        if isinstance(e, ModuleNotFoundError) and _missing_extra(e, args):
            return EXIT_INPUT
        if debug:
            traceback.print_exc()
        echo(f"upm-ci: internal error: {type(e).__name__}: {e} (re-run with --debug)", err=True)
        return EXIT_SERVICE
    return result if isinstance(result, int) else 0


def _missing_extra(e: ModuleNotFoundError, args: list[str]) -> bool:
    """A module of an extra that is not installed (the light install): one line naming the
    extra to install. False for any other missing module (an internal error)."""
    from upm_ci.extras import extra_of, missing_extra_error

    extra = extra_of(e.name or "")
    if extra is None:
        return False
    command = next((a for a in args if a in cli.commands), "")
    echo(f"upm-ci: error: {missing_extra_error(command, extra, [e.name or ''])}", err=True)
    return True


def _env_flag(name: str) -> bool:
    import os

    return os.environ.get(name, "").lower() in ("1", "true", "yes")
