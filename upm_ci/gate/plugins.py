"""Checks ``plugin-entrypoint`` and ``plugin-sandbox``: RELEASE.md's two plugin rules.

Plugin files are config ``plugins`` globs minus ``plugin-exclude``. ``plugins = []`` says the
project has no plugins: both rows are ``n/a`` and say so. With the default globs a project
without plugins gets a warning; globs the project configured itself that match nothing fail
(fail closed: a typo must not turn the check off).
"""

from __future__ import annotations

import ast
import fnmatch
import glob
import os
from pathlib import Path

from upm_ci.config import Config
from upm_ci.errors import InputError
from upm_ci.gate.model import CheckResult, Finding, GateContext
from upm_ci.gate.report import task_of
from upm_ci.gate.tests import JUnitCase, TestRun, load_test_results

_DEFAULTS = Config()


def plugin_files(ctx: GateContext) -> list[Path]:
    """The plugin files of the project, sorted.

    Globs run on strings relative to the root (``**`` recurses); an exclude pattern without
    a ``/`` matches the file name, one with a ``/`` the relative path (``*`` spans ``/``).
    """
    config = ctx.project.config
    root = ctx.project.root
    found: set[str] = set()
    for pattern in config.plugins:
        found.update(glob.glob(pattern, root_dir=root, recursive=True))
    excluded = {
        rel
        for rel in found
        for ex in config.plugin_exclude
        if fnmatch.fnmatchcase(rel if "/" in ex else os.path.basename(rel), ex)
    }
    return [root / rel for rel in sorted(found - excluded) if (root / rel).is_file()]


def _no_plugins(ctx: GateContext, check_id: str) -> CheckResult:
    if not ctx.project.config.plugins:
        return CheckResult(
            check_id,
            task_of(check_id),
            "n/a",
            "not applicable: plugins = [] says this project has no plugins",
        )
    globs = ", ".join(ctx.project.config.plugins)
    if ctx.project.config.plugins == _DEFAULTS.plugins:
        return CheckResult(check_id, task_of(check_id), "warn", f"no plugin files ({globs})")
    return CheckResult(
        check_id,
        task_of(check_id),
        "fail",
        f"config plugins ({globs}) matches no file",
        [Finding(f"plugins = [{globs}] matches no file; fix the globs", file="pyproject.toml")],
    )


# --- plugin-entrypoint -------------------------------------------------------------------


def _dump(node: ast.AST) -> str:
    return ast.dump(node, include_attributes=False)


def entrypoint_block(ctx: GateContext) -> list[ast.stmt]:
    """The configured entrypoint block's statements; InputError if it does not parse."""
    where = f"{ctx.project.root / 'pyproject.toml'}: [tool.upm-release] entrypoint-block"
    try:
        body = ast.parse(ctx.project.config.entrypoint_block).body
    except SyntaxError as e:
        raise InputError(f"{where} is not valid Python (line {e.lineno}: {e.msg})") from None
    if not body:
        raise InputError(f"{where} is empty")
    return body


def _contains(body: list[ast.stmt], block: list[ast.stmt], expected: list[str]) -> ast.stmt | None:
    """The statement of ``body`` where ``block`` starts, contiguous, if it appears there.

    Only windows that start with a statement of the block's first type are dumped, so the
    large function and class bodies of a plugin are never serialised.
    """
    first_type = type(block[0])
    for start in range(len(body) - len(block) + 1):
        if type(body[start]) is not first_type:
            continue
        window = body[start : start + len(block)]
        if [_dump(stmt) for stmt in window] == expected:
            return body[start]
    return None


def _nested_bodies(tree: ast.Module) -> list[tuple[ast.AST, list[ast.stmt]]]:
    """Every statement list below module level, with the node that holds it."""
    out: list[tuple[ast.AST, list[ast.stmt]]] = []
    for node in ast.walk(tree):
        if node is tree:
            continue
        for name in ("body", "orelse", "finalbody"):
            value = getattr(node, name, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                out.append((node, value))
    return out


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _near_miss(tree: ast.Module, first: ast.stmt) -> ast.stmt | None:
    """A module-level statement that looks like the block's start but differs."""
    test = getattr(first, "test", None)
    for stmt in tree.body:
        if type(stmt) is type(first) and (
            test is None or _names(test) <= _names(getattr(stmt, "test", stmt))
        ):
            return stmt
    return None


def entrypoint_finding(
    path: Path, block: list[ast.stmt], rel: str, expected: list[str] | None = None
) -> Finding | None:
    """None if ``path`` has the block at module level, else what is wrong and where.

    ``expected`` is ``block`` dumped, passed in when many files are checked against it.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except SyntaxError as e:
        return Finding(f"does not parse: {e.msg}", file=rel, line=e.lineno or 1)
    except (OSError, ValueError) as e:
        return Finding(f"cannot read: {e}", file=rel, line=1)
    expected = expected or [_dump(stmt) for stmt in block]
    if _contains(tree.body, block, expected):
        return None
    for holder, body in _nested_bodies(tree):
        found = _contains(body, block, expected)
        if found is not None:
            return Finding(
                f"entrypoint block is nested inside `{_describe(holder)}` (line "
                f"{getattr(holder, 'lineno', '?')}); it must be at module level",
                file=rel,
                line=found.lineno,
            )
    miss = _near_miss(tree, block[0])
    if miss is not None:
        return Finding(
            "entrypoint block differs from the configured one (see PLUGINS.md)",
            file=rel,
            line=miss.lineno,
        )
    return Finding("mandatory sandbox entrypoint block is missing", file=rel, line=1)


def _rel(path: Path, root: Path) -> str:
    """A plugin file's project-relative path (plugin_files only yields files under the root)."""
    return Path(os.path.relpath(path, root)).as_posix()


def _describe(node: ast.AST) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return f"def {node.name}"
    if isinstance(node, ast.ClassDef):
        return f"class {node.name}"
    if isinstance(node, ast.If):
        return f"if {ast.unparse(node.test)}"
    return type(node).__name__.lower()


def check_plugin_entrypoint(ctx: GateContext) -> CheckResult:
    """Every plugin file holds the configured entrypoint block at module level (by AST)."""
    block = entrypoint_block(ctx)
    files = plugin_files(ctx)
    if not files:
        return _no_plugins(ctx, "plugin-entrypoint")
    root = ctx.project.root
    expected = [_dump(stmt) for stmt in block]
    findings = [
        finding
        for path in files
        if (finding := entrypoint_finding(path, block, _rel(path, root), expected)) is not None
    ]
    task = task_of("plugin-entrypoint")
    if findings:
        reason = f"{len(findings)} of {len(files)} plugins lack the entrypoint block"
        return CheckResult("plugin-entrypoint", task, "fail", reason, findings)
    return CheckResult("plugin-entrypoint", task, "pass", f"{len(files)} plugins")


# --- plugin-sandbox ----------------------------------------------------------------------


def sandbox_coverage(
    cases: list[JUnitCase], plugins: set[str], pattern: str
) -> dict[str, list[JUnitCase]]:
    """plugin -> the tests covering it: marked ``sandbox(plugin)``, or named by ``pattern``.

    A name covers a plugin when it is the pattern filled in with the plugin, optionally
    followed by ``_more`` (and any ``[params]``). One pass over the tests, so thousands of
    plugins and tests take milliseconds.
    """
    head, _, tail = pattern.partition("{plugin}")
    coverage: dict[str, list[JUnitCase]] = {plugin: [] for plugin in plugins}
    for case in cases:
        hits = {value for value in case.property_values("sandbox") if value in coverage}
        name = case.name.split("[", 1)[0]
        if name.startswith(head):
            rest = name[len(head) :]
            for end in range(1, len(rest) + 1):
                after = rest[end:]
                if rest[:end] in coverage and after.startswith(tail):
                    extra = after[len(tail) :]
                    if not extra or extra.startswith("_"):
                        hits.add(rest[:end])
        for plugin in hits:
            coverage[plugin].append(case)
    return coverage


def check_plugin_sandbox(ctx: GateContext, run: TestRun | None = None) -> CheckResult:
    """Every plugin has a sandbox test that ran and passed, and none that did not pass."""
    pattern = ctx.project.config.sandbox_test_pattern
    try:
        pattern.format(plugin="x")
        if pattern.count("{plugin}") != 1:
            raise ValueError(pattern)
    except (KeyError, IndexError, ValueError):
        raise InputError(
            f"{ctx.project.root / 'pyproject.toml'}: [tool.upm-release] sandbox-test-pattern "
            f"{pattern!r} must hold {{plugin}} once and no other placeholder"
        ) from None
    files = plugin_files(ctx)
    if not files:
        return _no_plugins(ctx, "plugin-sandbox")
    run = run if run is not None else load_test_results(ctx)
    root = ctx.project.root
    findings: list[Finding] = []
    coverage = sandbox_coverage(run.cases, {path.stem for path in files}, pattern)
    for path in files:
        plugin = path.stem
        rel = _rel(path, root)
        tests = coverage[plugin]
        if not tests:
            findings.append(
                Finding(
                    f"plugin {plugin!r} has no sandbox test "
                    f"({pattern.format(plugin=plugin)}* or @pytest.mark.sandbox({plugin!r}))",
                    file=rel,
                    line=1,
                )
            )
        for case in tests:
            if case.outcome != "passed":
                detail = f": {case.message}" if case.message else ""
                findings.append(
                    Finding(
                        f"plugin {plugin!r}: sandbox test {case.nodeid} {case.outcome}{detail}",
                        file=rel,
                        line=1,
                    )
                )
    task = task_of("plugin-sandbox")
    if findings:
        bad = len({f.file for f in findings})
        reason = f"{bad} of {len(files)} plugins not covered by passing sandbox tests"
        return CheckResult("plugin-sandbox", task, "fail", reason, findings)
    return CheckResult(
        "plugin-sandbox", task, "pass", f"{len(files)} plugins covered by sandbox tests"
    )
