"""The release's layout on disk: which paths a release may take files from, and how they are named.

Every path the configuration or the manifest names is the project's (or the dist directory's)
to give: a regular file inside that directory after symlinks are resolved, never an absolute
path or ``..``. A committed symlink ``unipkg.yaml -> /proc/self/environ`` must not turn the
job's environment into a signed release asset. Release file names are plain: GitHub asset
names and ``sha256sum`` lines both break on separators, control characters and leading dots
or dashes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from upm_ci.errors import InputError

#: Longest file name most file systems and GitHub take.
MAX_NAME = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What a release file name may not hold: C0 and C1 control characters, and the Unicode bidi
#: controls (ALM, LRM, RLM, LRE..RLO, LRI..PDI), which make a name read as another
#: (``evil\u202elhw.exe`` shows as ``evilexe.whl``).
_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _shown(text: str) -> str:
    """``text`` safe to print on one line (control characters escaped)."""
    return text.encode("unicode_escape").decode("ascii")[:200]


def plain_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a release file name, or None if it can."""
    if not name or name in (".", ".."):
        return "is empty"
    if _UNSAFE_IN_NAME.search(name):
        return "has a control character or a bidi control"
    if "/" in name or "\\" in name:
        return "has a path separator"
    if name.startswith((".", "-")):
        return "starts with a dot or a dash"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        return f"is longer than {MAX_NAME} bytes"
    return None


def check_plain_name(name: str, *, where: str) -> str:
    """``name`` if it is a plain release file name, else an InputError naming ``where``."""
    problem = plain_name_problem(name)
    if problem:
        raise InputError(
            f"{where}: file name {_shown(name)!r} {problem}",
            hint="release files need plain names (letters, digits, . _ - +)",
        )
    return name


def relative_path_problem(rel: str) -> str | None:
    """Why ``rel`` is not a plain relative path, or None."""
    if not rel or _CONTROL.search(rel):
        return "is empty or has a control character"
    if (
        PurePosixPath(rel).is_absolute()
        or PureWindowsPath(rel).is_absolute()
        or (PureWindowsPath(rel).drive)
    ):
        return "is an absolute path"
    if ".." in PurePosixPath(rel.replace("\\", "/")).parts:
        return "goes up with '..'"
    return None


def check_relative_path(rel: str, *, where: str, what: str = "a path inside the project") -> str:
    """``rel`` if it is a plain relative path (:func:`relative_path_problem`), else an
    InputError naming ``where`` (a setting) and what to give instead."""
    problem = relative_path_problem(rel)
    if problem:
        raise InputError(f"{where}: {_shown(rel)!r} {problem}", hint=f"give {what}")
    return rel


def check_confined(root: Path, rel: str, *, where: str) -> Path:
    """``root / rel`` when ``rel`` is a plain relative path that stays inside ``root`` after
    symlinks (whether or not anything is there yet), else an InputError naming ``where``."""
    check_relative_path(rel, where=where)
    path = root / rel
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InputError(
            f"{where}: {_shown(rel)!r} resolves to {resolved}, outside the project",
            hint="a release never takes files from outside the project; remove the symlink",
        )
    return path


def line_problem(text: str) -> str | None:
    """Why ``text`` cannot be a one-line setting (a tag, a prefix, a directory), or None."""
    return "has a control character (a newline or NUL byte?)" if _CONTROL.search(text) else None


def check_dist_dir_setting(path: Path, *, where: str) -> Path:
    """An artifacts directory given on the command line or in ``UPM_DIST_DIR``: one line, no
    control character (a newline would build into ``dist\nx/``, a NUL byte is no path)."""
    problem = line_problem(str(path))
    if problem:
        raise InputError(f"{where}: {_shown(str(path))!r} {problem}", hint="give a directory")
    return path


def check_dist_dir_inside(dist_dir: Path, base: Path, *, where: str) -> Path:
    """``dist_dir`` resolved, if it lies inside ``base`` (the manifest's directory, which every
    recorded path must stay inside), else an InputError: checked before anything is written,
    so a phase never leaves artifacts outside and then refuses to record them."""
    check_dist_dir_setting(dist_dir, where=where)
    resolved, home = dist_dir.resolve(), base.resolve()
    if not resolved.is_relative_to(home):
        raise InputError(
            f"{where}: {_shown(str(dist_dir))!r} is {resolved}, outside the manifest's "
            f"directory {home}",
            hint="put the artifacts directory inside the manifest's directory (e.g. dist/ "
            "beside release-manifest.json), or move the manifest (--manifest)",
        )
    return resolved


def confined_file(root: Path, rel: str, *, where: str) -> Path | None:
    """``root / rel`` if it is a regular file inside ``root``, or None if nothing is there.

    InputError when ``rel`` is absolute, goes up with ``..``, resolves (through symlinks)
    outside ``root``, or names something that is not a regular file.
    """
    problem = relative_path_problem(rel)
    if problem:
        raise InputError(
            f"{where}: {_shown(rel)!r} {problem}", hint="name a file inside the project"
        )
    path = root / rel
    if not path.exists() and not path.is_symlink():
        return None
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InputError(
            f"{where}: {_shown(rel)!r} resolves to {resolved}, outside the project",
            hint="a release never takes files from outside the project; remove the symlink",
        )
    if not resolved.is_file():
        raise InputError(f"{where}: {_shown(rel)!r} is not a regular file")
    return path


# --------------------------------------------------------------------------- release file names

#: A Sigstore bundle of the file it is named after (``<file>.sigstore.json``).
BUNDLE_SUFFIX = ".sigstore.json"
#: A DSSE-signed in-toto attestation: SLSA provenance ``<name>-<version>.intoto.jsonl``.
ATTESTATION_SUFFIX = ".intoto.jsonl"
#: The CycloneDX SBOM attested for the wheel (``<wheel>.cdx.intoto.jsonl``).
SBOM_ATTESTATION_SUFFIX = ".cdx.intoto.jsonl"
#: A PEP 740 publish attestation of a distribution (``<dist>.publish.attestation``).
PEP740_SUFFIX = ".publish.attestation"
#: An armored detached GPG signature (``<file>.asc``).
GPG_SIG_SUFFIX = ".asc"
#: The release's armored GPG public key (``<name>-<version>.pub.asc``).
GPG_KEY_SUFFIX = ".pub.asc"
#: The release's checksum file (``sha256sum`` format).
CHECKSUMS = "SHA256SUMS"
#: Sigstore bundle (DSSE) whose payload is the in-toto Statement with the VSA predicate.
RELEASE_STATEMENT = "release-statement.sigstore.json"
VSA_PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
#: Signed like other files: ``toolchain.cdx.json.sigstore.json``.
TOOLCHAIN_SBOM = "toolchain.cdx.json"
#: A container image's Sigstore bundle over its manifest digest, its SLSA provenance and its
#: SBOM attestation (``<image name>-<version>.image.sigstore.json`` and so on): release
#: assets, and also stored next to the image in its registry (:mod:`upm_ci.image.attest`).
IMAGE_SIGNATURE_SUFFIX = ".image.sigstore.json"
IMAGE_PROVENANCE_SUFFIX = ".image.intoto.jsonl"
IMAGE_SBOM_ATTESTATION_SUFFIX = ".image.cdx.intoto.jsonl"
#: Each image bundle's kind (``artifact_kind``, the manifest's) by its suffix.
IMAGE_BUNDLE_KINDS = {
    IMAGE_SIGNATURE_SUFFIX: "image-signature",
    IMAGE_PROVENANCE_SUFFIX: "image-provenance",
    IMAGE_SBOM_ATTESTATION_SUFFIX: "image-sbom-attestation",
}


def release_file_name(name: str) -> str:
    """The name a project file gets among the release's assets.

    GitHub renames an asset whose name starts with a dot (``.unipkg.lock`` would come back
    as another name), so the release carries it without the leading dots (``unipkg.lock``).
    """
    return name.lstrip(".") or name


def artifact_kind(name: str) -> str:
    """What a release file is, by its name alone: ``statement`` (the release statement),
    ``toolchain-sbom``, ``pep740``, ``bundle``, ``attestation``, ``gpg-key``,
    ``gpg-signature``, ``checksums``, ``wheel``, ``sdist``, ``sbom``, ``file``, or an image's
    bundle: ``image-signature``, ``image-provenance``, ``image-sbom-attestation``.
    The longer suffixes come first (``.pub.asc`` before ``.asc``)."""
    if name == RELEASE_STATEMENT:
        return "statement"
    if name == TOOLCHAIN_SBOM:
        return "toolchain-sbom"
    for suffix, kind in IMAGE_BUNDLE_KINDS.items():
        if name.endswith(suffix):
            return kind
    if name.endswith(PEP740_SUFFIX):
        return "pep740"
    if name.endswith(BUNDLE_SUFFIX):
        return "bundle"
    if name.endswith(ATTESTATION_SUFFIX):
        return "attestation"
    if name.endswith(GPG_KEY_SUFFIX):
        return "gpg-key"
    if name.endswith(GPG_SIG_SUFFIX):
        return "gpg-signature"
    if name == CHECKSUMS:
        return "checksums"
    if name.endswith(".whl"):
        return "wheel"
    if name.endswith((".tar.gz", ".zip")):
        return "sdist"
    if name.endswith((".cdx.json", ".spdx.json")):
        return "sbom"
    return "file"


# --------------------------------------------------------------------------- file digests

#: Files up to this size are hashed in one read: for a release of many small files (bundles,
#: SBOMs) a large streaming buffer would cost more than the hashing.
_SMALL_FILE = 1 << 20


def sha256_file(path: Path, *, chunk: int = 4 << 20) -> str:
    """Hex sha256 of a file: a small one in one read, a large one streamed in ``chunk``-sized
    reads into one buffer (constant memory for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size <= _SMALL_FILE:
            digest.update(f.readall())
            return digest.hexdigest()
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()
