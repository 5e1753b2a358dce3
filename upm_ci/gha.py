"""GitHub Actions I/O, all of it: outputs, step summary, annotations, masking.

Phase code never writes ``::`` workflow commands itself; it calls these functions. Outside
GitHub Actions they are harmless: outputs and summaries go nowhere (unless the environment
files are set, as ``act`` and the rehearsal do), annotations become plain ``level: message``
lines on stderr, and masked values are still redacted from everything upm-ci prints.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import threading
from pathlib import Path
from typing import Any, Literal, TextIO

Level = Literal["error", "warning", "notice"]

_secrets: set[str] = set()
_lock = threading.Lock()
#: Where workflow commands (``::add-mask::``, ``::error::``) go in Actions: stdout, or
#: stderr while stdout carries a JSON report (the runner reads commands on both).
_command_stream: TextIO | None = None


def commands_to_stderr(enabled: bool = True) -> None:
    """Send workflow commands to stderr (``--format json``: stdout holds only the report)."""
    global _command_stream
    _command_stream = sys.stderr if enabled else None


def _commands() -> TextIO:
    return _command_stream or sys.stdout


def in_actions() -> bool:
    """True inside a GitHub Actions (or act) job."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def in_ci() -> str:
    """What says this is a CI run (``GITHUB_ACTIONS=true`` or ``CI=true``/``1``), or "" for a
    local run. Checks that may be skipped locally fail closed where this is not empty."""
    if in_actions():
        return "GITHUB_ACTIONS=true"
    ci = os.environ.get("CI", "").strip().lower()
    return f"CI={ci}" if ci in ("true", "1") else ""


def remember_secret(value: str) -> bool:
    """Redact ``value`` from everything upm-ci prints; False if too short to be a secret."""
    value = value.strip()
    if len(value) < 4:
        return False
    with _lock:
        _secrets.add(value)
    return True


def mask(value: str) -> None:
    """Hide ``value`` from the job log and from everything upm-ci prints or writes via redact()."""
    if not remember_secret(value):
        return
    value = value.strip()
    if in_actions():
        for line in value.splitlines():
            if line.strip():
                _commands().write(f"::add-mask::{_escape_data(line)}\n")
        _commands().flush()


#: ``scheme://user:password@`` or ``scheme://token@`` in any URL.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@?#]+@")


def redact(text: str) -> str:
    """Replace every masked value, and the credentials of any URL, in ``text`` with ``***``."""
    return _redact(text, _known_secrets())


def _known_secrets() -> list[tuple[str, list[str]]]:
    """Each masked value, longest first, with its lines long enough to be redacted alone."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    return [(v, [ln for ln in v.splitlines() if len(ln.strip()) >= 8]) for v in known]


def _redact(text: str, known: list[tuple[str, list[str]]]) -> str:
    for value, lines in known:
        text = text.replace(value, "***")
        for line in lines:
            text = text.replace(line, "***")
    if "@" not in text or "://" not in text:  # no URL with credentials (a large report's
        return text  # strings are mostly that: the pattern is not even tried)
    return _URL_CREDENTIALS.sub(r"\1***@", text)


_COMMAND_LINE = re.compile(r"^(\s*)::", re.M)


def redact_data(data: Any) -> Any:
    """``data`` (JSON-shaped) with every string redacted, keys included.

    Redacting the strings, not the serialised text, keeps the JSON valid whatever a secret
    looks like (``null``, a quote, a brace).
    """
    return _redact_data(data, _known_secrets())


def _redact_data(data: Any, known: list[tuple[str, list[str]]]) -> Any:
    if isinstance(data, str):
        return _redact(data, known)
    if isinstance(data, dict):
        return {_redact(str(k), known): _redact_data(v, known) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_redact_data(v, known) for v in data]
    return data


def safe_text(text: str) -> str:
    """``text`` redacted, with no line the runner would take as a workflow command.

    GitHub runs any output line that starts with ``::`` as a command (``::add-mask::``,
    ``::error::``, ``::stop-commands::``), so data that reaches the log (an asset name from a
    server, a test's output) must never start a line with it. Lone surrogates (a file name
    that is not UTF-8, as Python decodes it) are shown escaped: no stream can encode them.
    """
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _COMMAND_LINE.sub(r"\1> ::", redact(text))


def set_output(name: str, value: str) -> None:
    """Append an output to ``$GITHUB_OUTPUT``; multi-line values use a random delimiter."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    value = redact(value)
    with open(path, "a", encoding="utf-8") as out:
        if "\n" in value or "\r" in value:
            delimiter = f"upm_{secrets.token_hex(16)}"
            out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            out.write(f"{name}={value}\n")


def add_summary(markdown: str) -> None:
    """Append Markdown to the job summary (``$GITHUB_STEP_SUMMARY``)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(redact(markdown).rstrip("\n") + "\n\n")


def annotate(
    level: Level,
    message: str,
    *,
    file: str | Path | None = None,
    line: int | None = None,
    title: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Emit an annotation: ``::error file=,line=::`` in Actions, ``error: file:line: msg`` else."""
    message = redact(message)
    if in_actions():
        props = []
        if file is not None:
            props.append(f"file={_escape_property(str(file))}")
        if line is not None:
            props.append(f"line={line}")
        if title:
            props.append(f"title={_escape_property(title)}")
        head = f"::{level} {','.join(props)}" if props else f"::{level}"
        out = stream or _commands()
        out.write(f"{head}::{_escape_data(message)}\n")
    else:
        where = f"{file}:{line}: " if file is not None and line else f"{file}: " if file else ""
        (stream or sys.stderr).write(f"{level}: {where}{message}\n")


_ANNOTATION = re.compile(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$")


def plain_annotation(line: str) -> str:
    """A logged ``::error file=F,line=N::msg`` line as the terminal shows it outside Actions
    (``error: F:N: msg``, escapes undone); any other line unchanged."""
    match = _ANNOTATION.match(line.rstrip("\r\n"))
    if not match:
        return line
    level, props, data = match.groups()
    fields = dict(p.split("=", 1) for p in (props or "").split(",") if "=" in p)
    where = _unescape(fields.get("file", ""))
    if where and fields.get("line"):
        where += f":{_unescape(fields['line'])}"
    return f"{level}: {where + ': ' if where else ''}{_unescape(data)}"


def _unescape(value: str) -> str:
    for escaped, raw in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        value = value.replace(escaped, raw)
    return value


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")
