"""The checks of one release verification (:class:`ReleaseVerification`), and the forked
processes that share a large release's bundles (:func:`bundle_processes`, :func:`forked_map`).

Each bundle is verified in full by sigstore-python's own ``Verifier`` through its public
``verify_artifact`` / ``verify_dsse``, so every check sigstore has (or adds) runs. That work is
pure Python under the GIL, so it runs in one thread; a large release's bundles are shared
among forked processes.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import signal
import stat
import sys
from collections.abc import Callable, Collection
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from upm_ci.errors import PolicyError
from upm_ci.gpg import verify_signatures
from upm_ci.identity import ExpectedSigner
from upm_ci.image import release_assets
from upm_ci.layout import (
    BUNDLE_SUFFIX,
    CHECKSUMS,
    GPG_SIG_SUFFIX,
    IMAGE_BUNDLE_KINDS,
    PEP740_SUFFIX,
    RELEASE_STATEMENT,
    artifact_kind,
    sha256_file,
)
from upm_ci.manifest import Manifest, SignatureRecord
from upm_ci.provenance import (
    CYCLONEDX_BOM,
    IN_TOTO_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    statement_subjects,
)
from upm_ci.provenance import SLSA_PROVENANCE_V1 as SLSA_PROVENANCE
from upm_ci.release_statement import PASSED, ParsedStatement, StatementProblem, parse_statement
from upm_ci.retry import describe
from upm_ci.sigstore_common import (
    bundle_json_problem,
    explain_failure,
    hashed_sha256,
    log_entry_json,
    log_index,
    run_sigstore_check,
    verification_policy,
    verify_pep740,
)
from upm_ci.verify.report import FAIL, PASS, ArtifactReport

if TYPE_CHECKING:
    from sigstore.models import Bundle
    from sigstore.verify import Verifier

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


MIN_BUNDLES_PER_PROCESS = 64
#: Bundles per share of the forked processes: each is taken by the next process free, so a
#: process the machine gives less CPU takes fewer (one bundle is about 3 ms of CPU).
BUNDLES_PER_SHARE = 16


def bundle_processes(bundles: int, limit: int) -> int:
    """How many processes verify ``bundles`` bundles: several only on Linux and only with
    at least MIN_BUNDLES_PER_PROCESS each, so a fork always costs less than it saves.

    Bundle verification is pure Python under the GIL (threads make it slower), so the
    parallelism is forked processes that inherit the imported modules and the verifier; each
    verifies every bundle it is given in full.
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return 1
    return max(1, min(limit, bundles // MIN_BUNDLES_PER_PROCESS))


class ForkError(Exception):
    """A forked worker did not deliver its results."""


def forked_map(
    fn: Callable[[list[str]], list[_T]], chunks: list[list[str]], *, workers: int | None = None
) -> list[list[_T]]:
    """``[fn(chunk) for chunk in chunks]``, the first in this process, the others in a
    ``concurrent.futures`` process pool whose workers are forked from this process (so they
    inherit ``fn``, its verifier and every imported module; only the results are pickled).

    ``workers``: how many are forked (default: one per chunk but the first). With fewer, each
    takes the next chunk when done with one, and this process, once done with the first,
    takes the last chunks no worker has started yet (cancelling their futures) until the
    workers have them all: a process that gets less CPU (a busy machine) holds nobody up.

    Raises ForkError naming a worker's exit status when one fails (its exception is then
    raised again when the caller repeats the work itself)."""
    global _SHARED
    if len(chunks) < 2:
        return [fn(chunk) for chunk in chunks]
    count = len(chunks) - 1 if workers is None else max(1, min(workers, len(chunks) - 1))
    context = _fork_context()
    _SHARED = (fn, chunks)
    try:
        with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
            results: dict[int, list[_T]] = {}
            try:  # a worker may die before the last chunk is even submitted
                futures = [pool.submit(_run_share, i) for i in range(1, len(chunks))]
                results[0] = fn(chunks[0])
                unstarted = range(len(futures), 0, -1) if count < len(futures) else range(0)
                for i in unstarted:  # from the back: the workers take them from the front
                    if not futures[i - 1].cancel():
                        break
                    results[i] = fn(chunks[i])
                for i, future in enumerate(futures, 1):
                    if i not in results:
                        results[i] = future.result()
            except BrokenProcessPool:
                broken = True
            else:
                broken = False
    finally:
        _SHARED = None
    if broken:
        raise ForkError(_failed_worker(context.workers))
    return [results[i] for i in range(len(chunks))]


#: What the forked workers run: set by forked_map just before it forks them.
_SHARED: tuple[Callable[[list[str]], list[Any]], list[list[str]]] | None = None


def _run_share(index: int) -> list[Any]:
    """A worker's share. A share that raises ends the worker (exit 1), as one that is killed
    would: either way the caller verifies that share again itself."""
    assert _SHARED is not None
    fn, chunks = _SHARED
    try:
        return fn(chunks[index])
    except BaseException:  # noqa: BLE001 - any failure is the worker's failure
        os._exit(1)


def _fork_context() -> Any:
    """The fork start method, keeping the workers it starts (in ``.workers``) so that a
    failed one's exit status can be reported: ``ProcessPoolExecutor`` only says that its
    pool broke. Built on first use: Windows has no fork context."""
    from multiprocessing.context import ForkContext, ForkProcess

    class RecordingForkContext(ForkContext):
        def __init__(self) -> None:
            super().__init__()
            self.workers: list[BaseProcess] = []

        def Process(  # type: ignore[override]  # noqa: N802 - multiprocessing's name
            self, *args: Any, **kwargs: Any
        ) -> ForkProcess:
            process = ForkProcess(*args, **kwargs)
            self.workers.append(process)
            return process

    return RecordingForkContext()


def _failed_worker(workers: list[BaseProcess]) -> str:
    """'worker PID failed (exit N | killed by signal N)' for the worker that failed first:
    the pool stops the others with SIGTERM once one is gone."""
    for process in workers:
        process.join()
    failed = [p for p in workers if p.exitcode] or workers
    failed.sort(key=lambda p: p.exitcode == -signal.SIGTERM)
    process = failed[0]
    code = process.exitcode or 0
    status = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    return f"worker {process.pid} failed ({status})"


def release_files(
    directory: Path, ignore: Collection[Path], irregular: dict[str, str] | None = None
) -> list[Path]:
    """The regular files in ``directory`` by name, without those in ``ignore``.

    Every other entry (symlink, directory, FIFO, socket, device) goes to ``irregular`` with
    what it is, and is never opened: a release holds regular files only (GitHub assets are
    nothing else), a symlink may point anywhere and a FIFO would block the hashing forever.
    Only symlinks are resolved one by one (for ``ignore``); any other entry's real path is
    the resolved directory plus its name, which saves a ``realpath`` per file.
    """
    skip = {Path(p).resolve() for p in ignore}
    real_dir = directory.resolve()
    files = []
    with os.scandir(directory) as entries:
        for entry in entries:
            path = Path(entry.path)
            real = path.resolve() if entry.is_symlink() else real_dir / entry.name
            if real in skip:
                continue
            if entry.is_file(follow_symlinks=False):
                files.append(path)
            elif irregular is not None:
                irregular[entry.name] = _entry_kind(entry)
    return sorted(files, key=lambda p: p.name)


def _entry_kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "a symlink"
    if entry.is_dir(follow_symlinks=False):
        return "a directory"
    mode = entry.stat(follow_symlinks=False).st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or other special file"


class ReleaseVerification:
    """One verification of a release directory: its files, their digests and kinds, the
    shared verifier and identity policy, and the report entry of each file as checks add to it."""

    def __init__(
        self,
        directory: Path,
        files: list[Path],
        policy: ExpectedSigner,
        verifier: Verifier,
        processes: int,
    ) -> None:
        self.directory = directory
        self.processes = processes
        self.files = {p.name: p for p in files}
        self.kinds = {name: artifact_kind(name) for name in self.files}
        self.policy = policy
        self.sigstore_policy = verification_policy(policy)
        self.verifier = verifier
        self.entries: dict[str, ArtifactReport] = {}
        self.attestations: dict[str, list[dict[str, str]]] = {}
        #: The release statement, once it verified and parsed (check_release_statement).
        self.statement: ParsedStatement | None = None
        #: False before publish: the names the statement says publish adds are not required.
        self.published = True
        self.digests = {name: sha256_file(path) for name, path in self.files.items()}
        for name in self.files:
            self.entries[name] = ArtifactReport(name, self.digests[name])

    def entry(self, name: str) -> ArtifactReport:
        """The entry of ``name``; files that are expected but absent get one with no digest."""
        if name not in self.entries:
            self.entries[name] = ArtifactReport(name, "")
        return self.entries[name]

    def ordered(self) -> list[ArtifactReport]:
        return sorted(self.entries.values(), key=lambda a: a.name)

    def names(self, *kinds: str) -> list[str]:
        return [n for n, k in self.kinds.items() if k in kinds]

    # -- everything

    def verify_all(
        self, manifest: Manifest | None, gpg_public_key: Path | None, gpg_fingerprint: str = ""
    ) -> None:
        signed = self.names("wheel", "sdist", "sbom", "checksums", "toolchain-sbom", "file")
        for name, (status, reason) in zip(signed, self.bundle_checks(signed)):
            self.entry(name).add("sigstore", status, reason)
        self.check_release_statement()
        self.check_image_bundles()
        for name in self.names("attestation"):
            self.check_attestation(name)
        for name in self.names("pep740"):
            self.check_pep740(name)
        self.check_orphan_bundles()
        self.check_pep740_coverage()
        self.check_checksums()
        self.check_provenance_coverage()
        self.check_sbom_binding(manifest)
        self.check_gpg(gpg_public_key, gpg_fingerprint)
        if manifest is not None:
            self.check_manifest(manifest)
        if not self.names("wheel", "sdist"):
            self.entry("(release)").add(
                "distributions", FAIL, "no wheel or sdist in the release directory"
            )

    # -- Sigstore bundles of plain files

    def bundle_checks(self, names: list[str]) -> list[tuple[str, str]]:
        """(status, reason) of each file's bundle, in forked processes for large releases.

        The first bundle is verified here before forking, so the workers inherit every module
        sigstore imports lazily while verifying; should a worker fail, this process verifies
        its share itself.
        """
        processes = bundle_processes(len(names), self.processes)
        if processes == 1:
            return [self.bundle_check(n) for n in names]
        first, rest = self.bundle_check(names[0]), names[1:]
        count = max(processes, -(-len(rest) // BUNDLES_PER_SHARE))
        chunks = [rest[i::count] for i in range(count)]
        try:
            parts = forked_map(self._bundle_chunk, chunks, workers=processes - 1)
        except ForkError as e:
            log.warning("%s; verifying its bundles here", e)
            parts = [self._bundle_chunk(chunk) for chunk in chunks]
        results = {names[0]: first}
        for chunk, part in zip(chunks, parts):
            results.update(zip(chunk, part))
        return [results[n] for n in names]

    def _bundle_chunk(self, names: list[str]) -> list[tuple[str, str]]:
        return [self.bundle_check(n) for n in names]

    def bundle_check(self, name: str) -> tuple[str, str]:
        """(status, reason) of the Sigstore bundle of ``name``."""
        bundle_name = name + BUNDLE_SUFFIX
        if bundle_name not in self.files:
            return FAIL, f"no Sigstore bundle ({bundle_name} is missing)"
        raw = self.files[bundle_name].read_bytes()
        bundle, error = self.parse_bundle(raw)
        if bundle is None:
            return FAIL, f"{bundle_name}: {error}"
        hashed = hashed_sha256(self.digests[name])
        error = self.run_verify(
            lambda: self.verifier.verify_artifact(hashed, bundle, self.sigstore_policy)
        )
        if error:
            return FAIL, f"{bundle_name}: {explain_failure(self.policy, bundle, error)}"
        return PASS, f"{bundle_name}: {self.log_summary(bundle, raw)}"

    def load_bundle(self, path: Path) -> tuple[Bundle | None, str]:
        return self.parse_bundle(path.read_bytes())

    @staticmethod
    def parse_bundle(raw: bytes) -> tuple[Bundle | None, str]:
        from sigstore.models import Bundle

        try:
            return Bundle.from_json(raw), ""
        except Exception as e:  # noqa: BLE001 - any parse failure means "not a valid bundle"
            return None, bundle_json_problem(raw) or f"not a valid Sigstore bundle: {describe(e)}"

    @staticmethod
    def run_verify(fn: Callable[[], object]) -> str:
        return run_sigstore_check(fn)

    @staticmethod
    def log_summary(bundle: Bundle, raw: bytes | None = None) -> str:
        """What the log entry shows: read from ``raw``, the bundle's own JSON, when given
        (the bundle's model serialised again costs more than its verification's SCT check)."""
        entry = _raw_log_entry(raw) if raw is not None else {}
        entry = entry or log_entry_json(bundle)
        version = "v1" if entry.get("kindVersion", {}).get("version") == "0.0.1" else "v2"
        tree_size = entry.get("inclusionProof", {}).get("treeSize", "?")
        promise = " + SET" if "inclusionPromise" in entry else ""
        return (
            f"signature, identity and transparency log verified (Rekor {version} log index "
            f"{entry.get('logIndex', '?')}, inclusion proof in tree of {tree_size}"
            f" + signed checkpoint{promise})"
        )

    def check_orphan_bundles(self) -> None:
        for name in self.names("bundle"):
            subject = name[: -len(BUNDLE_SUFFIX)]
            entry = self.entry(name)
            if subject in self.files:
                entry.add("subject", PASS, f"bundle of {subject}")
            else:
                entry.add("subject", FAIL, f"bundle of {subject}, which is not in the release")

    # -- the release statement: every file by name and digest, and the gate's verdict

    def check_release_statement(self) -> None:
        """The release is exactly what its signed statement names: every subject present with
        its digest, every name publish adds later present, no other file (the statement
        itself aside), and the gate's verdict PASSED. A release without one fails."""
        entry = self.entry(RELEASE_STATEMENT)
        if RELEASE_STATEMENT not in self.files:
            entry.add(
                "statement",
                FAIL,
                "missing: without the signed release statement nothing shows which files the "
                "release has, nor that it passed the gate",
            )
            return
        statement = self.verify_dsse_line(entry, self.files[RELEASE_STATEMENT].read_bytes())
        if statement is None:
            return
        try:
            parsed = parse_statement(statement)
        except StatementProblem as e:
            entry.add("statement", FAIL, f"malformed release statement: {e}")
            return
        self.statement = parsed
        entry.add(
            "statement",
            PASS,
            f"names {len(parsed.files)} files, {len(parsed.images)} images and "
            f"{len(parsed.published_later)} files publish adds",
        )
        if parsed.result == PASSED:
            entry.add(
                "verdict", PASS, f"PASSED: {len(parsed.checks)} checks of {parsed.policy_uri}"
            )
        else:
            failed = [c.name for c in parsed.checks if c.status == "fail"]
            why = f" ({', '.join(failed)} failed)" if failed else ""
            entry.add("verdict", FAIL, f"the gate's verdict is {parsed.result}{why}")
        for name, digest in parsed.files.items():
            target = self.entry(name)
            if name not in self.files:
                target.add("release-statement", FAIL, f"named by {RELEASE_STATEMENT} but missing")
            elif self.digests[name] != digest:
                target.add(
                    "release-statement",
                    FAIL,
                    f"sha256 {self.digests[name][:12]}... != {RELEASE_STATEMENT} {digest[:12]}...",
                )
            else:
                target.add(
                    "release-statement", PASS, f"named by {RELEASE_STATEMENT} (sha256 matches)"
                )
        for name in parsed.published_later:
            if not self.published and name not in self.files:
                continue  # publish adds it; the hand-off is checked before publish
            target = self.entry(name)
            if name not in self.files:
                target.add(
                    "release-statement",
                    FAIL,
                    f"named by {RELEASE_STATEMENT} (added by publish) but missing",
                )
            else:
                target.add(
                    "release-statement",
                    PASS,
                    f"named by {RELEASE_STATEMENT} as added by publish; bound by its own bundle",
                )
        known = set(parsed.files) | set(parsed.published_later) | {RELEASE_STATEMENT}
        for name in self.files:
            if name not in known:
                self.entry(name).add(
                    "release-statement",
                    FAIL,
                    f"not part of the signed release ({RELEASE_STATEMENT} does not name it)",
                )

    # -- the images' bundles, attached to the release (the image row checks the registry's)

    def check_image_bundles(self) -> None:
        """Each image bundle in the release verifies for the identity policy and is bound to
        the digest the release statement names for its image (by the bundle's name); every
        image the statement names has all three. Offline: no registry is asked."""
        images = self.statement.images if self.statement is not None else {}
        bound: set[tuple[str, str]] = set()  # (repository, kind) verified
        for name in self.names(*IMAGE_BUNDLE_KINDS.values()):
            entry, kind = self.entry(name), self.kinds[name]
            if self.statement is None:
                entry.add(
                    "image",
                    FAIL,
                    f"no verified {RELEASE_STATEMENT} names the image digest this "
                    f"{release_assets.WHAT[kind]} must be bound to",
                )
                continue
            candidates = release_assets.images_named_by(name, images)
            if not candidates:
                entry.add(
                    "image",
                    FAIL,
                    f"an image {release_assets.WHAT[kind]} of no image the release statement "
                    f"names ({', '.join(images) or 'it names none'})",
                )
                continue
            repository = self.check_image_bundle(entry, name, kind, candidates)
            if repository:
                bound.add((repository, kind))
        version = self.release_version()
        for repository, digest in images.items():
            for kind, file in release_assets.bundle_names(repository, version).items():
                if (repository, kind) in bound or file in self.files:
                    continue  # verified, or its own entry says why not
                self.entry(file).add(
                    "image",
                    FAIL,
                    f"missing: the release statement names image {repository}@sha256:"
                    f"{digest[:12]}..., whose {release_assets.WHAT[kind]} must be attached to "
                    "the release",
                )

    def check_image_bundle(
        self, entry: ArtifactReport, name: str, kind: str, candidates: dict[str, str]
    ) -> str:
        """Verify one image bundle; the repository it is bound to, or '' (the entry says why)."""
        what = release_assets.WHAT[kind]
        if kind == "image-signature":
            bundle, error = self.load_bundle(self.files[name])
            if bundle is None:
                entry.add("sigstore", FAIL, error)
                return ""
            errors = []
            for repository, digest in candidates.items():
                error = self.run_verify(
                    partial(
                        self.verifier.verify_artifact,
                        hashed_sha256(digest),
                        bundle,
                        self.sigstore_policy,
                    )
                )
                if not error:
                    entry.add("sigstore", PASS, self.log_summary(bundle))
                    entry.add("image", PASS, _bound(what, repository, digest))
                    return repository
                errors.append(explain_failure(self.policy, bundle, error))
            entry.add("sigstore", FAIL, f"not a signature of {_images(candidates)}: {errors[0]}")
            return ""
        text = self.files[name].read_text("utf-8", "replace")
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            entry.add("sigstore", FAIL, f"{len(lines)} lines, not one DSSE bundle")
            return ""
        statement = self.verify_dsse_line(entry, lines[0].encode())
        if statement is None:
            return ""
        problems = []
        for repository, digest in candidates.items():
            problem = release_assets.attestation_problem(kind, statement, repository, digest)
            if not problem:
                entry.add("image", PASS, _bound(what, repository, digest))
                return repository
            problems.append(problem)
        entry.add("image", FAIL, f"not the {what} of {_images(candidates)}: {problems[0]}")
        return ""

    def release_version(self) -> str:
        """The version of the release's distributions (how the image bundles are named)."""
        from packaging.utils import parse_sdist_filename, parse_wheel_filename

        for name in self.names("wheel", "sdist"):
            try:
                if self.kinds[name] == "wheel":
                    return str(parse_wheel_filename(name)[1])
                return str(parse_sdist_filename(name)[1])
            except ValueError:
                continue
        return "<version>"

    # -- attestations (DSSE bundles of in-toto statements)

    def check_attestation(self, name: str) -> None:
        entry = self.entry(name)
        lines = [
            ln for ln in self.files[name].read_text("utf-8", "replace").splitlines() if ln.strip()
        ]
        if not lines:
            entry.add("sigstore", FAIL, "empty attestation file")
            return
        for line in lines:
            statement = self.verify_dsse_line(entry, line.encode())
            if statement is not None:
                self.check_statement(entry, statement)

    def verify_dsse_line(self, entry: ArtifactReport, line: bytes) -> dict[str, Any] | None:
        from sigstore.models import Bundle

        try:
            bundle = Bundle.from_json(line)
        except Exception as e:  # noqa: BLE001
            reason = bundle_json_problem(line) or f"not a valid Sigstore bundle: {describe(e)}"
            entry.add("sigstore", FAIL, reason)
            return None
        result: list[tuple[str, bytes]] = []
        error = self.run_verify(
            lambda: result.append(self.verifier.verify_dsse(bundle, self.sigstore_policy))
        )
        if error:
            entry.add("sigstore", FAIL, explain_failure(self.policy, bundle, error))
            return None
        entry.add("sigstore", PASS, self.log_summary(bundle, line))
        payload_type, payload = result[0]
        if payload_type != IN_TOTO_PAYLOAD_TYPE:
            entry.add("statement", FAIL, f"payload type {payload_type!r}, not in-toto")
            return None
        try:
            statement = json.loads(payload)
        except ValueError as e:
            entry.add("statement", FAIL, f"payload is not JSON: {e}")
            return None
        if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
            entry.add("statement", FAIL, f"not an in-toto {STATEMENT_TYPE} statement")
            return None
        return statement

    def check_statement(self, entry: ArtifactReport, statement: dict[str, Any]) -> None:
        predicate_type = statement.get("predicateType")
        subjects = statement_subjects(statement.get("subject"))
        if subjects is None:
            entry.add("statement", FAIL, "subject list is missing or malformed")
            return
        if predicate_type == SLSA_PROVENANCE:
            entry.add("statement", PASS, f"SLSA provenance ({SLSA_PROVENANCE})")
            self.check_provenance_subjects(entry, subjects)
        elif predicate_type == CYCLONEDX_BOM:
            entry.add("statement", PASS, f"SBOM attestation ({CYCLONEDX_BOM})")
            self.check_sbom_subjects(entry, subjects)
        else:
            entry.add("statement", FAIL, f"unknown predicateType {predicate_type!r}")

    # -- PEP 740 publish attestations

    def check_pep740(self, name: str) -> None:
        entry = self.entry(name)
        dist = name[: -len(PEP740_SUFFIX)]
        if self.kinds.get(dist) not in ("wheel", "sdist"):
            entry.add("pep740", FAIL, f"attestation of {dist}, which is no distribution here")
            return
        try:
            summary = verify_pep740(
                self.files[name].read_bytes(),
                dist,
                self.digests[dist],
                verifier=self.verifier,
                policy=self.sigstore_policy,
                explain=functools.partial(explain_failure, self.policy),
            )
        except PolicyError as e:
            entry.add("pep740", FAIL, str(e))
            self.entry(dist).add("pep740", FAIL, f"{name}: {e}")
            return
        entry.add("pep740", PASS, f"{summary} for {dist}")
        self.entry(dist).add("pep740", PASS, f"{name}: {summary}")

    def check_pep740_coverage(self) -> None:
        """PEP 740 attestations are optional (a release signed before they existed has none),
        but once one distribution has one, every distribution must."""
        dists = self.names("wheel", "sdist")
        attested = [n for n in dists if n + PEP740_SUFFIX in self.files]
        for name in dists:
            if attested and name not in attested:
                reason = f"no {name}{PEP740_SUFFIX} although {attested[0]} has one"
                self.entry(name).add("pep740", FAIL, reason)

    def check_provenance_subjects(self, entry: ArtifactReport, subjects: dict[str, str]) -> None:
        expected = {n: self.digests[n] for n in self.names("wheel", "sdist")}
        problems = [f"{n} is missing" for n in sorted(set(expected) - set(subjects))]
        problems += [f"{n} is not in the release" for n in sorted(set(subjects) - set(expected))]
        problems += [
            f"{n} digest {subjects[n][:12]}... != file {expected[n][:12]}..."
            for n in sorted(set(expected) & set(subjects))
            if subjects[n] != expected[n]
        ]
        if problems:
            entry.add("subjects", FAIL, "provenance subjects: " + "; ".join(problems))
            return
        entry.add("subjects", PASS, f"exactly the {len(expected)} distributions, digests match")
        for n in expected:
            self.attestations.setdefault(n, []).append({"kind": "provenance", "file": entry.name})

    def check_sbom_subjects(self, entry: ArtifactReport, subjects: dict[str, str]) -> None:
        wheels = {n: self.digests[n] for n in self.names("wheel")}
        if len(subjects) != 1:
            entry.add("subjects", FAIL, f"SBOM attestation has {len(subjects)} subjects, not 1")
            return
        ((name, digest),) = subjects.items()
        if name not in wheels:
            entry.add("subjects", FAIL, f"SBOM attestation subject {name} is not a wheel here")
        elif digest != wheels[name]:
            entry.add(
                "subjects",
                FAIL,
                f"SBOM attestation subject digest {digest[:12]}... != "
                f"{name} {wheels[name][:12]}...",
            )
        else:
            entry.add("subjects", PASS, f"bound to {name} (sha256 matches)")
            self.attestations.setdefault(name, []).append({"kind": "sbom", "file": entry.name})

    def check_provenance_coverage(self) -> None:
        for name in self.names("wheel", "sdist"):
            kinds = {a["kind"]: a["file"] for a in self.attestations.get(name, [])}
            entry = self.entry(name)
            if "provenance" in kinds:
                entry.add("provenance", PASS, f"a verified subject of {kinds['provenance']}")
            else:
                entry.add("provenance", FAIL, "not a verified subject of any SLSA provenance")
            if self.kinds[name] == "wheel":
                if "sbom" in kinds:
                    entry.add("sbom-attestation", PASS, f"bound by {kinds['sbom']}")
                else:
                    entry.add("sbom-attestation", FAIL, "no verified SBOM attestation binds it")

    # -- SHA256SUMS

    def check_checksums(self) -> None:
        entry = self.entry(CHECKSUMS)
        if CHECKSUMS not in self.files:
            entry.add("checksums", FAIL, f"{CHECKSUMS} is missing from the release")
            for name in self.names("wheel", "sdist"):
                self.entry(name).add("checksum", FAIL, f"no {CHECKSUMS} to check it against")
            return
        listed, bad_lines = _parse_sums(self.files[CHECKSUMS])
        if bad_lines:
            entry.add("checksums", FAIL, f"malformed lines: {', '.join(map(str, bad_lines))}")
        for name, digest in listed.items():
            target = self.entry(name)
            if name not in self.files:
                target.add("checksum", FAIL, f"listed in {CHECKSUMS} but missing")
            elif digest != self.digests[name]:
                target.add(
                    "checksum",
                    FAIL,
                    f"sha256 {self.digests[name][:12]}... != {CHECKSUMS} {digest[:12]}...",
                )
            else:
                target.add("checksum", PASS, f"matches {CHECKSUMS}")
        for name in self.names("wheel", "sdist"):
            if name not in listed:
                self.entry(name).add("checksum", FAIL, f"not listed in {CHECKSUMS}")
        if not bad_lines:
            entry.add("checksums", PASS, f"{len(listed)} files listed")

    # -- SBOM files bound to the wheel

    def check_sbom_binding(self, manifest: Manifest | None = None) -> None:
        """Each SBOM describes a wheel of this release, or an image the manifest records (the
        image row verifies that digest in its registry). An image SBOM without a manifest
        cannot be bound here: it fails, naming what to pass."""
        wheels = {self.digests[n]: n for n in self.names("wheel")}
        if self.statement is not None:  # the signed statement names the images' digests
            for name, digest in self.statement.images.items():
                wheels.setdefault(digest, f"image {name}")
        if manifest is not None:
            for image in manifest.images:
                wheels.setdefault(image.digest.removeprefix("sha256:"), f"image {image.ref}")
        for name in self.names("sbom"):
            entry = self.entry(name)
            try:
                document = json.loads(self.files[name].read_bytes())
                digests = _sbom_subject_digests(name, document)
            except (ValueError, TypeError, AttributeError, KeyError) as e:
                entry.add("sbom-binding", FAIL, f"cannot read the described component: {e}")
                continue
            bound = [wheels[d] for d in digests if d in wheels]
            if bound:
                entry.add("sbom-binding", PASS, f"describes {bound[0]} (sha256 matches)")
            elif not digests:
                entry.add("sbom-binding", FAIL, "the described component has no SHA-256 hash")
            else:
                entry.add(
                    "sbom-binding",
                    FAIL,
                    f"described component sha256 {digests[0][:12]}... is neither a wheel's "
                    "digest nor an image's that the release statement (or --manifest) names",
                )

    # -- GPG

    def check_gpg(self, gpg_public_key: Path | None, fingerprint: str = "") -> None:
        """GPG signatures count only by a pinned key: ``gpg_public_key`` (only that key is
        imported) or ``fingerprint`` (the keys shipped in the release are imported, and only a
        signature by the key with this fingerprint counts). A key shipped in the release is
        never trusted on its own: whoever replaces the signatures replaces it with them. Once
        the release carries one ``.asc``, every distribution needs its own."""
        signatures = self.names("gpg-signature")
        shipped = self.names("gpg-key")
        pin = "--gpg-public-key FILE or config gpg-fingerprint"
        for name in shipped:
            if gpg_public_key is not None:
                self.entry(name).add("gpg-key", PASS, "shipped, not used (--gpg-public-key given)")
            elif fingerprint:
                self.entry(name).add(
                    "gpg-key", PASS, f"shipped; only signatures by {fingerprint[-16:]} count"
                )
            else:
                self.entry(name).add(
                    "gpg-key",
                    FAIL,
                    "a public key shipped with the release proves nothing on its own (it is "
                    f"replaced together with the signatures): pin it with {pin}",
                )
        if not signatures:
            return
        for dist in self.names("wheel", "sdist"):
            if dist + GPG_SIG_SUFFIX not in self.files:
                self.entry(dist).add(
                    "gpg",
                    FAIL,
                    f"no {dist}{GPG_SIG_SUFFIX} although the release carries GPG signatures"
                    f" ({signatures[0]})",
                )
        keys = [gpg_public_key] if gpg_public_key is not None else [self.files[n] for n in shipped]
        if gpg_public_key is None and not fingerprint:
            outcomes = {n: (FAIL, f"no pinned GPG key to check it: pass {pin}") for n in signatures}
        elif not keys:
            outcomes = {
                n: (FAIL, "the release ships no public key: pass --gpg-public-key")
                for n in signatures
            }
        else:
            pairs = [(self.files[n], self.files.get(n[: -len(GPG_SIG_SUFFIX)])) for n in signatures]
            outcomes = {
                n: (PASS if ok else FAIL, reason)
                for n, (ok, reason) in verify_signatures(keys, pairs, fingerprint).items()
            }
        for name, (status, reason) in outcomes.items():
            self.entry(name).add("gpg", status, reason)
            subject = name[: -len(GPG_SIG_SUFFIX)]
            if subject in self.files:
                self.entry(subject).add("gpg", status, f"{name}: {reason}")

    # -- manifest

    def check_manifest(self, manifest: Manifest) -> None:
        """The manifest holds to the release: every file of the release is among its
        ``artifacts`` (none omitted) with its digest and size, each recorded file is there,
        and every ``signatures`` record names the file that really signs its subject (a
        bundle recorded for A is never B's), the subject's digest, and the log index the
        bundle itself carries. A failure names the manifest field."""
        recorded: set[str] = set()
        for i, artifact in enumerate(manifest.artifacts):
            recorded.add(artifact.name)
            at = f"manifest artifacts[{i}]"
            entry = self.entry(artifact.name)
            if artifact.name not in self.files:
                entry.add(
                    "manifest", FAIL, f"recorded in the manifest ({artifact.kind}) but missing"
                )
            elif artifact.sha256 != self.digests[artifact.name]:
                entry.add(
                    "manifest",
                    FAIL,
                    f"{at}.sha256: file sha256 {self.digests[artifact.name][:12]}... != manifest "
                    f"{artifact.sha256[:12]}...",
                )
            elif artifact.size != (size := self.files[artifact.name].stat().st_size):
                entry.add(
                    "manifest",
                    FAIL,
                    f"{at}.size: the manifest records {artifact.size} bytes, the file has {size}",
                )
            else:
                entry.add("manifest", PASS, f"matches the manifest ({artifact.kind})")
        for name in self.files:
            if name not in recorded:
                self.entry(name).add(
                    "manifest",
                    FAIL,
                    "manifest artifacts: the release carries this file, the manifest omits it",
                )
        for i, record in enumerate(manifest.signatures):
            self.check_signature_record(f"manifest signatures[{i}]", record)

    def check_signature_record(self, at: str, record: SignatureRecord) -> None:
        suffix = BUNDLE_SUFFIX if record.method == "sigstore" else GPG_SIG_SUFFIX
        entry = self.entry(record.file)
        if record.file != record.subject + suffix:
            signs = record.file.removesuffix(suffix) if record.file.endswith(suffix) else "?"
            entry.add(
                "manifest",
                FAIL,
                f"{at}.file: {record.file} is recorded as the {record.method} signature of "
                f"{record.subject}, but it is {signs}'s",
            )
        elif record.file not in self.files:
            entry.add("manifest", FAIL, f"{at}.file: {record.file} is not in the release")
        elif record.subject not in self.files:
            entry.add("manifest", FAIL, f"{at}.subject: {record.subject} is not in the release")
        elif record.subject_sha256 != self.digests[record.subject]:
            entry.add(
                "manifest",
                FAIL,
                f"{at}.subject_sha256: {record.subject_sha256[:12]}... is not "
                f"{record.subject}'s sha256 {self.digests[record.subject][:12]}...",
            )
        elif record.method == "sigstore":
            carried = log_index(self.files[record.file].read_text("utf-8", "replace"))
            if record.log_index is not None and record.log_index != carried:
                entry.add(
                    "manifest",
                    FAIL,
                    f"{at}.log_index: the manifest records {record.log_index}, the bundle's "
                    f"log entry is {carried}",
                )
            else:
                entry.add("manifest", PASS, f"the recorded signature of {record.subject}")
        else:
            entry.add("manifest", PASS, f"the recorded signature of {record.subject}")


def _raw_log_entry(raw: bytes) -> dict[str, Any]:
    """The first transparency log entry of a bundle's JSON, or {} (then the model is asked)."""
    try:
        entries = json.loads(raw)["verificationMaterial"]["tlogEntries"]
    except (ValueError, TypeError, KeyError):
        return {}
    entry = entries[0] if isinstance(entries, list) and entries else {}
    return entry if isinstance(entry, dict) and "logIndex" in entry else {}


def _bound(what: str, repository: str, digest: str) -> str:
    return f"{what} of {repository}@sha256:{digest[:12]}..., the digest the release statement names"


def _images(images: dict[str, str]) -> str:
    return ", ".join(f"{r}@sha256:{d[:12]}..." for r, d in images.items())


_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def _parse_sums(path: Path) -> tuple[dict[str, str], list[int]]:
    listed: dict[str, str] = {}
    bad: list[int] = []
    for number, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _SUM_LINE.match(line)
        if not m or m.group(2) in listed or "/" in m.group(2):
            bad.append(number)
            continue
        listed[m.group(2)] = m.group(1).lower()
    return listed, bad


def _sbom_subject_digests(name: str, document: dict[str, Any]) -> list[str]:
    """SHA-256 hashes of the component an SBOM describes (CycloneDX or SPDX 2.x JSON)."""
    if name.endswith(".cdx.json"):
        hashes = document["metadata"]["component"].get("hashes", [])
        return [h["content"].lower() for h in hashes if h.get("alg") == "SHA-256"]
    described = set(document.get("documentDescribes", []))
    for rel in document.get("relationships", []):
        if rel.get("relationshipType") == "DESCRIBES":
            described.add(rel.get("relatedSpdxElement"))
    out = []
    for package in document.get("packages", []):
        if package.get("SPDXID") in described:
            out += [
                c["checksumValue"].lower()
                for c in package.get("checksums", [])
                if c.get("algorithm") == "SHA256"
            ]
    return out
