"""Only phase functions record phases, and each runs its own image step (issue 25): called
directly, without the CLI, the sbom phase records itself once with its image step's result,
and the sign phase records its own failure when the release has images."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from tests.test_sbom import _raw_bom
from upm_ci import sign
from upm_ci.errors import InputError
from upm_ci.image.sbom import ImageSbomResult
from upm_ci.manifest import Artifact, ImageRecord, Manifest, ProjectInfo
from upm_ci.project import load_project
from upm_ci.sbom import AuditFailed, make_sboms
from upm_ci.vulnerability_audit import AuditOutcome

DIGEST = "sha256:" + "cd" * 32


def _release(tmp_path: Path, *, image: bool) -> tuple[Any, Manifest]:
    root = tmp_path / "demo"
    (root / "dist").mkdir(parents=True)
    config = '\n[tool.upm-release]\nimage = "127.0.0.1:5000/demo"\n' if image else ""
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "demo-pkg"\nversion = "1.2.0"\n{config}'
    )
    wheel = root / "dist" / "demo_pkg-1.2.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel")
    manifest = Manifest(project=ProjectInfo("demo-pkg", "1.2.0", "v1.2.0", repository="o/demo"))
    manifest.save(root / "release-manifest.json")
    manifest.add_file(wheel, "wheel")
    if image:
        manifest.add_image(
            ImageRecord(
                ref="127.0.0.1:5000/demo:1.2.0",
                digest=DIGEST,
                repository="127.0.0.1:5000/demo",
                tags=["1.2.0"],
                layout="dist/oci-image",
            )
        )
    manifest.save()
    return load_project(root), manifest


def _image_result(manifest: Manifest, *, passed: bool) -> ImageSbomResult:
    art = Artifact(
        name="demo-1.2.0.image.cdx.json", path="dist/x", sha256="ef" * 32, size=1, kind="sbom"
    )
    outcome = AuditOutcome(packages=(("zlib", "1"),), problems=[] if passed else ["zlib: seeded"])
    return ImageSbomResult(manifest.images[0], art, art, [], outcome)


@pytest.mark.parametrize("image_passes", [True, False], ids=["image-passes", "image-fails"])
def test_the_sbom_phase_runs_its_image_step_and_records_itself_once(
    tmp_path: Path, mocker: MockerFixture, image_passes: bool
) -> None:
    project, manifest = _release(tmp_path, image=True)
    mocker.patch("upm_ci.sbom.environment_bom", autospec=True, return_value=_raw_bom())
    step = mocker.patch(
        "upm_ci.sbom.make_image_sboms",
        autospec=True,
        return_value=[_image_result(manifest, passed=image_passes)],
    )
    records = mocker.spy(Manifest, "record_phase")

    def auditor(packages: Any, **_: Any) -> AuditOutcome:
        return AuditOutcome(packages=tuple(packages))

    def run() -> Any:
        return make_sboms(
            project,
            manifest,
            dist_dir=project.root / "dist",
            osv_url="http://127.0.0.1:9/",
            today=dt.date(2026, 12, 6),
            auditor=auditor,
        )

    if image_passes:
        result = run()
        assert [r.record.digest for r in result.images] == [DIGEST]
    else:
        with pytest.raises(AuditFailed, match="vulnerability audit of the image SBOM failed"):
            run()
    step.assert_called_once()
    assert [call.args[1] for call in records.call_args_list] == ["sbom"]
    recorded = Manifest.load(manifest.path or "").phases["sbom"]
    assert recorded["status"] == ("pass" if image_passes else "fail")
    assert DIGEST in recorded["image"]


def test_the_sbom_phase_says_why_no_image_sbom_was_made(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    project, manifest = _release(tmp_path, image=True)
    manifest.images = []
    manifest.record_phase("build", "pass", image="image: skipped (no Docker engine)")
    mocker.patch("upm_ci.sbom.environment_bom", autospec=True, return_value=_raw_bom())
    step = mocker.patch("upm_ci.sbom.make_image_sboms", autospec=True)
    result = make_sboms(
        project,
        manifest,
        dist_dir=project.root / "dist",
        osv_url="http://127.0.0.1:9/",
        today=dt.date(2026, 12, 6),
        auditor=lambda packages, **_: AuditOutcome(packages=tuple(packages)),
    )
    step.assert_not_called()
    assert result.image_skipped == "image: skipped (no Docker engine)"
    assert "image" not in Manifest.load(manifest.path or "").phases["sbom"]


@pytest.mark.parametrize("image", [True, False], ids=["with-image", "no-image"])
def test_the_sign_phase_records_its_own_failure_when_the_release_has_images(
    tmp_path: Path, image: bool
) -> None:
    project, manifest = _release(tmp_path, image=image)
    with pytest.raises(InputError, match="dist directory not found"):
        sign.sign_release(
            project,
            manifest,
            dist_dir=project.root / "dist" / "missing",
            identity_token="x.y.z",
            trust_config=None,
            rekor_version=None,
            gpg_key=None,
            gpg_passphrase=None,
            expected_identity="https://github.com/o/demo/.github/workflows/release.yml@refs/tags/v1.2.0",
        )
    phases = Manifest.load(manifest.path or "").phases
    if image:  # publish must never push a half-signed image: its readiness check reads this
        assert phases["sign"]["status"] == "fail"
        assert "dist directory not found" in phases["sign"]["reason"]
    else:
        assert "sign" not in phases
