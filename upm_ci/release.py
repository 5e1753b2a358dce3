"""The release a phase works on: its record in the manifest, and the one rule that a
manifest belongs to it.

Every phase's command opens the release manifest with :func:`open_manifest`, and a phase
that is handed a manifest holds it to the release with :func:`check_release`; both apply one
rule (``Manifest.expect_release``): the manifest's project has the project's **name**, the
release's **version** and the release **tag**, and, where the caller pins one, its
**repository**. A manifest of another release is exit 2, naming both.

- The version. gate and build start a release and run the project's own build backend
  anyway, so a dynamic version is asked of it (``Project.version``); every later phase
  (sbom, sign, publish, verify) runs none of the project's code next to its credentials, so a
  dynamic version is the one the build recorded (:func:`upm_ci.project.pinned_to`), and name
  and tag still have to match. A static version is compared as written, in every phase.
- The tag. The release tag is ``--tag``, else a tag ``GITHUB_REF``, else the project's tag at
  that version (:func:`upm_ci.project.resolve_tag`); a manifest with no tag is never held to
  be of one. Only the gate may re-stamp the tag of a manifest that holds nothing but a gate
  record (a re-run after fixing ``--tag``).
"""

from __future__ import annotations

from pathlib import Path
from typing import overload

from upm_ci.errors import InputError
from upm_ci.manifest import Manifest, ProjectInfo
from upm_ci.project import Project, git, pinned_to, resolve_tag

__all__ = ["check_release", "open_manifest", "release_info"]


def release_info(project: Project, tag: str | None, repository: str = "") -> ProjectInfo:
    """The manifest's record of the release that gate or build starts.

    ``commit`` is the checkout's HEAD, for both: the gate runs and reviews the code checked
    out (its code-review and version rows read HEAD) and the build runs ``python -m build`` on
    that working tree, so HEAD is the commit whose code was judged and whose bytes ship. In a
    release run the checkout is at the tag and the two are one commit; where they differ (a
    candidate built before the tag moves), the tag's commit would name code that neither
    phase looked at. Publish hands it to GitHub as the release's ``target_commitish``.
    Outside a git checkout no commit is recorded. ``repository``: the one pinned
    (``--repository``), else the project's.
    """
    commit = ""
    try:
        commit = git(project.root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except InputError:
        pass  # not a git checkout (or no commit yet): the manifest records no commit
    return ProjectInfo(
        name=project.name,
        version=project.version,
        tag=resolve_tag(project, tag),
        commit=commit,
        repository=repository or project.repository,
    )


def check_release(
    manifest: Manifest,
    project: Project | None,
    *,
    tag: str | None = None,
    repository: str = "",
) -> Manifest:
    """``manifest`` if it is of ``project``'s release (see the module docstring), else an
    InputError naming both. ``project`` None (verify with no project): only ``tag`` and
    ``repository``, where given."""
    if project is None:
        return manifest.expect_release(None, None, tag or "", repository=repository)
    return manifest.expect_release(
        project.name, project.version, resolve_tag(project, tag), repository=repository
    )


@overload
def open_manifest(
    path: Path,
    project: Project,
    *,
    tag: str | None = ...,
    repository: str = ...,
    new: bool = ...,
    restamp: bool = ...,
) -> tuple[Manifest, Project]: ...


@overload
def open_manifest(
    path: Path,
    project: None,
    *,
    tag: str | None = ...,
    repository: str = ...,
    new: bool = ...,
    restamp: bool = ...,
) -> tuple[Manifest, None]: ...


def open_manifest(
    path: Path,
    project: Project | None,
    *,
    tag: str | None = None,
    repository: str = "",
    new: bool = False,
    restamp: bool = False,
) -> tuple[Manifest, Project | None]:
    """The release manifest at ``path``, held to ``project``'s release, and the project as
    the phase must see it (a dynamic version taken from the manifest, unless ``new``).

    ``new`` (gate, build): a missing manifest is a new one, recorded by :func:`release_info`;
    ``restamp`` (gate): see the module docstring. Anything else: the manifest must exist and
    pass every check of :meth:`Manifest.load`.
    """
    if new:
        if project is None:
            raise ValueError("a new manifest needs the project")
        info = release_info(project, tag, repository)
        manifest = Manifest.load_or_new(path, info, restamp=restamp)
        return check_release(manifest, None, repository=repository), project
    manifest = Manifest.load(path)
    if project is not None and project.version_is_dynamic:
        # the manifest's version is taken only once it is this project's manifest
        manifest.expect_release(project.name, None)
    if project is not None:
        project = pinned_to(project, manifest.project.version)
    return check_release(manifest, project, tag=tag, repository=repository), project
