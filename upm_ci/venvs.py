"""Venvs holding a built wheel: the one build's smoke test imports it in, the one sbom reads.

Both are made the same way: a venv with no pip of its own holding only the wheel and its
dependencies (from the configured index), so nothing but the wheel's closure is in it. uv
makes it where there is one (the ``uv`` package beside upm-ci, or on PATH): ``uv venv`` and
``uv pip install``, a fraction of a second with a warm cache; pip is the reference, and makes
it where uv is absent or fails (uv reads no pip configuration) and where ``UPM_NO_UV=true``
(as for the tool venv, ``actions/setup``).

A rehearsal makes this venv once and uses it in both phases and across runs: ``upm-ci
rehearse`` hands the phases a cache (``UPM_WHEEL_VENV_CACHE``) only outside CI and without
``--fresh``. A cached venv is keyed on what decides its dependencies (the wheel's name,
Requires-Dist and Requires-Python, the interpreter); the wheel's own sha256 is recorded in it,
so the same wheel is used as it is and a rebuilt one only replaces the project's files. A
release in CI never gets a cache: each phase makes its own venv, since the smoke test runs the
project's code in it and the SBOM must not inventory a venv that code has touched.

The gate's test venvs (:mod:`upm_ci.gate.testenv`) share what this module has for every
cached venv: :func:`uv_binary`, :func:`uv_env`, :func:`venv_python`, the per-key
:func:`locked` and :func:`prune`.
"""

from __future__ import annotations

import ast
import contextlib
import email.parser
import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from upm_ci.child_env import install_env
from upm_ci.layout import sha256_file
from upm_ci.timings import record

log = logging.getLogger(__name__)

#: The variable through which ``upm-ci rehearse`` hands build and sbom the wheel venv cache.
CACHE_ENV = "UPM_WHEEL_VENV_CACHE"
#: Set by ``upm-ci rehearse`` to ``uv``: build's isolated environments are made with uv
#: (``python -m build --installer uv``). A release never sets it: its tool venv, installed from
#: the hash-pinned lock, has no uv package, and build's own default (pip) makes them.
INSTALLER_ENV = "UPM_BUILD_INSTALLER"
#: Written into a cached venv once it is complete (here its key and the wheel's sha256; the
#: gate's test venvs write their key): a venv without it is made anew, and :func:`prune` keeps
#: only ones with it.
READY = ".upm-ready"
#: Cached venvs kept beside the one in use (the most recently used ones).
_KEEP = 4
#: pip's settings that decide what is installed, by pip's name, as uv reads them (uv reads no
#: pip configuration): uv's variable and how it separates a list (pip: by whitespace).
_PIP_TO_UV = {
    "index-url": ("UV_INDEX_URL", " "),
    "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
    "find-links": ("UV_FIND_LINKS", ","),
    "no-index": ("UV_NO_INDEX", " "),
    "constraint": ("UV_CONSTRAINT", " "),
    "trusted-host": ("UV_INSECURE_HOST", " "),
}
#: The settings that say where packages come from.
_PIP_SOURCES = ("index-url", "extra-index-url", "find-links")
#: What decides which configuration files pip reads.
_PIP_CONFIG_PLACES = ("PIP_CONFIG_FILE", "HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS")


@dataclass(frozen=True)
class WheelVenv:
    """A venv holding the wheel: its python, how the install went (the caller judges it), and
    how it came to be (``new``, ``reused``, ``reused, wheel replaced``)."""

    python: Path
    installed: subprocess.CompletedProcess[str]
    how: str


def uv_binary() -> str:
    """The uv executable beside upm-ci (the ``uv`` package) or on PATH, or ``""``."""
    if os.environ.get("UPM_NO_UV", "").lower() in ("1", "true", "yes"):
        return ""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv") or ""


def build_installer() -> str:
    """``uv`` when a rehearsal asked for it and the ``uv`` package is beside upm-ci (what
    ``python -m build --installer uv`` uses), else ``pip``."""
    if os.environ.get(INSTALLER_ENV, "") != "uv" or uv_binary() == "":
        return "pip"
    return "uv" if importlib.util.find_spec("uv") is not None else "pip"


def rehearsal_installer_env() -> dict[str, str]:
    """What ``upm-ci rehearse`` hands the build phase: uv for build's isolated environments
    when the ``uv`` package is installed (the rehearse extra brings it)."""
    return {INSTALLER_ENV: "uv"} if importlib.util.find_spec("uv") is not None else {}


def uv_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` with pip's settings (its ``PIP_*`` variables, else its configuration files:
    :func:`pip_file_settings`) also under uv's names, where uv's are not set: uv installs
    from the indexes, find-links and constraints pip would, choosing among them as pip does
    (the best match across all of them, unless ``UV_INDEX_STRATEGY`` says otherwise)."""
    out = dict(env)
    files: dict[str, str] | None = None
    for name, (uv_name, separator) in _PIP_TO_UV.items():
        if uv_name in env:
            continue
        value = env.get("PIP_" + name.upper().replace("-", "_"))
        if value is None:
            if files is None:
                files = pip_file_settings(tuple(env.get(k, "") for k in _PIP_CONFIG_PLACES))
            value = files.get(name)
        if value and value.split():
            out[uv_name] = separator.join(value.split())
            if name in _PIP_SOURCES and "UV_INDEX_STRATEGY" not in env:
                # pip takes the best match across all its indexes; uv by default only the
                # first index that has the package
                out["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return out


@functools.cache
def pip_file_settings(places: tuple[str, ...]) -> dict[str, str]:
    """pip's settings from its configuration files that uv has a name for, as ``pip config
    list`` (pip's public way to read them) gives them: ``install`` over ``global``, a file pip
    reads later over an earlier one. ``places``
    are the :data:`_PIP_CONFIG_PLACES` values that decide which files pip reads. Empty when
    pip cannot say (nothing is guessed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "XDG_"))}
    env.update({k: v for k, v in zip(_PIP_CONFIG_PLACES, places, strict=True) if v})
    listed = _run([sys.executable, "-m", "pip", "config", "list"], env)
    if listed.returncode != 0:
        log.debug("pip config list: %s", _last(listed))
        return {}
    found: dict[str, tuple[str, str]] = {}
    for line in listed.stdout.splitlines():
        key, _, quoted = line.partition("=")
        section, _, name = key.partition(".")
        if section not in ("global", "install") or name not in _PIP_TO_UV:
            continue
        try:
            value = ast.literal_eval(quoted)
        except (ValueError, SyntaxError):
            continue
        if not isinstance(value, str):
            continue
        # pip lists its files in the order it reads them, a later one overriding
        if section == "install" or found.get(name, ("global", ""))[0] == "global":
            found[name] = (section, value)
    return {name: value for name, (_, value) in found.items()}


def venv_python(where: Path) -> Path:
    """The python of the venv at ``where``."""
    return where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, env=env)
    except OSError as e:
        return subprocess.CompletedProcess(command, 127, "", f"could not run {command[0]}: {e}")


def venv_with_wheel(where: Path, wheel: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A fresh venv at ``where`` holding only ``wheel`` and its dependencies: its python, and
    how the install went (the caller judges it). uv where there is one, else (or when uv fails)
    pip; the venv gets no pip of its own either way.
    """
    env = install_env()  # a wheel's install runs none of its code; its index may need a login
    uv = uv_binary()
    if uv:
        python = venv_python(where)
        made = _run([uv, "venv", "-q", "--python", sys.executable, str(where)], uv_env(env))
        if made.returncode == 0:
            installed = _run(
                [uv, "pip", "install", "-q", "--python", str(python), str(wheel)], uv_env(env)
            )
            if installed.returncode == 0:
                return python, installed
            made = installed
        log.info("uv could not make the venv with %s (%s); using pip", wheel.name, _last(made))
        shutil.rmtree(where, ignore_errors=True)
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(where)
    python = venv_python(where)
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)], env
    )
    return python, installed


def _last(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else f"exit {proc.returncode}"


def cache_from_env() -> Path | None:
    """The wheel venv cache ``upm-ci rehearse`` handed over, if any."""
    value = os.environ.get(CACHE_ENV, "")
    return Path(value) if value else None


def wheel_key(wheel: Path, interpreter: str = sys.executable) -> str:
    """What decides the dependencies of a venv with ``wheel``, hashed: the wheel's name,
    Requires-Dist and Requires-Python, and the interpreter the venv is made from (its real
    path, size and time). A changed one is a new key; the wheel's code and version are not in
    it (a rebuilt wheel only replaces the project's files in the venv). ``""`` for a file that
    is no readable wheel: it gets no cached venv (its install fails on its own terms)."""
    try:
        with zipfile.ZipFile(wheel) as z:
            names = [
                n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
            ]
            if len(names) != 1:
                return ""
            raw = z.read(names[0])
    except (OSError, zipfile.BadZipFile):
        return ""
    meta = email.parser.BytesParser().parsebytes(raw, headersonly=True)
    blob = json.dumps(
        {
            "name": str(meta.get("Name", "")).lower(),
            "requires-dist": sorted(str(r) for r in meta.get_all("Requires-Dist") or []),
            "requires-python": str(meta.get("Requires-Python", "")),
            "interpreter": executable_facts(interpreter),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def executable_facts(path: str) -> list[object]:
    """Which file an interpreter is, for a cache key: its real path, size and mtime (the path
    alone when it cannot be read). A reinstalled or upgraded interpreter is another key."""
    real = os.path.realpath(path)
    try:
        stat = os.stat(real)
    except OSError:
        return [real]
    return [real, stat.st_size, stat.st_mtime_ns]


@contextlib.contextmanager
def wheel_venv(wheel: Path, *, phase: str, cache: Path | None = None) -> Iterator[WheelVenv]:
    """A venv holding ``wheel`` for the block: a fresh one in a temporary directory (removed
    after), or with ``cache`` the cached one for the wheel's dependency set and interpreter
    (made on first use; locked while the block runs, so parallel rehearsals take turns).

    Its making is timed as ``PHASE: venv with the wheel (new|reused…)``.
    """
    start = time.monotonic()
    key = wheel_key(wheel) if cache is not None else ""
    if cache is None or not key:
        with tempfile.TemporaryDirectory(prefix="upm-wheel-venv-") as tmp:
            python, installed = venv_with_wheel(Path(tmp) / "venv", wheel)
            record(f"{phase}: venv with the wheel (new)", time.monotonic() - start)
            yield WheelVenv(python, installed, "new")
        return
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / key
    with locked(cache / f"{key}.lock"):
        found = _ready(cached, key)
        digest = sha256_file(wheel)
        python = venv_python(cached)
        if found is not None and found == digest:
            log.info("reusing the venv with %s (%s)", wheel.name, cached)
            done, how = subprocess.CompletedProcess([], 0, "", ""), "reused"
        elif found is not None and _replace_wheel(python, wheel).returncode == 0:
            log.info("reusing the venv with %s's dependencies (%s)", wheel.name, cached)
            done, how = subprocess.CompletedProcess([], 0, "", ""), "reused, wheel replaced"
        else:
            shutil.rmtree(cached, ignore_errors=True)
            python, done = venv_with_wheel(cached, wheel)
            how = "new"
        if done.returncode == 0:
            (cached / READY).write_text(
                json.dumps({"key": key, "wheel_sha256": digest}) + "\n", encoding="utf-8"
            )
        else:
            (cached / READY).unlink(missing_ok=True)
        record(f"{phase}: venv with the wheel ({how})", time.monotonic() - start)
        yield WheelVenv(python, done, how)
    prune(cache, keep=key)


def _ready(cached: Path, key: str) -> str | None:
    """The sha256 of the wheel a complete cached venv holds, or None (absent, incomplete)."""
    try:
        data = json.loads((cached / READY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not venv_python(cached).exists():
        return None
    return str(data.get("wheel_sha256", ""))


def _replace_wheel(python: Path, wheel: Path) -> subprocess.CompletedProcess[str]:
    """Put a rebuilt wheel into a venv that has its (unchanged) dependencies."""
    env = install_env()
    uv = uv_binary()
    if uv:
        done = _run(
            [uv, "pip", "install", "-q", "--python", str(python), "--reinstall", "--no-deps"]
            + [str(wheel)],
            uv_env(env),
        )
        if done.returncode == 0:
            return done
    return _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
        + ["--force-reinstall", "--no-deps", str(wheel)],
        env,
    )


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One process at a time makes or refreshes what ``path`` guards: a cached venv (parallel
    rehearsals share it), the local Sigstore's install (pytest-xdist workers). POSIX only;
    elsewhere a no-op (what it guards is still written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prune(cache: Path, keep: str) -> None:
    """Remove all but the most recently used cached venvs (never one in use: it is locked)."""
    ready = sorted(
        (p for p in cache.iterdir() if (p / READY).is_file() and p.name != keep),
        key=lambda p: (p / READY).stat().st_mtime,
        reverse=True,
    )
    for stale in ready[_KEEP:]:
        with locked(cache / f"{stale.name}.lock"):
            shutil.rmtree(stale, ignore_errors=True)
