"""Phase 2, build: clean, ``python -m build``, reproducibility, metadata check, smoke test, sums.

Decisions worth knowing:

- The wheel is built *from the sdist* (``python -m build`` with no target flags): that proves
  the sdist is complete, and the wheel is what anyone rebuilding from the sdist gets.
- ``SOURCE_DATE_EPOCH`` is the commit time of the release tag (HEAD while the tag does not exist
  yet), so two builds of one commit give the same bytes.
- A project that cannot build is bad input (:class:`InputError`, exit 2) and the message shows
  the tail of the build's own output; a wheel that builds but is wrong (metadata, twine check,
  smoke test, not reproducible) is a policy failure (exit 1).
- Artifacts are built in a temporary directory and moved into ``dist_dir`` only when every
  check passed: a failed build leaves nothing half-written behind.
"""

from __future__ import annotations

import email.parser
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from upm_ci.child_env import project_env
from upm_ci.errors import InputError, PolicyError
from upm_ci.identity import tag_ref
from upm_ci.image.build import ImageOutcome, build_image
from upm_ci.layout import check_dist_dir_inside, sha256_file
from upm_ci.manifest import Artifact, Manifest, write_text_atomic
from upm_ci.project import (
    SKIP_DIRS,
    Project,
    git,
    in_git,
    resolve_tag,
    tracked_files,
    version_from_tag,
)
from upm_ci.release import release_info
from upm_ci.timings import timed
from upm_ci.venvs import build_installer, uv_env, wheel_venv
from upm_ci.venvs import cache_from_env as venv_cache_from_env

log = logging.getLogger(__name__)

#: Top-level directories RELEASE.md's clean step removes (``rm -rf build/ dist/ .eggs/``).
CLEAN_TOP_DIRS = ("build", "dist", ".eggs")
OUTPUT_TAIL_LINES = 20
SUMS_NAME = "SHA256SUMS"


@dataclass(frozen=True)
class BuildResult:
    """What ``build_release`` produced and checked."""

    sdist: Artifact
    wheel: Artifact
    sha256sums: Artifact
    sums_text: str
    version: str
    tag: str
    commit: str
    source_date_epoch: str
    reproducible_checked: bool
    smoke_tested: bool
    removed: tuple[str, ...]
    #: The container image step (None: the caller did not ask for it).
    image: ImageOutcome | None = None


# --- release identity -------------------------------------------------------------------------
def _source_ref(root: Path, tag: str) -> str:
    """The tag when it exists (the tagged commit), else HEAD (a release candidate)."""
    try:
        git(root, "rev-parse", "--verify", "--quiet", tag_ref(tag))
    except InputError:
        return "HEAD"
    return tag


def source_date_epoch(root: Path, tag: str) -> str:
    """Commit time of the tag (or HEAD); outside git, ``$SOURCE_DATE_EPOCH`` or empty."""
    if in_git(root):
        return git(root, "log", "-1", "--format=%ct", _source_ref(root, tag))
    return os.environ.get("SOURCE_DATE_EPOCH", "")


# --- clean ------------------------------------------------------------------------------------
def clean(root: Path, *, keep: Iterable[Path] = ()) -> list[str]:
    """RELEASE.md's clean step, minus anything git tracks or ``keep`` names, never outside ``root``.

    Removes the top-level ``build/ dist/ .eggs/`` and every ``__pycache__`` and ``*.pyc``
    (skipping ``.git``, ``node_modules`` and virtualenvs). A tracked file inside such a
    directory survives, and so do the directories that lead to it. Returns what was removed.
    """
    root = root.resolve()
    tracked = tracked_files(root) or set()
    kept = {p.resolve() for p in keep}
    removed: list[str] = []
    for name in CLEAN_TOP_DIRS:
        target = root / name
        if target.exists() or target.is_symlink():
            _remove_tree(target, root, tracked, kept, removed)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if (here / "pyvenv.cfg").exists():
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for d in [d for d in dirnames if d == "__pycache__"]:
            _remove_tree(here / d, root, tracked, kept, removed)
            dirnames.remove(d)
        for f in filenames:
            if f.endswith(".pyc"):
                _remove_tree(here / f, root, tracked, kept, removed)
    if removed:
        log.info("clean: removed %d paths", len(removed))
    return removed


def _remove_tree(
    path: Path, root: Path, tracked: set[str], kept: set[Path], removed: list[str]
) -> None:
    """Delete ``path`` bottom-up, sparing tracked and kept paths (and their parents)."""
    rel = path.relative_to(root).as_posix()
    if path.resolve() in kept or rel in tracked:
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        removed.append(rel)
        return
    for child in sorted(path.iterdir()):
        _remove_tree(child, root, tracked, kept, removed)
    if not any(path.iterdir()):
        path.rmdir()
        removed.append(rel + "/")


#: What upm-release itself writes into a dist directory; anything else there is not its to remove.
BUILD_OUTPUT_SUFFIXES = (
    ".whl", ".tar.gz", ".zip", ".sigstore.json", ".intoto.jsonl", ".publish.attestation",
    ".asc", ".cdx.json", ".spdx.json", ".audit.jsonl", ".tmp",
)  # fmt: skip


def _is_build_output(path: Path) -> bool:
    if path.name in ("oci-image", ".oci-image.tmp") and path.is_dir() and not path.is_symlink():
        return True  # the image's OCI layout (upm_ci.image.build)
    return (
        not path.is_symlink()
        and path.is_file()
        and (path.name.startswith(SUMS_NAME) or path.name.endswith(BUILD_OUTPUT_SUFFIXES))
    )


def check_dist_dir(dist_dir: Path, root: Path, *, keep: Iterable[Path] = ()) -> None:
    """Refuse a dist directory build would have to empty of something that is not build output.

    build empties the dist directory (RELEASE.md's ``rm -rf dist/``), so it must be the
    project's output and nothing else: never the project itself, an ancestor of it, anything
    inside ``.git``, or a directory holding other files (sources, a user's downloads).
    """
    root, dist_dir = root.resolve(), dist_dir.resolve()
    where = f"dist directory {dist_dir}"
    if dist_dir == root or root.is_relative_to(dist_dir):
        raise InputError(f"{where} is the project or holds it", hint="use e.g. dist/")
    if ".git" in dist_dir.parts:
        raise InputError(f"{where} is inside a .git directory", hint="use e.g. dist/")
    if not dist_dir.exists():
        return
    if not dist_dir.is_dir():
        raise InputError(f"{where} is not a directory")
    kept = {p.resolve() for p in keep}
    tracked = (tracked_files(root) or set()) if dist_dir.is_relative_to(root) else set()
    for child in sorted(dist_dir.iterdir()):
        rel = child.relative_to(root).as_posix() if child.is_relative_to(root) else ""
        if child.resolve() in kept or _is_build_output(child) and rel not in tracked:
            continue
        raise InputError(
            f"{where} holds {child.name!r}, which is not build output; build empties this "
            "directory, so it refuses",
            hint="pass an empty directory or one that holds only earlier build output",
        )


def empty_dist_dir(dist_dir: Path, root: Path, *, keep: Iterable[Path] = ()) -> list[str]:
    """Clear a ``dist_dir`` inside the project (RELEASE.md's ``rm -rf dist/``), tracked files
    and ``keep`` excepted; a dist_dir outside the project is left alone (only replaced files)."""
    root, dist_dir = root.resolve(), dist_dir.resolve()
    if not dist_dir.is_dir() or dist_dir == root or not dist_dir.is_relative_to(root):
        return []
    removed: list[str] = []
    kept = {p.resolve() for p in keep} | {dist_dir}
    tracked = tracked_files(root) or set()
    for child in sorted(dist_dir.iterdir()):
        _remove_tree(child, root, tracked, kept, removed)
    return removed


# --- build ------------------------------------------------------------------------------------
def _tail(text: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@timed("build: python -m build")
def run_build(root: Path, outdir: Path, epoch: str) -> tuple[Path, Path]:
    """``python -m build`` (sdist, then the wheel from it) into ``outdir``; (sdist, wheel).

    The backend is the project's code: it gets the allow-listed environment, no secrets.
    """
    env = project_env({"SOURCE_DATE_EPOCH": epoch} if epoch else {})
    installer = build_installer()
    if installer == "uv":
        env = uv_env(env)
    log.info("building %s into %s (build's isolated env: %s)", root.name, outdir, installer)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--installer", installer, "--outdir", str(outdir)]
        + [str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise InputError(
            f"{root / 'pyproject.toml'}: the project does not build (python -m build exited "
            f"{proc.returncode}; fix the build configuration, try `python -m build` locally); "
            "last lines of its output:\n" + _tail(proc.stdout + "\n" + proc.stderr)
        )
    sdists = sorted(outdir.glob("*.tar.gz"))
    wheels = sorted(outdir.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise InputError(f"{root}: expected one sdist and one wheel, got {sdists + wheels}")
    return sdists[0], wheels[0]


#: Build backends that read the source tree and write only into their output directory (the
#: wheel is built from the unpacked sdist in a directory of build's own), so two builds of one
#: tree can run side by side. setuptools writes ``*.egg-info`` and ``build/`` into the tree.
_TREE_READ_ONLY_BACKENDS = ("hatchling.build", "flit_core.buildapi")


def builds_can_overlap(project: Project) -> bool:
    """True when the reproducibility rebuild may run beside the first build: a backend that
    leaves the source tree alone, and no build hook of the project's (its code could write)."""
    system = project.pyproject.get("build-system", {})
    backend = system.get("build-backend", "") if isinstance(system, dict) else ""
    if backend not in _TREE_READ_ONLY_BACKENDS:
        return False
    hatch = project.pyproject.get("tool", {}).get("hatch", {})
    build = hatch.get("build", {}) if isinstance(hatch, dict) else {}
    build = build if isinstance(build, dict) else {}
    targets = build.get("targets", {}) if isinstance(build.get("targets"), dict) else {}
    hooks = [build.get("hooks")] + [t.get("hooks") for t in targets.values() if isinstance(t, dict)]
    return not any(hooks) and not (project.root / "hatch_build.py").exists()


def _builds(project: Project, tmp: Path, epoch: str, *, twice: bool) -> tuple[Path, Path]:
    """The release's build (sdist, wheel); with ``twice`` a second one, byte-compared to it.

    The two run side by side where they share no state (:func:`builds_can_overlap`; 2 cores
    halve the wait), else one after the other; a failure is reported as the serial order would.
    """
    root = project.root
    if not twice:
        return run_build(root, tmp / "a", epoch)
    if builds_can_overlap(project):
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = [pool.submit(run_build, root, tmp / d, epoch) for d in ("a", "b")]
            first, second = (run.result() for run in runs)  # a's failure first, as in series
    else:
        first = run_build(root, tmp / "a", epoch)
        second = run_build(root, tmp / "b", epoch)
    compare_builds(first, second)
    log.info("reproducible: both builds are byte-identical")
    return first


# --- reproducibility --------------------------------------------------------------------------
def _zip_members(path: Path) -> list[tuple[str, tuple[object, ...], bytes]]:
    with zipfile.ZipFile(path) as z:
        return [
            (i.filename, (i.date_time, i.external_attr, i.compress_type), z.read(i))
            for i in z.infolist()
        ]


def _tar_members(path: Path) -> list[tuple[str, tuple[object, ...], bytes]]:
    out: list[tuple[str, tuple[object, ...], bytes]] = []
    with tarfile.open(path, "r:*") as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            meta = (m.type, m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname, m.linkname)
            out.append((m.name, meta, f.read() if f else b""))
    return out


def archive_differences(a: Path, b: Path) -> list[str]:
    """Members of two archives that differ (content or metadata); empty when byte-identical."""
    if a.read_bytes() == b.read_bytes():
        return []
    read = _zip_members if a.suffix == ".whl" else _tar_members
    left, right = read(a), read(b)
    diffs: list[str] = []
    if [m[0] for m in left] != [m[0] for m in right]:
        only = sorted({m[0] for m in left} ^ {m[0] for m in right})
        diffs.append(f"member list or order ({', '.join(only) or 'order only'})")
    right_by_name = {m[0]: m for m in right}
    for name, meta, data in left:
        other = right_by_name.get(name)
        if other is None:
            continue
        if data != other[2]:
            diffs.append(f"{name} (content)")
        elif meta != other[1]:
            diffs.append(f"{name} (metadata {meta} vs {other[1]})")
    return diffs or ["the archive container itself (compression or gzip header)"]


def compare_builds(first: tuple[Path, Path], second: tuple[Path, Path]) -> None:
    """PolicyError naming each archive and member that differs between two builds."""
    problems = []
    for a, b in zip(first, second):
        diffs = archive_differences(a, b)
        if diffs:
            problems.append(f"{a.name}: {'; '.join(diffs)}")
    if problems:
        raise PolicyError(
            "build is not reproducible: " + " | ".join(problems),
            hint="remove timestamps and randomness from the build (honour SOURCE_DATE_EPOCH)",
        )


# --- metadata and twine -----------------------------------------------------------------------
def wheel_metadata(wheel: Path) -> tuple[str, str]:
    """(Name, Version) from a wheel's ``*.dist-info/METADATA``."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise PolicyError(f"{wheel.name}: no single .dist-info/METADATA in the wheel")
        return _name_version(z.read(names[0]), f"{wheel.name}:{names[0]}")


def sdist_metadata(sdist: Path) -> tuple[str, str]:
    """(Name, Version) from an sdist's top-level ``PKG-INFO``."""
    with tarfile.open(sdist, "r:*") as t:
        for m in t.getmembers():
            if m.isfile() and m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"):
                f = t.extractfile(m)
                assert f is not None
                return _name_version(f.read(), f"{sdist.name}:{m.name}")
    raise PolicyError(f"{sdist.name}: no top-level PKG-INFO in the sdist")


def _name_version(raw: bytes, where: str) -> tuple[str, str]:
    msg = email.parser.BytesParser().parse(io.BytesIO(raw), headersonly=True)
    name, version = msg.get("Name"), msg.get("Version")
    if not name or not version:
        raise PolicyError(f"{where}: Name or Version is missing")
    return str(name), str(version)


def check_metadata(project: Project, tag: str, sdist: Path, wheel: Path) -> str:
    """Both artifacts carry the tag's (normalised) version and the project's name."""
    expected = str(version_from_tag(tag, project.config.tag_prefix))
    for path, (name, version) in ((wheel, wheel_metadata(wheel)), (sdist, sdist_metadata(sdist))):
        if canonicalize_name(name) != project.normalized_name:
            raise PolicyError(
                f"{path.name}: metadata Name is {name!r}, but pyproject.toml says {project.name!r}"
            )
        if version != expected:
            raise PolicyError(
                f"{path.name}: metadata Version is {version!r}, but tag {tag!r} means {expected!r}",
                hint="bump [project] version to match the tag, or release the right tag",
            )
    return expected


@timed("build: twine check")
def twine_check(paths: Sequence[Path]) -> None:
    """``twine check --strict``; a warning or error is a policy failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    if proc.returncode != 0:
        raise PolicyError(
            "twine check --strict failed (fix the package metadata: long description, content "
            "type):\n" + _tail(proc.stdout + "\n" + proc.stderr)
        )


# --- smoke test -------------------------------------------------------------------------------
def top_level_modules(wheel: Path) -> list[str]:
    """Importable top-level packages and modules a wheel installs."""
    found: set[str] = set()
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            first, _, rest = name.partition("/")
            if first.endswith((".dist-info", ".data")):
                continue
            if rest == "__init__.py" or (not rest and first.endswith(".py")):
                found.add(first.removesuffix(".py"))
    return sorted(found)


_SMOKE_SCRIPT = """
import importlib, importlib.metadata as md, json, sys, traceback
dist_name, modules = sys.argv[1], json.loads(sys.argv[2])
failed = []
for mod in modules:
    try:
        importlib.import_module(mod)
    except BaseException:
        failed.append(("import " + mod, traceback.format_exc()))
eps = list(md.distribution(dist_name).entry_points)
for ep in eps:
    try:
        ep.load()
    except BaseException:
        failed.append(("entry point %s = %s [%s]" % (ep.name, ep.value, ep.group),
                       traceback.format_exc()))
for what, tb in failed:
    print("FAILED", what); print(tb)
print("loaded %d modules, %d entry points" % (len(modules), len(eps)))
sys.exit(1 if failed else 0)
"""


@timed("build: smoke test")
def smoke_test(project: Project, wheel: Path) -> str:
    """Install the wheel in a fresh venv, import its modules and load every entry point."""
    modules = project.config.smoke_imports or top_level_modules(wheel)
    with (
        tempfile.TemporaryDirectory(prefix="upm-smoke-") as tmp,
        wheel_venv(wheel, phase="build", cache=venv_cache_from_env()) as made,
    ):
        python, installed = made.python, made.installed
        if installed.returncode != 0:
            raise PolicyError(
                f"{wheel.name}: does not install in a fresh venv (check its dependencies and "
                "requires-python):\n" + _tail(installed.stdout + "\n" + installed.stderr)
            )
        proc = subprocess.run(
            [str(python), "-I", "-c", _SMOKE_SCRIPT, project.name, json.dumps(modules)],
            cwd=tmp,
            capture_output=True,
            text=True,
            env=project_env(),  # importing the wheel runs the project's code
        )
    if proc.returncode != 0:
        raise PolicyError(
            f"{wheel.name}: smoke test failed in a fresh venv (an import or an entry point of "
            "the installed wheel is broken):\n" + _tail(proc.stdout + "\n" + proc.stderr)
        )
    log.info("smoke test: %s", proc.stdout.strip().splitlines()[-1])
    return proc.stdout.strip()


def check_artifacts(project: Project, sdist: Path, wheel: Path, *, smoke: bool) -> None:
    """``twine check`` and (with ``smoke``) the smoke test, side by side: each waits on
    processes of its own. A failure is reported as the serial order would (twine's first)."""
    if not smoke:
        twine_check([sdist, wheel])
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        twine = pool.submit(twine_check, [sdist, wheel])
        try:
            smoke_test(project, wheel)
        except BaseException:
            twine.result()  # twine's failure, if any, comes first
            raise
        twine.result()


# --- checksums --------------------------------------------------------------------------------
def sha256sums_text(paths: Sequence[Path]) -> str:
    """Lines ``<hex>  <name>`` (what ``sha256sum -c`` reads), sorted by name.

    Files are hashed in parallel threads (hashlib releases the GIL on large buffers).
    """
    ordered = sorted(paths, key=lambda p: p.name)
    workers = max(1, min(len(ordered), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(pool.map(sha256_file, ordered))
    return "".join(f"{digest}  {p.name}\n" for digest, p in zip(digests, ordered))


# --- the phase --------------------------------------------------------------------------------
def build_release(
    project: Project,
    manifest: Manifest,
    *,
    dist_dir: Path,
    check_reproducible: bool,
    tag: str | None,
    smoke: bool = True,
    image_base: str | None = None,
    skip_image: str = "",
) -> BuildResult:
    """Clean, build, check and checksum the release; record it in ``manifest`` and save it.

    ``skip_image``: why no image is built this time although one is configured ("" builds it).
    """
    tag = resolve_tag(project, tag)
    version_from_tag(tag, project.config.tag_prefix)  # a malformed tag is bad input: fail early
    dist_dir = check_dist_dir_inside(dist_dir, manifest.base, where="dist directory")
    info = release_info(project, tag)
    epoch = source_date_epoch(project.root, tag)
    keep = [manifest.path] if manifest.path else []
    check_dist_dir(dist_dir, project.root, keep=keep)
    # dist_dir is emptied only once every check passed: a failed build loses nothing.
    removed = clean(project.root, keep=[*keep, dist_dir])
    with tempfile.TemporaryDirectory(prefix="upm-build-") as tmp:
        first = _builds(project, Path(tmp), epoch, twice=check_reproducible)
        sdist, wheel = first
        version = check_metadata(project, tag, sdist, wheel)
        check_artifacts(project, sdist, wheel, smoke=smoke)
        removed += empty_dist_dir(dist_dir, project.root, keep=keep)
        dist_dir.mkdir(parents=True, exist_ok=True)
        final = []
        for built in (sdist, wheel):
            target = dist_dir / built.name
            shutil.copyfile(built, target.with_name(f".{built.name}.tmp"))
            os.replace(target.with_name(f".{built.name}.tmp"), target)
            final.append(target)
    sums = sha256sums_text(final)
    sums_path = dist_dir / SUMS_NAME
    write_text_atomic(sums_path, sums)

    if not manifest.project.commit:
        manifest.project.commit = info.commit
    sdist_art = manifest.add_file(final[0], "sdist")
    wheel_art = manifest.add_file(final[1], "wheel")
    sums_art = manifest.add_file(sums_path, "checksums")
    if skip_image:
        image = ImageOutcome(None, None, skip_image)
    else:
        with timed("build: image"):
            image = build_image(
                project,
                manifest,
                dist_dir=dist_dir,
                wheel=final[1],
                version=version,
                commit=manifest.project.commit or info.commit,
                epoch=epoch,
                base_image=image_base,
            )
    manifest.record_phase(
        "build",
        "pass",
        image=image.summary(),
        tag=tag,
        source_date_epoch=epoch,
        reproducible_checked=check_reproducible,
        smoke_tested=smoke,
    )
    manifest.save()
    return BuildResult(
        sdist=sdist_art,
        wheel=wheel_art,
        sha256sums=sums_art,
        sums_text=sums,
        version=version,
        tag=tag,
        commit=info.commit,
        source_date_epoch=epoch,
        reproducible_checked=check_reproducible,
        smoke_tested=smoke,
        removed=tuple(removed),
        image=image,
    )
