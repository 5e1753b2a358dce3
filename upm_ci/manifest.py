"""The release manifest: one versioned JSON document every phase reads and extends.

It is also the ledger that lets a re-run resume: publish records each step as it happens.
Paths inside are relative to the manifest's own directory, so the manifest and ``dist/`` can
move between jobs together. Writes are atomic (temp file, then ``os.replace``); a manifest of
another schema version is refused rather than guessed at.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from upm_ci import __version__
from upm_ci.errors import InputError, PolicyError

SCHEMA = "upm-release/manifest/v1"
DEFAULT_NAME = "release-manifest.json"

#: Kinds of files a release carries.
KINDS = (
    "sdist",
    "wheel",
    "checksums",
    "sbom",
    "sigstore-bundle",
    "provenance",
    "sbom-attestation",
    "pep740-attestation",
    "gpg-signature",
    "gpg-public-key",
    "audit-log",
    "project-manifest",
    "plugin",
)


def sha256_file(path: Path, *, chunk: int = 4 << 20) -> str:
    """Hex sha256 of a file, streamed in large chunks (constant memory for any size)."""
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def utcnow() -> str:
    """ISO-8601 UTC timestamp, second precision."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Artifact:
    """A file the release carries."""

    name: str
    path: str
    sha256: str
    size: int
    kind: str


@dataclass
class SbomRecord:
    """An SBOM file and the artifact whose digest it is bound to."""

    file: str
    format: str
    describes: str
    describes_sha256: str


@dataclass
class SignatureRecord:
    """A signature (Sigstore bundle or GPG ``.asc``) over one subject file."""

    subject: str
    subject_sha256: str
    file: str
    method: str
    identity: str = ""
    issuer: str = ""
    log_index: int | None = None


@dataclass
class AttestationRecord:
    """A signed in-toto statement (DSSE bundle) and the subjects it covers."""

    file: str
    predicate_type: str
    subjects: list[dict[str, str]]


@dataclass
class ImageRecord:
    """A container image built or pushed by the actions."""

    ref: str
    digest: str
    sbom: str = ""


@dataclass
class LedgerEntry:
    """One publish step at one destination: ``started`` before, ``done`` after."""

    sha256: str
    state: str
    at: str
    url: str = ""


@dataclass
class ProjectInfo:
    name: str
    version: str
    tag: str
    commit: str = ""
    repository: str = ""


@dataclass
class Manifest:
    """The release manifest; see the module docstring."""

    project: ProjectInfo
    artifacts: list[Artifact] = field(default_factory=list)
    sboms: list[SbomRecord] = field(default_factory=list)
    signatures: list[SignatureRecord] = field(default_factory=list)
    attestations: list[AttestationRecord] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: dict[str, dict[str, LedgerEntry]] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, compare=False, repr=False)

    # --- files -----------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        """The directory artifact paths are relative to."""
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, artifact: Artifact) -> Path:
        """Absolute path of an artifact."""
        return (self.base / artifact.path).resolve()

    def add_file(self, path: Path, kind: str) -> Artifact:
        """Hash ``path`` and record it (replacing an entry of the same name)."""
        if kind not in KINDS:
            raise ValueError(f"unknown artifact kind {kind!r}")
        path = Path(path).resolve()
        try:
            rel = os.path.relpath(path, self.base.resolve())
        except ValueError:  # another drive on Windows
            rel = str(path)
        entry = Artifact(
            name=path.name,
            path=Path(rel).as_posix(),
            sha256=sha256_file(path),
            size=path.stat().st_size,
            kind=kind,
        )
        with self._lock:
            self.artifacts = [a for a in self.artifacts if a.name != entry.name] + [entry]
        return entry

    def artifact(self, name: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.name == name), None)

    def of_kind(self, *kinds: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.kind in kinds]

    def distributions(self) -> list[Artifact]:
        """The Python distributions (sdist and wheels)."""
        return self.of_kind("sdist", "wheel")

    # --- records ---------------------------------------------------------------------------
    def add_sbom(self, record: SbomRecord) -> None:
        with self._lock:
            self.sboms = [s for s in self.sboms if s.file != record.file] + [record]

    def add_signature(self, record: SignatureRecord) -> None:
        with self._lock:
            self.signatures = [s for s in self.signatures if s.file != record.file] + [record]

    def add_attestation(self, record: AttestationRecord) -> None:
        with self._lock:
            self.attestations = [a for a in self.attestations if a.file != record.file] + [record]

    def add_image(self, record: ImageRecord) -> None:
        with self._lock:
            self.images = [i for i in self.images if i.ref != record.ref] + [record]

    def record_phase(self, phase: str, status: str, **details: Any) -> None:
        """Note that ``phase`` ended with ``status`` (``pass``/``fail``/...)."""
        with self._lock:
            self.phases[phase] = {"status": status, "at": utcnow(), **details}

    # --- ledger ----------------------------------------------------------------------------
    def ledger_entry(self, destination: str, item: str) -> LedgerEntry | None:
        with self._lock:
            return self.ledger.get(destination, {}).get(item)

    def record_ledger(
        self, destination: str, item: str, *, sha256: str, state: str, url: str = ""
    ) -> None:
        """Record a publish step and save at once, so a killed run can resume from here."""
        with self._lock:
            self.ledger.setdefault(destination, {})[item] = LedgerEntry(
                sha256=sha256, state=state, at=utcnow(), url=url
            )
            if self.path:
                self.save()

    # --- persistence -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "schema": SCHEMA,
                "tool_version": __version__,
                "project": asdict(self.project),
                "artifacts": [asdict(a) for a in self.artifacts],
                "sboms": [asdict(s) for s in self.sboms],
                "signatures": [asdict(s) for s in self.signatures],
                "attestations": [asdict(a) for a in self.attestations],
                "images": [asdict(i) for i in self.images],
                "phases": self.phases,
                "ledger": {
                    dest: {item: asdict(e) for item, e in entries.items()}
                    for dest, entries in self.ledger.items()
                },
            }

    def save(self, path: Path | None = None) -> Path:
        """Write atomically; later saves go to the same path."""
        with self._lock:
            if path is not None:
                self.path = Path(path).resolve()
            if self.path is None:
                raise ValueError("manifest has no path")
            write_json_atomic(self.path, self.to_json())
            return self.path

    @classmethod
    def from_json(cls, data: Any, *, source: str = "manifest") -> Manifest:
        if not isinstance(data, dict) or "schema" not in data:
            raise InputError(f"{source}: not a upm-release manifest (no 'schema' field)")
        if data["schema"] != SCHEMA:
            raise InputError(
                f"{source}: manifest schema {data['schema']!r} is not {SCHEMA!r}",
                hint="it was written by an incompatible upm-release; rebuild with this version",
            )
        try:
            return cls(
                project=ProjectInfo(**data["project"]),
                artifacts=[Artifact(**a) for a in data.get("artifacts", [])],
                sboms=[SbomRecord(**s) for s in data.get("sboms", [])],
                signatures=[SignatureRecord(**s) for s in data.get("signatures", [])],
                attestations=[AttestationRecord(**a) for a in data.get("attestations", [])],
                images=[ImageRecord(**i) for i in data.get("images", [])],
                phases=dict(data.get("phases", {})),
                ledger={
                    dest: {item: LedgerEntry(**e) for item, e in entries.items()}
                    for dest, entries in data.get("ledger", {}).items()
                },
            )
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            raise InputError(f"{source}: malformed manifest field: {e}") from None

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        """Read a manifest; InputError when missing, malformed or of another schema."""
        path = Path(path).resolve()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(
                f"{path}: release manifest not found", hint="run `upm-ci build` first"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: release manifest is not valid JSON: {e}") from None
        manifest = cls.from_json(data, source=str(path))
        manifest.path = path
        return manifest

    @classmethod
    def load_or_new(cls, path: Path | str, project: ProjectInfo) -> Manifest:
        """Load the manifest at ``path`` if it exists (checking it is this release's), else new."""
        path = Path(path).resolve()
        if not path.exists():
            manifest = cls(project=project)
            manifest.path = path
            return manifest
        manifest = cls.load(path)
        if (manifest.project.name, manifest.project.version) != (project.name, project.version):
            raise InputError(
                f"{path}: manifest is for {manifest.project.name} {manifest.project.version}, "
                f"not {project.name} {project.version}",
                hint="use a fresh --manifest path for another release",
            )
        return manifest


def merge(manifests: list[Manifest]) -> Manifest:
    """Combine the manifests of several build jobs (a matrix) into one.

    All must describe the same release; one file name with two different digests is a
    policy failure, since one of the two builds produced bytes the other did not.
    """
    if not manifests:
        raise InputError("manifest merge: no manifests given")
    first = manifests[0]
    out = Manifest(project=ProjectInfo(**asdict(first.project)))
    seen: dict[str, Artifact] = {}
    for m in manifests:
        if (m.project.name, m.project.version) != (first.project.name, first.project.version):
            raise InputError(
                f"{m.path}: is for {m.project.name} {m.project.version}, "
                f"not {first.project.name} {first.project.version}"
            )
        for a in m.artifacts:
            other = seen.get(a.name)
            if other and other.sha256 != a.sha256:
                raise PolicyError(
                    f"manifest merge: {a.name} has two different digests "
                    f"({other.sha256[:12]}... and {a.sha256[:12]}...)",
                    hint="the build is not reproducible across jobs; rebuild one of them",
                )
            if not other:
                seen[a.name] = a
                # Re-base the path: merged manifests may live in other directories.
                path = (m.base / a.path).resolve() if m.path else Path(a.path)
                out.artifacts.append(Artifact(**{**asdict(a), "path": str(path)}))
        for s in m.sboms:
            out.add_sbom(s)
        for sig in m.signatures:
            out.add_signature(sig)
        for att in m.attestations:
            out.add_attestation(att)
        for img in m.images:
            out.add_image(img)
        for phase, rec in m.phases.items():
            out.phases.setdefault(phase, rec)
        if not out.project.commit:
            out.project.commit = m.project.commit
    return out


def rebase_paths(manifest: Manifest, new_path: Path) -> None:
    """Make every artifact path relative to ``new_path``'s directory, then adopt it."""
    new_base = Path(new_path).resolve().parent
    for a in manifest.artifacts:
        absolute = (manifest.base / a.path).resolve()
        try:
            a.path = Path(os.path.relpath(absolute, new_base)).as_posix()
        except ValueError:
            a.path = str(absolute)
    manifest.path = Path(new_path).resolve()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that ``path`` is never seen half-written (see write_text_atomic).

    Masked secrets and URL credentials are redacted: reports and ledgers are shared.
    """
    from upm_ci import gha

    write_text_atomic(path, gha.redact(json.dumps(data, indent=2, sort_keys=False)) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (LF line ends) via a temp file in the same directory, fsync and
    ``os.replace``: readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
