"""A really signed release for the verify, tamper and trust tests.

Real sigstore-python signs against the local Sigstore stand-in with GitHub-Actions tokens
(``mint_github_token``), real gpg signs with a throw-away key, and the layout is the sign
phase's contract: ``<file>.sigstore.json`` per file, ``<name>-<version>.intoto.jsonl`` (SLSA
provenance over sdist + wheel), ``<wheel>.cdx.intoto.jsonl`` (SBOM attestation), ``.asc`` +
``<name>-<version>.pub.asc``. The release is signed once per session; tests tamper copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sigstore import dsse
from sigstore.models import ClientTrustConfig
from sigstore.oidc import IdentityToken
from sigstore.sign import Signer, SigningContext

from upm_ci.config import GITHUB_ISSUER
from upm_ci.provenance import CYCLONEDX_BOM
from upm_ci.provenance import SLSA_PROVENANCE_V1 as SLSA_PROVENANCE
from upm_ci.standins.oidc import mint_github_token
from upm_ci.standins.sigstore_server import SigstoreStandIn
from upm_ci.verify import IdentityPolicy

REPOSITORY = "unexpected/upm-sample"
TAG = "v1.2.0"
REF = f"refs/tags/{TAG}"
WORKFLOW = ".github/workflows/release.yml"
SDIST = "upm_sample-1.2.0.tar.gz"
WHEEL = "upm_sample-1.2.0-py3-none-any.whl"
CDX = "upm_sample-1.2.0.cdx.json"
SPDX = "upm_sample-1.2.0.spdx.json"
PROVENANCE = "upm_sample-1.2.0.intoto.jsonl"
SBOM_ATTESTATION = f"{WHEEL}.cdx.intoto.jsonl"
PUBKEY = "upm_sample-1.2.0.pub.asc"
SIGNED_FILES = [SDIST, WHEEL, CDX, SPDX, "SHA256SUMS", "unipkg.yaml", ".unipkg.lock"]
GPG_SIGNED = [SDIST, WHEEL, CDX, SPDX]


def release_policy(**overrides: str) -> IdentityPolicy:
    """The policy `upm-ci verify` uses by default for this release."""
    args: dict[str, Any] = {"repository": REPOSITORY, "ref": REF, "workflow": WORKFLOW}
    args.update(overrides)
    return IdentityPolicy.for_release(**args)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ReleaseSigner:
    """One keyless signer (one certificate) for a workflow identity, against a stand-in."""

    def __init__(self, standin: SigstoreStandIn, rekor_version: int = 1, **claims: Any) -> None:
        config = ClientTrustConfig.from_json(standin.trust_config_path.read_text())
        config.force_tlog_version = rekor_version
        claims = {"repository": REPOSITORY, "ref": REF, "workflow_path": WORKFLOW, **claims}
        self.context = SigningContext.from_trust_config(config)
        self.token = IdentityToken(mint_github_token(**claims))
        self.trust_config = standin.trust_config_path
        self._signer_cm = self.context.signer(self.token)
        self.signer: Signer = self._signer_cm.__enter__()

    def sign_file(self, path: Path) -> Path:
        bundle = self.signer.sign_artifact(path.read_bytes())
        out = path.with_name(path.name + ".sigstore.json")
        out.write_text(bundle.to_json())
        return out

    def sign_statement(self, statement: dict[str, Any], out: Path) -> Path:
        stmt = dsse.Statement(json.dumps(statement).encode())
        out.write_text(self.signer.sign_dsse(stmt).to_json().replace("\n", "") + "\n")
        return out

    def close(self) -> None:
        self._signer_cm.__exit__(None, None, None)


def statement(predicate_type: str, subjects: dict[str, str], predicate: Any) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects.items()],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def provenance(subjects: dict[str, str]) -> dict[str, Any]:
    return statement(
        SLSA_PROVENANCE,
        subjects,
        {
            "buildDefinition": {
                "buildType": "https://github.com/unexpected/upm-release/build/v1",
                "externalParameters": {"workflow": {"repository": REPOSITORY, "ref": REF}},
            },
            "runDetails": {"builder": {"id": f"https://github.com/{REPOSITORY}/{WORKFLOW}@{REF}"}},
        },
    )


def cyclonedx(wheel_sha: str) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "metadata": {
            "component": {
                "type": "library",
                "name": "upm-sample",
                "version": "1.2.0",
                "hashes": [{"alg": "SHA-256", "content": wheel_sha}],
            }
        },
        "components": [{"type": "library", "name": "click", "version": "8.1.7"}],
    }


def spdx(wheel_sha: str) -> dict[str, Any]:
    return {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "upm-sample-1.2.0",
        "packages": [
            {
                "SPDXID": "SPDXRef-Package-upm-sample",
                "name": "upm-sample",
                "checksums": [{"algorithm": "SHA256", "checksumValue": wheel_sha}],
            },
            {"SPDXID": "SPDXRef-Package-click", "name": "click"},
        ],
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": "SPDXRef-Package-upm-sample",
            }
        ],
    }


@dataclass
class GpgKey:
    home: Path
    public_key: Path
    fingerprint: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "gpg",
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ],
            env={**os.environ, "GNUPGHOME": str(self.home)},
            capture_output=True,
            text=True,
            check=True,
        )

    def sign(self, path: Path) -> Path:
        out = path.with_name(path.name + ".asc")
        out.unlink(missing_ok=True)
        self.run("--armor", "--detach-sign", "--output", str(out), str(path))
        return out


def make_gpg_key(home: Path, email: str) -> GpgKey:
    home.mkdir(mode=0o700, parents=True)
    key = GpgKey(home, home / "public.asc", "")
    key.run("--quick-gen-key", email, "ed25519", "sign", "never")
    listing = key.run("--with-colons", "--list-keys", email).stdout
    key.fingerprint = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr"))
    key.public_key.write_text(key.run("--armor", "--export", email).stdout)
    return key


def kill_gpg_agent(key: GpgKey) -> None:
    subprocess.run(
        ["gpgconf", "--kill", "gpg-agent"],
        env={**os.environ, "GNUPGHOME": str(key.home)},
        check=False,
        capture_output=True,
    )


def build_release(dest: Path, signer: ReleaseSigner, gpg: GpgKey | None) -> Path:
    """Write and sign a complete release of upm-sample 1.2.0 into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / SDIST).write_bytes(b"sdist bytes of upm-sample 1.2.0\n" * 50)
    (dest / WHEEL).write_bytes(b"wheel bytes of upm-sample 1.2.0\n" * 70)
    wheel_sha = sha256((dest / WHEEL).read_bytes())
    (dest / CDX).write_text(json.dumps(cyclonedx(wheel_sha)))
    (dest / SPDX).write_text(json.dumps(spdx(wheel_sha)))
    dists = {n: sha256((dest / n).read_bytes()) for n in (SDIST, WHEEL)}
    (dest / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in dists.items()))
    (dest / "unipkg.yaml").write_text("name: upm-sample\nversion: 1.2.0\n")
    (dest / ".unipkg.lock").write_text("click==8.1.7\n")
    for name in SIGNED_FILES:
        signer.sign_file(dest / name)
    signer.sign_statement(provenance(dists), dest / PROVENANCE)
    signer.sign_statement(
        statement(CYCLONEDX_BOM, {WHEEL: wheel_sha}, cyclonedx(wheel_sha)), dest / SBOM_ATTESTATION
    )
    if gpg is not None:
        for name in GPG_SIGNED:
            gpg.sign(dest / name)
        shutil.copy(gpg.public_key, dest / PUBKEY)
    return dest


@dataclass
class ReleaseKit:
    """What the tests need: a signed release to copy, signers to forge with, keys."""

    standin: SigstoreStandIn
    golden: Path
    golden_v2: Path
    signer: ReleaseSigner
    gpg: GpgKey
    other_gpg: GpgKey
    root: Path

    @property
    def trust_config(self) -> Path:
        return self.standin.trust_config_path

    def copy(self, dest: Path, *, rekor_version: int = 1) -> Path:
        shutil.copytree(self.golden if rekor_version == 1 else self.golden_v2, dest)
        return dest


@pytest.fixture(scope="session")
def release_kit(
    sigstore_standin: SigstoreStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReleaseKit]:
    root = tmp_path_factory.mktemp("release-kit")
    gpg = make_gpg_key(root / "gnupg", "release@example.com")
    other = make_gpg_key(root / "gnupg-other", "mallory@example.com")
    signer = ReleaseSigner(sigstore_standin)
    signer_v2 = ReleaseSigner(sigstore_standin, rekor_version=2)
    try:
        golden = build_release(root / "golden", signer, gpg)
        golden_v2 = build_release(root / "golden-v2", signer_v2, gpg)
        yield ReleaseKit(sigstore_standin, golden, golden_v2, signer, gpg, other, root)
    finally:
        signer.close()
        signer_v2.close()
        for key in (gpg, other):
            kill_gpg_agent(key)


@pytest.fixture
def release_dir(release_kit: ReleaseKit, tmp_path: Path) -> Path:
    """A fresh copy of the signed release (Rekor v1) that a test may tamper with."""
    return release_kit.copy(tmp_path / "dist")


__all__ = ["GITHUB_ISSUER", "release_dir", "release_kit"]
