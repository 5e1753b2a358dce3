"""Check ``docs``: the documents RELEASE.md names exist, say something, and link correctly.

Required documents (config ``required-docs``) must exist and not be blank; the CHANGELOG
must have a non-empty, released section for this version, and that section and everything
above it must be readable and unique (see :mod:`upm_ci.changelog`); problems in older
sections (a version written twice, ``## Fixed`` at the version level) make the row ``warn``
with file and line, and do not block; relative Markdown links in the required
documents (``[x](OTHER.md)``, ``[x](OTHER.md#anchor)``) must point at existing files. Links
inside code blocks and code spans are not links and are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from upm_ci.changelog import Changelog, read_changelog
from upm_ci.errors import InputError
from upm_ci.gate.model import CheckResult, Finding, GateContext
from upm_ci.gate.report import task_of
from upm_ci.project import parse_version

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+).*?\1")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def broken_links(path: Path, root: Path) -> list[Finding]:
    """Relative links in a Markdown file that point at no file."""
    rel = path.relative_to(root).as_posix()
    findings = []
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in _LINK.finditer(_CODE_SPAN.sub("", line)):
            target = match.group(1)
            if target.startswith(("#", "/")) or _SCHEME.match(target):
                continue
            file_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
            if file_part and not (path.parent / file_part).exists():
                findings.append(
                    Finding(f"broken link to {target} (no such file)", file=rel, line=number)
                )
    return findings


#: How a problem in an old changelog section is told apart from one that blocks.
HISTORY = "in an older section, does not block: "


def _changelog_findings(ctx: GateContext) -> tuple[list[Finding], list[Finding]]:
    """``(blocking, warnings)``: the release's section and above block, older ones warn."""
    project = ctx.project
    path = project.path(project.config.changelog)
    rel = project.config.changelog
    if not path.is_file():
        return [Finding("changelog is missing", file=rel)], []
    changelog = read_changelog(path)
    blocking, history = changelog.judged_for(project.version)
    findings = [Finding(p.message, file=rel, line=p.line) for p in blocking]
    warnings = [Finding(HISTORY + p.message, file=rel, line=p.line) for p in history]
    return _section_findings(ctx, changelog, findings), warnings


def _section_findings(
    ctx: GateContext, changelog: Changelog, findings: list[Finding]
) -> list[Finding]:
    project = ctx.project
    path = changelog.path
    rel = project.config.changelog
    wanted = parse_version(project.version, where=f"{project.root / 'pyproject.toml'} version")
    for section in changelog.sections:
        if section.version.lower() == "unreleased":
            continue
        try:
            same = parse_version(section.version, where=f"{path}:{section.line}") == wanted
        except InputError:  # a heading that is no PEP 440 version is not this version
            same = False
        if not same:
            continue
        if section.is_unreleased:
            message = f"section {section.version} is marked as not released yet: date it"
        elif not section.body.strip():
            message = f"section {section.version} is empty"
        else:
            return findings
        return [*findings, Finding(message, file=rel, line=section.line)]
    return [*findings, Finding(f"no section for version {project.version}", file=rel, line=1)]


def check_docs(ctx: GateContext) -> CheckResult:
    """Required docs present and non-blank, changelog section for this version, links resolve."""
    root = ctx.project.root
    findings: list[Finding] = []
    present: list[Path] = []
    for name in ctx.project.config.required_docs:
        path = root / name
        if not path.is_file():
            findings.append(Finding("required document is missing", file=name))
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            findings.append(Finding("required document is not UTF-8 text", file=name, line=1))
            continue
        if not text.strip():
            findings.append(Finding("required document is empty", file=name, line=1))
            continue
        present.append(path)
    blocking, warnings = _changelog_findings(ctx)
    findings += blocking
    for path in present:
        if path.suffix.lower() in (".md", ".markdown"):
            findings += broken_links(path, root)
    task = task_of("docs")
    if findings:
        first = findings[0]
        where = f"{first.file}: " if first.file else ""
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        reason = f"{where}{first.message}{more}"
        return CheckResult("docs", task, "fail", reason, findings + warnings)
    reason = f"{len(present)} documents, changelog {ctx.project.version}"
    if warnings:
        first = warnings[0]
        reason += (
            f"; {len(warnings)} problems in older changelog sections, not blocking "
            f"(first: {first.file}:{first.line}: {first.message.removeprefix(HISTORY)})"
        )
        return CheckResult("docs", task, "warn", reason, warnings)
    return CheckResult("docs", task, "pass", reason)
