"""The Artifact Trust Policy applied to what a release ships: PEP 740 provenance per dependency.

Every runtime dependency is taken at the exact file that would be installed, by digest: the
project's ``pylock.toml`` (PEP 751) when it has one, else the same pip resolution the
dependency audit uses
(:func:`upm_ci.vulnerability_audit.resolve_files`). Each file's provenance comes from
the index's Integrity API (``GET <index>/integrity/<project>/<version>/<file>/provenance``) and
is verified with pypi-attestations' models and sigstore's stock verifier against the trust root
in use (:func:`upm_ci.sigstore_common.verify_pep740`): the attestation must be for this file's
name and sha256, and its certificate must be the publisher's (repository and workflow).

What was seen is compared with the project's provenance lock (``upm-provenance.json``, config
``provenance-lock``), which ``upm-ci trust lock`` writes:

- provenance verifies, the publisher matches the lock: **accepted**;
- the publisher differs from the lock, or a package that had provenance has none: **blocked**,
  naming the package, the version and both identities;
- signed by a publisher the lock does not know yet: **needs review** (blocked) until
  ``upm-ci trust lock`` records it;
- unsigned: **blocked** unless the lock holds an unexpired approval (who, why, until);
- the index cannot answer (after retries: a ServiceError, exit 3), answers for another file or
  digest, or answers something malformed or too large: **error** (blocked; never a pass).

Files are fetched and verified in a thread pool: a sequential loop spends most of its time
waiting on the index.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from packaging.utils import canonicalize_name

from upm_ci.errors import InputError, PolicyError
from upm_ci.identity import ExpectedSigner
from upm_ci.manifest import write_json_atomic
from upm_ci.retry import HttpStatusError, RetryPolicy, call_with_retry, classify, describe
from upm_ci.sigstore_common import verification_policy, verify_pep740
from upm_ci.vulnerability_audit import ResolvedFile, resolve_files, runtime_requirements

if TYPE_CHECKING:
    import requests
    from sigstore.verify import Verifier

    from upm_ci.project import Project

log = logging.getLogger(__name__)

LOCK_SCHEMA = "upm-release/provenance-lock/v1"
#: A real provenance answer is about 10 KB per attestation; anything past this is refused.
MAX_BODY = 1 << 20
DEFAULT_WORKERS = 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

ACCEPTED, BLOCKED, NEEDS_REVIEW, APPROVED, ERROR = (
    "accepted",
    "blocked",
    "needs-review",
    "approved-unsigned",
    "error",
)


# --------------------------------------------------------------------------- the lock
@dataclass(frozen=True)
class Publisher:
    """A Trusted Publisher as PEP 740 provenance names it."""

    kind: str
    repository: str
    workflow: str
    environment: str | None = None

    def describe(self) -> str:
        env = f", environment {self.environment}" if self.environment else ""
        return f"{self.kind} {self.repository} {self.workflow}{env}"

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "repository": self.repository,
            "workflow": self.workflow,
            "environment": self.environment,
        }


@dataclass(frozen=True)
class Approval:
    """An approval of an unsigned package, as the audit allow-list's: who, why, until."""

    by: str
    reason: str
    expires: dt.date

    def describe(self) -> str:
        return f"approved by {self.by} until {self.expires.isoformat()}: {self.reason}"


@dataclass(frozen=True)
class LockEntry:
    """What the lock records for one package: its publisher, or unsigned with an approval."""

    name: str
    publisher: Publisher | None
    seen: str
    version: str = ""
    approval: Approval | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"seen": self.seen, "version": self.version}
        if self.publisher is not None:
            data["publisher"] = self.publisher.as_json()
        else:
            data["unsigned"] = True
            if self.approval is not None:
                data["approval"] = {
                    "by": self.approval.by,
                    "reason": self.approval.reason,
                    "expires": self.approval.expires.isoformat(),
                }
        return data


@dataclass
class ProvenanceLock:
    """``upm-provenance.json``: package (canonical name) -> :class:`LockEntry`."""

    path: Path
    entries: dict[str, LockEntry] = field(default_factory=dict)

    def get(self, name: str) -> LockEntry | None:
        return self.entries.get(canonicalize_name(name))

    def set(self, entry: LockEntry) -> None:
        self.entries[canonicalize_name(entry.name)] = entry

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": LOCK_SCHEMA,
            "packages": {name: self.entries[name].as_json() for name in sorted(self.entries)},
        }

    def save(self) -> None:
        write_json_atomic(self.path, self.to_json())


def load_lock(path: Path, *, required: bool = False) -> ProvenanceLock:
    """Read the lock; a missing one is empty (unless ``required``); any malformed entry is an
    InputError naming the file and the entry."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise InputError(
                f"{path}: provenance lock not found", hint="run upm-ci trust lock"
            ) from None
        return ProvenanceLock(path)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(
            f"{path}: the provenance lock is not valid JSON: {describe(e)}",
            hint="fix it by hand or delete it and run upm-ci trust lock",
        ) from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the provenance lock ({e.strerror or e})") from None
    if not isinstance(raw, dict) or raw.get("schema") != LOCK_SCHEMA:
        raise InputError(
            f"{path}: not a provenance lock (schema must be {LOCK_SCHEMA!r})",
            hint="run upm-ci trust lock to write one",
        )
    packages = raw.get("packages")
    if not isinstance(packages, dict):
        raise InputError(f"{path}: packages: expected an object of package name -> entry")
    lock = ProvenanceLock(path)
    for name, item in packages.items():
        entry = _lock_entry(str(name), item, f"{path}: packages.{name}")
        if lock.get(entry.name) is not None:
            raise InputError(f"{path}: packages.{name}: the package is listed twice")
        lock.set(entry)
    return lock


def _lock_entry(name: str, item: Any, where: str) -> LockEntry:
    hint = (
        'e.g. {"publisher": {"kind": "GitHub", "repository": "o/r", "workflow": "release.yml", '
        '"environment": null}, "seen": "2026-12-06T10:00:00Z"} or {"unsigned": true, '
        '"approval": {"by": "alice", "reason": "...", "expires": "2027-01-31"}}'
    )
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
        raise InputError(f"{where}: {name!r} is not a package name")
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object", hint=hint)
    unknown = set(item) - {"publisher", "unsigned", "approval", "seen", "version"}
    if unknown:
        raise InputError(f"{where}: unknown keys {', '.join(sorted(unknown))}", hint=hint)
    seen, version = item.get("seen", ""), item.get("version", "")
    if not isinstance(seen, str) or not isinstance(version, str):
        raise InputError(f"{where}: seen and version must be strings", hint=hint)
    publisher_raw, unsigned = item.get("publisher"), item.get("unsigned", False)
    if (publisher_raw is None) == (unsigned is not True):
        raise InputError(f'{where}: needs either publisher or "unsigned": true', hint=hint)
    if publisher_raw is not None:
        if "approval" in item:
            raise InputError(f"{where}.approval: only an unsigned package takes an approval")
        return LockEntry(name, _publisher(publisher_raw, f"{where}.publisher"), seen, version)
    approval = item.get("approval")
    return LockEntry(
        name,
        None,
        seen,
        version,
        None if approval is None else _approval(approval, f"{where}.approval"),
    )


def _publisher(raw: Any, where: str) -> Publisher:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected an object with kind, repository, workflow")
    values = {}
    for key in ("kind", "repository", "workflow"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}.{key}: expected a non-empty string")
        values[key] = value
    environment = raw.get("environment")
    if environment is not None and not isinstance(environment, str):
        raise InputError(f"{where}.environment: expected a string or null")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", values["repository"]):
        raise InputError(f"{where}.repository: {values['repository']!r} is not OWNER/NAME")
    return Publisher(values["kind"], values["repository"], values["workflow"], environment or None)


def _approval(raw: Any, where: str) -> Approval:
    if not isinstance(raw, dict) or set(raw) != {"by", "reason", "expires"}:
        raise InputError(
            f"{where}: an approval needs exactly by, reason and expires",
            hint='e.g. {"by": "alice", "reason": "vendored, reviewed", "expires": "2027-01-31"}',
        )
    if not all(isinstance(raw[k], str) and raw[k].strip() for k in ("by", "reason")):
        raise InputError(f"{where}: by and reason must say who approved it and why")
    try:
        expires = dt.date.fromisoformat(str(raw["expires"]))
    except ValueError:
        raise InputError(f"{where}.expires: {raw['expires']!r} is not a YYYY-MM-DD date") from None
    return Approval(raw["by"], raw["reason"], expires)


# --------------------------------------------------------------------------- what ships
def shipped_files(
    project: Project,
    *,
    python: str = sys.executable,
    resolve: Callable[..., list[ResolvedFile]] = resolve_files,
) -> list[ResolvedFile]:
    """The runtime dependencies' files: from ``pylock.toml`` when the project has one, else
    pip's resolution of ``[project] dependencies`` (the audit's; ``resolve`` is
    :func:`~upm_ci.vulnerability_audit.resolve_files` or a shared one, ``SharedResolution``)."""
    pylock = project.root / "pylock.toml"
    if pylock.is_file():
        return pylock_files(pylock)
    requirements = runtime_requirements(
        project.pyproject, source=str(project.root / "pyproject.toml")
    )
    return resolve(requirements, python=python)


def pylock_files(path: Path) -> list[ResolvedFile]:
    """The file of each ``[[packages]]`` entry of a PEP 751 lock pip would install here: the
    first wheel this interpreter supports, else the sdist."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    from upm_ci.project import read_toml

    data = read_toml(path)
    supported = set(sys_tags())
    files = []
    for i, package in enumerate(data.get("packages", [])):
        where = f"{path}: packages[{i}]"
        if not isinstance(package, dict) or not package.get("name"):
            raise InputError(f"{where}: expected a table with a name")
        name, version = str(package["name"]), str(package.get("version", ""))
        chosen = None
        for wheel in package.get("wheels", []) or []:
            wheel_name = _file_name(wheel)
            try:
                tags = parse_wheel_filename(wheel_name)[3]
            except ValueError:
                raise InputError(f"{where}: {wheel_name!r} is not a wheel file name") from None
            if tags & supported:
                chosen = wheel
                break
        chosen = chosen or package.get("sdist")
        if not isinstance(chosen, dict):
            raise InputError(f"{where} ({name}): no wheel for this platform and no sdist")
        digest = str((chosen.get("hashes") or {}).get("sha256", "")).lower()
        if not _SHA256.match(digest):
            raise InputError(f"{where} ({name}): the file has no sha256 hash")
        files.append(ResolvedFile(name, version, _file_name(chosen), digest))
    return files


def _file_name(entry: Any) -> str:
    if not isinstance(entry, dict):
        return ""
    name = entry.get("name") or str(entry.get("url") or entry.get("path") or "").rsplit("/", 1)[-1]
    return str(name)


# --------------------------------------------------------------------------- fetch + verify
@dataclass(frozen=True)
class Observation:
    """What the index said about one file: its verified publisher, no provenance (None and
    no ``error``), or why it could not be checked."""

    file: ResolvedFile
    publisher: Publisher | None
    error: str = ""
    url: str = ""
    log_index: str = ""


def integrity_base(index_url: str) -> str:
    """The Integrity API next to a simple index (``https://pypi.org/simple/`` ->
    ``https://pypi.org/integrity/``)."""
    base = index_url.rstrip("/")
    base = base[: -len("/simple")] if base.endswith("/simple") else base
    return f"{base}/integrity/"


def provenance_url(base: str, file: ResolvedFile) -> str:
    parts = (canonicalize_name(file.name), file.version, file.filename)
    return base + "/".join(quote(p, safe="") for p in parts) + "/provenance"


def publisher_policy(publisher: Publisher) -> ExpectedSigner:
    """The certificate a GitHub Trusted Publisher's attestation carries: its workflow file in
    its repository, at any ref."""
    identity = f"https://github.com/{publisher.repository}/.github/workflows/{publisher.workflow}@*"
    return ExpectedSigner(identity=identity, repository=publisher.repository)


class ProvenanceFetcher:
    """Fetch and verify provenance, one ``requests`` session per worker thread."""

    def __init__(
        self,
        index_url: str,
        verifier: Verifier,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.base = integrity_base(index_url)
        self.verifier = verifier
        self.policy = policy or RetryPolicy.from_env()
        self.timeout = timeout
        self.workers = workers
        self._local = threading.local()

    def _session(self) -> requests.Session:
        import requests

        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Accept"] = "application/vnd.pypi.integrity.v1+json"
            self._local.session = session
        return session

    def observe_all(self, files: Sequence[ResolvedFile]) -> list[Observation]:
        """Every file's observation, in order; a ServiceError (index down after retries)
        propagates."""
        if not files:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(files)))) as pool:
            return list(pool.map(self.observe, files))

    def observe(self, file: ResolvedFile) -> Observation:
        if not file.filename or not _SHA256.match(file.sha256):
            return Observation(file, None, "no file and sha256 known for it: nothing to check")
        url = provenance_url(self.base, file)
        status, body = call_with_retry(
            lambda: self._get(url),
            what=f"provenance of {file.filename} ({url})",
            classify=classify,
            policy=self.policy,
        )
        if status == 404:
            return Observation(file, None, url=url)
        if status != 200:
            return Observation(file, None, f"the index answered HTTP {status}", url)
        if body is None:
            return Observation(file, None, f"the answer is larger than {MAX_BODY} bytes", url)
        return self._verified(file, body, url)

    def _get(self, url: str) -> tuple[int, bytes | None]:
        with self._session().get(url, timeout=self.timeout, stream=True) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise HttpStatusError(response)
            if response.status_code != 200:
                return response.status_code, b""
            chunks, size = [], 0
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > MAX_BODY:
                    return 200, None
                chunks.append(chunk)
            return 200, b"".join(chunks)

    def _verified(self, file: ResolvedFile, body: bytes, url: str) -> Observation:
        from pypi_attestations import GitHubPublisher, Provenance

        try:
            provenance = Provenance.model_validate_json(body)
        except Exception as e:  # noqa: BLE001 - pydantic's errors: all "malformed"
            return Observation(file, None, f"malformed provenance: {_brief(e)}", url)
        if not provenance.attestation_bundles:
            return Observation(file, None, "malformed provenance: no attestation bundles", url)
        found: Publisher | None = None
        index = ""
        for bundle in provenance.attestation_bundles:
            claimed = bundle.publisher
            if not isinstance(claimed, GitHubPublisher):
                return Observation(
                    file, None, f"publisher kind {claimed.kind} cannot be checked here", url
                )
            publisher = Publisher(
                "GitHub", claimed.repository, claimed.workflow, claimed.environment
            )
            if not bundle.attestations:
                return Observation(file, None, "malformed provenance: a bundle is empty", url)
            policy = verification_policy(publisher_policy(publisher))
            for attestation in bundle.attestations:
                try:
                    summary = verify_pep740(
                        attestation.model_dump_json().encode(),
                        file.filename,
                        file.sha256,
                        verifier=self.verifier,
                        policy=policy,
                    )
                except PolicyError as e:
                    return Observation(
                        file,
                        None,
                        f"provenance does not verify as {publisher.describe()}: {e}",
                        url,
                    )
                index = summary.rsplit("log index ", 1)[-1].rstrip(")")
            if found is not None and found != publisher:
                return Observation(file, None, "provenance names two different publishers", url)
            found = publisher
        return Observation(file, found, url=url, log_index=index)


def _without_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (a private index's credentials never get recorded)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.hostname or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host))


def _brief(error: BaseException) -> str:
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


# --------------------------------------------------------------------------- the rules
@dataclass(frozen=True)
class Verdict:
    """One package's place in the policy: what was seen, the lock's entry, the decision."""

    observation: Observation
    decision: str
    reason: str

    @property
    def file(self) -> ResolvedFile:
        return self.observation.file

    @property
    def passed(self) -> bool:
        return self.decision in (ACCEPTED, APPROVED)

    def line(self) -> str:
        return f"{self.file.name} {self.file.version}: {self.reason}"

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of it (the gate phase's ``dependencies``), for the SBOMs
        and the SLSA provenance."""
        seen = self.observation.publisher
        return {
            "name": self.file.name,
            "version": self.file.version,
            "file": self.file.filename,
            "sha256": self.file.sha256,
            "decision": self.decision,
            "publisher": seen.as_json() if seen is not None else None,
            "provenance": _without_userinfo(self.observation.url) if seen is not None else "",
            "log_index": self.observation.log_index,
        }


def judge(observation: Observation, lock: ProvenanceLock, today: dt.date) -> Verdict:
    """Apply the rules (module doc) to one observation."""
    file, seen = observation.file, observation.publisher
    entry = lock.get(file.name)
    if observation.error:
        return Verdict(observation, ERROR, f"not checked: {observation.error}")
    if seen is not None:
        if entry is None or entry.publisher is None:
            was = "" if entry is None else " (the lock says unsigned)"
            return Verdict(
                observation,
                NEEDS_REVIEW,
                f"signed by a new publisher {seen.describe()}{was}: needs review; "
                "record it with upm-ci trust lock",
            )
        if _same(entry.publisher, seen):
            return Verdict(observation, ACCEPTED, seen.describe())
        return Verdict(
            observation,
            BLOCKED,
            f"publisher changed: the lock has {entry.publisher.describe()}, "
            f"the index has {seen.describe()}",
        )
    if entry is not None and entry.publisher is not None:
        return Verdict(
            observation,
            BLOCKED,
            f"provenance disappeared: the lock has {entry.publisher.describe()}, "
            "the index has none",
        )
    if entry is None or entry.approval is None:
        return Verdict(
            observation,
            BLOCKED,
            "unsigned (no provenance) and not approved: approve it with upm-ci trust lock "
            "--approve-unsigned",
        )
    if entry.approval.expires < today:
        return Verdict(
            observation,
            BLOCKED,
            f"unsigned; its approval by {entry.approval.by} expired on "
            f"{entry.approval.expires.isoformat()}",
        )
    return Verdict(observation, APPROVED, f"unsigned, {entry.approval.describe()}")


def _same(locked: Publisher, seen: Publisher) -> bool:
    return (
        locked.kind.lower() == seen.kind.lower()
        and locked.repository.lower() == seen.repository.lower()
        and locked.workflow == seen.workflow
        and (locked.environment or None) == (seen.environment or None)
    )


@dataclass
class ProvenanceOutcome:
    """Every package's verdict, in the order of the files."""

    verdicts: list[Verdict]

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    @property
    def failing(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.passed]

    def summary(self) -> str:
        listed = "; ".join(v.line() for v in self.verdicts)
        if self.passed:
            return f"{len(self.verdicts)} packages: {listed}" if self.verdicts else "no packages"
        names = ", ".join(f"{v.file.name} {v.file.version}" for v in self.failing)
        return f"{len(self.failing)} of {len(self.verdicts)} packages blocked ({names}): " + (
            "; ".join(v.line() for v in self.failing)
        )


def check_files(
    files: Sequence[ResolvedFile],
    lock: ProvenanceLock,
    fetcher: ProvenanceFetcher,
    *,
    today: dt.date,
) -> ProvenanceOutcome:
    """Fetch, verify and judge every file (ServiceError when the index cannot answer)."""
    observations = fetcher.observe_all(files)
    return ProvenanceOutcome([judge(o, lock, today) for o in observations])


# --------------------------------------------------------------------------- recorded
@dataclass(frozen=True)
class ShippedDependency:
    """A dependency as the gate recorded it in the manifest: its file and what vouches for it."""

    name: str
    version: str
    file: str
    sha256: str
    publisher: Publisher | None
    provenance: str
    log_index: str

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{canonicalize_name(self.name)}@{self.version}"


def recorded_dependencies(phases: dict[str, Any]) -> list[ShippedDependency]:
    """The gate phase's ``dependencies`` from a manifest's ``phases``; entries that are not
    well formed (a hand-edited or hostile manifest) are left out, never trusted."""
    raw = (phases.get("gate") or {}).get("dependencies")
    out: list[ShippedDependency] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        fields = {k: item.get(k, "") for k in ("name", "version", "file", "sha256")}
        extra = {k: item.get(k, "") for k in ("provenance", "log_index")}
        if not all(isinstance(v, str) for v in (*fields.values(), *extra.values())):
            continue
        if not fields["name"] or not _SHA256.match(str(fields["sha256"])):
            continue
        publisher = None
        if isinstance(item.get("publisher"), dict):
            try:
                publisher = _publisher(item["publisher"], "manifest")
            except InputError:
                continue
        out.append(ShippedDependency(publisher=publisher, **fields, **extra))
    return out


# --------------------------------------------------------------------------- the lock command
@dataclass
class LockUpdate:
    """What ``upm-ci trust lock`` did: recorded entries and what it refused to record."""

    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.refused


def update_lock(
    lock: ProvenanceLock,
    observations: Sequence[Observation],
    *,
    now: Callable[[], dt.datetime],
    accept_changed: Sequence[str] = (),
    unsigned: Approval | None = None,
    unsigned_names: Sequence[str] = (),
) -> LockUpdate:
    """Record every new publisher (the review is running this command); record a changed
    publisher only when its package is in ``accept_changed``; record an unsigned package only
    when it is in ``unsigned_names`` with the ``unsigned`` approval. Errors are never recorded.
    """
    update = LockUpdate()
    accept = {canonicalize_name(n) for n in accept_changed}
    approve = {canonicalize_name(n) for n in unsigned_names}
    stamp = now().astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for observation in observations:
        file, seen = observation.file, observation.publisher
        key = canonicalize_name(file.name)
        entry = lock.get(file.name)
        label = f"{file.name} {file.version}"
        if observation.error:
            update.refused.append(f"{label}: not checked: {observation.error}")
            continue
        if seen is not None:
            if entry is not None and entry.publisher is not None and _same(entry.publisher, seen):
                update.kept.append(f"{label}: {seen.describe()}")
                continue
            if entry is not None and entry.publisher is not None and key not in accept:
                update.refused.append(
                    f"{label}: publisher changed from {entry.publisher.describe()} to "
                    f"{seen.describe()}; pass --accept-changed {file.name} after reviewing it"
                )
                continue
            lock.set(LockEntry(file.name, seen, stamp, file.version))
            update.added.append(f"{label}: {seen.describe()}")
            continue
        if key in approve and unsigned is not None:
            lock.set(LockEntry(file.name, None, stamp, file.version, unsigned))
            update.added.append(f"{label}: unsigned, {unsigned.describe()}")
            continue
        if entry is not None and entry.publisher is None and entry.approval is not None:
            if entry.approval.expires < now().date():
                update.refused.append(
                    f"{label}: unsigned; the approval by {entry.approval.by} expired on "
                    f"{entry.approval.expires.isoformat()}: renew it with --approve-unsigned"
                )
            else:
                update.kept.append(f"{label}: unsigned, {entry.approval.describe()}")
            continue
        if entry is not None and entry.publisher is not None:
            update.refused.append(
                f"{label}: provenance disappeared (the lock has {entry.publisher.describe()})"
            )
            continue
        update.refused.append(
            f"{label}: unsigned; approve it with --approve-unsigned {file.name} --by WHO "
            "--reason WHY --until YYYY-MM-DD"
        )
    return update


__all__ = [
    "LOCK_SCHEMA",
    "Approval",
    "LockEntry",
    "LockUpdate",
    "Observation",
    "ProvenanceFetcher",
    "ProvenanceLock",
    "ProvenanceOutcome",
    "Publisher",
    "Verdict",
    "check_files",
    "integrity_base",
    "judge",
    "load_lock",
    "pylock_files",
    "shipped_files",
    "update_lock",
]
