"""docs/architecture.md's module map matches the package: every module is named, and no
document (README.md, docs/*.md) names a module, package or ``upm_ci.x`` name that is gone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "upm_ci"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _map_rows() -> list[tuple[str, str]]:
    """The module map's rows: (first cell, the whole row)."""
    rows = []
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = line.split(" | ")
        if line.startswith("| `upm_ci/") and len(cells) >= 2:
            rows.append((cells[0], line))
    return rows


def _named_paths(text: str) -> set[str]:
    """Every ``upm_ci/...`` file or directory a text names in backticks."""
    return {
        m.rstrip("/.,;:)")
        for tok in re.findall(r"`([^`]+)`", text)
        for m in re.findall(r"upm_ci/[\w/.]*", tok)
    }


def test_every_module_of_the_package_is_in_the_module_map() -> None:
    """A top-level module is named by its path in the first cell of a row; a subpackage by
    its directory (its modules are described in that row)."""
    first_cells = " ".join(cell for cell, _ in _map_rows())
    named = _named_paths(first_cells)
    missing = [
        f"upm_ci/{p.name}"
        for p in sorted(PACKAGE.glob("*.py"))
        if p.name not in ("__init__.py", "__main__.py") and f"upm_ci/{p.name}" not in named
    ]
    missing += [
        f"upm_ci/{d.name}/"
        for d in sorted(PACKAGE.iterdir())
        if (d / "__init__.py").is_file() and f"upm_ci/{d.name}" not in named
    ]
    assert not missing, f"docs/architecture.md's module map does not name {missing}"


def test_the_module_maps_files_exist() -> None:
    """Every path the map names exists, and every ``x.py`` a package's row names is a module
    of that package (or of a package named in the same row)."""
    stale = []
    for cell, row in _map_rows():
        packages = [p for p in _named_paths(cell) if (ROOT / p).is_dir()]
        for path in _named_paths(row):
            if not (ROOT / path).exists():
                stale.append(path)
        for tok in re.findall(r"`([\w/]+\.py)`", row):
            if tok.startswith("upm_ci/"):
                continue
            if packages and not any((ROOT / p / tok).is_file() for p in packages):
                if not (PACKAGE / tok).is_file():
                    stale.append(f"{tok} (in the row of {', '.join(packages)})")
    assert not stale, f"docs/architecture.md names files that do not exist: {stale}"


def _definitions(module: Path) -> set[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[dotted.removesuffix(".__init__")] = path
    return found


def test_the_docs_name_no_module_or_name_that_is_gone() -> None:
    """``upm_ci/x.py`` paths exist; ``upm_ci.x.y`` is a module, or a name defined in one."""
    modules = _modules()
    gone = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        gone += [
            f"{doc.name}: {p}"
            for p in sorted(_named_paths(text))
            if not (ROOT / p).exists() and not p.startswith("upm_ci/standins/actions/")
        ]
        for dotted in sorted(set(re.findall(r"\bupm_ci(?:\.\w+)+", text))):
            parts = dotted.split(".")
            module = next(
                (
                    ".".join(parts[:k])
                    for k in range(len(parts), 0, -1)
                    if ".".join(parts[:k]) in modules
                ),
                "",
            )
            rest = parts[len(module.split(".")) :] if module else parts
            if not module or (rest and rest[0] not in _definitions(modules[module])):
                gone.append(f"{doc.name}: {dotted}")
    assert not gone, f"the docs name what no longer exists: {gone}"
