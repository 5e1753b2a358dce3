"""Container images: build the project's Dockerfile, write it as an OCI image layout, SBOM it.

- :mod:`upm_ci.image.engine`: where the Docker engine is and whether it answers, and the one
  runner every image step uses to talk to it (the ``docker`` CLI).
- :mod:`upm_ci.image.build`: ``docker build`` for the release, then ``docker save`` turned
  into an OCI image layout under ``<dist>/oci-image/`` whose manifest digest is the image's
  release digest (recorded in the manifest's ``images``).
- :mod:`upm_ci.image.sbom`: syft on that layout (CycloneDX and SPDX JSON, bound to the
  digest), then the same OSV audit as the Python SBOM.
"""
