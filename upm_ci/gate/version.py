"""Check ``version-bump``: one version everywhere, and higher than the last release.

The tag (PEP 440-normalised; the ``tag-prefix`` is optional), ``[project] version``, the top
released CHANGELOG section and ``__version__`` (config ``version-module``, else the
package's ``__init__.py``; read from the syntax tree, never imported) must all be equal, and
greater than the previous release: config ``previous-tag``, else the highest version tag
below this one in the project's git repository; without ``previous-tag``, a version tag above
this one fails too (the version went down). A shallow clone without tags fails rather than
pass as a first release.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

from packaging.version import InvalidVersion, Version

from upm_ci.changelog import released_sections
from upm_ci.errors import InputError
from upm_ci.gate.model import CheckResult, Finding, GateContext
from upm_ci.gate.report import task_of
from upm_ci.project import Project, git, version_from_tag


def pyproject_version_line(project: Project) -> int:
    """The line of ``version = ...`` in ``[project]`` (1 if it cannot be found)."""
    table = ""
    text = project.path("pyproject.toml").read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header:
            table = header.group(1).strip()
        elif table == "project" and re.match(r"^\s*version\s*=", line):
            return number
    return 1


def version_module(project: Project) -> Path | None:
    """The file that declares ``__version__``: config, else the package's ``__init__.py``."""
    configured = project.config.version_module
    if configured:
        path = project.path(configured)
        if not path.is_file():
            raise InputError(
                f"{project.root / 'pyproject.toml'}: [tool.upm-release] version-module "
                f"{configured!r} does not exist"
            )
        return path
    for candidate in (f"src/{project.dist_name}/__init__.py", f"{project.dist_name}/__init__.py"):
        if project.path(candidate).is_file():
            return project.path(candidate)
    found = sorted(project.root.glob("src/*/__init__.py"))
    return found[0] if len(found) == 1 else None


def declared_version(path: Path) -> tuple[str, int] | None:
    """``(value, line)`` of a module-level ``__version__ = "..."`` literal, else None."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        value = getattr(stmt, "value", None)
        if any(isinstance(t, ast.Name) and t.id == "__version__" for t in targets):
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value, stmt.lineno
    return None


def previous_release(ctx: GateContext, current: Version) -> tuple[str, Version] | None:
    """The release before ``current``: config ``previous-tag``, else the highest lower git tag."""
    project = ctx.project
    prefix = project.config.tag_prefix
    if project.config.previous_tag:
        tag = project.config.previous_tag
        try:
            return tag, version_from_tag(tag, prefix)
        except InputError:
            raise InputError(
                f"{project.root / 'pyproject.toml'}: [tool.upm-release] previous-tag {tag!r} "
                "is not a PEP 440 version tag"
            ) from None
    return highest_tag_below(git(project.root, "tag", "--list").splitlines(), prefix, current)


def highest_tag_below(
    tags: Iterable[str], prefix: str, current: Version
) -> tuple[str, Version] | None:
    """The highest version tag in ``tags`` below ``current``; tags that are no version skipped."""
    lower: list[tuple[Version, str]] = []
    for tag in tags:
        try:
            version = version_from_tag(tag, prefix)
        except InputError:
            continue
        if version < current:
            lower.append((version, tag))
    if not lower:
        return None
    version, tag = max(lower)
    return tag, version


def highest_tag_above(
    tags: Iterable[str], prefix: str, current: Version
) -> tuple[str, Version] | None:
    """The highest version tag in ``tags`` above ``current`` (a release this one is not
    greater than); tags that are no version skipped."""
    higher = [
        (version, tag)
        for tag in tags
        if (version := _tag_version(tag, prefix)) is not None and version > current
    ]
    if not higher:
        return None
    version, tag = max(higher)
    return tag, version


def _tag_version(tag: str, prefix: str) -> Version | None:
    try:
        return version_from_tag(tag, prefix)
    except InputError:
        return None


def _in_git(root: Path) -> bool:
    try:
        git(root, "rev-parse", "--git-dir")
    except InputError:
        return False
    return True


def _is_shallow(root: Path) -> bool:
    return git(root, "rev-parse", "--is-shallow-repository") == "true"


def check_version_bump(ctx: GateContext) -> CheckResult:
    """Tag, pyproject, CHANGELOG and ``__version__`` agree, and the version went up."""
    project = ctx.project
    task = task_of("version-bump")
    tag_version = version_from_tag(ctx.tag, project.config.tag_prefix)
    findings: list[Finding] = []
    sources: list[tuple[str, str, str, int | None]] = [
        (project.version_source, project.version, "pyproject.toml", None)
    ]
    changelog = project.path(project.config.changelog)
    if not changelog.is_file():
        findings.append(Finding("changelog is missing", file=project.config.changelog))
    else:
        released = released_sections(changelog)
        if not released:
            findings.append(
                Finding("no released section (only [Unreleased])", file=project.config.changelog)
            )
        else:
            top = released[0]
            sources.append(
                (
                    f"top {project.config.changelog} section",
                    top.version,
                    project.config.changelog,
                    top.line,
                )
            )
    module = version_module(project)
    if module is not None:
        rel = module.relative_to(project.root).as_posix()
        try:
            declared = declared_version(module)
        except SyntaxError as e:
            declared = None
            findings.append(Finding(f"does not parse: {e.msg}", file=rel, line=e.lineno or 1))
        if declared is not None:
            sources.append(("__version__", declared[0], rel, declared[1]))
        elif project.config.version_module:
            findings.append(Finding('declares no __version__ = "..." literal', file=rel, line=1))
    for what, text, file, line in sources:
        try:
            same = Version(text) == tag_version
        except InvalidVersion:
            same = False
        if not same:
            findings.append(
                Finding(
                    f"{what} is {text}, but the tag {ctx.tag} says {tag_version}",
                    file=file,
                    line=line if line is not None else pyproject_version_line(project),
                )
            )
    in_git = _in_git(project.root)
    if not in_git and not project.config.previous_tag:
        raise InputError(
            f"{project.root}: not a git repository, so the previous release is unknown",
            hint="run in the project's checkout or set [tool.upm-release] previous-tag",
        )
    previous = previous_release(ctx, tag_version)
    if previous is None and in_git and _is_shallow(project.root):
        findings.append(
            Finding(
                "shallow clone without release tags: fetch them (fetch-depth: 0) or set "
                "previous-tag"
            )
        )
    reason_ok = f"{tag_version} > {previous[0]}" if previous else f"{tag_version}, first release"
    if previous is not None and not tag_version > previous[1]:
        findings.append(
            Finding(
                f"version {tag_version} is not greater than the previous release {previous[0]}",
                file="pyproject.toml",
                line=pyproject_version_line(project),
            )
        )
    # A release tag above this version: the version went down. previous-tag set means the
    # project chose the line (a maintenance release of an older one), so only that counts.
    higher = None
    if in_git and not project.config.previous_tag:
        tags = git(project.root, "tag", "--list").splitlines()
        higher = highest_tag_above(tags, project.config.tag_prefix, tag_version)
    if higher is not None:
        findings.append(
            Finding(
                f"version {tag_version} is not greater than the previous release {higher[0]}, "
                "the highest release tag (for a maintenance release of an older line, set "
                "previous-tag)",
                file="pyproject.toml",
                line=pyproject_version_line(project),
            )
        )
    if in_git:
        findings += _tag_elsewhere(ctx, tag_version)
    if findings:
        first = findings[0].message
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return CheckResult("version-bump", task, "fail", f"{first}{more}", findings)
    return CheckResult("version-bump", task, "pass", reason_ok)


def _tag_elsewhere(ctx: GateContext, version: Version) -> list[Finding]:
    """A tag for this very version on another commit means the version was not bumped."""
    root = ctx.project.root
    head = git(root, "rev-parse", "HEAD")
    for tag in git(root, "tag", "--list").splitlines():
        try:
            if version_from_tag(tag, ctx.project.config.tag_prefix) != version:
                continue
        except InputError:
            continue
        if git(root, "rev-list", "-n", "1", tag) != head:
            return [
                Finding(
                    f"tag {tag} already exists on another commit: bump the version",
                    file="pyproject.toml",
                    line=pyproject_version_line(ctx.project),
                )
            ]
    return []
