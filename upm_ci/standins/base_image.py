"""A local base image that stands in for ``python:3.11-slim``, made from this host, no pull.

No registry is reachable from these machines, so no base image can be pulled. This module
makes one from the host's own Debian Python: the interpreter (``/usr/bin/python3.X``), its
standard library (without tests, IDLE, tkinter and bytecode caches), the shared libraries
``ldd`` finds for the interpreter and its extension modules, the dynamic loader, ``/bin/sh``
(dash), pip (copied from upm-ci's own environment into ``/usr/local/lib/python3.X/dist-packages``,
where Debian's Python looks), ``/etc/os-release``, a minimal ``/etc/passwd`` (``root``,
``nobody``), and a ``/var/lib/dpkg/status`` holding the ``dpkg-query -s`` stanzas of every
Debian package those files came from (``dpkg -S``): syft then lists the Debian packages of
any image built on it, as it would for the real one. The tree is written as one tar and
imported with ``docker import`` (the usr-merged layout of Debian 12: ``/bin``, ``/lib``,
``/lib64`` are links into ``/usr``).

The image is cached: when ``NAME:TAG`` exists nothing is done. Making it takes seconds.
It needs a Debian host with the interpreter packaged (``python3.11-minimal``) and an engine.

Command line (prints the image name)::

    python -m upm_ci.standins.base_image upm-base/python:3.11-slim
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from upm_ci.errors import InputError, UpmError
from upm_ci.image.engine import docker, engine_problem, image_exists

DEFAULT_NAME = "upm-base/python:3.11-slim"
#: Parts of the standard library a slim image does without.
SKIP_STDLIB = frozenset({"test", "idlelib", "tkinter", "turtledemo", "__pycache__", "ensurepip"})
#: Shell tools a Dockerfile's RUN lines commonly use (coreutils, grep, sed).
TOOLS = (
    "rm",
    "cp",
    "mv",
    "mkdir",
    "ls",
    "cat",
    "ln",
    "chmod",
    "chown",
    "head",
    "env",
    "grep",
    "sed",
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\nnogroup:x:65534:\n"
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


def _python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _interpreter() -> Path:
    """Debian's interpreter of this Python's version (upm-ci may run from a pyenv build)."""
    path = Path(f"/usr/bin/python{_python_version()}")
    if not path.is_file():
        raise InputError(
            f"{path}: no Debian Python {_python_version()} on this host",
            hint=f"apt-get install python{_python_version()}-minimal, or pass --image-base",
        )
    return path


def _ldd(paths: Iterable[Path]) -> set[Path]:
    """Every shared library (and the loader) the given ELF files load, as ldd resolves them."""
    found: set[Path] = set()
    for path in paths:
        done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            m = _LDD_LINE.search(line)
            if m:
                found.add(Path(m.group(1)))
    return found


def _usr_merged(path: Path) -> str:
    """The path inside the image (``/lib/x`` -> ``usr/lib/x``), without the leading slash."""
    text = path.as_posix()
    for top in ("/bin/", "/sbin/", "/lib/", "/lib64/"):
        if text.startswith(top):
            text = "/usr" + text
    return text.lstrip("/")


def _packages_of(paths: Iterable[Path]) -> list[str]:
    """The Debian packages owning ``paths`` (``dpkg -S``), sorted."""
    # dpkg's database predates usr-merge: /usr/lib/x may be known as /lib/x, and the
    # reverse; ask for every spelling (unknown ones only add a line to stderr).
    spellings: set[str] = set()
    for p in paths:
        for text in (p.as_posix(), p.resolve().as_posix()):
            spellings.add(text)
            for top in ("/bin/", "/sbin/", "/lib/", "/lib64/"):
                if text.startswith("/usr" + top):
                    spellings.add(text[4:])
    names = sorted(spellings)
    done = subprocess.run(["dpkg", "-S", *names], capture_output=True, text=True, check=False)
    packages: set[str] = set()
    for line in done.stdout.splitlines():
        owners, _, _ = line.partition(": ")
        if " " in owners or "diversion" in line:
            continue
        for owner in owners.split(", "):
            packages.add(owner.strip())
    if not packages:
        raise InputError(
            f"dpkg -S: no Debian package owns {names[0]}",
            hint="make the base image on a Debian host, or pass --image-base",
        )
    return sorted(packages)


def _status(packages: list[str]) -> bytes:
    """``/var/lib/dpkg/status`` for ``packages`` (their installed stanzas)."""
    done = subprocess.run(
        ["dpkg-query", "-s", *packages], capture_output=True, check=True, env={"LC_ALL": "C"}
    )
    return done.stdout.rstrip(b"\n") + b"\n\n"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime, info.mode = tarfile.SYMTYPE, target, 0, 0o777
    tar.addfile(info)


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    path = Path(info.name)
    # EXTERNALLY-MANAGED (PEP 668) is Debian's; python:3.11-slim lets pip install.
    skip = set(path.parts) & SKIP_STDLIB or path.name == "EXTERNALLY-MANAGED"
    return None if skip else info


def write_rootfs(out: Path) -> list[str]:
    """Write the base image's root file system as a tar to ``out``; returns its packages."""
    ver = _python_version()
    python = _interpreter()
    stdlib = Path(f"/usr/lib/python{ver}")
    dynload = sorted((stdlib / "lib-dynload").glob("*.so"))
    dash = Path("/usr/bin/dash")
    tools = [Path(f"/usr/bin/{t}") for t in TOOLS if Path(f"/usr/bin/{t}").is_file()]
    libs = _ldd([python, dash, *tools, *dynload])
    pip = importlib.metadata.distribution("pip")
    pip_root = Path(str(pip.locate_file("")))
    site = f"usr/local/lib/python{ver}/dist-packages"
    owned = [python, dash, *tools, *libs, stdlib / "os.py", stdlib / "json" / "__init__.py"]
    packages = _packages_of([*owned, *dynload])
    with tarfile.open(out, "w") as tar:
        for d in ("usr", "usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "usr/local",
                  "usr/local/bin", "usr/local/lib", f"usr/local/lib/python{ver}", site,
                  "etc", "var", "var/lib", "var/lib/dpkg", "root", "app"):  # fmt: skip
            _add_dir(tar, d)
        _add_dir(tar, "tmp", 0o1777)
        for top in ("bin", "sbin", "lib", "lib64"):
            _add_link(tar, top, f"usr/{top}")
        tar.add(python, f"usr/bin/python{ver}")
        _add_link(tar, "usr/bin/python3", f"python{ver}")
        _add_link(tar, "usr/local/bin/python", f"/usr/bin/python{ver}")
        _add_link(tar, "usr/local/bin/python3", f"/usr/bin/python{ver}")
        tar.add(dash, "usr/bin/dash")
        _add_link(tar, "usr/bin/sh", "dash")
        for tool in tools:
            tar.add(tool.resolve(), f"usr/bin/{tool.name}")
        tar.add(stdlib, f"usr/lib/python{ver}", filter=_skip_caches)
        tar.add(f"/etc/python{ver}", f"etc/python{ver}")
        seen: set[str] = set()
        for lib in sorted(libs):
            real = lib.resolve()
            for host, name in ((real, _usr_merged(real)), (lib, _usr_merged(lib))):
                if name in seen:
                    continue
                seen.add(name)
                if host == real:
                    tar.add(real, name)
                else:
                    _add_link(tar, name, os.path.relpath(_usr_merged(real), Path(name).parent))
        for file in pip.files or ():
            source = Path(str(file.locate()))
            if source.is_file() and "__pycache__" not in source.parts:
                tar.add(source, f"{site}/{source.relative_to(pip_root).as_posix()}")
        os_release = Path("/etc/os-release").resolve()
        _add_bytes(tar, "usr/lib/os-release", os_release.read_bytes())
        _add_link(tar, "etc/os-release", "../usr/lib/os-release")
        _add_bytes(tar, "etc/passwd", PASSWD.encode())
        _add_bytes(tar, "etc/group", GROUP.encode())
        _add_bytes(tar, "var/lib/dpkg/status", _status(packages))
    return packages


def make_base_image(name: str = DEFAULT_NAME) -> str:
    """Make ``name`` unless the engine already holds it; returns ``name``."""
    problem = engine_problem()
    if problem:
        raise InputError(f"base image {name}: {problem}", hint="start a Docker engine")
    if image_exists(name):
        return name
    with tempfile.TemporaryDirectory(prefix="upm-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        write_rootfs(rootfs)
        ver = _python_version()
        with rootfs.open("rb") as f:
            docker(
                [
                    "import",
                    "--change", f"ENV PATH={PATH}",
                    "--change", "ENV LANG=C.UTF-8",
                    "--change", f"ENV PYTHON_VERSION={ver}",
                    "--change", 'CMD ["python3"]',
                    "-", name,
                ],
                stdin=f,
            )  # fmt: skip
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default=DEFAULT_NAME, help="NAME:TAG of the image")
    args = parser.parse_args(argv)
    try:
        print(make_base_image(args.name))
    except UpmError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
