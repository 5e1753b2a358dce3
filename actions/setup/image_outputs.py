"""Step outputs for the Docker steps: the image the build phase recorded in the manifest.

Runs in the tool venv (``python -I``). Reads ``UPM_MANIFEST``, ``UPM_IMAGE`` and
``UPM_IMAGE_SBOM_FORMAT`` (syft's format, default ``cyclonedx-json``) and writes
``ref``, ``digest``, ``pinned`` (name@digest), ``sbom-name`` and ``sbom-path`` (next to the
manifest's artifacts) to ``$GITHUB_OUTPUT``. Exits 2 when the build phase recorded no image.
"""

import os
import sys
from pathlib import Path

from upm_ci import gha
from upm_ci.errors import InputError
from upm_ci.manifest import Manifest


def main() -> int:
    name = os.environ["UPM_IMAGE"]
    try:
        manifest = Manifest.load(Path(os.environ["UPM_MANIFEST"]))
    except InputError as e:
        print(f"upm-release: error: {e}", file=sys.stderr)
        return 2
    records = [i for i in manifest.images if i.ref.rsplit(":", 1)[0] == name]
    if not records:
        gha.annotate("error", f"{manifest.path}: no image {name} recorded; run the build phase")
        return 2
    image = records[-1]
    # RELEASE.md asks for the image SBOM in CycloneDX JSON; syft's other formats keep their name.
    fmt = os.environ.get("UPM_IMAGE_SBOM_FORMAT") or "cyclonedx-json"
    suffix = {"cyclonedx-json": "cdx.json", "spdx-json": "spdx.json"}.get(fmt, f"{fmt}.sbom")
    stem = f"{manifest.project.name}-{manifest.project.version}.image"
    sbom_name = image.sbom or f"{stem}.{suffix}"
    first = next(iter(manifest.artifacts), None)
    folder = manifest.resolve(first).parent if first else Path(os.environ["UPM_MANIFEST"]).parent
    gha.set_output("ref", image.ref)
    gha.set_output("digest", image.digest)
    gha.set_output("pinned", f"{name}@{image.digest}")
    gha.set_output("sbom-name", sbom_name)
    gha.set_output("sbom-path", str(folder / sbom_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
