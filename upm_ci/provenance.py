"""The in-toto statements a release carries: SLSA v1 provenance and a CycloneDX SBOM attestation.

Both are plain dicts here (in-toto Statement v1); ``upm_ci.sign`` signs them as DSSE bundles.
The provenance describes *how* the distributions were made: the release workflow (from the
OIDC token's claims, so it cannot claim another workflow than the certificate does), the
source repository at the commit, and the run. It has exactly the shape GitHub's own
``actions/attest-build-provenance`` writes (``@actions/attest``'s
``buildSLSAProvenancePredicate``): buildType ``https://actions.github.io/buildtypes/workflow/v1``,
whose only external parameter is ``workflow`` {ref, repository, path}, so ``gh attestation
verify``, slsa-verifier and policy engines read it like any GitHub attestation. What
upm-release adds (its version, the release tag) is an internal parameter under
``upm_release``: the build type says consumers should reject unknown external parameters.
Its builder id is ``<server>/<job_workflow_ref>``, the certificate identity on github.com,
which is what a verifier pins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from upm_ci.errors import InputError
from upm_ci.identity import TokenClaims, certificate_identity

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: The DSSE payload type of an in-toto statement.
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
#: GitHub's build type for a workflow run (https://github.com/actions/buildtypes, workflow/v1).
BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
#: The ``internalParameters`` key under which upm-release records what is its own.
INTERNAL_KEY = "upm_release"


def subject(name: str, sha256: str) -> dict[str, Any]:
    """An in-toto subject: a file name and its sha256."""
    return {"name": name, "digest": {"sha256": sha256}}


def statement_subjects(raw: Any) -> dict[str, str] | None:
    """A statement's ``subject`` list as {name: lower-case sha256}, or None when it is not a
    list of well-formed subjects with distinct names."""
    if not isinstance(raw, list):
        return None
    out: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), dict):
            return None
        name, digest = item.get("name"), item["digest"].get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str) or name in out:
            return None
        out[name] = digest.lower()
    return out


def slsa_provenance(
    subjects: list[dict[str, Any]],
    claims: TokenClaims,
    *,
    server_url: str = "https://github.com",
    tag: str = "",
    tool_version: str = "",
    dependencies: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A SLSA v1 provenance statement over ``subjects``, built from the token's claims.

    ``dependencies`` (resource descriptors, see :func:`dependency_descriptor`) follow the
    source in ``resolvedDependencies``: the runtime dependencies by file digest.

    Field for field what ``@actions/attest`` builds from the same claims; ``tag`` and
    ``tool_version`` go to ``internalParameters.upm_release``.
    """
    if not subjects:
        raise InputError("provenance: no distributions to describe", hint="run upm-ci build")
    repo_url = f"{server_url}/{claims.repository}"
    invocation = f"{repo_url}/actions/runs/{claims.run_id}/attempts/{claims.run_attempt}"
    builder = (
        f"{server_url}/{claims.job_workflow_ref}"
        if claims.job_workflow_ref
        else certificate_identity(claims)  # not an Actions token: whoever the certificate names
    )
    predicate: dict[str, Any] = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "workflow": {
                    "ref": claims.ref,
                    "repository": repo_url,
                    "path": claims.workflow_path,
                },
            },
            "internalParameters": {
                "github": {
                    "event_name": claims.event_name,
                    "repository_id": str(claims.raw.get("repository_id", "")),
                    "repository_owner_id": str(claims.raw.get("repository_owner_id", "")),
                    "runner_environment": claims.runner_environment,
                },
                INTERNAL_KEY: {"version": tool_version, "tag": tag},
            },
            "resolvedDependencies": [
                {
                    "uri": f"git+{repo_url}@{claims.ref}",
                    "digest": {"gitCommit": claims.sha},
                },
                *(dependencies or []),
            ],
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {"invocationId": invocation},
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": predicate,
    }


def dependency_descriptor(
    purl: str, file: str, sha256: str, publisher: str, attestation: str
) -> dict[str, Any]:
    """A runtime dependency as a SLSA resource descriptor: its package URL, the file by
    sha256, and who published it (PEP 740) with where its provenance is."""
    annotations = {"pep740_publisher": publisher}
    if attestation:
        annotations["pep740_provenance"] = attestation
    return {"uri": purl, "name": file, "digest": {"sha256": sha256}, "annotations": annotations}


def sbom_statement(sbom_path: Path, describes: str, describes_sha256: str) -> dict[str, Any]:
    """A CycloneDX SBOM attestation: the SBOM as predicate, bound to the artifact's digest."""
    try:
        bom = json.loads(sbom_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{sbom_path}: SBOM not found", hint="run upm-ci sbom") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{sbom_path}: SBOM is not valid JSON: {e}") from None
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
        raise InputError(f"{sbom_path}: not a CycloneDX JSON SBOM (bomFormat is not CycloneDX)")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject(describes, describes_sha256)],
        "predicateType": CYCLONEDX_BOM,
        "predicate": bom,
    }


def is_cyclonedx(path: Path) -> bool:
    """True for a CycloneDX JSON document (by content, not by name)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("bomFormat") == "CycloneDX"
