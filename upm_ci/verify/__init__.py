"""Phase 6: verify a release directory (or what a GitHub release holds) end to end.

Every file gets an entry with one status per check, so a user sees which artifact failed and
why: its Sigstore bundle under the expected identity policy, its line in ``SHA256SUMS``, its
GPG signature, its place among the provenance subjects, and (wheel, SBOMs) the SBOM binding.
Anything that cannot be checked fails: an artifact without a bundle, an unlisted distribution,
a provenance that does not name exactly the distributions. PEP 740 publish attestations
(``<dist>.publish.attestation``) are optional, but each one must verify for its distribution
under the identity policy, and once one distribution has one, every distribution must.

What "offline" covers: verification never talks to Rekor or Fulcio. The bundle carries the
evidence (certificate with its embedded SCT, the log entry with its inclusion proof and signed
checkpoint, the Rekor v1 signed entry timestamp, RFC 3161 timestamps) and sigstore-python
checks all of it against the keys in the trust root. The only network use is fetching that
trust root from Sigstore's TUF repository when no ``--trust-config`` is given; ``--offline``
then uses the TUF cache instead. With ``--trust-config`` nothing goes over the network.

Where things are: :mod:`upm_ci.verify.checks` (the checks, and the forked processes for a
large release's bundles), :mod:`upm_ci.verify.report` (the report), :mod:`upm_ci.sigstore_common`
(trust root, identity policy, bundle verification), :mod:`upm_ci.release_download` (fetching
a GitHub release to verify).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from upm_ci.config import normalize_fingerprint
from upm_ci.errors import InputError
from upm_ci.identity import ExpectedSigner
from upm_ci.retry import describe
from upm_ci.sigstore_common import load_trusted_root, make_verifier
from upm_ci.verify.checks import ReleaseVerification, available_cpus, release_files
from upm_ci.verify.report import (
    FAIL,
    NOT_CHECKED,
    PASS,
    SCHEMA,
    WARN,
    ArtifactReport,
    Check,
    VerifyReport,
)

if TYPE_CHECKING:
    from sigstore.verify import Verifier

    from upm_ci.manifest import Manifest

__all__ = [
    "FAIL",
    "NOT_CHECKED",
    "PASS",
    "SCHEMA",
    "WARN",
    "ArtifactReport",
    "Check",
    "VerifyReport",
    "image_files",
    "verify_release",
]

log = logging.getLogger(__name__)


def image_files(manifest: Manifest | None, directories: Collection[Path]) -> list[Path]:
    """The images' OCI layouts and bundles in these dist directories: verified from the
    registry (a row per image), not as release files."""
    if manifest is None or not manifest.images:
        return []
    from upm_ci.image.registry import layout_dir

    found: list[Path] = []
    for record in manifest.images:
        for d in directories:
            found.append(layout_dir(manifest, record, d))
            found += [d / r.bundle for r in record.referrers]
    return found


def verify_release(
    directory: Path,
    *,
    policy: ExpectedSigner,
    trust_config: Path | None,
    offline: bool,
    manifest: Manifest | None,
    gpg_public_key: Path | None,
    gpg_fingerprint: str = "",
    ignore: Collection[Path] = (),
    verifier: Verifier | None = None,
    processes: int | None = None,
    published: bool = True,
) -> VerifyReport:
    """Verify every file in ``directory``; the report says what passed, per file and check.

    ``published``: False for a release checked before publish (the hand-off), which cannot
    hold yet the files the release statement says publish adds (its audit log).

    ``ignore``: files in the directory that are not part of the release (the report itself).
    ``verifier``: a prepared verifier to reuse (its trust root wins over ``trust_config``).
    ``processes``: at most this many processes check bundles (default: the CPUs this process
    may use); see :func:`upm_ci.verify.checks.bundle_processes`.
    ``gpg_public_key`` / ``gpg_fingerprint``: the pinned GPG key (see
    ``ReleaseVerification.check_gpg``).
    """
    if processes is not None and processes < 1:
        raise InputError(f"--processes {processes}: must be at least 1")
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: release directory not found", hint="pass the dist dir")
    if gpg_public_key is not None and not gpg_public_key.is_file():
        raise InputError(f"{gpg_public_key}: GPG public key not found")
    irregular: dict[str, str] = {}
    files = release_files(directory, ignore, irregular)
    if verifier is None:
        root = load_trusted_root(trust_config, offline=offline)
        try:
            verifier = make_verifier(root)
        except Exception as e:  # noqa: BLE001 - sigstore raises several kinds for a bad root
            raise InputError(
                f"{trust_config or 'Sigstore trust root'}: unusable trust root: {describe(e)}"
            ) from None
    run = ReleaseVerification(directory, files, policy, verifier, processes or available_cpus())
    fingerprint = normalize_fingerprint(gpg_fingerprint, where="--gpg-fingerprint")
    run.published = published
    run.verify_all(manifest, gpg_public_key, fingerprint)
    for name, kind in irregular.items():
        run.entry(name).add(
            "regular-file",
            FAIL,
            f"{kind}, not a regular file: a release directory holds regular files only",
        )
    log.info("verified %d files in %s", len(files), directory)
    return VerifyReport(policy=policy.fields(), artifacts=run.ordered(), directory=str(directory))
