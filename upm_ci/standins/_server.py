"""The lifecycle every stand-in shares, written once.

A stand-in is a context manager (``with X() as x`` starts and stops it) around either an
``http.server`` served from a daemon thread (GitHub, OSV, OIDC, the PyPI capture proxy) or a
subprocess (pypiserver, the Node Sigstore server). The stand-ins that run as their own
process for ``act`` (``python -m upm_ci.standins.github``/``osv``) share the command line
scaffolding too: ``--host``/``--port``/``--ready-file``, an atomically written ready file, and
serving until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

_S = TypeVar("_S", bound="StandIn")
_T = TypeVar("_T", bound="ThreadedStandIn")


class StandIn:
    """``with standin:`` means ``start()`` then, whatever happens, ``stop()``."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerThread:
    """An ``http.server`` answering from a daemon thread until :meth:`close`."""

    def __init__(self, server: ThreadingHTTPServer, name: str) -> None:
        server.daemon_threads = True
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that close() returns at once
            name=f"{name}:{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class ThreadedStandIn(StandIn):
    """A stand-in that is one threaded HTTP server on ``host``; subclasses make the server."""

    label = "local"  # how errors and thread names call it: "the GitHub stand-in"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._serving: ServerThread | None = None

    def _make_server(self) -> ThreadingHTTPServer:
        """A bound (not yet serving) server whose handlers reach back to ``self``."""
        raise NotImplementedError

    def start(self: _T) -> _T:
        """Start serving; a started stand-in stays as it is."""
        if self._serving is None:
            self._serving = ServerThread(self._make_server(), f"{self.label.lower()}-standin")
        return self

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.close()

    @property
    def port(self) -> int:
        """The port served on (the stand-in must be started)."""
        if self._serving is None:
            raise RuntimeError(f"the {self.label} stand-in is not started")
        return self._serving.port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self._host}:{self.port}"


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    doc: Any,
    content_type: str = "application/json",
) -> None:
    """Answer ``handler``'s request with ``doc`` as JSON."""
    data = json.dumps(doc).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def stop_process(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Terminate a server process, killing it if it does not exit within 5 s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_until_answering(
    process: subprocess.Popen[Any],
    log_path: Path | None,
    answers: Callable[[], bool],
    what: str,
    timeout: float,
) -> None:
    """Poll ``answers`` until it is true (a refused connection means "not yet"); RuntimeError
    with the tail of ``log_path`` when ``process`` exits first, or when ``timeout`` passes.
    The caller stops what it started."""
    import time

    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path else ""
            raise RuntimeError(f"{what} exited at start:\n{log[-2000:]}")
        try:
            if answers():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, for servers that cannot be told to pick one."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader polling ``path`` never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def standin_parser(module: str, description: str, ready_keys: str) -> argparse.ArgumentParser:
    """The options every ``python -m upm_ci.standins.<module>`` server takes."""
    parser = argparse.ArgumentParser(
        prog=f"python -m upm_ci.standins.{module}", description=description
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", help=f"write {{{ready_keys}, port, pid}} here when ready")
    return parser


def serve_until_signal(
    standin: ThreadedStandIn,
    *,
    ready_file: str | None,
    urls: Callable[[], dict[str, str]],
    serving: str,
) -> None:
    """Serve until SIGTERM or SIGINT; once the port is open, write ``{**urls(), port, pid}``
    to ``ready_file`` and say on stderr which of those URLs (``serving``) it serves."""
    stopped = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with standin:
        ready = {**urls(), "port": standin.port, "pid": os.getpid()}
        if ready_file:
            write_atomically(Path(ready_file), json.dumps(ready))
        print(f"{standin.label} stand-in serving {ready[serving]}", file=sys.stderr, flush=True)
        while not stopped.wait(0.5):
            pass
