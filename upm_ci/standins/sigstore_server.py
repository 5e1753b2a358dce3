"""Run the local Sigstore stand-in (Fulcio, CT log, Rekor v1 and v2, TSA) from Python.

The services are ``@sigstore/mock`` behind a small Node server (``sigstore/server.js``).
Its npm dependencies are installed once per lock file into a user cache, never into the
package folder (site-packages may be read-only). ``sigstore`` itself is imported only by
``SigstoreStandIn.trust_config()``, so importing this module stays cheap for the CLI.

Faults: ``fault_rate``/``fault_seed``/``fault_kinds`` (the shared seeded plan of
:mod:`upm_ci.standins.faults`: 5xx, 429, reset, slow) are applied by a small Python proxy
(:class:`~upm_ci.standins.faults.FaultProxy`) in front of the Node server, started only when
faults are asked for; the trust configs' signing URLs then name the proxy (the trusted root is
unchanged). Targeted faults with bodies and delays stay the Node server's own
(:meth:`SigstoreStandIn.inject_fault`, its ``/__admin/faults`` API), which tests arm per path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from upm_ci.errors import ServiceError
from upm_ci.standins._server import StandIn, stop_process, write_atomically
from upm_ci.standins.faults import COMMON_KINDS, FaultPlan, FaultProxy, check_kinds
from upm_ci.venvs import locked

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig

__all__ = [
    "SigstoreStandIn",
    "StandInError",
    "cache_root",
    "ensure_node_deps",
]

#: What ``fault_rate`` draws from by default: 503, as the Node server's own --fault-rate did.
SIGSTORE_DEFAULT_FAULT_KINDS = ("503",)
_PACKAGE_FILES = ("package.json", "package-lock.json")
_NPM_CI = ("ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")


class StandInError(ServiceError):
    """A local stand-in could not be installed or started; the message says what to do."""


def cache_root() -> Path:
    """``$UPM_STANDIN_CACHE``, else ``$XDG_CACHE_HOME/upm-ci``, else ``~/.cache/upm-ci``."""
    explicit = os.environ.get("UPM_STANDIN_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "upm-ci"


def _source() -> Path:
    return Path(__file__).resolve().parent / "sigstore"


def _which(name: str, what: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StandInError(
            f"{what} ({name!r}) was not found. The Sigstore stand-in needs Node.js "
            ">= 20.17 with npm: install them (e.g. `apt-get install nodejs npm`), or point "
            "UPM_STANDIN_NODE / UPM_STANDIN_NPM at them."
        )
    return found


def _write_if_changed(dest: Path, data: bytes) -> None:
    """Replace ``dest`` atomically, so concurrent starters never see half a file."""
    if dest.exists() and dest.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, dest)


def ensure_node_deps(cache: Path | None = None, *, npm: str | None = None) -> Path:
    """Install the server's npm dependencies once, keyed by the lock file; return the dir.

    The directory also receives a copy of ``server.js`` so that Node resolves the
    dependencies next to it. Safe to call from several processes at once.
    """
    src = _source()
    lock = (src / "package-lock.json").read_bytes()
    key = hashlib.sha256(lock).hexdigest()[:16]
    parent = (cache or cache_root()) / "sigstore-standin"
    dest = parent / key
    marker = dest / ".upm-complete"
    if not marker.exists():
        with locked(parent / f"{key}.lock"):
            if not marker.exists():
                _install(src, parent, dest, npm)
    _write_if_changed(dest / "server.js", (src / "server.js").read_bytes())
    return dest


def _install(src: Path, parent: Path, dest: Path, npm: str | None) -> None:
    npm_exe = _which(npm or os.environ.get("UPM_STANDIN_NPM") or "npm", "npm")
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".install-"))
    try:
        for name in _PACKAGE_FILES:
            (tmp / name).write_bytes((src / name).read_bytes())
        proc = subprocess.run(
            [npm_exe, *_NPM_CI],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout)[-2000:]
            raise StandInError(
                f"`npm ci` for the Sigstore stand-in failed (exit {proc.returncode}) in "
                f"{tmp}. Is the npm registry reachable?\n{tail}"
            )
        (tmp / ".upm-complete").write_text("ok\n")
        if dest.exists() and not (dest / ".upm-complete").exists():
            shutil.rmtree(dest)  # a partial directory from an interrupted older layout
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / ".upm-complete").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class SigstoreStandIn(StandIn):
    """Fulcio + CT log + Rekor v1/v2 + TSA on 127.0.0.1, for real sigstore-python.

    Use as a context manager. ``trust_config_path`` selects Rekor v1 by default and lists
    Rekor v2 as well (``ClientTrustConfig.force_tlog_version = 2`` or the CLI's
    ``--rekor-version 2`` picks it); ``trust_config_v2_path`` selects Rekor v2 by default.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        delay_ms: int = 0,
        rekor_delay_ms: int = 0,
        fault_rate: float = 0.0,
        fault_seed: int = 1,
        fault_kinds: Sequence[str] = SIGSTORE_DEFAULT_FAULT_KINDS,
        retry_after: int = 1,
        workdir: Path | None = None,
        cache: Path | None = None,
        node: str | None = None,
        npm: str | None = None,
        startup_timeout: float = 90.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        """Options mirror the server's flags; ``workdir`` holds the trust config files.
        ``fault_*`` are the shared fault plan, applied by a proxy (module doc)."""
        self._port = port
        self._delay_ms = delay_ms
        self._rekor_delay_ms = rekor_delay_ms
        check_kinds(fault_kinds, COMMON_KINDS, "Sigstore")
        self.faults = FaultPlan(
            rate=fault_rate, seed=fault_seed, kinds=fault_kinds, retry_after=retry_after
        )
        self._proxy: FaultProxy | None = None
        self._workdir = workdir
        self._cache = cache
        self._node = node
        self._npm = npm
        self._startup_timeout = startup_timeout
        self._extra_args = list(extra_args)
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ready: dict[str, Any] = {}

    # -- lifecycle

    def start(self) -> SigstoreStandIn:
        """Install dependencies if needed, start the server and wait for its ready line."""
        if self._proc is not None:
            return self
        node = _which(self._node or os.environ.get("UPM_STANDIN_NODE") or "node", "Node.js")
        appdir = ensure_node_deps(self._cache, npm=self._npm)
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="upm-sigstore-")
            workdir = Path(self._tmp.name)
        else:
            workdir = self._workdir
            workdir.mkdir(parents=True, exist_ok=True)
        v1 = workdir / "trust-config.json"
        v2 = workdir / "trust-config-rekor-v2.json"
        cmd = [
            node,
            str(appdir / "server.js"),
            "--port",
            str(self._port),
            "--trust-config-out",
            str(v1),
            "--trust-config-v2-out",
            str(v2),
            "--delay-ms",
            str(self._delay_ms),
            "--rekor-delay-ms",
            str(self._rekor_delay_ms),
            "--exit-on-stdin-eof",
            *self._extra_args,
        ]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=appdir,
        )
        try:
            self._ready = self._wait_ready(self._proc)
            if self.faults.active:
                self._start_fault_proxy()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_fault_proxy(self) -> None:
        """The fault proxy in front of the Node server, and trust configs that sign through it."""
        node_url = str(self._ready["url"])
        self._proxy = FaultProxy(
            int(self._ready["port"]),
            self.faults,
            label="sigstore",
            exempt=lambda path: path.startswith("/__admin/"),
        )
        for key in ("trust_config", "trust_config_v2"):
            path = Path(self._ready[key])
            config = json.loads(path.read_text(encoding="utf-8"))
            signing = json.dumps(config["signingConfig"]).replace(node_url, self._proxy.url)
            config["signingConfig"] = json.loads(signing)
            write_atomically(path, json.dumps(config, indent=2))

    def _wait_ready(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None

        def pump() -> None:
            # Keep draining stdout so the server never blocks on a full pipe.
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="sigstore-standin-stdout", daemon=True).start()
        deadline = time.monotonic() + self._startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StandInError(
                    f"the Sigstore stand-in did not report ready within "
                    f"{self._startup_timeout:.0f} s.{self._stderr_tail()}"
                )
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                if proc.poll() is not None and lines.empty():
                    break
                continue
            if line is None:
                break
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict) and data.get("ready"):
                    return data
        proc.wait(timeout=5)
        raise StandInError(
            f"the Sigstore stand-in exited with code {proc.returncode} before it was ready."
            f"{self._stderr_tail()}"
        )

    def _stderr_tail(self, limit: int = 3000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")[-limit:].strip()
        return f"\nserver stderr:\n{text}" if text else ""

    def stop(self) -> None:
        """Stop the server and remove its temporary files; safe to call twice."""
        proxy, self._proxy = self._proxy, None
        if proxy is not None:
            proxy.close()
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            stop_process(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- where it is

    def _require(self, key: str) -> Any:
        if self._proc is None or key not in self._ready:
            raise StandInError("the Sigstore stand-in is not running; call start() first")
        return self._ready[key]

    @property
    def url(self) -> str:
        """Base URL of every service, e.g. ``http://127.0.0.1:41234`` (the fault proxy's when
        faults are asked for)."""
        node_url = str(self._require("url"))
        return self._proxy.url if self._proxy is not None else node_url

    @property
    def node_url(self) -> str:
        """The Node server itself, bypassing any fault proxy."""
        return str(self._require("url"))

    @property
    def port(self) -> int:
        """The port served on."""
        node_port = int(self._require("port"))
        return self._proxy.port if self._proxy is not None else node_port

    @property
    def pid(self) -> int:
        """The Node server's process id."""
        return int(self._require("pid"))

    @property
    def trust_config_path(self) -> Path:
        """ClientTrustConfig JSON; Rekor v1 unless ``force_tlog_version = 2``."""
        return Path(self._require("trust_config"))

    @property
    def trust_config_v2_path(self) -> Path:
        """ClientTrustConfig JSON whose default transparency log is Rekor v2."""
        return Path(self._require("trust_config_v2"))

    def trust_config_path_for(self, rekor_version: int) -> Path:
        """The trust config file whose default Rekor major version is ``rekor_version``."""
        if rekor_version == 1:
            return self.trust_config_path
        if rekor_version == 2:
            return self.trust_config_v2_path
        raise ValueError(f"Rekor version must be 1 or 2, not {rekor_version!r}")

    def write_trusted_root_jsonl(self, path: Path) -> Path:
        """Write the stand-in's TrustedRoot as ``gh attestation verify --custom-trusted-root``
        reads it, and return ``path``.

        One bare TrustedRoot JSON document per line, every line ending in a newline: gh drops
        a last line without one and then finds no verifier for the stand-in's CA. The root is
        the same in both trust configs (it lists Rekor v1 and v2).
        """
        config = json.loads(self.trust_config_path.read_text(encoding="utf-8"))
        root = config.get("trustedRoot") if isinstance(config, dict) else None
        if not isinstance(root, dict):
            raise StandInError(f"{self.trust_config_path}: no trustedRoot in the trust config")
        line = json.dumps(root, separators=(",", ":"), sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(path, (line + "\n").encode("utf-8"))
        return path

    def trust_config(self, rekor_version: int | None = None) -> ClientTrustConfig:
        """Load the trust config with sigstore-python; ``rekor_version`` forces v1 or v2."""
        from sigstore.models import ClientTrustConfig

        config = ClientTrustConfig.from_json(self.trust_config_path.read_text())
        config.force_tlog_version = rekor_version
        return config

    # -- fault injection and observation

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.node_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.URLError as exc:
            raise StandInError(
                f"Sigstore stand-in admin call {method} {path} failed: {exc}"
            ) from exc

    def inject_fault(
        self,
        status: int = 503,
        *,
        count: int = 1,
        path_prefix: str = "",
        method: str | None = None,
        delay_ms: int = 0,
        drop: bool = False,
        retry_after: int | str | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """Make the next ``count`` matching requests fail.

        Paths: Fulcio ``/api/v2/signingCert``, Rekor ``/api/v1/log/entries`` and
        ``/api/v2/log/entries``, TSA ``/api/v1/timestamp``. ``status=0`` only delays;
        ``drop`` closes the connection without an answer.
        """
        rule: dict[str, Any] = {
            "status": status,
            "count": count,
            "path_prefix": path_prefix,
            "delay_ms": delay_ms,
            "drop": drop,
        }
        if method is not None:
            rule["method"] = method
        if retry_after is not None:
            rule["retry_after"] = str(retry_after)
        if body is not None:
            rule["body"] = body
        result: dict[str, Any] = self._admin("POST", "/__admin/faults", rule)
        return result

    def pending_faults(self) -> list[dict[str, Any]]:
        """Fault rules that still have requests left to fail."""
        result: list[dict[str, Any]] = self._admin("GET", "/__admin/faults")
        return result

    def clear_faults(self) -> None:
        """Drop every pending fault rule."""
        self._admin("DELETE", "/__admin/faults")

    def requests(self, path_prefix: str = "") -> list[dict[str, Any]]:
        """Requests served so far (``method``, ``path``, ``status``, ``ms``), oldest first."""
        served: list[dict[str, Any]] = self._admin("GET", "/__admin/requests")
        return [r for r in served if str(r["path"]).startswith(path_prefix)]

    def clear_requests(self) -> None:
        """Forget the request log."""
        self._admin("DELETE", "/__admin/requests")
