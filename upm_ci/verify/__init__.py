"""Phase 6, verify: check what was published, end to end, and say per file and check what
passed.

Where things are: :mod:`upm_ci.verify.phase` (the phase, :func:`verify_phase`: the release
files, the audit log's S3 copy, the images in their registry, the manifest's record; and
:func:`verify_release`, one release directory), :mod:`upm_ci.verify.checks` (the checks, and
the forked processes for a large release's bundles), :mod:`upm_ci.verify.report` (the
report), :mod:`upm_ci.sigstore_common` (trust root, identity policy, bundle verification),
:mod:`upm_ci.release_download` (fetching a GitHub release to verify).
"""

from __future__ import annotations

from upm_ci.verify.phase import GitHubRelease, image_files, verify_phase, verify_release
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

__all__ = [
    "FAIL",
    "NOT_CHECKED",
    "PASS",
    "SCHEMA",
    "WARN",
    "ArtifactReport",
    "Check",
    "GitHubRelease",
    "VerifyReport",
    "image_files",
    "verify_phase",
    "verify_release",
]
