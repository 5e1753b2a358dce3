"""An independent verifier accepts the image's provenance from the registry: the GitHub CLI.

``gh attestation verify oci://127.0.0.1:PORT/NAME@DIGEST --bundle-from-oci`` finds the
provenance bundle that publish stored next to the image (go-containerregistry's
``remote.Referrers``: on distribution 2.x, the ``sha256-<hex>`` fallback index) and verifies
it offline against the local Sigstore stand-in's trust root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_gh_verify import refused, run_gh, verified
from tests.test_image_registry import FAST, image_release, load, sign
from tests.test_sign import REPOSITORY
from upm_ci.image.registry import publish_images, push_image
from upm_ci.standins.registry import RegistryStandIn, registry_problem
from upm_ci.standins.sigstore_server import SigstoreStandIn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(registry_problem() is not None, reason=str(registry_problem())),
]

OWNER = REPOSITORY.split("/")[0]


def trusted_root(standin: SigstoreStandIn, where: Path) -> Path:
    """The stand-in's trust root as gh reads it: one JSON document per line, each ending
    in a newline."""
    config = json.loads(standin.trust_config_path.read_text())
    path = where / "trusted_root.jsonl"
    path.write_text(json.dumps(config["trustedRoot"]) + "\n")
    return path


def test_gh_verifies_the_image_provenance_from_the_registry(
    tmp_path: Path, sigstore_standin: SigstoreStandIn
) -> None:
    with RegistryStandIn() as registry:
        project = image_release(tmp_path, registry.host, seed="gh", tags=("1.2.0",))
        sign(project, sigstore_standin)
        publish_images(load(project), project / "dist", retry=FAST)
        record = load(project).images[0]
        root = trusted_root(sigstore_standin, tmp_path)
        target = f"oci://{record.repository}@{record.digest}"
        result = verified(
            run_gh(["attestation", "verify", target, "--bundle-from-oci", "--owner", OWNER], root)
        )
        statement = result["statement"]
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
        assert statement["subject"][0]["digest"]["sha256"] == record.digest[7:]
        by_tag = f"oci://{record.repository}:1.2.0"
        verified(
            run_gh(["attestation", "verify", by_tag, "--bundle-from-oci", "--owner", OWNER], root)
        )
        error = refused(
            run_gh(
                ["attestation", "verify", target, "--bundle-from-oci", "--owner", "someone-else"],
                root,
            )
        )
        assert error


def test_gh_refuses_an_unsigned_image(tmp_path: Path, sigstore_standin: SigstoreStandIn) -> None:
    with RegistryStandIn() as registry:
        project = image_release(tmp_path, registry.host, seed="gh-unsigned", tags=("1.2.0",))
        record = load(project).images[0]
        push_image(load(project), record, project / "dist/oci-image", retry=FAST)
        root = trusted_root(sigstore_standin, tmp_path)
        target = f"oci://{record.repository}@{record.digest}"
        assert refused(
            run_gh(["attestation", "verify", target, "--bundle-from-oci", "--owner", OWNER], root)
        )
