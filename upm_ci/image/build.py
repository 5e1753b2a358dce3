"""Build the project's image for the release and write it as an OCI image layout.

Decisions worth knowing:

- The build context is a temporary directory: the project's files (git's tracked files, or
  the tree without ``.git``, dist, venvs and caches outside git), every mtime set to
  ``SOURCE_DATE_EPOCH``, plus ``dist/`` holding the release wheel and the wheels of its
  dependencies (``pip download``, from pip's configured index, as the smoke test installs
  them). The build runs with ``--network none``: the Dockerfile installs with ``--no-index``.
- Labels ``org.opencontainers.image.version/source/revision/created`` (created = the release
  commit's time), build args ``SOURCE_DATE_EPOCH`` and ``BASE_IMAGE`` (``--image-base``).
- The engine's image is then ``docker save``-d and turned into an OCI image layout at
  ``<dist>/oci-image/``: its config and uncompressed layer tars become blobs unchanged, and one
  image manifest (with the same annotations) written with a fixed key order; its digest is the
  release digest. The same engine image always gives the same bytes, so a registry that
  receives these blobs by digest holds exactly the digest recorded here.
- A missing Dockerfile is bad input (exit 2); a failing build is a policy failure (exit 1)
  with the build's last lines; a base image the engine cannot pull is a service failure
  (exit 3) that names the image and the offline way (``--image-base standin`` in a
  rehearsal); no engine is not a failure but never silent: the caller shows
  ``image: skipped (<reason>)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from upm_ci.child_env import project_env
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.image.engine import docker, engine_problem, tail
from upm_ci.manifest import ImageRecord, Manifest
from upm_ci.project import SKIP_DIRS, Project, tracked_files

#: The layout's directory inside the dist directory.
LAYOUT_DIR = "oci-image"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
BUILD_TAIL_LINES = 15
_SKIP_CONTEXT = {*SKIP_DIRS, "dist", "build", ".venv", "venv", "__pycache__", ".tox", ".nox"}


@dataclass(frozen=True)
class ImageOutcome:
    """What the image step did: ``record`` when built, else ``skipped`` says why not."""

    record: ImageRecord | None
    layout: Path | None
    skipped: str = ""

    def summary(self) -> str:
        """One line for the phase's table: ``image: <ref>@<digest>`` or ``image: skipped (...)``."""
        if self.record is None:
            return f"image: skipped ({self.skipped})"
        return f"image: {self.record.ref}@{self.record.digest}"


def created_time(epoch: str) -> str:
    """RFC 3339 UTC time of ``SOURCE_DATE_EPOCH`` (empty when unset)."""
    if not epoch:
        return ""
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def oci_annotations(project: Project, version: str, commit: str, epoch: str) -> dict[str, str]:
    """The OCI annotations (also the image's labels); empty values left out."""
    repo = project.repository
    values = {
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": f"https://github.com/{repo}" if repo else "",
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.created": created_time(epoch),
    }
    return {k: v for k, v in values.items() if v}


def dockerfile_path(project: Project) -> Path:
    """The configured Dockerfile; InputError (exit 2) naming it when it is missing."""
    path = project.path(project.config.dockerfile)
    if not path.is_file():
        raise InputError(
            f"{path}: Dockerfile not found (config key dockerfile = "
            f"{project.config.dockerfile!r}, image = {project.config.image!r})",
            hint="add the Dockerfile, set `dockerfile` to it, or remove `image` from "
            "[tool.upm-release]",
        )
    return path


_ARG_BASE = re.compile(r"^\s*ARG\s+BASE_IMAGE\s*=\s*(\S+)", re.M | re.I)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", re.M | re.I)


def dockerfile_base(dockerfile: Path, base_image: str | None = None) -> str:
    """The base image a build of ``dockerfile`` starts from: ``base_image`` (the
    ``BASE_IMAGE`` build arg) when given and the Dockerfile reads it, else the Dockerfile's
    ``ARG BASE_IMAGE=`` default, else its first ``FROM``; "" when none can be read."""
    text = dockerfile.read_text(encoding="utf-8", errors="replace")
    first = _FROM.search(text)
    reads_arg = first is not None and "BASE_IMAGE" in first.group(1)
    if base_image and reads_arg:
        return base_image
    default = _ARG_BASE.search(text)
    if reads_arg:
        return default.group(1).strip("\"'") if default else ""
    return first.group(1) if first else ""


#: What the classic builder prints when the FROM image cannot be fetched.
_PULL_FAILED = re.compile(
    r"pull access denied|manifest unknown|not found: manifest|no such host|dial tcp|"
    r"i/o timeout|TLS handshake timeout|connection refused|toomanyrequests|"
    r"failed to resolve source metadata|error pulling image|Client\.Timeout",
    re.I,
)


def pull_failed(output: str) -> bool:
    """True when a failed ``docker build`` stopped at its ``FROM`` step fetching the base."""
    steps = re.findall(r"^Step \d+/\d+ : (\S+)", output, re.M)
    at_from = bool(steps) and steps[-1].upper() == "FROM"
    return (at_from or "failed to resolve source metadata" in output) and bool(
        _PULL_FAILED.search(output)
    )


# --- context ------------------------------------------------------------------------------
def _context_files(root: Path) -> list[str]:
    tracked = tracked_files(root)
    if tracked is not None:
        return sorted(p for p in tracked if (root / p).is_file() and not (root / p).is_symlink())
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_CONTEXT)
        here = Path(dirpath)
        if (here / "pyvenv.cfg").exists():
            dirnames[:] = []
            continue
        found += [(here / f).relative_to(root).as_posix() for f in filenames]
    return sorted(found)


def _dependency_wheels(wheel: Path, dest: Path) -> None:
    """The wheel and its dependencies' wheels into ``dest`` (pip's configured index)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
        + ["--dest", str(dest), str(wheel)],
        capture_output=True,
        text=True,
        env=project_env({"PIP_DISABLE_PIP_VERSION_CHECK": "1"}),
        check=False,
    )
    if done.returncode != 0:
        raise ServiceError(
            f"{wheel.name}: could not fetch the wheels of its dependencies for the image "
            f"(pip download): {tail(done.stdout + done.stderr, 5)}",
            hint="check pip's index settings (PIP_INDEX_URL)",
        )
    if not (dest / wheel.name).exists():
        shutil.copyfile(wheel, dest / wheel.name)


def make_context(project: Project, wheel: Path, dest: Path, epoch: str) -> None:
    """The build context at ``dest``: project files, ``dist/`` wheels, mtimes at ``epoch``."""
    root = project.root.resolve()
    for rel in _context_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    (dest / "dist").mkdir(exist_ok=True)
    _dependency_wheels(wheel, dest / "dist")
    stamp = int(epoch) if epoch else 0
    for dirpath, _, filenames in os.walk(dest):
        for name in filenames:
            os.utime(Path(dirpath) / name, (stamp, stamp))


# --- OCI layout ---------------------------------------------------------------------------
def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _copy_blob(layout: Path, source: tarfile.TarFile, member: str) -> dict[str, Any]:
    """Copy a member of the saved tar into the layout's blobs, hashing on the way."""
    extracted = source.extractfile(member)
    if extracted is None:
        raise ServiceError(f"docker save: {member} is not a file in the saved image")
    tmp = layout / "blobs" / "sha256" / ".incoming"
    h, size = hashlib.sha256(), 0
    with extracted, tmp.open("wb") as out:
        while chunk := extracted.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
            out.write(chunk)
    os.replace(tmp, layout / "blobs" / "sha256" / h.hexdigest())
    return {"digest": f"sha256:{h.hexdigest()}", "size": size}


def write_layout(
    saved: Path, layout: Path, *, ref_name: str, notes: dict[str, str]
) -> tuple[str, str]:
    """Turn a ``docker save`` tar of one image into an OCI image layout at ``layout``.

    Returns (manifest digest, image ID). The config and layer blobs are the engine's bytes;
    each layer's digest must equal its ``diff_id`` (uncompressed tars) or nothing is written.
    """
    (layout / "blobs" / "sha256").mkdir(parents=True)
    with tarfile.open(saved) as tar:
        top = tar.extractfile("manifest.json")
        if top is None:
            raise ServiceError(f"docker save: no manifest.json in {saved}")
        entries = json.load(top)
        if len(entries) != 1:
            raise ServiceError(f"docker save: expected one image, got {len(entries)}")
        entry = entries[0]
        config = _copy_blob(layout, tar, entry["Config"])
        config_bytes = (layout / "blobs" / "sha256" / config["digest"][7:]).read_bytes()
        diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
        layers = [_copy_blob(layout, tar, name) for name in entry["Layers"]]
    if [layer["digest"] for layer in layers] != diff_ids:
        raise ServiceError(
            "docker save: the saved layers are not the image's uncompressed layers (diff_ids)"
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, **config},
        "layers": [{"mediaType": LAYER_TYPE, **layer} for layer in layers],
        "annotations": dict(sorted(notes.items())),
    }
    desc = _blob(layout, _json_bytes(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST_TYPE,
                **desc,
                "annotations": {"org.opencontainers.image.ref.name": ref_name},
            }
        ],
    }
    (layout / "index.json").write_bytes(_json_bytes(index))
    (layout / "oci-layout").write_bytes(_json_bytes({"imageLayoutVersion": "1.0.0"}))
    return desc["digest"], config["digest"]


# --- the step -----------------------------------------------------------------------------
def build_image(
    project: Project,
    manifest: Manifest,
    *,
    dist_dir: Path,
    wheel: Path,
    version: str,
    commit: str,
    epoch: str,
    base_image: str | None = None,
) -> ImageOutcome:
    """Build the configured image, write its OCI layout, record it in ``manifest``.

    Returns a skipped outcome when no ``image`` is configured or no engine answers.
    """
    repository = project.config.image
    if not repository:
        return ImageOutcome(None, None, "no `image` configured")
    dockerfile = dockerfile_path(project)
    problem = engine_problem()
    if problem:
        return ImageOutcome(None, None, problem)
    ref = f"{repository}:{version}"
    notes = oci_annotations(project, version, commit, epoch)
    dist_dir = dist_dir.resolve()
    base = manifest.base.resolve()
    if not dist_dir.is_relative_to(base):
        raise InputError(
            f"dist directory {dist_dir} is outside the manifest's directory {base}",
            hint="keep the dist directory under the manifest's directory",
        )
    with tempfile.TemporaryDirectory(prefix="upm-image-") as tmp:
        context = Path(tmp) / "context"
        make_context(project, wheel, context, epoch)
        args = ["build", "--network", "none", "--iidfile", f"{tmp}/iid", "-t", ref]
        args += ["-f", str(context / dockerfile.relative_to(project.root.resolve()))]
        for key, value in notes.items():
            args += ["--label", f"{key}={value}"]
        if epoch:
            args += ["--build-arg", f"SOURCE_DATE_EPOCH={epoch}"]
        if base_image:
            args += ["--build-arg", f"BASE_IMAGE={base_image}"]
        done = docker([*args, str(context)], check=False)
        if done.returncode != 0:
            out = (done.stdout or b"") + b"\n" + (done.stderr or b"")
            text = out.decode("utf-8", "replace").strip()
            lines = text.splitlines()[-BUILD_TAIL_LINES:]
            if pull_failed(text):
                image = dockerfile_base(dockerfile, base_image) or "its FROM image"
                raise ServiceError(
                    f"{dockerfile}: the engine could not pull the base image {image} "
                    f"({lines[-1].strip()[:300]})",
                    hint="offline, rehearse with `upm-ci rehearse --image-base standin` (a base "
                    "made from this machine's Python); in CI let the runner reach the "
                    "registry, or pass --image-base (input image-base) an image it can pull",
                )
            raise PolicyError(
                f"{dockerfile}: docker build failed (exit {done.returncode}); last lines:\n"
                + "\n".join(lines)
            )
        saved = Path(tmp) / "saved.tar"
        docker(["save", "-o", str(saved), ref])
        staging = dist_dir / f".{LAYOUT_DIR}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        digest, image_id = write_layout(saved, staging, ref_name=version, notes=notes)
    layout = dist_dir / LAYOUT_DIR
    shutil.rmtree(layout, ignore_errors=True)
    os.replace(staging, layout)
    record = ImageRecord(
        ref=ref,
        digest=digest,
        repository=repository,
        tags=[version],
        image_id=image_id,
        layout=layout.relative_to(base).as_posix(),
    )
    manifest.add_image(record)
    return ImageOutcome(record, layout)


def layout_path(manifest: Manifest, record: ImageRecord) -> Path:
    """The absolute layout directory of ``record``; InputError when it is missing or outside."""
    base = manifest.base.resolve()
    path = (base / record.layout).resolve()
    if not record.layout or not path.is_relative_to(base) or not (path / "index.json").is_file():
        raise InputError(
            f"{manifest.path or 'manifest'}: image {record.ref} has no OCI layout at "
            f"{record.layout or '(none)'}",
            hint="run `upm-ci build` with the image configured first",
        )
    return path
