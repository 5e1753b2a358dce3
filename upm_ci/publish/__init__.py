"""Phase 5, publish: the container images, the GitHub release and the package index.

Where things are: :mod:`upm_ci.publish.phase` (the phase, :func:`publish_release`, and the
order of its steps), :mod:`upm_ci.publish.github_release` (the draft-first GitHub release;
``GitHubApi``), :mod:`upm_ci.publish.pypi` (twine, Trusted Publishing, PEP 740),
:mod:`upm_ci.publish.audit_log` and :mod:`upm_ci.publish.audit_store` (the audit log and its
S3+KMS copy), :mod:`upm_ci.publish.handoff` (a release signed in another job, checked before
anything is sent), :mod:`upm_ci.publish.notes` (the release notes).

The package imports none of its modules (each is imported by its own name), so importing one
of them runs only what that one needs.
"""
