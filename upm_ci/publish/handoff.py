"""The signed release handed over by upm-release's reusable workflow, checked before publishing.

With ``publish: false`` the reusable workflow stops after signing and hands the manifest and
``dist/`` to a publish job of the caller's own workflow (the only job PyPI can take as a
trusted publisher). Between the two jobs the files pass through a workflow artifact, so that
job trusts none of them: before anything is sent anywhere, :func:`check_handoff`

- compares the hand-off digest the reusable workflow put in its outputs
  (:func:`handoff_digest`: the sha256 of every file's name and sha256 the manifest lists, so a
  changed manifest entry shows; publish's own audit log, added on a re-run, is left out), and
- runs the verify phase (:func:`upm_ci.verify.phase.verify_release`) on the local dist directory for
  the signer the release must have: every file's bundle, the provenance and SBOM attestations,
  PEP 740 attestations, SHA256SUMS and the manifest's digests, whatever verify checks.

The signer is upm-release's reusable workflow (``reusable``: the identity verify expects for
that path, :data:`upm_ci.identity.UPM_RELEASE_IDENTITY`) or an exact identity, always pinned
to the releasing repository and the tag: the same workflow called from another repository, a
release signed by another workflow, or a tampered or swapped file fails with exit 1, naming
each file and check that failed.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from upm_ci.errors import InputError, PolicyError
from upm_ci.identity import ExpectedSigner

if TYPE_CHECKING:
    from upm_ci.manifest import Manifest
    from upm_ci.verify.report import VerifyReport

log = logging.getLogger(__name__)

DIGEST_PREFIX = "sha256:"
_SHOWN_FAILURES = 6


def own_files(manifest: Manifest) -> set[str]:
    """Names of publish's own audit log and its bundle the manifest lists (after a run)."""
    logs = {a.name for a in manifest.of_kind("audit-log")}
    return logs | {f"{name}.sigstore.json" for name in logs}


def handoff_digest(manifest: Manifest) -> str:
    """``sha256:<hex>`` over ``"<sha256>  <name>\\n"`` of every file the manifest lists, by
    name, publish's own files left out (what ``upm-ci manifest digest`` prints)."""
    skip = own_files(manifest)
    lines = sorted(f"{a.sha256}  {a.name}\n" for a in manifest.artifacts if a.name not in skip)
    return DIGEST_PREFIX + hashlib.sha256("".join(lines).encode()).hexdigest()


def check_digest(manifest: Manifest, expected: str) -> None:
    """PolicyError unless the manifest's hand-off digest is ``expected``."""
    if not expected.startswith(DIGEST_PREFIX) or len(expected) != len(DIGEST_PREFIX) + 64:
        raise InputError(
            f"--handoff-digest {expected!r}: not sha256:<64 hex digits>",
            hint="pass the reusable workflow's output signed-artifact-digest as it is",
        )
    actual = handoff_digest(manifest)
    if actual != expected.lower():
        raise PolicyError(
            f"{manifest.path or 'manifest'}: the hand-off digest is {actual}, but the reusable"
            f" workflow handed over {expected.lower()}: the files listed (or their digests)"
            " changed between the jobs; nothing was published",
            hint="re-run the whole release workflow; find out what changed the artifact",
        )


def check_handoff(
    manifest: Manifest,
    dist_dir: Path,
    *,
    signer: ExpectedSigner | None,
    digest: str = "",
    trust_config: Path | None = None,
    gpg_fingerprint: str = "",
    own: Collection[str] = (),
) -> VerifyReport | None:
    """Check the handed-over release (see the module docstring); PolicyError naming what
    differs, InputError when it cannot be read (a missing artifact). ``gpg_fingerprint``:
    the project's pinned key, when the release carries ``.asc`` signatures. ``own``: names of
    publish's own files (its audit log and bundle) an earlier run may have left in the dist
    directory; they are publish's to sign, not the reusable workflow's."""
    if digest:
        check_digest(manifest, digest)
    if signer is None:
        return None
    from upm_ci.verify.phase import image_files, verify_release

    if not dist_dir.is_dir():
        raise InputError(
            f"{dist_dir}: the handed-over dist directory is missing",
            hint="download the reusable workflow's signed-artifact next to the manifest",
        )
    own = own_files(manifest) | set(own)
    checked = copy.copy(manifest)
    checked.artifacts = [a for a in manifest.artifacts if a.name not in own]
    ignore = [dist_dir / name for name in own] + image_files(manifest, [dist_dir])
    report = verify_release(
        dist_dir,
        policy=signer,
        trust_config=trust_config,
        offline=False,
        manifest=checked,
        gpg_public_key=None,
        gpg_fingerprint=gpg_fingerprint,
        ignore=ignore,
        published=False,
    )
    failures = report.failures()
    if failures or not report.passed:
        shown = [f"{name}: {check.check}: {check.reason}" for name, check in failures]
        shown = shown or ["nothing in it to verify"]
        more = len(shown) - _SHOWN_FAILURES
        raise PolicyError(
            f"{dist_dir}: the handed-over release does not verify as signed by"
            f" {signer.describe()}; nothing was published: "
            + "; ".join(shown[:_SHOWN_FAILURES])
            + (f"; and {more} more" if more > 0 else ""),
            hint="publish only what the reusable workflow signed for this repository and tag;"
            " re-run the whole release workflow",
        )
    log.info("hand-off: %d files verify as signed by %s", len(report.artifacts), signer.describe())
    return report
