"""The released project: its ``pyproject.toml``, name, version, tag and configuration.

Every phase starts from :func:`load_project`; a malformed or incomplete pyproject is an
:class:`InputError` naming the file, the line where TOML gives one, and the fix.

The version is the one the build will produce. A static ``[project] version`` is read as it
is; a dynamic one (setuptools-scm, hatch-vcs, flit's ``__version__``, setuptools ``attr:``,
hatch ``path``) is asked of the project's own build backend, which prepares the metadata
without building (``build.util.project_wheel_metadata``), so no tool's configuration is
parsed here. It is resolved on first use: ``check-config`` validates everything else even
when the backend cannot run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from upm_ci.config import Config, ConfigErrors, check_project_paths, config_from_table
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
    config: Config
    pyproject: dict[str, Any]
    #: ``[project] version`` when it is static; None when the backend computes it.
    static_version: str | None = None
    _resolved: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def version_is_dynamic(self) -> bool:
        return self.static_version is None

    @property
    def version(self) -> str:
        """The version the build produces: static, or asked of the build backend once."""
        if self.static_version is not None:
            return self.static_version
        if not self._resolved:
            self._resolved.append(backend_version(self.root))
        return self._resolved[0]

    @property
    def version_source(self) -> str:
        """Where the version comes from, for messages."""
        if self.static_version is not None:
            return "pyproject.toml [project] version"
        backend = self.pyproject.get("build-system", {}).get("build-backend", "the build backend")
        return f"dynamic version from {backend}"

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
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 (byte {e.start})", hint="save it as UTF-8") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to read", hint="fix the file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None


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
    dynamic = meta.get("dynamic", [])
    if version is None and not (isinstance(dynamic, list) and "version" in dynamic):
        raise InputError(
            f"{path}: [project] has no version",
            hint='set version = "1.2.0", or list "version" in dynamic = [...] for the backend',
        )
    if version is not None:
        if not isinstance(version, str):
            raise InputError(f"{path}: [project] version must be a string")
        parse_version(version, where=f"{path}: [project] version")
    tool = data.get("tool", {})
    table = tool.get("upm-release", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise InputError(f"{path}: [tool.upm-release] must be a table")
    config = config_from_table(table, source=str(path))
    try:
        check_project_paths(config, root, source=str(path))
    except InputError as e:
        raise ConfigErrors([e]) from None  # check-config reports it with the table's errors
    return Project(
        root=root, name=meta["name"], config=config, pyproject=data, static_version=version
    )


def pinned_to(project: Project, version: str) -> Project:
    """``project`` whose dynamic version is taken as ``version`` (the build's, from the release
    manifest), so the phases that sign and publish never run the build backend: it is the
    project's code, and those jobs hold the signing identity and the upload credentials.
    The manifest's release is still held to the project's name and to the tag."""
    if not project.version_is_dynamic or not version:
        return project
    return dataclasses.replace(project, static_version=version)


def backend_version(root: Path) -> str:
    """The version the project's build backend will give the wheel (dynamic versions).

    Runs the backend's ``prepare_metadata_for_build_wheel`` hook in an isolated build
    environment, as ``python -m build`` would, with the allow-listed environment of
    :func:`upm_ci.child_env.project_env` (the backend is the project's code).
    """
    import build.util

    import build
    from upm_ci.child_env import project_env

    def runner(
        cmd: Any, cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> None:
        env = project_env(extra_environ)
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, errors="replace"
        )
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)

    where = root / "pyproject.toml"
    before = _egg_info_dirs(root)
    try:
        metadata = build.util.project_wheel_metadata(root, isolated=True, runner=runner)
    except build.BuildBackendException as e:
        cause = e.exception
        lines = []
        if isinstance(cause, subprocess.CalledProcessError):
            lines = f"{cause.stderr or ''}{cause.output or ''}".strip().splitlines()
        detail = lines[-1] if lines else str(cause).splitlines()[0] if str(cause) else ""
        raise InputError(
            f"{where}: the build backend could not compute the dynamic version: {detail}",
            hint="run `python -m build --sdist` there to see why (setuptools-scm and "
            "hatch-vcs need the git history and tags: fetch-depth: 0)",
        ) from None
    except build.BuildException as e:
        raise InputError(f"{where}: cannot prepare the metadata: {e}") from None
    finally:
        # setuptools' metadata hook leaves ``<name>.egg-info`` in the tree: asking for the
        # version must leave the project as it was
        for made in _egg_info_dirs(root) - before:
            shutil.rmtree(made, ignore_errors=True)
    version = metadata["Version"]
    if not version:
        raise InputError(f"{where}: the build backend reported no version")
    parse_version(version, where=f"{where}: the backend's version")
    return str(version)


def _egg_info_dirs(root: Path) -> set[Path]:
    """The ``*.egg-info`` directories at the top of ``root`` and one level down (``src/``)."""
    return {p for p in [*root.glob("*.egg-info"), *root.glob("*/*.egg-info")] if p.is_dir()}


def parse_version(text: str, *, where: str) -> Version:
    """A PEP 440 version, or an InputError naming ``where``."""
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or a part too long to be an int
        raise InputError(f"{where}: {text[:60]!r} is not a PEP 440 version") from None


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


#: Directories never descended into when walking a project's files (clean, an image's context).
SKIP_DIRS = (".git", "node_modules")


def in_git(root: Path) -> bool:
    """True when ``root`` is inside a git work tree."""
    try:
        return git(root, "rev-parse", "--is-inside-work-tree") == "true"
    except InputError:
        return False


def tracked_files(root: Path) -> set[str] | None:
    """Project-relative POSIX paths git tracks, or None outside a repository."""
    if not in_git(root):
        return None
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True
    ).stdout.decode("utf-8", "surrogateescape")
    return {p for p in out.split("\0") if p}


def _git_remote_repo(root: Path) -> str:
    try:
        url = git(root, "remote", "get-url", "origin")
    except InputError:
        return ""
    m = re.search(r"github\.com[:/]([^/]+/[^/]+?)(?:\.git)?$", url)
    return m.group(1) if m else ""
