"""The audit is bounded like every other client: a hostile vulnerability service (an endless
answer, a slow drip) ends the audit within its deadline, naming the URL and the limit, and
the audit's memory stays small (issue 27). The gate's audit (pip-audit behind the bounded
proxy) and the image's (its own OSV queries) are both held to it."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.gate import gate_args
from upm_ci.image.sbom import ImagePackage, audit_image
from upm_ci.osv_http import OsvLimits, OsvSession
from upm_ci.standins.osv import OsvStandIn
from upm_ci.vulnerability_audit import audit_packages

TODAY = dt.date(2026, 11, 26)
#: The bound the audit's memory is held to, child processes included (issue 27: 200 MB).
MAX_RSS_MB = 200
LocalIndex = Callable[..., Path]

DEBIAN_ADVISORY = {
    "id": "DEBIAN-CVE-2099-0003",
    "affected": [
        {
            "package": {"ecosystem": "Debian:12", "name": "zlib"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"fixed": "1:1.2.13.dfsg-1+deb12u1"}],
                }
            ],
        }
    ],
}


class HostileOsv:
    """An OSV look-alike on 127.0.0.1: ``endless`` sends JSON-looking bytes as fast as the
    loopback takes them, ``drip`` one byte every 50 ms, ``drip-headers`` never finishes its
    headers. Every mode goes on until the client hangs up."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent = 0
        self.requests = 0
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hostile.requests += 1
                try:
                    if hostile.mode == "gzip":
                        body = gzip.compress(b'{"vulns": []}')
                        self.send_response(200)
                        self.send_header("Content-Encoding", "gzip")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    if hostile.mode == "drip-headers":
                        self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                        while True:
                            self.wfile.write(b"X")
                            self.wfile.flush()
                            time.sleep(0.05)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"vulns": [')
                    chunk = b'{"id": "GHSA-xxxx-xxxx-xxxx", "aliases": []},' * 1500
                    while True:
                        if hostile.mode == "endless":
                            self.wfile.write(chunk)
                            hostile.sent += len(chunk)
                        else:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            hostile.sent += 1
                            time.sleep(0.05)
                except OSError:
                    return  # the client hung up: what it should do

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/query"

    def __enter__(self) -> HostileOsv:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endless() -> Iterator[HostileOsv]:
    with HostileOsv("endless") as server:
        yield server


def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0")


# --- the gate's audit (pip-audit behind the bounded proxy) -----------------------------------
def test_an_endless_answer_fails_the_audit_naming_the_url_and_the_limit(
    endless: HostileOsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fast_retries(monkeypatch)
    started = time.monotonic()
    outcome = audit_packages([("idna", "3.7")], osv_url=endless.url, allow=[], today=TODAY)
    elapsed = time.monotonic() - started
    assert not outcome.passed
    (problem,) = outcome.problems
    assert endless.url in problem
    assert "larger than the limit of 32 MiB per answer (UPM_OSV_MAX_ANSWER)" in problem
    # Over a limit is a verdict on the service, never retried: one request, one answer cut.
    assert endless.requests == 1
    assert 32 << 20 < endless.sent < 64 << 20 and elapsed < 60


def test_the_total_limit_holds_across_answers(
    endless: HostileOsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_OSV_MAX_ANSWER", str(1 << 20))
    monkeypatch.setenv("UPM_OSV_MAX_TOTAL", str(1 << 20))
    session = OsvSession(endless.url)
    outcome = audit_packages(
        [("idna", "3.7")], osv_url=endless.url, allow=[], today=TODAY, session=session
    )
    (problem,) = outcome.problems
    assert "1 MiB" in problem and endless.url in problem
    assert session.total <= (1 << 20) + (1 << 16)  # read one recv past the limit at most


@pytest.mark.parametrize("mode", ["drip", "drip-headers"])
def test_a_slow_drip_ends_at_the_deadline(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fast_retries(monkeypatch)
    monkeypatch.setenv("UPM_OSV_DEADLINE", "3")
    with HostileOsv(mode) as drip:
        started = time.monotonic()
        outcome = audit_packages([("idna", "3.7")], osv_url=drip.url, allow=[], today=TODAY)
        elapsed = time.monotonic() - started
    assert not outcome.passed
    (problem,) = outcome.problems
    assert drip.url in problem
    assert "within the audit's deadline of 3 s (UPM_OSV_DEADLINE)" in problem
    assert 3 <= elapsed < 15


def test_a_compressed_answer_is_refused_not_unpacked(monkeypatch: pytest.MonkeyPatch) -> None:
    """upm-ci asks for an uncompressed answer, so the size limits count what arrives (no gzip
    bomb can unfold in the audit); a server that compresses anyway fails the audit."""
    _fast_retries(monkeypatch)
    with HostileOsv("gzip") as server:
        outcome = audit_packages([("idna", "3.7")], osv_url=server.url, allow=[], today=TODAY)
    (problem,) = outcome.problems
    assert f"{server.url} answered compressed (Content-Encoding 'gzip')" in problem


def test_bad_limit_settings_are_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    from upm_ci.errors import InputError

    monkeypatch.setenv("UPM_OSV_DEADLINE", "soon")
    with pytest.raises(InputError, match="UPM_OSV_DEADLINE='soon' is not a number"):
        OsvLimits.from_env()
    monkeypatch.setenv("UPM_OSV_DEADLINE", "-1")
    with pytest.raises(InputError, match="must be a positive number"):
        OsvLimits.from_env()


_WRAPPER = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    started = time.monotonic()
    code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"code": code, "seconds": time.monotonic() - started,
                      "max_rss_kb": usage.ru_maxrss}))
    """
)


def _measured(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``command`` under a wrapper that reports the largest RSS of it and its children."""
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    env.update(UPM_RETRY_ATTEMPTS="2", UPM_RETRY_BASE_DELAY="0", **extra)
    return env


def test_the_gate_against_an_endless_answer_ends_in_time_and_stays_small(
    tmp_path: Path, local_index: LocalIndex, endless: HostileOsv
) -> None:
    local_index("idna", "3.7")
    root = tmp_path / "p"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1.2.0"\ndependencies = ["idna==3.7"]\n\n'
        '[tool.upm-release]\nprevious-tag = "v1.1.0"\nplugins = []\n'
    )
    report = root / "gate.json"
    deadline = 60
    measured = _measured(
        [sys.executable, "-m", "upm_ci", *gate_args(root, "--osv-url", endless.url)],
        _env(UPM_OSV_DEADLINE=str(deadline)),
    )
    assert measured["code"] == 1
    assert measured["seconds"] < deadline
    checks = {c["id"]: c for c in json.loads(report.read_text())["checks"]}
    audit_row = checks["dependency-audit"]
    assert audit_row["status"] == "fail"
    assert (
        f"the vulnerability service at {endless.url} sent an answer larger than the limit"
        in (audit_row["reason"])
    )
    assert "32 MiB per answer (UPM_OSV_MAX_ANSWER)" in audit_row["findings"][0]["message"]
    assert endless.sent > 32 << 20  # the server did try: the limit, not luck, stopped it
    assert measured["max_rss_kb"] < MAX_RSS_MB * 1024, measured


# --- the image's audit (PyPI through pip-audit, Debian through upm-ci's own queries) --------
IMAGE_PACKAGES = [
    ImagePackage("PyPI", "idna", "3.7"),
    ImagePackage("Debian:12", "zlib", "1:1.2.13.dfsg-1", binary="zlib1g"),
]


def test_the_image_audit_still_finds_a_debian_advisory() -> None:
    with OsvStandIn([DEBIAN_ADVISORY]) as osv:
        outcome, unfixed = audit_image(IMAGE_PACKAGES, osv_url=osv.query_url, allow=[], today=TODAY)
    assert [v.id for v in outcome.blocking] == ["DEBIAN-CVE-2099-0003"]
    assert outcome.problems == [] and unfixed == []


def test_the_image_audit_against_an_endless_answer_fails_naming_the_limit(
    endless: HostileOsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fast_retries(monkeypatch)
    debian_only = [p for p in IMAGE_PACKAGES if p.ecosystem != "PyPI"]
    outcome, _ = audit_image(debian_only, osv_url=endless.url, allow=[], today=TODAY)
    assert not outcome.passed
    (problem,) = outcome.problems
    assert f"the vulnerability service at {endless.url} sent an answer larger than the limit" in (
        problem
    )
    assert endless.requests == 1


def test_the_image_audit_memory_stays_under_the_bound(endless: HostileOsv) -> None:
    script = textwrap.dedent(
        f"""
        import datetime, json, sys
        from upm_ci.image.sbom import ImagePackage, audit_image
        packages = [ImagePackage("PyPI", "idna", "3.7"),
                    ImagePackage("Debian:12", "zlib", "1:1.2.13.dfsg-1")]
        outcome, _ = audit_image(packages, osv_url={endless.url!r}, allow=[],
                                 today=datetime.date(2026, 11, 26))
        print(json.dumps(outcome.problems), file=sys.stderr)
        sys.exit(0 if len(outcome.problems) == 2 and all("32 MiB" in p for p in outcome.problems)
                 else 5)
        """
    )
    measured = _measured([sys.executable, "-c", script], _env(UPM_OSV_DEADLINE="60"))
    assert measured["code"] == 0, measured  # both halves failed, each naming the limit
    assert measured["seconds"] < 60
    assert measured["max_rss_kb"] < MAX_RSS_MB * 1024, measured


def test_the_image_audit_slow_drip_ends_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    _fast_retries(monkeypatch)
    monkeypatch.setenv("UPM_OSV_DEADLINE", "2")
    debian_only = [p for p in IMAGE_PACKAGES if p.ecosystem != "PyPI"]
    with HostileOsv("drip") as drip:
        started = time.monotonic()
        outcome, _ = audit_image(debian_only, osv_url=drip.url, allow=[], today=TODAY)
        elapsed = time.monotonic() - started
    (problem,) = outcome.problems
    assert "deadline of 2 s (UPM_OSV_DEADLINE)" in problem and drip.url in problem
    assert elapsed < 10


def test_pip_audit_reaches_the_local_proxy_despite_an_http_proxy_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An HTTP(S)_PROXY in the environment is for the way out to the service; pip-audit's
    request to the audit's proxy on 127.0.0.1 must not be sent there."""
    _fast_retries(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.delenv("no_proxy", raising=False)
    with OsvStandIn() as osv:
        url = osv.query_url.replace("127.0.0.1", "localhost")
        outcome = audit_packages([("idna", "3.6")], osv_url=url, allow=[], today=TODAY)
    assert outcome.problems == []
    assert ["GHSA-jjg7-2v4v-x38h" in v.ids for v in outcome.blocking] == [True]
