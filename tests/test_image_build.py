"""The container image against the real Docker engine: build, OCI layout, SBOM, audit.

Tests that need an engine skip, with the reason, when ``engine_problem()`` finds none (see
.ci/run, which installs and starts one where it can). The no-engine test runs everywhere:
it points DOCKER_HOST at nothing and checks that the skip is reported, never silent.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, git, make_git_project
from tests.test_build import shared_once
from upm_ci.cli import main
from upm_ci.errors import InputError
from upm_ci.image.build import write_layout
from upm_ci.image.engine import docker, engine_problem
from upm_ci.manifest import Manifest
from upm_ci.standins.osv import OsvStandIn, affects

PROBLEM = engine_problem()
needs_engine = pytest.mark.skipif(PROBLEM is not None, reason=f"image tests: {PROBLEM}")
REPOSITORY = "ghcr.io/unexpected-innovations/upm-sample"
BASE = "upm-base/python:3.11-slim"
CDX = "upm-sample-1.2.0.image.cdx.json"
SPDX = "upm-sample-1.2.0.image.spdx.json"


def image_project(dest: Path, dockerfile: str | None = None) -> Path:
    """The example as its own git repository, with `image` configured (and a Dockerfile)."""
    project = make_git_project(EXAMPLE, dest)
    pyproject = project / "pyproject.toml"
    text = re.sub(r'(?m)^image = ".*"\n', "", pyproject.read_text())  # the example names one
    pyproject.write_text(
        text + f'image = "{REPOSITORY}"\nrepository = "unexpected-innovations/upm-sample"\n'
    )
    if dockerfile is not None:
        (project / "Dockerfile").write_text(dockerfile)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Image")
    return project


def build(project: Path, manifest: Path, *extra: str) -> int:
    args = ["build", "--project", str(project), "--manifest", str(manifest)]
    return main([*args, "--no-check-reproducible", "--image-base", BASE, *extra])


def sbom(project: Path, manifest: Path, osv: OsvStandIn) -> int:
    args = ["sbom", "--project", str(project), "--manifest", str(manifest)]
    return main([*args, "--osv-url", osv.query_url])


@dataclass
class Release:
    project: Path
    manifest: Path

    @property
    def dist(self) -> Path:
        return self.project / "dist"

    def image(self) -> Any:
        return Manifest.load(self.manifest).images[0]


@pytest.fixture(scope="session")
def base_image() -> str:
    from upm_ci.standins.base_image import make_base_image

    if PROBLEM is not None:
        pytest.skip(f"image tests: {PROBLEM}")
    try:
        return make_base_image(BASE)
    except InputError as e:
        pytest.skip(f"no stand-in base image here: {e}")


@pytest.fixture(scope="session")
def image_build(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Path:
    """The example with its image built once per session (read-only: copy before changing)."""

    def make(base: Path) -> dict[str, Any]:
        project = image_project(base / "upm-sample")
        return {"code": build(project, base / "release-manifest.json")}

    base, result = shared_once(tmp_path_factory, "image-build", make)
    assert result["code"] == 0
    return base


@pytest.fixture
def release(image_build: Path, tmp_path: Path) -> Release:
    shutil.copytree(image_build, tmp_path / "r", symlinks=True)
    return Release(tmp_path / "r/upm-sample", tmp_path / "r/release-manifest.json")


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# --- build ----------------------------------------------------------------------------------
@needs_engine
@pytest.mark.slow
def test_build_writes_an_oci_layout_recorded_by_digest(release: Release) -> None:
    image = release.image()
    layout = release.dist / "oci-image"
    assert image.layout == "upm-sample/dist/oci-image"
    assert (image.ref, image.repository, image.tags) == (
        f"{REPOSITORY}:1.2.0",
        REPOSITORY,
        ["1.2.0"],
    )
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    assert entry["digest"] == image.digest
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "1.2.0"
    blobs = layout / "blobs/sha256"
    for blob in blobs.iterdir():
        assert sha256(blob) == f"sha256:{blob.name}"  # content-addressed, every one
    oci = json.loads((blobs / image.digest[7:]).read_text())
    assert oci["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert oci["config"]["digest"] == image.image_id
    assert {layer["mediaType"] for layer in oci["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar"
    }
    config = json.loads((blobs / image.image_id[7:]).read_text())
    commit = git(release.project, "rev-parse", "HEAD")
    labels = config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == "1.2.0"
    assert labels["org.opencontainers.image.revision"] == commit
    source = "https://github.com/unexpected-innovations/upm-sample"
    assert labels["org.opencontainers.image.source"] == source
    assert labels["org.opencontainers.image.created"] == "2026-11-01T12:00:00Z"  # the commit
    assert oci["annotations"]["org.opencontainers.image.revision"] == commit
    # The engine's image is the one recorded, and it runs the CLI without the network.
    inspect = docker(["image", "inspect", "--format", "{{.Id}}", image.ref]).stdout.decode()
    assert inspect.strip() == image.image_id
    run = ["run", "--rm", "--network", "none", image.ref]
    helped = docker([*run, "--help"], check=False)  # the example's help: usage, exit 2
    assert (helped.returncode, helped.stderr) == (2, b"usage: upm-sample PLUGIN JSON\n")
    assert docker([*run, "--version"]).stdout == b"upm-sample 1.2.0\n"
    encoded = docker([*run, "idna_encode", '{"domain": "b\u00fccher.example"}']).stdout
    assert json.loads(encoded) == {"ascii": "xn--bcher-kva.example"}  # idna, in the sandbox


@needs_engine
@pytest.mark.slow
def test_rebuild_gives_the_same_digest_and_accepts_its_layout(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    before = release.image()
    assert build(release.project, release.manifest) == 0  # dist holds oci-image: not refused
    after = release.image()
    assert (after.digest, after.image_id) == (before.digest, before.image_id)
    assert f"image: {REPOSITORY}:1.2.0@{before.digest}" in capsys.readouterr().out


@pytest.mark.slow
def test_missing_dockerfile_is_bad_input_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before the engine is asked: bad input with an engine or without one."""
    project = image_project(tmp_path / "p")
    (project / "Dockerfile").unlink()
    code = build(project, tmp_path / "m.json", "--no-smoke-test")
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and f"{project / 'Dockerfile'}: Dockerfile not found" in lines[0]
    assert "Traceback" not in err


@needs_engine
@pytest.mark.slow
def test_failing_dockerfile_is_a_policy_failure_with_its_last_lines(
    tmp_path: Path, base_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dockerfile = (
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n"
        "RUN echo step-before-the-failure && echo the-build-broke-here >&2 && exit 3\n"
    )
    project = image_project(tmp_path / "p", dockerfile)
    code = build(project, tmp_path / "m.json", "--no-smoke-test")
    err = capsys.readouterr().err
    assert code == 1
    assert "docker build failed" in err and "the-build-broke-here" in err
    assert "Traceback" not in err
    assert not (project / "dist/oci-image").exists()


@pytest.mark.slow
def test_no_engine_is_reported_as_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    project = image_project(tmp_path / "p")
    manifest = tmp_path / "m.json"
    assert build(project, manifest, "--no-smoke-test") == 0
    out = capsys.readouterr().out
    reason = f"image: skipped (no Docker engine at unix://{tmp_path}/no-engine.sock)"
    assert reason in out
    m = Manifest.load(manifest)
    assert m.images == [] and m.phases["build"]["image"] == reason
    with OsvStandIn() as osv:
        assert sbom(project, manifest, osv) == 0
    assert reason in capsys.readouterr().out


# --- SBOM and audit -------------------------------------------------------------------------
def _packages(cdx: dict[str, Any]) -> dict[str, str]:
    return {c["purl"].split("@")[0]: c["version"] for c in cdx["components"] if "purl" in c}


@needs_engine
@pytest.mark.slow
def test_sbom_names_the_digest_and_lists_python_and_debian_packages(
    release: Release, osv_standin: OsvStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sbom(release.project, release.manifest, osv_standin) == 0
    out = capsys.readouterr().out
    image = release.image()
    assert image.sboms == [CDX, SPDX]
    assert "image audit: pass" in out
    cdx = json.loads((release.dist / CDX).read_text())
    root = cdx["metadata"]["component"]
    assert (root["type"], root["name"], root["version"]) == ("container", REPOSITORY, image.digest)
    assert root["hashes"] == [{"alg": "SHA-256", "content": image.digest[7:]}]
    purls = _packages(cdx)
    for name in ("upm-sample", "packaging", "idna"):
        assert f"pkg:pypi/{name}" in purls
    assert purls["pkg:pypi/upm-sample"] == "1.2.0"
    assert {"pkg:deb/debian/libc6", "pkg:deb/debian/python3.11-minimal"} <= set(purls)
    spdx = json.loads((release.dist / SPDX).read_text())
    sums = [c["checksumValue"] for p in spdx["packages"] for c in p.get("checksums", [])]
    assert image.digest[7:] in sums
    m = Manifest.load(release.manifest)
    assert {a.name for a in m.of_kind("sbom")} >= {CDX, SPDX}
    assert m.phases["sbom"]["status"] == "pass" and image.digest in m.phases["sbom"]["image"]
    # Asked OSV about the Debian source packages, as OSV keys Debian advisories.
    asked = {(q.name, q.ecosystem) for q in osv_standin.queries}
    assert ("glibc", "Debian:12") in asked


def _debian_version(cdx: dict[str, Any], binary: str) -> tuple[str, str]:
    """(source package, version) of a Debian binary package in the SBOM."""
    for c in cdx["components"]:
        if c.get("purl", "").startswith(f"pkg:deb/debian/{binary}@"):
            upstream = (
                c["purl"].split("upstream=")[-1].split("&")[0]
                if "upstream=" in c["purl"]
                else binary
            )
            return upstream.split("%40")[0], c["version"]
    raise AssertionError(f"{binary} not in the SBOM")


@needs_engine
@pytest.mark.slow
def test_audit_fails_on_a_fixable_debian_advisory_and_lists_unfixed_ones(
    release: Release, osv_standin: OsvStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sbom(release.project, release.manifest, osv_standin) == 0
    cdx = json.loads((release.dist / CDX).read_text())
    source, version = _debian_version(cdx, "zlib1g")
    unfixed_source, unfixed_version = _debian_version(cdx, "libc6")
    fixed = f"{version}+deb12u99"  # a later Debian revision than the image's
    capsys.readouterr()
    osv_standin.add(
        {
            "id": "DEBIAN-CVE-2099-0001",
            "aliases": ["CVE-2099-0001"],
            "summary": "seeded advisory, fixed",
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": source},
                    # By range only, as OSV's Debian records are (dpkg's version order).
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                    ],
                }
            ],
        },
        {
            "id": "DEBIAN-CVE-2099-0002",
            "summary": "seeded advisory, no fix yet",
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": unfixed_source},
                    "versions": [unfixed_version],
                }
            ],
        },
    )
    code = sbom(release.project, release.manifest, osv_standin)
    captured = capsys.readouterr()
    assert code == 1
    assert "DEBIAN-CVE-2099-0001 (CVE-2099-0001)" in captured.out and "blocking" in captured.out
    assert "DEBIAN-CVE-2099-0002" in captured.out and "no fix yet" in captured.out
    assert "vulnerability audit of the image SBOM failed" in captured.err
    m = Manifest.load(release.manifest)
    assert m.phases["sbom"]["status"] == "fail"
    assert (release.dist / CDX).is_file()  # written and recorded either way


@needs_engine
@pytest.mark.slow
def test_sbom_of_another_image_is_refused(
    release: Release, osv_standin: OsvStandIn, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The layout in dist is swapped for another image's: its SBOM names another digest."""
    saved = tmp_path / "other.tar"
    docker(["save", "-o", str(saved), BASE])
    layout = release.dist / "oci-image"
    shutil.rmtree(layout)
    other, _ = write_layout(saved, layout, ref_name="other", notes={})
    code = sbom(release.project, release.manifest, osv_standin)
    err = capsys.readouterr().err
    assert code == 1
    assert f"describes {other}, not {REPOSITORY}:1.2.0@{release.image().digest}" in err
    assert not (release.dist / CDX).exists()


@needs_engine
def test_write_layout_is_deterministic(tmp_path: Path, base_image: str) -> None:
    saved = tmp_path / "base.tar"
    docker(["save", "-o", str(saved), base_image])
    first = write_layout(saved, tmp_path / "a", ref_name="x", notes={"k": "v"})
    second = write_layout(saved, tmp_path / "b", ref_name="x", notes={"k": "v"})
    assert first == second
    listing = subprocess.run(["diff", "-r", str(tmp_path / "a"), str(tmp_path / "b")], check=False)
    assert listing.returncode == 0


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (Debian's version order)")
@pytest.mark.parametrize(
    ("fixed", "affected"),
    [
        ("1:1.2.13.dfsg-1+deb12u1", True),  # a later revision fixes it
        ("1:1.2.13.dfsg-1", False),  # this very version is the fix
        ("1:1.2.13~rc1-1", False),  # ~ sorts before the release: fixed long ago
        ("1.3-1", False),  # no epoch: 0 < 1, so an older version than the epoch-1 one
    ],
)
def test_osv_standin_matches_debian_ranges_in_dpkg_order(fixed: str, affected: bool) -> None:
    advisory = {
        "id": "DEBIAN-CVE-2099-0003",
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "zlib"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
    }
    assert affects(advisory, "zlib", "1:1.2.13.dfsg-1", "Debian:12") is affected
    assert not affects(advisory, "zlib", "1:1.2.13.dfsg-1", "Debian:11")


# --- the run's own image name (the actions' `image` input) ----------------------------------
def test_image_option_names_the_repository_and_a_tag_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = image_project(tmp_path / "p")
    manifest = tmp_path / "m.json"
    code = build(project, manifest, "--no-smoke-test", "--image", "ghcr.io/o/n:1.2.0")
    err = capsys.readouterr().err
    assert code == 2 and "--image (UPM_IMAGE)" in err and "Traceback" not in err
    assert not manifest.exists()  # refused before anything was built or recorded


def test_skip_image_builds_no_image_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = image_project(tmp_path / "p")
    manifest = tmp_path / "m.json"
    assert build(project, manifest, "--no-smoke-test", "--skip-image") == 0
    m = Manifest.load(manifest)
    assert m.images == [] and "image: skipped" in m.phases["build"]["image"]
    assert m.phases["build"]["image"] in capsys.readouterr().out


@needs_engine
@pytest.mark.slow
def test_image_option_overrides_the_configured_repository(tmp_path: Path, base_image: str) -> None:
    project = image_project(tmp_path / "p")
    manifest = tmp_path / "m.json"
    assert build(project, manifest, "--no-smoke-test", "--image", "127.0.0.1:5999/o/n") == 0
    image = Manifest.load(manifest).images[0]
    assert image.repository == "127.0.0.1:5999/o/n"
    assert image.ref == "127.0.0.1:5999/o/n:1.2.0"


# --- the base image ---------------------------------------------------------------------------
def test_the_base_a_dockerfile_starts_from(tmp_path: Path) -> None:
    from upm_ci.image.build import dockerfile_base

    example = EXAMPLE / "Dockerfile"
    assert dockerfile_base(example) == "python:3.11-slim"  # its ARG BASE_IMAGE default
    assert dockerfile_base(example, BASE) == BASE
    fixed = tmp_path / "Dockerfile"
    fixed.write_text("FROM --platform=linux/amd64 debian:12-slim\nRUN true\n")
    assert dockerfile_base(fixed, BASE) == "debian:12-slim"  # the build arg is not read


@needs_engine
def test_the_rehearsal_uses_the_standin_base_unless_the_engine_has_the_dockerfiles() -> None:
    from upm_ci.image.engine import image_exists
    from upm_ci.project import load_project
    from upm_ci.rehearse import auto_base

    base, note = auto_base(load_project(EXAMPLE))
    if image_exists("python:3.11-slim"):
        assert (base, note) == ("", "python:3.11-slim (the Dockerfile's, on this engine)")
    else:
        assert base == "standin"
        assert note.startswith("stand-in for python:3.11-slim (not on this engine")


@needs_engine
@pytest.mark.slow
def test_a_base_that_cannot_be_pulled_names_it_and_the_offline_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = image_project(tmp_path / "upm-sample")
    missing = "registry.upm-release-test.invalid/python:3.11-slim"
    args = ["build", "--project", str(project), "--manifest", str(tmp_path / "m.json")]
    code = main([*args, "--no-check-reproducible", "--image-base", missing])
    err = capsys.readouterr().err
    assert code == 3, err
    (line,) = [x for x in err.splitlines() if x.startswith("upm-ci: error:")]
    assert f"the engine could not pull the base image {missing}" in line
    assert "upm-ci rehearse --image-base standin" in line
    assert "::error" not in err and "%0A" not in err
