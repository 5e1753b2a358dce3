"""Phase 6, verify: check what was published, end to end, and say per file and check what
passed.

Where things are: :mod:`upm_ci.verify.phase` (the phase, :func:`verify_phase`: the release
files, the audit log's S3 copy, the images in their registry, the manifest's record; and
:func:`verify_release`, one release directory), :mod:`upm_ci.verify.checks` (the checks, and
the forked processes for a large release's bundles), :mod:`upm_ci.verify.report` (the
report), :mod:`upm_ci.sigstore_common` (trust root, identity policy, bundle verification),
:mod:`upm_ci.release_download` (fetching a GitHub release to verify).

The package imports none of its modules (each is imported by its own name), so importing one
of them runs only what that one needs.
"""
