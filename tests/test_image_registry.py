"""Push, sign, store and verify a container image against a real registry (Debian's
``docker-registry``, distribution 2.8) and the local Sigstore stand-in.

The image is a tiny OCI image layout written here (two tar layers and a config); no Docker
engine is needed. Every test that needs the registry skips with ``registry_problem()``'s
reason where there is none.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_sign import IDENTITY, REPOSITORY, TAG_REF, make_release
from upm_ci import gha, identity
from upm_ci.errors import InputError, PolicyError, ServiceError
from upm_ci.image import attest
from upm_ci.image.registry import (
    OCI_INDEX,
    SIGSTORE_BUNDLE,
    OciRegistry,
    RegistryCredentials,
    fallback_tag,
    parse_reference,
    publish_images,
    push_image,
    push_referrers,
)
from upm_ci.image.verify import inspect_image, verify_image
from upm_ci.manifest import (
    IMAGE_ARTIFACT_KINDS,
    ImageRecord,
    ImageReferrer,
    Manifest,
    SbomRecord,
)
from upm_ci.project import load_project
from upm_ci.retry import RetryPolicy
from upm_ci.sigstore_common import load_trusted_root, make_verifier
from upm_ci.standins._server import free_port
from upm_ci.standins.oidc import mint_github_token
from upm_ci.standins.registry import RegistryProxy, RegistryStandIn, registry_problem
from upm_ci.standins.sigstore_server import SigstoreStandIn
from upm_ci.verify.report import FAIL, PASS

pytestmark = pytest.mark.skipif(registry_problem() is not None, reason=str(registry_problem()))

NAME = "upm/sample"  # the repository of seed "sample"; every other seed has its own


def name_of(seed: str) -> str:
    return f"upm/{seed}"


SENTINEL = "registry-password-sentinel-7c4e1f09b2d84a55a1e3c6f0d9b7e2a4"
EXPECTED = identity.ExpectedSigner(identity=IDENTITY, repository=REPOSITORY, ref=TAG_REF)
FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0, sleep=lambda _: None)


# ------------------------------------------------------------------------- helpers


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_layout(layout: Path, seed: str = "a") -> str:
    """An OCI image layout of one image (config + two uncompressed layers); its digest."""
    layers = []
    for i in range(2):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = f"{seed} layer {i}\n".encode() * 200
            info = tarfile.TarInfo(f"file{i}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        layers.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(layout, buf.getvalue())}
        )
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "config": {"Labels": {"seed": seed}},
    }
    config_desc = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": layers,
    }
    # Indented on purpose: the bytes pushed must be these, not a re-serialisation.
    desc = _blob(layout, json.dumps(manifest, indent=1).encode())
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **desc}],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return str(desc["digest"])


def cyclonedx_of(digest: str, name: str = NAME) -> str:
    """A CycloneDX SBOM naming ``digest`` the way syft does (metadata.component.version),
    with the hash the sbom phase adds (``image.sbom.bind_to_image``)."""
    hashes = [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]
    component = {"type": "container", "name": name, "version": digest, "hashes": hashes}
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "version": 1,
            "metadata": {"component": component},
            "components": [{"type": "library", "name": "click", "version": "8.1.7"}],
        }
    )


def image_release(
    root: Path,
    host: str,
    *,
    seed: str = "sample",
    tags: tuple[str, ...] = ("1.2.0",),
    name: str = "",
    record_sbom: bool = True,
) -> Path:
    """The sign test's release plus one image in ``dist/oci-image`` with its SBOM (a
    release file as the sbom phase records it, or only named by the image)."""
    project = make_release(root)
    dist = project / "dist"
    digest = make_layout(dist / "oci-image", seed)
    sbom = dist / "sample-image.cdx.json"
    name = name or name_of(seed)
    sbom.write_text(cyclonedx_of(digest, name))
    manifest = Manifest.load(project / "release-manifest.json")
    manifest.add_image(
        ImageRecord(
            ref=f"{host}/{name}:{tags[0]}",
            digest=digest,
            repository=f"{host}/{name}",
            tags=list(tags),
            sboms=[sbom.name],
            layout="dist/oci-image",
        )
    )
    if record_sbom:  # as the sbom phase records it: a release file
        manifest.add_file(sbom, "sbom")
        manifest.add_sbom(
            SbomRecord(sbom.name, "cyclonedx", f"{seed}.oci-image", digest.removeprefix("sha256:"))
        )
    manifest.save()
    return project


def load(project: Path) -> Manifest:
    return Manifest.load(project / "release-manifest.json")


def sign(project: Path, standin: SigstoreStandIn) -> list[attest.ImageSigned]:
    return attest.sign_images(
        load_project(project),
        load(project),
        dist_dir=project / "dist",
        identity_token=mint_github_token(repository=REPOSITORY, ref=TAG_REF),
        trust_config=standin.trust_config_path,
        rekor_version=None,
        expected=EXPECTED,
    )


def verify(record: ImageRecord, standin: SigstoreStandIn, **kw: Any) -> dict[str, tuple[str, str]]:
    verifier = make_verifier(load_trusted_root(standin.trust_config_path, offline=True))
    policy = identity.ExpectedSigner(identity=IDENTITY, repository=REPOSITORY, ref=TAG_REF)
    report = verify_image(record, verifier=verifier, policy=policy, retry=FAST, **kw)
    return {c.check: (c.status, c.reason) for c in report.checks}


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryStandIn]:
    with RegistryStandIn() as standin:
        yield standin


# ------------------------------------------------------------------------- push


def test_push_by_digest_then_tags(tmp_path: Path, registry: RegistryStandIn) -> None:
    project = image_release(tmp_path, "", tags=("1.2.0", "latest"))
    manifest = load(project)
    record = manifest.images[0]
    with RegistryProxy(registry.url) as proxy:
        record.repository = f"{proxy.host}/{NAME}"
        push_image(manifest, record, project / "dist/oci-image", retry=FAST)
        puts = [path for method, path in proxy.log if method == "PUT"]
        ledger_host = proxy.host
    digest = record.digest
    # Blobs (config, two layers), then the manifest by digest, then the tags, in that order.
    assert [p.rsplit("/", 1)[-1] for p in puts if "/manifests/" in p] == [digest, "1.2.0", "latest"]
    assert (
        puts.index(f"/v2/{NAME}/manifests/{digest}")
        == max(i for i, p in enumerate(puts) if "/blobs/" in p) + 1
    )
    client = OciRegistry(registry.host)
    stored = client.get_manifest(NAME, digest)
    assert stored is not None
    assert stored[2] == digest, "the registry holds the recorded bytes"
    layout_bytes = (project / "dist/oci-image/blobs/sha256" / digest[7:]).read_bytes()
    assert stored[0] == layout_bytes
    for tag in ("1.2.0", "latest"):
        at = client.get_manifest(NAME, tag)
        assert at is not None and at[2] == digest
    ledger = load(project).ledger[f"oci://{ledger_host}"]
    assert ledger and all(entry.state == "done" for entry in ledger.values())


def test_tag_at_another_digest_is_refused_and_nothing_moves(
    tmp_path: Path, registry: RegistryStandIn
) -> None:
    first = image_release(
        tmp_path / "a", registry.host, seed="moved-a", tags=("9.9.9",), name="upm/moved"
    )
    publish_images(load(first), first / "dist", retry=FAST, require_signed=False)
    second = image_release(
        tmp_path / "b", registry.host, seed="moved-b", tags=("9.9.9",), name="upm/moved"
    )
    manifest = load(second)
    with pytest.raises(PolicyError) as caught:
        publish_images(manifest, second / "dist", retry=FAST, require_signed=False)
    assert caught.value.exit_code == 1
    assert "9.9.9" in str(caught.value) and "nothing was moved" in str(caught.value)
    client = OciRegistry(registry.host)
    at = client.get_manifest("upm/moved", "9.9.9")
    assert at is not None and at[2] == load(first).images[0].digest
    assert client.get_manifest("upm/moved", manifest.images[0].digest) is None, "nothing was sent"
    assert not load(second).ledger


def test_registry_down_is_one_quick_retry_then_exit_3_naming_the_host(tmp_path: Path) -> None:
    project = image_release(tmp_path, f"127.0.0.1:{free_port()}")
    attempts: list[float] = []
    policy = RetryPolicy(attempts=3, base_delay=0.0, sleep=attempts.append)
    with pytest.raises(ServiceError) as caught:
        publish_images(load(project), project / "dist", retry=policy, require_signed=False)
    assert caught.value.exit_code == 3
    assert "host unreachable: 127.0.0.1:" in str(caught.value)
    assert len(attempts) <= 1, "an unreachable host gets one quick retry at most, not three"


def test_registry_503_is_retried_and_4xx_is_not(tmp_path: Path, registry: RegistryStandIn) -> None:
    project = image_release(tmp_path, "", seed="flaky")
    manifest = load(project)
    record = manifest.images[0]
    with RegistryProxy(registry.url) as proxy:
        record.repository = f"{proxy.host}/{name_of('flaky')}"
        proxy.fail(2, 503)
        push_image(manifest, record, project / "dist/oci-image", retry=FAST)
        first = proxy.log[:3]
        assert len(first) == 3 and first[0] == first[1] == first[2], "the same request, retried"
        proxy.fail(1, 400)
        with pytest.raises(ServiceError) as caught:
            OciRegistry(proxy.host, retry=FAST).get_manifest(name_of("flaky"), "1.2.0")
        assert "HTTP 400" in str(caught.value)


KILLED_PUSH = """
import sys
from pathlib import Path
from upm_ci.image.registry import push_image
from upm_ci.manifest import Manifest
project = Path(sys.argv[1])
manifest = Manifest.load(project / "release-manifest.json")
push_image(manifest, manifest.images[0], project / "dist/oci-image")
"""


def test_killed_push_resumes_and_sends_nothing_twice(
    tmp_path: Path, registry: RegistryStandIn
) -> None:
    with RegistryProxy(registry.url, hold_manifest_puts=True) as proxy:
        project = image_release(tmp_path, proxy.host, seed="killed", tags=("1.2.0", "stable"))
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_PUSH, str(project)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            while not proxy.manifest_put_seen.wait(0.2):
                assert child.poll() is None, child.communicate(timeout=5)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(30)
        assert child.returncode == -signal.SIGKILL, "killed mid-push, in the manifest PUT"
        proxy.hold_manifest_puts = False
        proxy.release()
        manifest = load(project)
        record = manifest.images[0]
        ledger = manifest.ledger[f"oci://{proxy.host}"]
        assert ledger[f"upm/killed@{record.digest}"].state == "started"
        assert "upm/killed:1.2.0" not in ledger, "no tag before the manifest"
        blob_sends = [entry for entry in proxy.log if entry[0] in ("POST", "PATCH", "PUT")]
        blob_sends = [entry for entry in blob_sends if "/blobs/" in entry[1]]
        assert len([e for e in blob_sends if e[0] == "POST"]) == 3
        result = push_image(manifest, record, project / "dist/oci-image", retry=FAST)
        states = {step.item: step.state for step in result.steps}
        assert [s for i, s in states.items() if "/blobs/" in i] == ["done before"] * 3
        assert states[f"upm/killed@{record.digest}"] == "pushed"
        assert states["upm/killed:stable"] == "tagged"
        again = [e for e in proxy.log if e[0] in ("POST", "PATCH") and "/blobs/" in e[1]]
        assert len(again) == 3, "no blob was sent twice"
    at = OciRegistry(registry.host).get_manifest("upm/killed", "stable")
    assert at is not None and at[2] == record.digest


# ------------------------------------------------------------------------- sign, referrers, verify


@pytest.fixture
def signed_pushed(
    tmp_path: Path, registry: RegistryStandIn, sigstore_standin: SigstoreStandIn
) -> Path:
    seed = "signed-" + tmp_path.name.lower().replace("_", "-")  # one repository per test
    project = image_release(tmp_path, registry.host, seed=seed, tags=("1.2.0",))
    made = sign(project, sigstore_standin)
    assert [m.kind for m in made] == ["signature", "provenance", "sbom-attestation"]
    publish_images(load(project), project / "dist", retry=FAST)
    return project


def test_referrers_are_stored_and_the_index_keeps_every_one(
    tmp_path: Path, registry: RegistryStandIn, sigstore_standin: SigstoreStandIn
) -> None:
    project = image_release(tmp_path, registry.host, seed="index")
    sign(project, sigstore_standin)
    manifest = load(project)
    record = manifest.images[0]
    publish_images(manifest, project / "dist", retry=FAST)
    # Store them in two rounds: the second must extend the index, not replace it.
    everything = list(record.referrers)
    record.referrers = everything[:1]
    push_referrers(manifest, record, project / "dist", project / "dist/oci-image", retry=FAST)
    record.referrers = everything[1:]
    push_referrers(manifest, record, project / "dist", project / "dist/oci-image", retry=FAST)
    client = OciRegistry(registry.host)
    index = client.get_manifest("upm/index", fallback_tag(record.digest))
    assert index is not None and index[1] == OCI_INDEX
    listed = json.loads(index[0])["manifests"]
    assert len(listed) == 3
    assert {m["artifactType"] for m in listed} == {SIGSTORE_BUNDLE}
    assert {m["digest"] for m in listed} == {r.digest for r in everything} | {
        r.digest for r in record.referrers
    }
    for m in listed:
        stored = client.get_manifest("upm/index", m["digest"])
        assert stored is not None
        doc = json.loads(stored[0])
        assert doc["subject"]["digest"] == record.digest
        assert doc["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        assert [layer["mediaType"] for layer in doc["layers"]] == [SIGSTORE_BUNDLE]
    saved = load(project).images[0]
    assert all(r.digest.startswith("sha256:") for r in saved.referrers)


def test_verify_passes(signed_pushed: Path, sigstore_standin: SigstoreStandIn) -> None:
    checks = verify(load(signed_pushed).images[0], sigstore_standin)
    assert {k: v[0] for k, v in checks.items()} == {
        "manifest": PASS,
        "tag 1.2.0": PASS,
        "signature": PASS,
        "provenance": PASS,
        "sbom-attestation": PASS,
    }


def test_publish_refuses_an_unsigned_image(tmp_path: Path, registry: RegistryStandIn) -> None:
    project = image_release(tmp_path, registry.host, seed="refused", tags=("0.0.2",))
    with pytest.raises(PolicyError) as caught:
        publish_images(load(project), project / "dist", retry=FAST)
    assert "run `upm-ci sign`" in str(caught.value)
    digest = load(project).images[0].digest
    assert OciRegistry(registry.host).get_manifest("upm/refused", digest) is None


def test_verify_fails_for_an_unsigned_image(
    tmp_path: Path, registry: RegistryStandIn, sigstore_standin: SigstoreStandIn
) -> None:
    project = image_release(tmp_path, registry.host, seed="unsigned", tags=("0.0.1",))
    publish_images(load(project), project / "dist", retry=FAST, require_signed=False)
    checks = verify(load(project).images[0], sigstore_standin)
    for kind in ("signature", "provenance", "sbom-attestation"):
        assert checks[kind][0] == FAIL
        assert "unsigned" in checks[kind][1]


def test_verify_fails_for_a_retagged_image(
    tmp_path: Path,
    signed_pushed: Path,
    registry: RegistryStandIn,
    sigstore_standin: SigstoreStandIn,
) -> None:
    name = parse_reference(load(signed_pushed).images[0].repository).name
    other = image_release(
        tmp_path / "other", registry.host, seed="intruder", tags=("x",), name=name
    )
    publish_images(load(other), other / "dist", retry=FAST, require_signed=False)
    intruder = load(other).images[0]
    client = OciRegistry(registry.host)
    stored = client.get_manifest(name, intruder.digest)
    assert stored is not None
    client.put_manifest(name, "1.2.0", stored[0], stored[1])  # someone moves the tag
    checks = verify(load(signed_pushed).images[0], sigstore_standin)
    assert checks["tag 1.2.0"][0] == FAIL
    assert intruder.digest in checks["tag 1.2.0"][1]
    assert checks["signature"][0] == PASS


def test_sign_refuses_an_sbom_of_another_image(
    tmp_path: Path, sigstore_standin: SigstoreStandIn
) -> None:
    project = image_release(tmp_path, "127.0.0.1:5000", seed="sbom")
    (project / "dist/sample-image.cdx.json").write_text(cyclonedx_of("sha256:" + "0" * 64))
    with pytest.raises(PolicyError) as caught:
        sign(project, sigstore_standin)
    assert "another image" in str(caught.value)
    assert not list((project / "dist").glob("*.image.*")), "nothing signed"


def test_verify_fails_for_an_sbom_attestation_of_another_image(
    tmp_path: Path, registry: RegistryStandIn, sigstore_standin: SigstoreStandIn
) -> None:
    """A validly signed SBOM attestation bound to the digest whose SBOM is another image's."""
    project = image_release(tmp_path, registry.host, seed="sbom-other", tags=("7.0.0",))
    sign(project, sigstore_standin)
    manifest = load(project)
    record = manifest.images[0]
    from upm_ci import provenance
    from upm_ci.release_signer import ReleaseSigner

    wrong = tmp_path / "other.cdx.json"
    wrong.write_text(cyclonedx_of("sha256:" + "1" * 64))
    statement = provenance.sbom_statement(wrong, record.repository, record.digest[7:])
    token = mint_github_token(repository=REPOSITORY, ref=TAG_REF)
    with ReleaseSigner(
        token, expected=EXPECTED, trust_config=sigstore_standin.trust_config_path
    ) as signer:
        bundle = signer.sign_statement(statement)
    bad = next(r for r in record.referrers if r.kind == "sbom-attestation")
    (project / "dist" / bad.bundle).write_text(bundle)
    publish_images(manifest, project / "dist", retry=FAST)
    checks = verify(load(project).images[0], sigstore_standin)
    assert checks["signature"][0] == PASS
    assert checks["sbom-attestation"][0] == FAIL
    assert "names neither" in checks["sbom-attestation"][1]


def test_another_signer_is_not_the_release_identity(
    signed_pushed: Path, sigstore_standin: SigstoreStandIn
) -> None:
    record = load(signed_pushed).images[0]
    verifier = make_verifier(load_trusted_root(sigstore_standin.trust_config_path, offline=True))
    someone = identity.ExpectedSigner(
        identity="https://github.com/else/where/.github/workflows/x.yml@refs/heads/main"
    )
    found = inspect_image(
        parse_reference(record.repository), record.digest, verifier=verifier, policy=someone
    )
    assert len(found.referrers) == 3
    assert all(r.valid and not r.official for r in found.referrers)
    assert all(IDENTITY in r.signers for r in found.referrers)


# ------------------------------------------------------------------------- credentials


def test_credentials_are_sent_and_never_shown(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with RegistryStandIn(username="releaser", password=SENTINEL) as locked:
        project = image_release(tmp_path, locked.host, seed="locked")
        with pytest.raises(InputError) as caught:
            publish_images(load(project), project / "dist", retry=FAST, require_signed=False)
        assert "asks for credentials" in str(caught.value)
        credentials = RegistryCredentials("releaser", SENTINEL)
        assert gha.redact(f"x {SENTINEL} y") != f"x {SENTINEL} y", "masked when made"
        results = publish_images(
            load(project),
            project / "dist",
            credentials=credentials,
            retry=FAST,
            require_signed=False,
        )
        assert results[0].steps
        at = OciRegistry(locked.host, credentials).get_manifest("upm/locked", "1.2.0")
        assert at is not None
    out, err = capfd.readouterr()
    assert SENTINEL not in out + err + caplog.text
    assert SENTINEL not in (project / "release-manifest.json").read_text()
    assert SENTINEL not in repr(credentials)


# ------------------------------------------------------------------------- trust oci://


def trust(target: str, standin: SigstoreStandIn, tmp_path: Path, *extra: str) -> int:
    from upm_ci.cli import main

    return main(
        [
            "trust",
            target,
            "--project",
            str(tmp_path),
            "--repository",
            REPOSITORY,
            "--trust-config",
            str(standin.trust_config_path),
            "--offline",
            *extra,
        ]
    )


def test_trust_accepts_an_image_signed_by_the_official_identity(
    tmp_path: Path,
    signed_pushed: Path,
    sigstore_standin: SigstoreStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    record = load(signed_pushed).images[0]
    assert trust(f"oci://{record.ref}", sigstore_standin, tmp_path / "none") == 0
    out = capsys.readouterr().out
    assert "Official Docker/Hub" in out and "accepted" in out
    assert record.digest in out, "the decision names the digest the tag resolved to"
    by_digest = f"oci://{record.repository}@{record.digest}"
    assert trust(by_digest, sigstore_standin, tmp_path / "none") == 0


def test_trust_blocks_an_unsigned_image(
    tmp_path: Path,
    registry: RegistryStandIn,
    sigstore_standin: SigstoreStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = image_release(tmp_path, registry.host, seed="trust-unsigned", tags=("1.0.0",))
    push_image(load(project), load(project).images[0], project / "dist/oci-image", retry=FAST)
    assert trust(f"oci://{registry.host}/upm/trust-unsigned:1.0.0", sigstore_standin, tmp_path) == 1
    out = capsys.readouterr().out
    assert "3rd-party unsigned" in out and "blocked" in out


def test_trust_community_image_needs_review_until_approved(
    tmp_path: Path,
    registry: RegistryStandIn,
    sigstore_standin: SigstoreStandIn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = image_release(tmp_path, registry.host, seed="community", tags=("2.0.0",))
    other_repo = "someone/else"
    ref = "refs/tags/v2.0.0"
    other = f"https://github.com/{other_repo}/.github/workflows/release.yml@{ref}"
    attest.sign_images(
        load_project(project),
        load(project),
        dist_dir=project / "dist",
        identity_token=mint_github_token(repository=other_repo, ref=ref),
        trust_config=sigstore_standin.trust_config_path,
        rekor_version=None,
        expected=identity.ExpectedSigner(identity=other, repository=other_repo, ref=ref),
    )
    publish_images(load(project), project / "dist", retry=FAST)
    target = f"oci://{registry.host}/upm/community:2.0.0"
    assert trust(target, sigstore_standin, tmp_path) == 1
    out = capsys.readouterr().out
    assert "Community (signed)" in out and "needs-review" in out and other in out
    approvals = tmp_path / "approvals.json"
    digest = load(project).images[0].digest
    approvals.write_text(
        json.dumps(
            [{"sha256": digest, "reviewer": "bob", "date": "2026-11-30", "reason": "audited"}]
        )
    )
    assert trust(target, sigstore_standin, tmp_path, "--approvals", str(approvals)) == 0
    assert "approved by bob" in capsys.readouterr().out


def test_trust_of_an_image_that_is_not_there_is_bad_input(
    tmp_path: Path, registry: RegistryStandIn, sigstore_standin: SigstoreStandIn
) -> None:
    assert trust(f"oci://{registry.host}/upm/nothing:1.0", sigstore_standin, tmp_path) == 2
    assert trust("oci://no-registry-named", sigstore_standin, tmp_path) == 2


# ------------------------------------------------------------------------- the phases' CLI


def test_sign_and_verify_commands_cover_the_image(
    tmp_path: Path,
    registry: RegistryStandIn,
    sigstore_standin: SigstoreStandIn,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from upm_ci.cli import main

    project = image_release(tmp_path, registry.host, seed="phases", tags=("1.2.0",))
    monkeypatch.setenv("UPM_IDENTITY_TOKEN", mint_github_token(repository=REPOSITORY, ref=TAG_REF))
    manifest_path = str(project / "release-manifest.json")
    common = [
        "--manifest",
        manifest_path,
        "--trust-config",
        str(sigstore_standin.trust_config_path),
    ]
    assert main(["sign", "--project", str(project), *common]) == 0
    out = capsys.readouterr().out
    assert "image " in out and attest.PROVENANCE_SUFFIX in out
    record = load(project).images[0]
    assert [r.kind for r in record.referrers] == ["signature", "provenance", "sbom-attestation"]
    publish_images(load(project), project / "dist", retry=FAST)
    args = ["verify", str(project / "dist"), "--project", str(project), *common, "--offline"]
    main(args)  # its exit code also judges test_sign's toy SBOMs: only the image rows count here
    out = capsys.readouterr().out
    assert f"{record.repository}@{record.digest}" in out
    (row,) = [line for line in out.splitlines() if line.startswith(record.repository)]
    assert " ok " in row and "signature, provenance, sbom-attestation" in row, out
    # The layout is checked in the registry; the image's bundles there and in the release.
    assert "oci-image" not in out, out
    for referrer in record.referrers:
        (line,) = [line for line in out.splitlines() if line.startswith(referrer.bundle + " ")]
        assert " ok " in line and "image" in line, out


# ------------------------------------------------------------------------- release assets


def signed_release(
    tmp_path: Path, host: str, standin: SigstoreStandIn, seed: str, *, record_sbom: bool = True
) -> Path:
    """An image release signed by ``upm-ci sign`` (the images with the release's signer)."""
    from upm_ci.cli import main

    project = image_release(tmp_path, host, seed=seed, tags=("1.2.0",), record_sbom=record_sbom)
    token = mint_github_token(repository=REPOSITORY, ref=TAG_REF)
    args = ["sign", "--project", str(project), "--manifest", str(project / "release-manifest.json")]
    args += ["--trust-config", str(standin.trust_config_path)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UPM_IDENTITY_TOKEN", token)
        assert main(args) == 0
    return project


def release_rows(project: Path, standin: SigstoreStandIn, directory: Path | None = None) -> Any:
    """verify_release over the release directory alone: no registry is asked."""
    from upm_ci.verify.phase import image_files, verify_release

    manifest = load(project)
    dist = directory or project / "dist"
    report = verify_release(
        dist,
        policy=EXPECTED,
        trust_config=standin.trust_config_path,
        offline=True,
        manifest=manifest,
        gpg_public_key=None,
        ignore=image_files(manifest, [dist]),
    )
    return {a.name: {c.check: (c.status, c.reason) for c in a.checks} for a in report.artifacts}


def statement_subjects_of(dist: Path) -> dict[str, str]:
    import base64

    bundle = json.loads((dist / "release-statement.sigstore.json").read_text())
    payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return {s["name"]: s["digest"]["sha256"] for s in payload["subject"]}


def test_sign_makes_the_image_bundles_release_files(
    tmp_path: Path, sigstore_standin: SigstoreStandIn
) -> None:
    """Listed in the manifest, in SHA256SUMS and among the release statement's subjects, and
    verified from the release directory alone, bound to the digest the statement names."""
    project = signed_release(tmp_path, "127.0.0.1:9", sigstore_standin, "assets")
    manifest, dist = load(project), project / "dist"
    record = manifest.images[0]
    kinds = {"signature": "image-signature", "provenance": "image-provenance"}
    kinds["sbom-attestation"] = "image-sbom-attestation"
    expected = {r.bundle: kinds[r.kind] for r in record.referrers}
    assert sorted(expected) == [
        "upm-assets-1.2.0.image.cdx.intoto.jsonl",
        "upm-assets-1.2.0.image.intoto.jsonl",
        "upm-assets-1.2.0.image.sigstore.json",
    ]
    recorded = {a.name: a for a in manifest.artifacts}
    assert {n: recorded[n].kind for n in expected} == expected
    assert not [a.name for a in manifest.unsigned() if a.name in expected]
    sums = (dist / "SHA256SUMS").read_text()
    subjects = statement_subjects_of(dist)
    for name in expected:
        assert f"{recorded[name].sha256}  {name}\n" in sums
        assert subjects[name] == recorded[name].sha256
    assert subjects[record.repository] == record.digest.removeprefix("sha256:")
    assert record.sboms[0] in subjects, "the image SBOM is a release file too"
    rows = release_rows(project, sigstore_standin)  # the registry (127.0.0.1:9) is never asked
    for name in expected:
        assert {c: v[0] for c, v in rows[name].items()} == {
            "image": PASS,
            "sigstore": PASS,
            "release-statement": PASS,
            "manifest": PASS,
            "checksum": PASS,
        }, rows[name]
        assert record.digest[len("sha256:") :][:12] in rows[name]["image"][1]


def test_an_image_sbom_named_only_by_its_image_becomes_a_signed_release_file(
    tmp_path: Path, sigstore_standin: SigstoreStandIn
) -> None:
    project = signed_release(tmp_path, "127.0.0.1:9", sigstore_standin, "named", record_sbom=False)
    manifest, dist = load(project), project / "dist"
    (name,) = manifest.images[0].sboms
    artifact = manifest.artifact(name)
    assert artifact is not None and artifact.kind == "sbom"
    assert (dist / f"{name}.sigstore.json").is_file()
    assert statement_subjects_of(dist)[name] == artifact.sha256
    assert f"{artifact.sha256}  {name}\n" in (dist / "SHA256SUMS").read_text()
    rows = release_rows(project, sigstore_standin)
    assert {c: v[0] for c, v in rows[name].items()} == {
        "sigstore": PASS,
        "release-statement": PASS,
        "checksum": PASS,
        "sbom-binding": PASS,
        "manifest": PASS,
    }, rows[name]


def test_a_missing_or_tampered_image_bundle_fails_naming_it(
    tmp_path: Path, sigstore_standin: SigstoreStandIn
) -> None:
    project = signed_release(tmp_path, "127.0.0.1:9", sigstore_standin, "tampered")
    dist = project / "dist"
    release = tmp_path / "release"  # the release's assets, as verify --github-release has them
    release.mkdir()
    for artifact in load(project).artifacts:
        (release / artifact.name).write_bytes((dist / artifact.name).read_bytes())
    signature = "upm-tampered-1.2.0.image.sigstore.json"
    provenance = "upm-tampered-1.2.0.image.intoto.jsonl"
    sbom_attestation = "upm-tampered-1.2.0.image.cdx.intoto.jsonl"
    originals = {n: (release / n).read_bytes() for n in (signature, provenance, sbom_attestation)}

    (release / signature).unlink()
    rows = release_rows(project, sigstore_standin, release)
    status, reason = rows[signature]["image"]
    assert status == FAIL and "missing" in reason and "signature must be attached" in reason
    assert rows[signature]["release-statement"][0] == FAIL

    # A valid bundle by the release identity, but of the wheel: not the image's signature.
    (release / signature).write_bytes(
        (release / "upm_sample-1.2.0-py3-none-any.whl.sigstore.json").read_bytes()
    )
    rows = release_rows(project, sigstore_standin, release)
    status, reason = rows[signature]["sigstore"]
    assert status == FAIL and "not a signature of 127.0.0.1:9/upm/tampered@sha256:" in reason

    # The provenance and the SBOM attestation swapped: each verifies, neither is its kind.
    (release / signature).write_bytes(originals[signature])
    (release / provenance).write_bytes(originals[sbom_attestation])
    (release / sbom_attestation).write_bytes(originals[provenance])
    rows = release_rows(project, sigstore_standin, release)
    assert rows[signature]["image"][0] == PASS
    for name in (provenance, sbom_attestation):
        status, reason = rows[name]["image"]
        assert status == FAIL and "predicateType" in reason, reason

    # One byte of the signed payload changed: the signature no longer verifies.
    (release / sbom_attestation).write_bytes(originals[sbom_attestation])
    bundle = json.loads(originals[provenance])
    payload = bundle["dsseEnvelope"]["payload"]
    bundle["dsseEnvelope"]["payload"] = ("A" if payload[0] != "A" else "B") + payload[1:]
    (release / provenance).write_text(json.dumps(bundle) + "\n")
    rows = release_rows(project, sigstore_standin, release)
    assert rows[provenance]["sigstore"][0] == FAIL
    assert rows[provenance]["release-statement"][0] == FAIL  # not the digest the statement names
    assert rows[sbom_attestation]["image"][0] == PASS


def _publish_release_with_image(root: Path, host: str, seed: str, tag: str = "1.2.0") -> Path:
    """tests.fixtures.pypi's release (every phase passed) plus an image with its three
    bundles, recorded as sign records them: referrers and release files (publish only checks
    they are there; verify checks what they say)."""
    from tests.fixtures.pypi import make_release as make_publishable

    manifest_path = make_publishable(root)
    dist = manifest_path.parent / "dist"
    digest = make_layout(dist / "oci-image", seed)
    manifest = Manifest.load(manifest_path)
    stem = f"upm-{seed}-1.2.0"
    referrers = []
    for kind, suffix in (
        ("signature", attest.SIGNATURE_SUFFIX),
        ("provenance", attest.PROVENANCE_SUFFIX),
        ("sbom-attestation", attest.SBOM_ATTESTATION_SUFFIX),
    ):
        (dist / f"{stem}{suffix}").write_text(json.dumps({"kind": kind, "seed": seed}))
        referrers.append(ImageReferrer(kind=kind, bundle=f"{stem}{suffix}"))
        manifest.add_file(dist / f"{stem}{suffix}", IMAGE_ARTIFACT_KINDS[kind])
    manifest.add_image(
        ImageRecord(
            ref=f"{host}/{name_of(seed)}:{tag}",
            digest=digest,
            repository=f"{host}/{name_of(seed)}",
            tags=[tag],
            layout="dist/oci-image",
            referrers=referrers,
        )
    )
    manifest.save()
    return manifest_path


def _publish_args(manifest: Path, github: Any, pypi: Any, *extra: str) -> list[str]:
    from tests.fixtures.publish import publish_args, pypi_args

    return publish_args(manifest, github, *pypi_args(pypi), "--no-sign-audit-log", *extra)


@pytest.fixture
def github_repo(github_standin: Any) -> Any:
    from tests.fixtures.github import SAMPLE_NAME, SAMPLE_OWNER

    repo = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME, immutable_releases=True)
    github_standin.add_commit(repo, message="init", author="alice")
    return github_standin


def test_publish_command_pushes_the_image_with_credentials_never_shown(
    tmp_path: Path,
    github_repo: Any,
    pypi_standin: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from upm_ci.cli import main

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with RegistryStandIn(username="releaser", password=SENTINEL) as locked:
        manifest_path = _publish_release_with_image(tmp_path / "proj", locked.host, "cli")
        args = _publish_args(manifest_path, github_repo, pypi_standin)
        creds = ["--registry-username", "releaser", "--registry-password", SENTINEL]
        assert main([*args, *creds]) == 0
        out = capfd.readouterr().out
        record = Manifest.load(manifest_path).images[0]
        assert f"oci://{record.repository}" in out and "tagged" in out and "indexed" in out
        client = OciRegistry(locked.host, RegistryCredentials("releaser", SENTINEL))
        at = client.get_manifest("upm/cli", "1.2.0")
        assert at is not None and at[2] == record.digest
        index = client.get_manifest("upm/cli", fallback_tag(record.digest))
        assert index is not None and len(json.loads(index[0])["manifests"]) == 3
        assets = {
            a["name"] for r in github_repo.snapshot()["repos"][0]["releases"] for a in r["assets"]
        }
        bundles = {r.bundle for r in record.referrers}
        assert len(bundles) == 3 and bundles <= assets, "in the registry and on the release"
        assert main([*args, *creds]) == 0, "a re-run changes nothing"
        assert "done before" in capfd.readouterr().out
        wrong = "wrong-registry-password-sentinel-0b1e2d3c4f5a69788796a5b4c3d2e1f0"
        assert main([*args, "--registry-username", "releaser", "--registry-password", wrong]) == 2
        captured = capfd.readouterr()
        assert "refused the credentials" in captured.err
    texts = [captured.out, captured.err, out, summary.read_text()]
    texts += [p.read_text(errors="replace") for p in manifest_path.parent.rglob("*.json")]
    assert not any(SENTINEL in t or wrong in t for t in texts)


def test_publish_command_exit_codes_before_anything_is_released(
    tmp_path: Path,
    registry: RegistryStandIn,
    github_repo: Any,
    pypi_standin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from upm_ci.cli import main

    first = _publish_release_with_image(tmp_path / "a", registry.host, "cli-moved", "3.0.0")
    publish_images(load(first.parent), first.parent / "dist", retry=FAST)
    second = _publish_release_with_image(tmp_path / "b", registry.host, "cli-moved-b", "3.0.0")
    moved = Manifest.load(second)
    moved.images[0].repository = f"{registry.host}/upm/cli-moved"  # the same tag, other bytes
    moved.save()
    assert main(_publish_args(second, github_repo, pypi_standin)) == 1
    down = _publish_release_with_image(tmp_path / "c", f"127.0.0.1:{free_port()}", "cli-down")
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("UPM_RETRY_BASE_DELAY", "0")
    assert main(_publish_args(down, github_repo, pypi_standin)) == 3
    assert github_repo.snapshot()["repos"][0]["releases"] == [], "GitHub never touched"
    assert pypi_standin.uploads == []


def test_retarget_points_an_image_at_another_registry() -> None:
    from upm_ci.image.registry import retarget_image

    record = ImageRecord(
        ref="ghcr.io/o/n:1.2.0", digest="sha256:" + "a" * 64, repository="ghcr.io/o/n"
    )
    retarget_image(record, "127.0.0.1:5000")
    assert (record.ref, record.repository) == ("127.0.0.1:5000/o/n:1.2.0", "127.0.0.1:5000/o/n")


def test_the_published_release_carries_the_image_bundles_and_verify_checks_them_there(
    tmp_path: Path,
    registry: RegistryStandIn,
    sigstore_standin: SigstoreStandIn,
    github_repo: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """publish attaches them; verify --github-release checks the attached ones (offline) and
    the registry's, both bound to the image digest."""
    from tests.fixtures.github import GITHUB_TOKEN
    from tests.fixtures.pypi import CHANGELOG
    from upm_ci.cli import main
    from upm_ci.publish.phase import PublishSettings, publish_release

    project = signed_release(tmp_path, registry.host, sigstore_standin, "published")
    (project / "CHANGELOG.md").write_text(CHANGELOG)
    manifest = load(project)
    for phase in ("gate", "build", "sbom"):
        manifest.record_phase(phase, "pass")
    manifest.save()
    publish_images(manifest, project / "dist", retry=FAST)
    settings = PublishSettings(
        repository=REPOSITORY,
        tag="v1.2.0",
        github_api_url=github_repo.api_url,
        github_token=GITHUB_TOKEN,
        skip_pypi=True,
    )
    publish_release(load_project(project), load(project), settings)
    record = load(project).images[0]
    bundles = {r.bundle for r in record.referrers}
    (release,) = github_repo.snapshot()["repos"][0]["releases"]
    assert bundles <= {a["name"] for a in release["assets"]}
    report = tmp_path / "report.json"
    args = ["verify", "--github-release", "v1.2.0", "--repository", REPOSITORY]
    args += ["--github-api-url", github_repo.api_url, "--github-token", GITHUB_TOKEN]
    args += ["--project", str(project), "--manifest", str(project / "release-manifest.json")]
    args += ["--trust-config", str(sigstore_standin.trust_config_path), "--offline"]
    main([*args, "--report-json", str(report)])  # the toy SBOMs and unsigned audit log fail
    capsys.readouterr()
    rows = {a["name"]: a for a in json.loads(report.read_text())["artifacts"]}
    for name in bundles:
        checks = {c["check"]: c["status"] for c in rows[name]["checks"]}
        assert checks["image"] == checks["sigstore"] == checks["release-statement"] == PASS
    image_row = rows[f"{record.repository}@{record.digest}"]
    assert {c["check"]: c["status"] for c in image_row["checks"]}["signature"] == PASS
