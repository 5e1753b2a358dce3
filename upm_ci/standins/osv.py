"""A local OSV API (https://osv.dev) on 127.0.0.1, for pip-audit's ``-s osv --osv-url``.

osv.dev does not answer on these machines, and a vulnerability gate that is only ever tested
against "no vulnerabilities" proves nothing. This stand-in answers ``POST /v1/query`` and
``POST /v1/querybatch`` from a list of OSV-schema advisories, matching a package version
against each advisory's ``affected`` entries (explicit ``versions``, or ``ECOSYSTEM`` ranges
of ``introduced``/``fixed``/``last_affected`` events compared with :mod:`packaging`; for
``Debian:*`` ecosystems in dpkg's own order, ``dpkg --compare-versions``), and
serves ``GET /v1/vulns/{id}``. ``fail=True`` (or :meth:`OsvStandIn.set_failing`) answers 503
to every query, and :meth:`OsvStandIn.fail_next` fails only the next few, so tests can prove
that an unreachable service never reads as "no vulnerabilities". ``fault_rate``/``fault_seed``/
``fault_kinds`` (``--fault-*``) inject seeded transient faults (5xx, 429, reset, slow) into
every request, as the other stand-ins do (:mod:`upm_ci.standins.faults`).

Use from Python::

    with OsvStandIn() as osv:            # the bundled demo DB of real advisories
        subprocess.run(["pip-audit", "-s", "osv", "--osv-url", osv.query_url, ...])

Command line (serves until SIGTERM/SIGINT; ``upm-ci rehearse`` and ``act`` runs use it)::

    python -m upm_ci.standins.osv --port 0 --db advisories.json --ready-file ready.json

The ready file is written atomically once the port is open: ``{"url", "query_url", "port",
"pid"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from upm_ci.standins._server import (
    ThreadedStandIn,
    send_json,
    serve_until_signal,
    standin_parser,
)
from upm_ci.standins.faults import (
    COMMON_KINDS,
    DEFAULT_FAULT_KINDS,
    FaultPlan,
    FaultRule,
    add_fault_options,
    answer_fault,
    check_kinds,
    fault_kwargs,
)

Advisory = dict[str, Any]


def demo_db() -> list[Advisory]:
    """The bundled advisories: real, public ones (idna, requests, jinja2, urllib3, certifi)."""
    text = resources.files("upm_ci.standins").joinpath("osv_demo_db.json").read_text("utf-8")
    advisories: list[Advisory] = json.loads(text)
    return advisories


def load_db(path: str | os.PathLike[str]) -> list[Advisory]:
    """Advisories from a JSON file: a list of OSV records, or ``{"vulns": [...]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    vulns = data.get("vulns") if isinstance(data, dict) else data
    if not isinstance(vulns, list) or not all(isinstance(v, dict) and "id" in v for v in vulns):
        raise ValueError(f"{path}: expected a list of OSV records, each with an id")
    return vulns


def affects(advisory: Mapping[str, Any], package: str, version: str, ecosystem: str) -> bool:
    """Does ``advisory`` cover ``package`` at ``version``? (names compared PEP 503-normalized)."""
    if advisory.get("withdrawn"):
        return False
    wanted = canonicalize_name(package)
    for affected in advisory.get("affected", []):
        pkg = affected.get("package", {})
        if pkg.get("ecosystem") != ecosystem or canonicalize_name(pkg.get("name", "")) != wanted:
            continue
        if version in affected.get("versions", []):
            return True
        if any(_in_range(r, version, ecosystem) for r in affected.get("ranges", [])):
            return True
    return False


def _in_range(range_: Mapping[str, Any], version: str, ecosystem: str = "PyPI") -> bool:
    """OSV range semantics: events sorted by version; introduced opens, fixed/last_affected
    closes (fixed exclusive, last_affected inclusive)."""
    if range_.get("type") != "ECOSYSTEM":
        return False
    if ecosystem.startswith("Debian"):
        return _in_debian_range(range_, version)
    try:
        current = Version(version)
    except InvalidVersion:
        return False
    events: list[tuple[Version, int, str]] = []
    for event in range_.get("events", []):
        for kind, order in (("introduced", 0), ("fixed", 1), ("last_affected", 2)):
            if kind in event:
                text = str(event[kind])
                events.append((Version("0") if text == "0" else Version(text), order, kind))
    affected = False
    for at, _, kind in sorted(events):
        if kind == "introduced" and current >= at:
            affected = True
        elif kind == "fixed" and current >= at:
            affected = False
        elif kind == "last_affected" and current > at:
            affected = False
    return affected


def _dpkg_less(a: str, b: str) -> bool:
    """Debian version order, from the real ``dpkg --compare-versions`` (an independent oracle)."""
    done = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False)
    return done.returncode == 0


def _in_debian_range(range_: Mapping[str, Any], version: str) -> bool:
    """The same semantics in Debian's version order; no dpkg here: nothing matches by range."""
    if shutil.which("dpkg") is None:
        return False
    affected = False
    for event in range_.get("events", []):  # OSV lists Debian events in order
        for kind, at in event.items():
            at = str(at)
            if kind == "introduced" and (at == "0" or not _dpkg_less(version, at)):
                affected = True
            elif kind == "fixed" and not _dpkg_less(version, at):
                affected = False
            elif kind == "last_affected" and _dpkg_less(at, version):
                affected = False
    return affected


@dataclass(frozen=True)
class Query:
    """One package query as the stand-in received it (for tests that count what was asked)."""

    name: str
    version: str
    ecosystem: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the stand-in's access log would drown test output."""

    def _faulted(self) -> bool:
        """Did the fault plan answer (or drop) this request?"""
        kind = self.server.standin.faults.decide(self.command, self.path)
        return kind is not None and answer_fault(self, kind, self.server.standin.faults, _fault)

    def do_GET(self) -> None:
        if self._faulted():
            return
        prefix = "/v1/vulns/"
        if not self.path.startswith(prefix):
            self._send(404, {"code": 5, "message": "Not Found"})
            return
        wanted = unquote(self.path[len(prefix) :])
        for advisory in self.server.standin.advisories:
            if advisory["id"] == wanted:
                self._send(200, advisory)
                return
        self._send(404, {"code": 5, "message": "Bug not found."})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path not in ("/v1/query", "/v1/querybatch"):
            self._send(404, {"code": 5, "message": "Not Found"})
            return
        if self.server.standin.take_failure():
            self._send(503, {"code": 14, "message": "Service Unavailable (stand-in fault)"})
            return
        if self._faulted():
            return
        try:
            body = json.loads(raw or b"{}")
            if self.path == "/v1/query":
                self._send(200, self.server.standin.answer(body))
            else:
                results = [self.server.standin.answer(q, brief=True) for q in body["queries"]]
                self._send(200, {"results": results})
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self._send(400, {"code": 3, "message": f"Invalid query: {e}"})

    def _send(self, status: int, doc: Mapping[str, Any]) -> None:
        send_json(self, status, doc)


def _fault(status: int) -> tuple[str, bytes]:
    """An injected fault's body, shaped as osv.dev's errors (gRPC code 14: unavailable)."""
    code = 8 if status == 429 else 14  # RESOURCE_EXHAUSTED / UNAVAILABLE
    doc = {"code": code, "message": f"HTTP {status} (stand-in fault)"}
    return "application/json", json.dumps(doc).encode()


class _Server(ThreadingHTTPServer):
    standin: OsvStandIn


class OsvStandIn(ThreadedStandIn):
    """The server. Start with ``with`` or :meth:`start`; ``advisories`` default to the demo DB."""

    label = "OSV"

    def __init__(
        self,
        vulns: list[Advisory] | None = None,
        *,
        fail: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        fault_kinds: Sequence[str] = DEFAULT_FAULT_KINDS,
        retry_after: int = 1,
    ) -> None:
        super().__init__(host=host, port=port)
        check_kinds(fault_kinds, COMMON_KINDS, self.label)
        self.faults = FaultPlan(
            rate=fault_rate, seed=fault_seed, kinds=fault_kinds, retry_after=retry_after
        )
        self.advisories: list[Advisory] = demo_db() if vulns is None else list(vulns)
        self._failing = fail
        self._lock = threading.Lock()
        self._queries: list[Query] = []

    def _make_server(self) -> _Server:
        server = _Server((self._host, self._port), _Handler)
        server.standin = self
        return server

    @property
    def query_url(self) -> str:
        """What pip-audit's ``--osv-url`` takes: the full ``/v1/query`` URL."""
        return f"{self.url}/v1/query"

    # -- state ----------------------------------------------------------------------------

    def add(self, *advisories: Advisory) -> None:
        with self._lock:
            self.advisories.extend(advisories)

    def set_failing(self, failing: bool) -> None:
        """Answer 503 to every query from now on (``True``) or never again (``False``)."""
        with self._lock:
            self._failing = failing
        with self.faults.lock:
            self.faults.rules.clear()

    def fail_next(self, count: int) -> None:
        """Answer 503 to the next ``count`` queries only (a transient outage)."""
        self.faults.add_rule(
            FaultRule("503", method="POST", path_regex=r"^/v1/query(batch)?$", count=count)
        )

    def take_failure(self) -> bool:
        """Is the service down for good (``fail``/:meth:`set_failing`)?"""
        with self._lock:
            return self._failing

    @property
    def queries(self) -> list[Query]:
        """Every package query answered so far (failed ones excluded), oldest first."""
        with self._lock:
            return list(self._queries)

    def answer(self, query: Mapping[str, Any], *, brief: bool = False) -> dict[str, Any]:
        """The OSV answer to one query: ``{}`` when nothing matches, as osv.dev does."""
        package = query["package"]
        name, ecosystem = str(package["name"]), str(package.get("ecosystem", "PyPI"))
        version = str(query["version"])
        with self._lock:
            self._queries.append(Query(name=name, version=version, ecosystem=ecosystem))
            found = [a for a in self.advisories if affects(a, name, version, ecosystem)]
        if not found:
            return {}
        if brief:
            return {"vulns": [{"id": a["id"], "modified": a.get("modified", "")} for a in found]}
        return {"vulns": found}


def build_parser() -> argparse.ArgumentParser:
    parser = standin_parser(
        "osv", "Serve a local OSV API (POST /v1/query) until SIGTERM or Ctrl-C.", "url, query_url"
    )
    parser.add_argument("--db", help="JSON list of OSV advisories; default: the bundled demo DB")
    parser.add_argument("--fail", action="store_true", help="answer 503 to every query")
    add_fault_options(parser, DEFAULT_FAULT_KINDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        advisories = load_db(args.db) if args.db else None
        standin = OsvStandIn(
            advisories, fail=args.fail, host=args.host, port=args.port, **fault_kwargs(args)
        )
    except (OSError, ValueError) as e:
        print(f"osv stand-in: {e}", file=sys.stderr)
        return 2
    serve_until_signal(
        standin,
        ready_file=args.ready_file,
        urls=lambda: {"url": standin.url, "query_url": standin.query_url},
        serving="query_url",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
