"""The released project: its ``pyproject.toml``, name, version, tag and configuration.

Every phase starts from :func:`load_project`; a malformed or incomplete pyproject is an
:class:`InputError` naming the file, the line where TOML gives one, and the fix.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from upm_ci.config import Config, config_from_table
from upm_ci.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class Project:
    """What every phase knows about the project being released."""

    root: Path
    name: str
    version: str
    config: Config
    pyproject: dict[str, Any]

    @property
    def normalized_name(self) -> str:
        """PEP 503 name (``upm-sample``)."""
        return canonicalize_name(self.name)

    @property
    def dist_name(self) -> str:
        """The name as it appears in wheel and sdist file names (``upm_sample``)."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    @property
    def tag(self) -> str:
        """The release tag this version gets (``v1.2.0``)."""
        return f"{self.config.tag_prefix}{self.version}"

    @property
    def repository(self) -> str:
        """GitHub ``owner/name``: config, ``$GITHUB_REPOSITORY``, else the git remote."""
        return (
            self.config.repository
            or os.environ.get("GITHUB_REPOSITORY")
            or _git_remote_repo(self.root)
        )

    def path(self, relative: str) -> Path:
        """A project-relative path."""
        return self.root / relative


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file and line."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found", hint="pass the project directory") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: invalid TOML: {e}", hint="fix the syntax") from None


def load_project(root: Path | str) -> Project:
    """Read ``root/pyproject.toml`` and its ``[tool.upm-release]`` table."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise InputError(f"{root}: not a directory", hint="pass the project directory")
    path = root / "pyproject.toml"
    data = read_toml(path)
    meta = data.get("project")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise InputError(f"{path}: [project] name is missing", hint="add a [project] table")
    version = meta.get("version")
    if not isinstance(version, str):
        raise InputError(
            f"{path}: [project] version is missing or dynamic",
            hint="upm-release checks the version before building: set a static version",
        )
    parse_version(version, where=f"{path}: [project] version")
    table = data.get("tool", {}).get("upm-release", {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: [tool.upm-release] must be a table")
    config = config_from_table(table, source=str(path))
    return Project(root=root, name=meta["name"], version=version, config=config, pyproject=data)


def parse_version(text: str, *, where: str) -> Version:
    """A PEP 440 version, or an InputError naming ``where``."""
    try:
        return Version(text)
    except InvalidVersion:
        raise InputError(f"{where}: {text!r} is not a PEP 440 version") from None


def version_from_tag(tag: str, prefix: str = "v") -> Version:
    """``v1.2.0`` -> ``Version('1.2.0')``; the prefix is optional, the version PEP 440."""
    text = tag.removeprefix("refs/tags/")
    if prefix and text.startswith(prefix):
        text = text[len(prefix) :]
    return parse_version(text, where=f"tag {tag!r}")


def resolve_tag(project: Project, tag: str | None) -> str:
    """The tag being released: ``--tag``, else a tag ``GITHUB_REF``, else the project's own."""
    if tag:
        return tag.removeprefix("refs/tags/")
    ref = os.environ.get("GITHUB_REF", "")
    if ref.startswith("refs/tags/"):
        return ref.removeprefix("refs/tags/")
    return project.tag


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; an InputError if it fails (not a repository, unknown ref)."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, check=True, capture_output=True, text=True
        ).stdout
    except FileNotFoundError:
        raise InputError("git is not installed", hint="install git") from None
    except subprocess.CalledProcessError as e:
        msg = (e.stderr or "").strip().splitlines()
        raise InputError(f"{root}: git {' '.join(args)} failed: {msg[-1] if msg else e}") from None
    return out.strip()


def _git_remote_repo(root: Path) -> str:
    try:
        url = git(root, "remote", "get-url", "origin")
    except InputError:
        return ""
    m = re.search(r"github\.com[:/]([^/]+/[^/]+?)(?:\.git)?$", url)
    return m.group(1) if m else ""
