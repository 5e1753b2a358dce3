"""The vulnerability audit both the gate (``dependency-audit``) and the sbom phase run.

It runs real pip-audit over exactly the given pins (a pinned requirements file with
``--no-deps --disable-pip``: nothing is resolved, nothing installed) against OSV, and fails
closed. pip-audit's own exit status is not trusted alone: its default service skips every
package it cannot look up and still reports "No known vulnerabilities found" (see
docs/local-services), so the audit uses ``--strict`` *and* reads every skip reason itself.

Allow-list policy: an entry allows a vulnerability when its ``id`` equals the advisory's id
or one of its aliases (case-insensitive), and only up to and including ``expires``. Any
expired entry fails the audit, matched or not: an expiry date is a promise to look again,
and a stale entry would silently allow the next advisory that reuses the id's alias.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from upm_ci.config import AuditAllowance
from upm_ci.errors import InputError, ServiceError
from upm_ci.osv_http import BoundedOsvProxy, OsvLimitExceeded, OsvSession
from upm_ci.retry import RetryPolicy, call_with_retry

log = logging.getLogger(__name__)

#: pip-audit's default OSV endpoint, used when no ``osv-url`` is configured.
OSV_QUERY_URL = "https://api.osv.dev/v1/query"

#: What pip-audit prints when the vulnerability service could not be reached or answered 5xx:
#: worth another try, unlike a bad requirement.
_TRANSIENT = re.compile(
    r"ServiceError|ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|"
    r"HTTPError: 5\d\d|network may be blocking"
)
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@dataclass(frozen=True)
class Vulnerability:
    """One advisory affecting one pinned package; ``allowed_by`` is the entry accepting it."""

    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]
    description: str = ""
    allowed_by: AuditAllowance | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def describe(self) -> str:
        """``GHSA-x (CVE-y) in idna 3.6, fixed in 3.7``: one line for findings and tables."""
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fixed = (
            f"fixed in {', '.join(self.fix_versions)}"
            if self.fix_versions
            else "no later fixed version known"
        )
        return f"{self.id}{aliases} in {self.package} {self.version}, {fixed}"


@dataclass(frozen=True)
class SkippedPackage:
    """A package pip-audit could not check (fails the audit: unchecked is not clean)."""

    name: str
    reason: str


@dataclass
class AuditOutcome:
    """What the audit found. Fail closed: :attr:`passed` only when everything was checked."""

    packages: tuple[tuple[str, str], ...]
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    skipped: list[SkippedPackage] = field(default_factory=list)
    expired: list[AuditAllowance] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Vulnerability]:
        """Vulnerabilities no valid allow-list entry accepts."""
        return [v for v in self.vulnerabilities if v.allowed_by is None]

    @property
    def allowed(self) -> list[Vulnerability]:
        return [v for v in self.vulnerabilities if v.allowed_by is not None]

    @property
    def passed(self) -> bool:
        return not (self.blocking or self.skipped or self.expired or self.problems)

    def summary(self) -> str:
        """One line for a check's Status column or a log message."""
        if self.passed:
            text = f"no known vulnerabilities in {len(self.packages)} packages"
            if self.allowed:
                text += "; allowed: " + "; ".join(
                    f"{v.id} in {v.package} {v.version} ({_allowance_text(v.allowed_by)})"
                    for v in self.allowed
                )
            return text
        parts = []
        if self.blocking:
            parts.append(f"{len(self.blocking)} vulnerabilities")
        if self.expired:
            parts.append(f"{len(self.expired)} expired allow-list entries")
        if self.skipped:
            parts.append(f"{len(self.skipped)} packages not checked")
        if self.problems:
            parts.append(f"audit failed: {self.problems[0]}")
        return "; ".join(parts) + f" (in {len(self.packages)} packages)"


def _allowance_text(entry: AuditAllowance | None) -> str:
    return f"{entry.reason}, until {entry.expires.isoformat()}" if entry else ""


@dataclass(frozen=True)
class PipAuditRun:
    """What one pip-audit process left: its exit status, JSON report (if any), stderr."""

    returncode: int
    report: dict[str, Any] | None
    stderr: str


def run_pip_audit(requirements: Path, *, osv_url: str, timeout: float = 300) -> PipAuditRun:
    """Run real pip-audit over a pinned requirements file (the seam unit tests replace).

    ``osv_url`` is the audit's bounded proxy (:mod:`upm_ci.osv_http`); ``timeout`` bounds the
    process and is also pip-audit's socket timeout, so the proxy's deadline decides first."""
    report_path = requirements.with_name("pip-audit.json")
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--strict",
        "--vulnerability-service",
        "osv",
        "--osv-url",
        osv_url,
        "--timeout",
        str(max(1, math.ceil(timeout))),
        "--format",
        "json",
        "--aliases=on",
        "--desc=on",
        "--progress-spinner",
        "off",
        "--output",
        str(report_path),
    ]
    report_path.unlink(missing_ok=True)
    # The proxy is on 127.0.0.1: never through an HTTP(S)_PROXY the environment names (upm-ci's
    # proxy honours that one on its way to the service).
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(filter(None, [env.get(name, ""), "127.0.0.1"]))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return PipAuditRun(124, None, f"pip-audit timed out after {timeout:.0f}s")
    report = None
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except ValueError:
            report = None
    return PipAuditRun(done.returncode, report, done.stderr)


def audit_packages(
    packages: Sequence[tuple[str, str]],
    *,
    osv_url: str,
    allow: Sequence[AuditAllowance],
    today: dt.date,
    policy: RetryPolicy | None = None,
    session: OsvSession | None = None,
) -> AuditOutcome:
    """Audit exactly ``packages`` (name, version pins) and apply the allow-list.

    pip-audit asks OSV through a bounded proxy (:mod:`upm_ci.osv_http`; ``session`` when the
    audit shares its limits with other queries, else a new one with the ``UPM_OSV_*``
    settings): an answer over a size limit, or an audit past its deadline, fails the audit
    naming the URL and the limit, and is not retried.

    A pip-audit run that fails on the service (5xx, unreachable) is retried per ``policy``;
    if it keeps failing, or fails in any other way, the outcome carries the problem and does
    not pass. Bad pins are an :class:`InputError` naming the package.
    """
    pins = _validated(packages)
    outcome = AuditOutcome(packages=tuple(pins))
    outcome.expired = [entry for entry in allow if entry.expires < today]
    if not pins:
        return outcome
    policy = policy or RetryPolicy.from_env()
    url = osv_url or OSV_QUERY_URL
    session = session or OsvSession(url)
    policy = dataclasses.replace(policy, sleep=session.sleep)
    with (
        tempfile.TemporaryDirectory(prefix="upm-audit-") as tmp,
        BoundedOsvProxy(session) as proxy,
    ):
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in pins), encoding="utf-8")
        try:
            run = call_with_retry(
                lambda: _checked_run(requirements, session, proxy.query_url),
                what=f"vulnerability audit ({url})",
                classify=lambda exc: 0.0 if isinstance(exc, Unavailable) else None,
                policy=policy,
            )
        except ServiceError as e:
            cause = e.__cause__
            if not isinstance(cause, Unavailable):
                outcome.problems.append(str(e))
                return outcome
            outcome.problems.append(
                f"vulnerability audit: still failing after {policy.attempts} attempts: "
                f"{cause.explain(url)}"
            )
            return outcome
        except OsvLimitExceeded as e:
            outcome.problems.append(f"vulnerability audit: {e}")
            return outcome
        except _AuditFailed as e:
            outcome.problems.append(str(e))
            return outcome
    _read_report(run.report or {}, outcome, pins, allow, today)
    return outcome


class _AuditFailed(Exception):
    """pip-audit failed in a way another attempt will not fix."""


class Unavailable(_AuditFailed):
    """pip-audit could not reach the vulnerability service, or it answered 5xx (retried).

    Named for the retry log, which shows the class: "…: Unavailable: connection refused".

    ``unreachable`` is what went wrong on the way (refused, no such host, no answer in
    time), or "" when the service answered with an error (``answer``)."""

    def __init__(self, unreachable: str, answer: str = "") -> None:
        super().__init__(unreachable or answer)
        self.unreachable, self.answer = unreachable, answer

    def explain(self, url: str) -> str:
        """One line for users: which URL, what happened, and the setting that changes it."""
        setting = "osv-url ([tool.upm-release] osv-url, --osv-url or UPM_OSV_URL)"
        if self.unreachable:
            return (
                f"cannot reach the vulnerability service at {url} ({self.unreachable}); if that "
                f"address is wrong or blocked from here, set {setting} to a reachable OSV API"
            )
        return (
            f"the vulnerability service at {url} {self.answer}; re-run later, or set {setting} "
            "to another OSV API"
        )


#: How pip-audit's stderr says the service could not be reached, in words for users.
_UNREACHABLE = (
    (re.compile(r"Connection refused|ECONNREFUSED", re.I), "connection refused"),
    (
        re.compile(
            r"NameResolutionError|Name or service not known|nodename nor servname|"
            r"getaddrinfo failed|Temporary failure in name resolution|No address associated",
            re.I,
        ),
        "its host name does not resolve",
    ),
    (re.compile(r"ConnectTimeout|ReadTimeout|timed out", re.I), "no answer in time"),
    (re.compile(r"SSLError|CERTIFICATE_VERIFY_FAILED", re.I), "TLS failed"),
    (re.compile(r"Connection reset|RemoteDisconnected|aborted", re.I), "connection dropped"),
)


def _checked_run(requirements: Path, session: OsvSession, proxy_url: str) -> PipAuditRun:
    session.record_unavailable(None)
    session.check_deadline()
    run = run_pip_audit(requirements, osv_url=proxy_url, timeout=session.remaining() + 5)
    # What the proxy met on the way to the service says more than pip-audit's words for it.
    if session.exceeded:
        raise OsvLimitExceeded(session.exceeded)
    # pip-audit exits 1 both for "vulnerabilities found" (with a report) and for crashes.
    if run.report is not None and run.returncode in (0, 1):
        return run
    if run.returncode == 124:
        session.check_deadline()
    met = session.unavailable
    if met is not None:
        raise Unavailable("", met.reason) if met.status else Unavailable(met.reason)
    last = _last_line(run.stderr)
    if run.returncode == 124:
        raise Unavailable(f"no answer: {last}")
    if _TRANSIENT.search(run.stderr):
        status = re.search(r"HTTPError: (5\d\d)", run.stderr)
        if status:
            raise Unavailable("", f"answered HTTP {status.group(1)}")
        reason = next((words for rx, words in _UNREACHABLE if rx.search(run.stderr)), "")
        raise Unavailable(reason or "the connection failed")
    raise _AuditFailed(f"pip-audit failed (exit {run.returncode}): {last}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _validated(packages: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    pins: dict[str, tuple[str, str]] = {}
    for name, version in packages:
        if not _NAME.match(name):
            raise InputError(f"audit: {name!r} is not a valid package name")
        try:
            Version(version)
        except InvalidVersion:
            raise InputError(f"audit: {name} {version!r} is not a PEP 440 version") from None
        key = canonicalize_name(name)
        if key in pins and Version(pins[key][1]) != Version(version):
            raise InputError(f"audit: {name} is pinned twice ({pins[key][1]} and {version})")
        pins[key] = (name, version)
    return sorted(pins.values(), key=lambda pin: canonicalize_name(pin[0]))


def allowance_for(
    ids: set[str], allow: Sequence[AuditAllowance], today: dt.date
) -> AuditAllowance | None:
    """The unexpired allow-list entry naming one of ``ids`` (upper-case ids and aliases)."""
    return next((e for e in allow if e.expires >= today and e.id.upper() in ids), None)


def _read_report(
    report: dict[str, Any],
    outcome: AuditOutcome,
    pins: list[tuple[str, str]],
    allow: Sequence[AuditAllowance],
    today: dt.date,
) -> None:
    seen: set[str] = set()
    for dep in report.get("dependencies", []):
        name = str(dep.get("name", "?"))
        if "skip_reason" in dep:
            outcome.skipped.append(SkippedPackage(name, str(dep["skip_reason"])))
            continue
        seen.add(canonicalize_name(name))
        version = str(dep.get("version", ""))
        for vuln in dep.get("vulns", []):
            ids = {str(vuln["id"]).upper(), *(str(a).upper() for a in vuln.get("aliases", []))}
            outcome.vulnerabilities.append(
                Vulnerability(
                    package=name,
                    version=version,
                    id=str(vuln["id"]),
                    aliases=tuple(str(a) for a in vuln.get("aliases", [])),
                    fix_versions=_later_fixes(vuln.get("fix_versions", []), version),
                    description=str(vuln.get("description") or ""),
                    allowed_by=allowance_for(ids, allow, today),
                )
            )
    # Fail closed: a pin pip-audit silently left out was not checked.
    for name, _ in pins:
        if canonicalize_name(name) not in seen and not any(
            canonicalize_name(s.name) == canonicalize_name(name) for s in outcome.skipped
        ):
            outcome.skipped.append(SkippedPackage(name, "missing from pip-audit's report"))


def _later_fixes(fixes: Sequence[str], version: str) -> tuple[str, ...]:
    """Fix versions above the pinned one: pip-audit reports only the first OSV range's fix,
    which for a 2.x pin can be a 1.x release that does not help."""
    current = Version(version)
    return tuple(str(f) for f in fixes if _above(str(f), current))


def _above(fix: str, current: Version) -> bool:
    """True when ``fix`` is a later version; a fix version that is not PEP 440 is kept."""
    try:
        return Version(fix) > current
    except InvalidVersion:
        return True


def runtime_requirements(pyproject: dict[str, Any], *, source: str) -> list[str]:
    """``[project] dependencies`` as written; dynamic dependencies are an InputError."""
    meta = pyproject.get("project", {})
    if "dependencies" in meta.get("dynamic", []):
        raise InputError(
            f"{source}: [project] dependencies is dynamic",
            hint="the audit needs static dependencies; list them in [project] dependencies",
        )
    deps = meta.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InputError(f"{source}: [project] dependencies must be a list of strings")
    for dep in deps:
        try:
            Requirement(dep)
        except InvalidRequirement as e:
            raise InputError(f"{source}: [project] dependencies: {dep!r}: {e}") from None
    return list(deps)


@dataclass(frozen=True)
class ResolvedFile:
    """One pin as pip would install it: the distribution file and its sha256 ("" when pip's
    report names none, e.g. a local directory)."""

    name: str
    version: str
    filename: str
    sha256: str


def resolve_pins(
    requirements: Sequence[str], *, python: str = sys.executable, timeout: float = 600
) -> list[tuple[str, str]]:
    """The full set of pins ``requirements`` install, resolved by pip without installing.

    ``pip install --dry-run --ignore-installed --report -`` resolves for ``python``'s
    platform with the index settings pip would use (``PIP_INDEX_URL``, ``pip.conf``). It took
    about a quarter of the time pip-audit's own resolution takes (a fresh venv plus a real
    install), see benchmarks/bench_audit.py. A resolution failure is a ServiceError when the
    index could not be reached, else an InputError naming the requirement pip rejected.
    """
    return [
        (f.name, f.version) for f in resolve_files(requirements, python=python, timeout=timeout)
    ]


def resolve_files(
    requirements: Sequence[str], *, python: str = sys.executable, timeout: float = 600
) -> list[ResolvedFile]:
    """:func:`resolve_pins` with the file each pin installs and its digest (one pip run)."""
    if not requirements:
        return []
    command = [
        python,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--quiet",
        "--no-input",
        "--disable-pip-version-check",
        "--report",
        "-",
        *requirements,
    ]
    env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"pip could not resolve the dependencies in {timeout:.0f}s") from None
    if done.returncode != 0:
        last = _last_line(done.stderr)
        if re.search(r"NewConnectionError|Max retries exceeded|HTTPError: 5\d\d", done.stderr):
            raise ServiceError(f"resolving dependencies: the package index failed: {last}")
        raise InputError(f"resolving dependencies failed: {last}", hint="check the requirements")
    report = json.loads(done.stdout)
    return [_resolved(item) for item in report.get("install", [])]


def _resolved(item: dict[str, Any]) -> ResolvedFile:
    info = item.get("download_info") or {}
    url = str(info.get("url", ""))
    hashes = (info.get("archive_info") or {}).get("hashes") or {}
    return ResolvedFile(
        name=str(item["metadata"]["name"]),
        version=str(item["metadata"]["version"]),
        filename=url.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0] if url else "",
        sha256=str(hashes.get("sha256", "")).lower(),
    )
