"""The release manifest: one versioned JSON document every phase reads and extends.

It is also the ledger that lets a re-run resume: publish records each step as it happens.
Paths inside are relative to the manifest's own directory, so the manifest and ``dist/`` can
move between jobs together. Writes are atomic (temp file, then ``os.replace``); a manifest of
another schema version is refused rather than guessed at.

Every read is checked against one schema, defined here by the dataclasses below (field types,
and each field's ``metadata``: a named check, an enumeration, a one-line doc). Every phase
reads files and publishes assets on the manifest's word, so a manifest is hostile input: a
name with ``/``, a path with ``..``, an unknown kind, a digest that is no digest, a field of the
wrong type, a file over :data:`MAX_BYTES` or JSON nested deeper than :data:`MAX_DEPTH` is one
:class:`InputError` (exit 2) naming the file and the JSON path of the field, e.g.
``artifacts[3].sha256``. :func:`json_schema` renders the same definitions as a JSON Schema
(``docs/manifest.schema.json``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import tempfile
import threading
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from upm_ci import __version__
from upm_ci.errors import InputError, PolicyError
from upm_ci.identity import GITHUB_ISSUER, ExpectedSigner, RecordedSigner
from upm_ci.layout import (
    MAX_NAME,
    check_plain_name,
    plain_name_problem,
    relative_path_problem,
    sha256_file,
)

SCHEMA = "upm-release/manifest/v1"
DEFAULT_NAME = "release-manifest.json"

#: Largest manifest file read (a real one is a few kilobytes).
MAX_BYTES = 16 << 20
#: Deepest nesting of arrays and objects read (a real manifest nests four deep).
MAX_DEPTH = 32

#: Largest artifact size believed (GitHub takes assets up to 2 GiB; PyPI files are smaller).
MAX_ARTIFACT_BYTES = 64 << 30
#: Largest transparency log index believed: Rekor's indexes are signed 64-bit integers.
MAX_LOG_INDEX = (1 << 63) - 1

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
    "toolchain-sbom",
    "release-statement",
    "image-signature",
    "image-provenance",
    "image-sbom-attestation",
)
#: Kinds of the files that are signatures (``signatures[].file``) and signed attestations
#: (``attestations[].file``): signed by construction, they need no signature of their own.
SIGNATURE_KINDS = {"sigstore": "sigstore-bundle", "gpg": "gpg-signature"}
ATTESTATION_KINDS = ("provenance", "sbom-attestation", "pep740-attestation", "release-statement")
LEDGER_STATES = ("started", "done")


# --- field checks -------------------------------------------------------------------------
_LINE = re.compile(r"[\x00-\x1f\x7f]")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _line_problem(text: str) -> str | None:
    return "has a control character" if _LINE.search(text) else None


def _nonempty_line_problem(text: str) -> str | None:
    return "is empty" if not text.strip() else _line_problem(text)


def _sha256_problem(text: str) -> str | None:
    return None if _SHA256.fullmatch(text) else "is not 64 lowercase hex digits"


def _optional(check: Callable[[str], str | None]) -> Callable[[str], str | None]:
    return lambda text: None if text == "" else check(text)


def _image_digest_problem(text: str) -> str | None:
    ok = text.startswith("sha256:") and _SHA256.fullmatch(text[7:])
    return None if ok else "is not sha256:<64 lowercase hex digits>"


_NAME_PATTERN = r"^(?![.-])[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+$"
_PATH_PATTERN = r"^(?![/\\])(?![A-Za-z]:)(?!(?:.*[/\\])?\.\.(?:[/\\]|$))[^\x00-\x1f\x7f]+$"
_LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
_SHA256_PATTERN = "^[0-9a-f]{64}$"

#: check name -> (problem of a string value or None, its JSON Schema)
_CHECKS: dict[str, tuple[Callable[[str], str | None], dict[str, Any]]] = {
    "line": (_line_problem, {"type": "string", "pattern": _LINE_PATTERN}),
    "nonempty": (
        _nonempty_line_problem,
        {"type": "string", "minLength": 1, "pattern": _LINE_PATTERN},
    ),
    "name": (
        plain_name_problem,
        {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": _NAME_PATTERN},
    ),
    "name?": (
        _optional(plain_name_problem),
        {"type": "string", "maxLength": MAX_NAME, "pattern": f"^$|{_NAME_PATTERN}"},
    ),
    "path": (relative_path_problem, {"type": "string", "minLength": 1, "pattern": _PATH_PATTERN}),
    "path?": (
        _optional(relative_path_problem),
        {"type": "string", "pattern": f"^$|{_PATH_PATTERN}"},
    ),
    "sha256": (_sha256_problem, {"type": "string", "pattern": _SHA256_PATTERN}),
    "sha256?": (_optional(_sha256_problem), {"type": "string", "pattern": "^([0-9a-f]{64})?$"}),
    "image-digest": (_image_digest_problem, {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}),
    "image-digest?": (
        _optional(_image_digest_problem),
        {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$"},
    ),
    "text": (lambda _: None, {"type": "string"}),
}


def _spec(
    doc: str,
    check: str = "text",
    *,
    enum: tuple[str, ...] = (),
    maximum: int | None = None,
    default: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its schema: ``check`` (a key of _CHECKS), ``enum``, ``doc``,
    and for an integer its ``maximum`` (every integer is at least 0)."""
    metadata: dict[str, Any] = {"doc": doc, "check": check, "enum": enum}
    if maximum is not None:
        metadata["maximum"] = maximum
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(), metadata=metadata)
    return field(default=default, metadata=metadata)


def utcnow() -> str:
    """ISO-8601 UTC timestamp, second precision."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Artifact:
    """A file the release carries."""

    name: str = _spec("Plain file name, unique in the manifest; the release asset's name.", "name")
    path: str = _spec(
        "POSIX path relative to the manifest's directory, inside it, ending in `name`.", "path"
    )
    sha256: str = _spec("SHA-256 of the file, 64 lowercase hex digits.", "sha256")
    size: int = _spec(
        f"Size in bytes (at most {MAX_ARTIFACT_BYTES >> 30} GiB).", maximum=MAX_ARTIFACT_BYTES
    )
    kind: str = _spec("What the file is.", enum=KINDS)


@dataclass
class SbomRecord:
    """An SBOM file and the artifact whose digest it is bound to."""

    file: str = _spec("The SBOM artifact's name.", "name")
    format: str = _spec("Its format, e.g. `cyclonedx-1.6+json`.", "nonempty")
    describes: str = _spec("The artifact (wheel) it describes.", "name")
    describes_sha256: str = _spec("That artifact's SHA-256.", "sha256")


@dataclass
class SignatureRecord:
    """A signature (Sigstore bundle or GPG ``.asc``) over one subject file."""

    subject: str = _spec("The signed artifact's name.", "name")
    subject_sha256: str = _spec("Its SHA-256 when signed.", "sha256")
    file: str = _spec("The signature artifact's name (bundle or `.asc`).", "name")
    method: str = _spec("How it was signed.", enum=tuple(SIGNATURE_KINDS))
    identity: str = _spec("Certificate identity (Sigstore) or key fingerprint (GPG).", default="")
    issuer: str = _spec("OIDC issuer of the identity (Sigstore).", default="")
    log_index: int | None = _spec(
        "Transparency log index (Sigstore); the bundle's own must be the same.",
        maximum=MAX_LOG_INDEX,
        default=None,
    )


@dataclass
class AttestationRecord:
    """A signed in-toto statement (DSSE bundle) and the subjects it covers."""

    file: str = _spec("The attestation artifact's name.", "name")
    predicate_type: str = _spec("The statement's predicate type URI.", "nonempty")
    subjects: list[dict[str, Any]] = _spec(
        "The statement's subjects: `{name, digest: {sha256}}`.", "subjects"
    )


IMAGE_REFERRER_KINDS = ("signature", "provenance", "sbom-attestation")
#: The artifact kind of each image referrer's bundle: they are release assets too.
IMAGE_ARTIFACT_KINDS = {
    "signature": "image-signature",
    "provenance": "image-provenance",
    "sbom-attestation": "image-sbom-attestation",
}


@dataclass
class ImageReferrer:
    """A Sigstore bundle stored in the registry next to an image (an OCI referrer)."""

    kind: str = _spec("What the bundle is.", enum=IMAGE_REFERRER_KINDS)
    bundle: str = _spec("Name of the bundle file in the release.", "name")
    digest: str = _spec(
        "Digest of the referrer manifest in the registry, empty until pushed.",
        "image-digest?",
        default="",
    )


@dataclass
class ImageRecord:
    """A container image built or pushed by the actions."""

    ref: str = _spec("Image reference, e.g. `ghcr.io/o/n:1.2.0`.", "nonempty")
    digest: str = _spec("The image manifest's digest, `sha256:<64 hex>`.", "image-digest")
    sbom: str = _spec("Name of the image's SBOM artifact, or empty.", "name?", default="")
    repository: str = _spec(
        "Registry repository without tag, e.g. `ghcr.io/o/n` (empty: recorded by hand).",
        "line",
        default="",
    )
    tags: list[str] = _spec("Tags that must point at `digest`; pushed last.", default=[])
    image_id: str = _spec("The engine's image ID (digest of the image config).", "line", default="")
    sboms: list[str] = _spec("Names of the image's SBOM files (CycloneDX, SPDX).", default=[])
    referrers: list[ImageReferrer] = _spec(
        "Signature and attestations stored next to the image.", default=[]
    )
    layout: str = _spec(
        "OCI image layout directory holding the image (its manifest's digest is `digest`), "
        "relative to the manifest's directory; empty: none.",
        "path?",
        default="",
    )


@dataclass
class LedgerEntry:
    """One publish step at one destination: ``started`` before, ``done`` after."""

    sha256: str = _spec("SHA-256 of what was sent (empty for the release itself).", "sha256?")
    state: str = _spec("`started` before the step, `done` after it.", enum=LEDGER_STATES)
    at: str = _spec("When (ISO 8601, UTC).", "line")
    url: str = _spec("Where it is now.", "line", default="")


@dataclass
class ProjectInfo:
    """The release: every phase refuses a manifest of another project, version or tag."""

    name: str = _spec("Project name (`[project] name`).", "nonempty")
    version: str = _spec("Version being released.", "nonempty")
    tag: str = _spec("Release tag.", "line")
    commit: str = _spec("Commit the release is built from.", "line", default="")
    repository: str = _spec("GitHub `owner/name`.", "line", default="")


@dataclass
class Manifest:
    """The release manifest; see the module docstring."""

    project: ProjectInfo = _spec("The release this manifest is for.")
    artifacts: list[Artifact] = _spec("Every file the release carries.", default=[])
    sboms: list[SbomRecord] = _spec("SBOMs and the artifact each describes.", default=[])
    signatures: list[SignatureRecord] = _spec("Signatures and what each signs.", default=[])
    attestations: list[AttestationRecord] = _spec(
        "Signed in-toto statements and their subjects.", default=[]
    )
    images: list[ImageRecord] = _spec("Container images.", default=[])
    phases: dict[str, dict[str, Any]] = _spec(
        "Phase name -> its record: `status` (`pass`/`fail`), `at`, and details.",
        "phases",
        default={},
    )
    ledger: dict[str, dict[str, LedgerEntry]] = _spec(
        "Publish steps: destination (`github`, `pypi`, `github-release`) -> item -> entry.",
        default={},
    )
    path: Path | None = field(default=None, compare=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, compare=False, repr=False)

    # --- files -----------------------------------------------------------------------------
    @property
    def base(self) -> Path:
        """The directory artifact paths are relative to."""
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, artifact: Artifact) -> Path:
        """Absolute path of an artifact; InputError if it is not inside the manifest's
        directory (after symlinks): a manifest never makes a phase read files elsewhere."""
        base = self.base.resolve()
        problem = relative_path_problem(artifact.path)
        path = (base / artifact.path).resolve()
        if problem is None and not path.is_relative_to(base):
            problem = f"resolves to {path}, outside {base}"
        if problem:
            raise InputError(
                f"{self.path or 'manifest'}: {_shown(artifact.name)}: path "
                f"{_shown(artifact.path)} {problem}",
                hint="release files live in the dist directory under the manifest's directory",
            )
        return path

    def add_file(self, path: Path, kind: str) -> Artifact:
        """Hash ``path`` and record it (replacing an entry of the same name).

        InputError unless ``path`` is inside the manifest's directory and plainly named.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown artifact kind {kind!r}")
        path = Path(path).resolve()
        base = self.base.resolve()
        where = str(self.path or "manifest")
        check_plain_name(path.name, where=where)
        if not path.is_relative_to(base):
            raise InputError(
                f"{where}: {path} is outside the manifest's directory {base}",
                hint="keep the dist directory (and every release file) under the manifest's "
                "directory, or pass a --manifest path above it",
            )
        entry = Artifact(
            name=path.name,
            path=path.relative_to(base).as_posix(),
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

    def unsigned(self) -> list[Artifact]:
        """Artifacts that are not signed: neither a signature or attestation file the records
        name (with the matching kind; an image's bundles are named by its ``referrers``) nor the
        subject of a signature over its current digest.
        """
        signed = {(s.subject, s.subject_sha256) for s in self.signatures}
        signature_files = {(s.file, SIGNATURE_KINDS.get(s.method, "")) for s in self.signatures}
        signature_files |= {
            (r.bundle, IMAGE_ARTIFACT_KINDS[r.kind]) for i in self.images for r in i.referrers
        }
        attestation_files = {a.file for a in self.attestations}
        return [
            a
            for a in self.artifacts
            if (a.name, a.sha256) not in signed
            and (a.name, a.kind) not in signature_files
            and not (a.name in attestation_files and a.kind in ATTESTATION_KINDS)
        ]

    def expect_release(
        self,
        name: str | None,
        version: str | None,
        tag: str = "",
        *,
        repository: str = "",
        hint: str = "",
    ) -> Manifest:
        """``self`` if it is the manifest of release ``name`` ``version`` at ``tag`` of
        ``repository``, else an InputError naming both releases. What is None or empty is not
        compared; a tag is never matched by a manifest that records none. The rule the phases
        apply through :mod:`upm_ci.release`."""
        mine = self.project
        where = str(self.path or "manifest")
        hint = hint or "pass the manifest of this release (--manifest), or a fresh path"
        if (name is not None and mine.name != name) or (
            version is not None and mine.version != version
        ):
            wanted = " ".join(part for part in (name or mine.name, version) if part)
            raise InputError(
                f"{where}: manifest is for {mine.name} {mine.version}, not {wanted}", hint=hint
            )
        if tag and not mine.tag:
            raise InputError(
                f"{where}: manifest project.tag is empty; it cannot be held to tag {_tag(tag)}",
                hint="pass the manifest the release's phases wrote",
            )
        if tag and _tag(mine.tag) != _tag(tag):
            raise InputError(
                f"{where}: manifest is for {mine.name} {mine.version} at tag {mine.tag}, "
                f"not tag {_tag(tag)}",
                hint=hint,
            )
        if repository and mine.repository and mine.repository.lower() != repository.lower():
            raise InputError(
                f"{where}: manifest project.repository is {mine.repository!r}, not the pinned "
                f"{repository!r}",
                hint="pass the manifest of this repository's release (or the right --repository)",
            )
        return self

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

    def recorded_signer(self) -> RecordedSigner | None:
        """Whom the sign phase expected to sign (and the signing job's trigger, runner and
        commit), as it recorded it; None when no sign phase recorded an identity."""
        record = self.phases.get("sign")
        if not isinstance(record, dict):
            return None

        def text(key: str) -> str:
            value = record.get(key)
            return value if isinstance(value, str) else ""

        if not text("identity"):
            return None
        sha = text("sha")
        return RecordedSigner(
            ExpectedSigner(
                identity=text("identity"),
                repository=text("repository"),
                ref=text("ref"),
                issuer=text("issuer") or GITHUB_ISSUER,
            ),
            trigger=text("trigger"),
            runner_environment=text("runner_environment"),
            sha=sha if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha) else "",
        )

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
        """Check ``data`` against the schema and build the manifest (InputError if it is not)."""
        return _document(data, source)

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        """Read a manifest; InputError when missing, malformed, too large or deep, not of the
        schema, or of another schema version."""
        try:
            path = Path(path).resolve()
        except (OSError, ValueError) as e:
            raise InputError(f"{_shown(str(path))}: not a usable manifest path ({e})") from None
        data = _read_json(path)
        manifest = cls.from_json(data, source=str(path))
        manifest.path = path
        return manifest

    @classmethod
    def load_or_new(
        cls, path: Path | str, project: ProjectInfo, *, restamp: bool = False
    ) -> Manifest:
        """Load the manifest at ``path`` if it exists (checking it is this release's), else new.

        ``restamp`` (the gate, which starts a release): a manifest of this project and version
        that holds nothing but a gate record takes ``project``'s tag, commit and repository.
        """
        path = Path(path).resolve()
        if not path.is_symlink() and not os.path.lexists(path):
            manifest = cls(project=project)
            manifest.path = path
            return manifest
        manifest = cls.load(path)
        hint = "use a fresh --manifest path for another release"
        fresh = not manifest.artifacts and set(manifest.phases) <= {"gate"}
        if restamp and fresh:
            manifest.expect_release(project.name, project.version, hint=hint)
            manifest.project = dataclasses.replace(project)
            return manifest
        return manifest.expect_release(
            project.name,
            project.version,
            project.tag,
            hint=hint,
        )


def merge(manifests: list[Manifest]) -> Manifest:
    """Combine the manifests of several build jobs (a matrix) into one.

    All must describe the same release; one file name with two different digests is a
    policy failure, since one of the two builds produced bytes the other did not. Artifact
    paths of the result are absolute until :func:`rebase_paths` gives it a home.
    """
    if not manifests:
        raise InputError("manifest merge: no manifests given")
    first = manifests[0]
    out = Manifest(project=ProjectInfo(**asdict(first.project)))
    seen: dict[str, Artifact] = {}
    for m in manifests:
        m.expect_release(first.project.name, first.project.version, first.project.tag)
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
                path = m.resolve(a) if m.path else Path(a.path)
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
    """Make every artifact path relative to ``new_path``'s directory, then adopt it.

    InputError if a file is not under that directory: a manifest's paths never leave it.
    """
    new_base = Path(new_path).resolve().parent
    for a in manifest.artifacts:
        absolute = (manifest.base / a.path).resolve()
        if not absolute.is_relative_to(new_base):
            raise InputError(
                f"{new_path}: {a.name} ({absolute}) is outside {new_base}",
                hint="write the merged manifest into a directory that holds every build's "
                "files, e.g. next to the build manifests",
            )
        a.path = absolute.relative_to(new_base).as_posix()
    manifest.path = Path(new_path).resolve()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that ``path`` is never seen half-written (see write_text_atomic).

    Masked secrets and URL credentials are redacted: reports and ledgers are shared.
    """
    from upm_ci import gha

    write_text_atomic(path, json.dumps(gha.redact_data(data), indent=2, sort_keys=False) + "\n")


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


# --- reading and checking -------------------------------------------------------------------
def _shown(value: Any) -> str:
    """``value`` quoted for a one-line message: control characters escaped, at most 80 chars."""
    text = json.dumps(value, ensure_ascii=True) if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tag(tag: str) -> str:
    return tag.removeprefix("refs/tags/")


def _read_json(path: Path) -> Any:
    """The parsed JSON at ``path``: a regular file of at most MAX_BYTES, UTF-8, strict JSON
    (no NaN/Infinity, no duplicate keys), nested at most MAX_DEPTH deep."""
    try:
        if not path.exists():
            raise InputError(f"{path}: release manifest not found", hint="run `upm-ci build` first")
        if not path.is_file():
            raise InputError(f"{path}: release manifest is not a regular file")
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise InputError(f"{path}: cannot read the release manifest ({e.strerror or e})") from None
    if len(raw) > MAX_BYTES:
        raise InputError(
            f"{path}: release manifest is larger than {MAX_BYTES >> 20} MiB",
            hint="a release manifest is a few kilobytes; pass the one upm-ci wrote",
        )
    try:
        return _check_depth(
            json.loads(
                raw.decode("utf-8"),
                parse_constant=_no_constant,
                object_pairs_hook=_unique_keys,
            ),
            path,
        )
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: release manifest is not UTF-8 (byte {e.start})") from None
    except RecursionError:
        raise InputError(
            f"{path}: release manifest is nested deeper than {MAX_DEPTH} levels"
        ) from None
    except ValueError as e:  # JSONDecodeError, a duplicate key, NaN, an over-long integer
        raise InputError(f"{path}: release manifest is not valid JSON: {e}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {_shown(key)}")
        out[key] = value
    return out


def _check_depth(data: Any, path: Path) -> Any:
    """``data`` if it nests at most MAX_DEPTH deep and every string is Unicode text
    (JSON escapes can make lone surrogates, which no file name or output can hold)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(
                f"{path}: {where or '(document)'}: nested deeper than {MAX_DEPTH} levels"
            )
        items: list[tuple[Any, str]] = []
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"{where} key", path)
                items.append((item, _key_path(where, key)))
        elif isinstance(value, list):
            items = [(item, f"{where}[{i}]") for i, item in enumerate(value)]
        elif isinstance(value, str):
            _check_text(value, where, path)
        stack.extend((item, item_where, depth + 1) for item, item_where in items)
    return data


def _check_text(text: str, where: str, path: Path) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{path}: {where or '(document)'}: not Unicode text (a lone surrogate escape)"
        ) from None


def _key_path(where: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{where}.{key}" if where else key
    return f"{where}[{_shown(key)}]"


class _Bad(Exception):
    """A schema violation at a JSON path (turned into one InputError by _document)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where, self.problem = where, problem


#: The top-level JSON fields and the Manifest fields they fill.
_DOCUMENT_FIELDS = (
    "project",
    "artifacts",
    "sboms",
    "signatures",
    "attestations",
    "images",
    "phases",
    "ledger",
)


def _document(data: Any, source: str) -> Manifest:
    if not isinstance(data, dict) or "schema" not in data:
        raise InputError(f"{source}: not a upm-release manifest (no 'schema' field)")
    if data["schema"] != SCHEMA:
        raise InputError(
            f"{source}: manifest schema {_shown(data['schema'])} is not {SCHEMA!r}",
            hint="it was written by an incompatible upm-release; rebuild with this version",
        )
    try:
        values = _fields(
            Manifest, data, "", extra={"schema", "tool_version"}, only=_DOCUMENT_FIELDS
        )
        if not isinstance(data.get("tool_version", ""), str):
            raise _Bad("tool_version", f"expected a string, got {_type(data['tool_version'])}")
        manifest = Manifest(**values)
        _cross_check(manifest)
    except _Bad as bad:
        raise InputError(
            f"{source}: malformed manifest field {bad.where or '(document)'}: {bad.problem}",
            hint="the manifest is upm-ci's to write; pass the one the release's phases wrote",
        ) from None
    return manifest


def _fields(
    cls: type[Any],
    raw: Any,
    where: str,
    *,
    extra: typing.AbstractSet[str] = frozenset(),
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Checked constructor arguments of dataclass ``cls`` from the JSON object ``raw``."""
    if not isinstance(raw, dict):
        raise _Bad(where, f"expected an object, got {_type(raw)}")
    fields = {f.name: f for f in _schema_fields(cls, only)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields and key not in extra:
            raise _Bad(_key_path(where, key), f"unknown field (valid: {', '.join(fields)})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if _required(f):
                raise _Bad(_key_path(where, name), "is missing")
            continue
        values[name] = _value(raw[name], hints[name], f.metadata, _key_path(where, name))
    return values


def _schema_fields(cls: type[Any], only: tuple[str, ...] = ()) -> list[dataclasses.Field[Any]]:
    return [
        f for f in dataclasses.fields(cls) if "doc" in f.metadata and (not only or f.name in only)
    ]


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _value(raw: Any, hint: Any, meta: typing.Mapping[str, Any], where: str) -> Any:
    check = meta.get("check", "text")
    if check == "subjects":
        return _subjects(raw, where)
    if check == "phases":
        return _phases(raw, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint(**_fields(hint, raw, where))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(raw, list):
            raise _Bad(where, f"expected an array, got {_type(raw)}")
        return [_value(x, args[0], {}, f"{where}[{i}]") for i, x in enumerate(raw)]
    if origin is dict:
        if not isinstance(raw, dict):
            raise _Bad(where, f"expected an object, got {_type(raw)}")
        return {k: _value(v, args[1], {}, _key_path(where, k)) for k, v in raw.items()}
    if hint == (int | None):
        if raw is None:
            return None
        hint = int
    if hint is int:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise _Bad(where, f"expected an integer, got {_type(raw)}")
        if raw < 0:
            raise _Bad(where, f"{raw} is negative")
        if "maximum" in meta and raw > meta["maximum"]:
            raise _Bad(where, f"{raw} is larger than {meta['maximum']}: no real value is")
        return raw
    if hint is str:
        if not isinstance(raw, str):
            raise _Bad(where, f"expected a string, got {_type(raw)}")
        enum = meta.get("enum", ())
        if enum and raw not in enum:
            raise _Bad(where, f"{_shown(raw)} is not one of {', '.join(enum)}")
        problem = _CHECKS[check][0](raw)
        if problem:
            raise _Bad(where, f"{_shown(raw)} {problem}")
        return raw
    raise AssertionError(f"no schema for {hint!r}")  # pragma: no cover - a new field type


def _subjects(raw: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise _Bad(where, f"expected an array, got {_type(raw)}")
    for i, subject in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(subject, dict):
            raise _Bad(at, f"expected an object, got {_type(subject)}")
        if not isinstance(subject.get("name"), str) or not subject["name"]:
            raise _Bad(f"{at}.name", "expected a non-empty string")
        digest = subject.get("digest")
        if not isinstance(digest, dict) or not digest:
            raise _Bad(f"{at}.digest", "expected an object of algorithm -> hex digest")
        for alg, value in digest.items():
            if not isinstance(value, str):
                raise _Bad(_key_path(f"{at}.digest", alg), f"expected a string, got {_type(value)}")
        if "sha256" in digest and (problem := _sha256_problem(digest["sha256"])):
            raise _Bad(f"{at}.digest.sha256", f"{_shown(digest['sha256'])} {problem}")
    return list(raw)


def _phases(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise _Bad(where, f"expected an object, got {_type(raw)}")
    for phase, record in raw.items():
        at = _key_path(where, phase)
        if not isinstance(record, dict):
            raise _Bad(at, f"expected an object, got {_type(record)}")
        for key in ("status", "at"):
            if key in record and not isinstance(record[key], str):
                raise _Bad(f"{at}.{key}", f"expected a string, got {_type(record[key])}")
    return dict(raw)


def _cross_check(manifest: Manifest) -> None:
    """What one field cannot say alone: unique names, paths that end in their names."""
    seen: set[str] = set()
    for i, a in enumerate(manifest.artifacts):
        if a.name in seen:
            raise _Bad(f"artifacts[{i}].name", f"{_shown(a.name)} is listed twice")
        seen.add(a.name)
        if PurePosixPath(a.path).name != a.name:
            raise _Bad(f"artifacts[{i}].path", f"{_shown(a.path)} does not end in the name")


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "an array" if isinstance(value, list) else "an object"
    )


# --- the JSON Schema ------------------------------------------------------------------------
def json_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), from the same definitions the loader checks.

    The loader is stricter in what a schema cannot say: artifact names are unique, each path
    ends in its artifact's name and stays inside the manifest's directory after symlinks, a
    name is at most 255 UTF-8 bytes, the file is at most MAX_BYTES and MAX_DEPTH deep.
    """
    defs: dict[str, Any] = {}
    top = _object_schema(Manifest, defs, only=_DOCUMENT_FIELDS)
    top["properties"] = {
        "schema": {"const": SCHEMA, "description": "Schema version of this document."},
        "tool_version": {"type": "string", "description": "upm-release version that wrote it."},
        **top["properties"],
    }
    top["required"] = ["schema", *top["required"]]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"upm-release release manifest ({SCHEMA})",
        "description": (__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
        **top,
        "$defs": dict(sorted(defs.items())),
    }


def _object_schema(
    cls: type[Any], defs: dict[str, Any], only: tuple[str, ...] = ()
) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = _schema_fields(cls, only)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in fields if _required(f)],
        "properties": {
            f.name: {
                **_type_schema(hints[f.name], f.metadata, defs),
                "description": f.metadata["doc"],
            }
            for f in fields
        },
    }


def _type_schema(hint: Any, meta: typing.Mapping[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    check = meta.get("check", "text")
    if check == "subjects":
        digest = {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "string"},
            "properties": {"sha256": {"type": "string", "pattern": _SHA256_PATTERN}},
        }
        subject = {
            "type": "object",
            "required": ["name", "digest"],
            "properties": {"name": {"type": "string", "minLength": 1}, "digest": digest},
        }
        return {"type": "array", "items": subject}
    if check == "phases":
        record = {
            "type": "object",
            "properties": {"status": {"type": "string"}, "at": {"type": "string"}},
        }
        return {"type": "object", "additionalProperties": record}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # a placeholder first: a record may refer to itself
            defs[name] = {"description": (hint.__doc__ or "").strip(), **_object_schema(hint, defs)}
        return {"$ref": f"#/$defs/{name}"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], {}, defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], {}, defs)}
    bound = {"maximum": meta["maximum"]} if "maximum" in meta else {}
    if hint == (int | None):
        return {"type": ["integer", "null"], "minimum": 0, **bound}
    if hint is int:
        return {"type": "integer", "minimum": 0, **bound}
    if hint is str:
        enum = meta.get("enum", ())
        return {"type": "string", "enum": list(enum)} if enum else dict(_CHECKS[check][1])
    raise AssertionError(f"no schema for {hint!r}")  # pragma: no cover - a new field type
