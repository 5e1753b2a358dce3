"""The image SBOM step beside ``syft docker:IMAGE -o cyclonedx-json``, what a user would run.

Both describe the same image: the example built on the stand-in base image (built once, not
timed). Ours (``upm_ci.image.sbom.write_image_sboms``) runs syft once on the OCI layout the
build wrote, for CycloneDX *and* SPDX, checks both name the recorded digest, validates both
(CycloneDX 1.6 schema, spdx-tools) and records them; theirs is one syft run against the
engine for CycloneDX only. Each run checks both list the same packages. The audit is not
timed here (bench_audit covers it). Needs a Docker engine and a Debian host.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from benchmarks._harness import BenchResult, timed
from tests.conftest import EXAMPLE, make_git_project
from upm_ci.cli import main
from upm_ci.image.engine import engine_problem
from upm_ci.image.sbom import scan_image, syft_command, syft_env, write_image_sboms
from upm_ci.manifest import Manifest
from upm_ci.standins.base_image import DEFAULT_NAME, make_base_image

REPOSITORY = "bench.local/upm-sample"


def _purls(cdx: dict[str, object]) -> set[str]:
    components = cdx.get("components", [])
    assert isinstance(components, list)
    return {str(c["purl"]) for c in components if isinstance(c, dict) and "purl" in c}


def run() -> list[BenchResult]:
    problem = engine_problem()
    if problem:
        raise RuntimeError(f"image SBOM benchmark needs a Docker engine: {problem}")
    base = make_base_image(DEFAULT_NAME)
    with tempfile.TemporaryDirectory(prefix="bench-image-sbom-") as tmp:
        root = Path(tmp)
        project = make_git_project(EXAMPLE, root / "upm-sample")
        with (project / "pyproject.toml").open("a") as f:
            f.write(f'image = "{REPOSITORY}"\n')
        subprocess.run(["git", "commit", "-qam", "image"], cwd=project, check=True,
                       env={"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
                            "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com",
                            "PATH": "/usr/bin:/bin", "HOME": tmp})  # fmt: skip
        manifest_path = root / "release-manifest.json"
        args = ["build", "--project", str(project), "--manifest", str(manifest_path)]
        code = main([*args, "--no-check-reproducible", "--no-smoke-test", "--image-base", base])
        if code != 0:
            raise RuntimeError(f"upm-ci build of the example image exited {code}")
        manifest = Manifest.load(manifest_path)
        record = manifest.images[0]
        found: dict[str, set[str]] = {}

        def ours() -> None:
            _, _, text = write_image_sboms(
                manifest, record, project / "dist", scan_image(manifest, record)
            )
            found["ours"] = _purls(json.loads(text))

        def theirs() -> None:
            out = root / "theirs.cdx.json"
            subprocess.run(
                [*syft_command(), f"docker:{record.ref}", "-q", "-o", f"cyclonedx-json={out}"],
                env=syft_env(),
                check=True,
                capture_output=True,
            )
            found["theirs"] = _purls(json.loads(out.read_text()))

        ours_s = timed(ours, repeat=3)
        theirs_s = timed(theirs, repeat=3)
        assert found["ours"] == found["theirs"], found["ours"] ^ found["theirs"]
    return [
        BenchResult(
            name=f"image SBOM of upm-sample ({len(found['ours'])} packages)",
            ours=ours_s,
            theirs=theirs_s,
            baseline="syft docker:IMAGE -o cyclonedx-json",
            target=1.2,
            note="ours: CycloneDX + SPDX from the OCI layout, digest-bound, both validated",
        )
    ]
