"""The package's structure, read from the source: every ``upm_ci`` module's AST, counting
imports inside functions and under ``if TYPE_CHECKING:`` as imports too, and an import of
``a.b.c`` as one of the package ``a.b`` as well (Python runs ``a/b/__init__.py`` first).

- No import cycle among ``upm_ci`` modules: no module imports one that (transitively)
  imports it back, so no import inside a function exists to dodge a cycle.
- ``upm_ci/cli/*`` command modules import no other ``cli`` module (the package
  ``cli/__init__.py`` registers the commands, so it imports them; what they share is
  ``upm_ci/cli_common.py``, outside the package).
- The expected signer is built in ``upm_ci/identity.py`` only: no other module calls
  ``workflow_identity(``, spells the default release workflow's path, or turns a tag into a
  ref by ``"refs/tags/" + tag``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from upm_ci.identity import DEFAULT_RELEASE_WORKFLOW

PACKAGE = Path(__file__).resolve().parent.parent / "upm_ci"

#: The stand-ins play GitHub, Fulcio and PyPI: they mint the tokens and certificates the
#: product checks, so they spell refs and workflow paths as those services do, and import
#: nothing of the product's identity code (which would let a bug agree with itself).
SERVICES = "upm_ci.standins"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@functools.cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def with_packages(module: str, known: set[str]) -> Iterator[str]:
    """What importing ``module`` runs: each package above it (its ``__init__``), then it.

    ``import upm_ci.verify.report`` first runs ``upm_ci/verify/__init__.py`` (and so every
    module that imports), so an import of ``a.b.c`` counts as one of ``a.b`` and ``a.b.c``.
    """
    parts = module.split(".")
    for end in range(2, len(parts) + 1):  # ``upm_ci/__init__.py`` imports nothing
        name = ".".join(parts[:end])
        if name in known:
            yield name


def imported(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every ``upm_ci`` module ``name`` imports anywhere in its file, with the line, each
    package ``__init__`` the import runs counted too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # `from upm_ci import gha` imports the module upm_ci.gha; `from upm_ci.x import y`
            # (y a name) imports upm_ci.x
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            for module in with_packages(target, known):
                yield module, node.lineno


@functools.cache
def _graph() -> dict[str, dict[str, int]]:
    return _walk()


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {module it imports: first line} (a fresh copy: the walk is done once)."""
    return {name: dict(edges) for name, edges in _graph().items()}


def _walk() -> dict[str, dict[str, int]]:
    found = modules()
    known = set(found)
    graph: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        edges: dict[str, int] = {}
        for target, line in imported(name, path, known):
            if target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    edges = [
        f"{source} -> {target} (line {line})"
        for source in component
        for target, line in sorted(graph[source].items())
        if target in members
    ]
    return "; ".join(edges)


def test_the_graph_sees_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    """The walker itself: a function-level import and a TYPE_CHECKING one are edges."""
    path = tmp_path / "upm_ci" / "x.py"
    path.parent.mkdir()
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from upm_ci.manifest import Manifest\n"
        "def f():\n    from upm_ci import gha, sign\n    from . import layout\n"
    )
    known = {"upm_ci", "upm_ci.manifest", "upm_ci.gha", "upm_ci.sign", "upm_ci.layout"}
    assert {m for m, _ in imported("upm_ci.x", path, known)} == known - {"upm_ci"}
    assert cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [["a", "b", "c"]]


def test_the_graph_counts_the_packages_an_import_runs(tmp_path: Path) -> None:
    """``import a.b.c`` and ``from a.b import c`` run ``a/b/__init__.py`` too: an edge to
    the package as well, so a package whose ``__init__`` imports its own modules is seen in
    a cycle with each of them that imports a sibling."""
    path = tmp_path / "upm_ci" / "verify" / "checks.py"
    path.parent.mkdir(parents=True)
    path.write_text(
        "import upm_ci.verify.report\n"
        "from upm_ci.publish import audit_store\n"
        "from upm_ci.publish.handoff import check\n"
        "from .model import Row\n"
        "from upm_ci.cli_common import echo\n"
    )
    known = {
        "upm_ci",
        "upm_ci.verify",
        "upm_ci.verify.checks",
        "upm_ci.verify.report",
        "upm_ci.verify.model",
        "upm_ci.publish",
        "upm_ci.publish.audit_store",
        "upm_ci.publish.handoff",
        "upm_ci.cli",
        "upm_ci.cli_common",
    }
    found = {m for m, _ in imported("upm_ci.verify.checks", path, known)}
    assert found == known - {"upm_ci", "upm_ci.cli", "upm_ci.verify.checks"}
    graph = {
        "upm_ci.verify": {"upm_ci.verify.checks": 1},
        "upm_ci.verify.checks": {"upm_ci.verify": 1, "upm_ci.verify.report": 1},
        "upm_ci.verify.report": {"upm_ci.verify": 1},
    }
    assert cycles(graph) == [sorted(graph)]


def test_no_import_cycle_among_upm_ci_modules() -> None:
    graph = import_graph()
    assert len(graph) > 80 and "upm_ci.cli.verify" in graph  # the walk found the package
    found = cycles(graph)
    assert not found, "import cycles: " + " | ".join(describe(c, graph) for c in found)


def test_cli_modules_import_no_other_cli_module() -> None:
    graph = import_graph()
    offending = [
        f"{source} imports {target} (line {line})"
        for source, edges in graph.items()
        if source.startswith("upm_ci.cli.")
        for target, line in edges.items()
        if target == "upm_ci.cli" or target.startswith("upm_ci.cli.")
    ]
    assert not offending, "; ".join(offending)


def _identity_constructions(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called == "workflow_identity":
                yield node.lineno, "calls workflow_identity("
        elif isinstance(node, ast.Constant) and node.value == DEFAULT_RELEASE_WORKFLOW:
            yield node.lineno, f"spells the default workflow {DEFAULT_RELEASE_WORKFLOW!r}"
        elif isinstance(node, ast.JoinedStr):
            values = node.values
            for first, second in zip(values, values[1:]):
                if (
                    isinstance(first, ast.Constant)
                    and str(first.value).endswith("refs/tags/")
                    and isinstance(second, ast.FormattedValue)
                ):
                    yield node.lineno, "builds 'refs/tags/' + a tag"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left = node.left
            if isinstance(left, ast.Constant) and str(left.value).endswith("refs/tags/"):
                yield node.lineno, "builds 'refs/tags/' + a tag"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('workflow_identity("o/r", ".x.yml", ref)', "calls workflow_identity("),
        ('identity.workflow_identity("o/r", w, r)', "calls workflow_identity("),
        ('x = ".github/workflows/release.yml"', "spells the default workflow"),
        ('ref = f"refs/tags/{tag}"', "builds 'refs/tags/' + a tag"),
        ('ref = f"https://github.com/o/r/w.yml@refs/tags/{tag}"', "builds 'refs/tags/' + a tag"),
        ('ref = "refs/tags/" + tag', "builds 'refs/tags/' + a tag"),
    ],
)
def test_the_identity_check_finds_each_construction(source: str, expected: str) -> None:
    assert [why for _, why in _identity_constructions(ast.parse(source))][0].startswith(expected)


def test_the_expected_identity_is_built_in_identity_py_only() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {why}"
        for name, path in modules().items()
        if name != "upm_ci.identity" and not name.startswith(SERVICES)
        for line, why in _identity_constructions(parsed(path))
    ]
    assert not found, "build it with upm_ci.identity instead: " + "; ".join(found)
