"""The release statement and the toolchain SBOM, made by the real sign phase against the local
Sigstore stand-in, read back with sigstore's own CLI and cyclonedx-python-lib's validator."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.release_kit import REPOSITORY, TAG, ReleaseKit, release_dir, release_kit
from tests.fixtures.release_kit import release_statement as kit_statement
from tests.test_sign import IDENTITY, make_release, sign_keyless
from upm_ci import __version__
from upm_ci.cli import main
from upm_ci.gate.report import CHECKLIST
from upm_ci.identity import GITHUB_ISSUER
from upm_ci.layout import CHECKSUMS, RELEASE_STATEMENT, TOOLCHAIN_SBOM, VSA_PREDICATE_TYPE
from upm_ci.manifest import Manifest
from upm_ci.release_statement import (
    POLICY_FILE,
    StatementProblem,
    build_statement,
    parse_statement,
)
from upm_ci.standins.sigstore_server import SigstoreStandIn

ROWS = {
    "tests": ("pass", "16 passed, suites: unit, integration, security"),
    "docs": ("pass", "8 documents, changelog 1.2.0\nsecond line not carried"),
    "dependency-audit": ("warn", "no known vulnerabilities in 2 packages"),
}


def payload(bundle: Path) -> dict[str, Any]:
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return data


@pytest.fixture
def signed(tmp_path: Path, sigstore_standin: SigstoreStandIn) -> Path:
    release = make_release(tmp_path)
    manifest = Manifest.load(release / "release-manifest.json")
    manifest.record_phase(
        "gate",
        "pass",
        checks={k: v[0] for k, v in ROWS.items()},
        summaries={k: v[1] for k, v in ROWS.items()},
    )
    manifest.save()
    sign_keyless(release, manifest, sigstore_standin)
    return release


def test_statement_names_every_release_file_and_the_gate_s_rows(signed: Path) -> None:
    dist = signed / "dist"
    manifest = Manifest.load(signed / "release-manifest.json")
    statement = payload(dist / RELEASE_STATEMENT)
    assert statement["predicateType"] == VSA_PREDICATE_TYPE
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    files = {a.name: a.sha256 for a in manifest.artifacts if a.name != RELEASE_STATEMENT}
    assert subjects == files
    on_disk = {p.name for p in dist.iterdir()} - {RELEASE_STATEMENT}
    assert set(subjects) == on_disk
    for name, digest in subjects.items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest
    assert {CHECKSUMS, f"{CHECKSUMS}.sigstore.json", TOOLCHAIN_SBOM} <= set(subjects)
    predicate = statement["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifier"] == {
        "id": "https://github.com/unexpected/upm-release",
        "version": {"upm-release": __version__},
    }
    assert (
        predicate["policy"]["digest"]["sha256"]
        == hashlib.sha256(POLICY_FILE.read_bytes()).hexdigest()
    )
    assert predicate["timeVerified"] == manifest.phases["gate"]["at"]
    assert predicate["upm_release"]["checks"] == [
        {"name": k, "status": v[0], "summary": v[1].splitlines()[0]} for k, v in ROWS.items()
    ]
    assert predicate["upm_release"]["publishedLater"] == [
        "upm-sample-1.2.0.audit.jsonl",
        "upm-sample-1.2.0.audit.jsonl.sigstore.json",
    ]
    record = next(a for a in manifest.attestations if a.file == RELEASE_STATEMENT)
    assert record.predicate_type == VSA_PREDICATE_TYPE
    assert manifest.artifact(RELEASE_STATEMENT).kind == "release-statement"  # type: ignore[union-attr]
    assert parse_statement(statement).files == subjects


def test_sha256sums_lists_every_other_release_file(signed: Path) -> None:
    dist = signed / "dist"
    listed = {
        line.split("  ", 1)[1] for line in (dist / CHECKSUMS).read_text().splitlines() if line
    }
    unlisted = {CHECKSUMS, f"{CHECKSUMS}.sigstore.json", RELEASE_STATEMENT}
    assert listed == {p.name for p in dist.iterdir()} - unlisted
    check = subprocess.run(
        ["sha256sum", "--strict", "-c", CHECKSUMS], cwd=dist, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_sigstore_cli_accepts_the_statement_for_a_file_and_rejects_a_changed_one(
    signed: Path, sigstore_standin: SigstoreStandIn, tmp_path: Path
) -> None:
    dist = signed / "dist"
    verify = [
        sys.executable,
        "-m",
        "sigstore",
        "--trust-config",
        str(sigstore_standin.trust_config_path),
        "verify",
        "identity",
        "--cert-identity",
        IDENTITY,
        "--cert-oidc-issuer",
        GITHUB_ISSUER,
        "--bundle",
        str(dist / RELEASE_STATEMENT),
    ]
    wheel = dist / "upm_sample-1.2.0-py3-none-any.whl"
    ok = subprocess.run([*verify, str(wheel)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    changed = tmp_path / wheel.name
    changed.write_bytes(wheel.read_bytes() + b"\0")
    refused = subprocess.run([*verify, str(changed)], capture_output=True, text=True)
    assert refused.returncode != 0


def test_toolchain_sbom_is_valid_cyclonedx_and_names_the_tools(signed: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = (signed / "dist" / TOOLCHAIN_SBOM).read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    tool = bom["metadata"]["component"]
    assert (tool["name"], tool["version"]) == ("upm-release", __version__)
    components = {c["name"].lower(): c for c in bom["components"]}
    import sigstore

    assert components["sigstore"]["version"] == sigstore.__version__
    lock = (Path(__file__).parent.parent / "actions/setup/requirements.txt").read_text()
    if f"sigstore=={sigstore.__version__}" in lock:  # the tool venv is the lock's
        hashes = {h["content"] for h in components["sigstore"]["hashes"]}
        assert hashes and all(f"sha256:{h}" in lock for h in hashes)
    interpreter = components[sys.implementation.name]
    assert interpreter["type"] == "platform"
    assert interpreter["version"] == ".".join(map(str, sys.version_info[:3]))
    props = {p["name"]: p["value"] for p in interpreter["properties"]}
    assert props["upm-release:interpreter:path"] == sys.executable
    assert (signed / "dist" / f"{TOOLCHAIN_SBOM}.sigstore.json").is_file()


def test_toolchain_sbom_records_the_runner_s_refs(monkeypatch: pytest.MonkeyPatch) -> None:
    from upm_ci.toolchain import toolchain_sbom

    monkeypatch.setenv("GITHUB_ACTION_REPOSITORY", "unexpected/upm-release")
    monkeypatch.setenv("GITHUB_ACTION_REF", "v1.4.0")
    monkeypatch.setenv("GITHUB_WORKFLOW_REF", "o/n/.github/workflows/release.yml@refs/tags/v1")
    bom = json.loads(toolchain_sbom({"job_workflow_sha": "a" * 40}))
    props = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert props["upm-release:github:github_action_repository"] == "unexpected/upm-release"
    assert props["upm-release:github:github_action_ref"] == "v1.4.0"
    assert props["upm-release:github:github_workflow_ref"].endswith("@refs/tags/v1")
    assert props["upm-release:github:job_workflow_sha"] == "a" * 40


def test_the_policy_is_the_seed_release_md_the_gate_runs() -> None:
    sample = Path(__file__).parent.parent / "examples" / "upm-sample" / "RELEASE.md"
    assert POLICY_FILE.read_bytes() == sample.read_bytes()
    text = POLICY_FILE.read_text()
    # Each row is a line of the Pre-Release Checklist, or applies a section the policy names
    # (dependency-provenance: the Artifact Trust Policy).
    for row in CHECKLIST:
        section = row.reference.split(",")[0].strip()
        assert row.task in text or f"## ✅ {section}" in text, row


# ------------------------------------------------------------------------------ bad statements


def good() -> dict[str, Any]:
    return build_statement(
        {"a.whl": "a" * 64, "SHA256SUMS": "b" * 64},
        images={"ghcr.io/o/n": "c" * 64},
        published_later=["x.audit.jsonl", "x.audit.jsonl.sigstore.json"],
        gate_rows=[],
        gate_passed=True,
        time_verified="2026-12-06T00:00:00Z",
        resource_uri="https://github.com/o/n/releases/tag/v1",
        policy_uri="https://example.com/RELEASE.md",
        policy_sha256="d" * 64,
        tool_version="0.1.0",
    )


def with_subject(name: str, digest: str = "e" * 64) -> dict[str, Any]:
    statement = good()
    statement["subject"].append({"name": name, "digest": {"sha256": digest}})
    return statement


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (with_subject("dist/a.whl"), "'dist/a.whl' has a path separator"),
        (with_subject(".."), "'..' is '.' or '..'"),
        (with_subject("a\nb.whl"), "has a control character"),
        (with_subject("a.whl"), "duplicate name 'a.whl'"),
        (with_subject("b.whl", "e" * 63), "is not 64 hex digits"),
        ({**good(), "predicateType": "https://slsa.dev/provenance/v1"}, "is not https://slsa"),
    ],
    ids=["separator", "dot-dot", "control", "duplicate", "short-digest", "not-vsa"],
)
def test_bad_statements_are_named(statement: dict[str, Any], named: str) -> None:
    with pytest.raises(StatementProblem, match="") as caught:
        parse_statement(statement)
    assert named in str(caught.value)


def test_a_gate_without_rows_or_with_a_failure_is_failed() -> None:
    assert parse_statement(good()).result == "FAILED"  # no rows: nothing was checked
    parsed = parse_statement(good())
    assert parsed.images == {"ghcr.io/o/n": "c" * 64}
    assert set(parsed.files) == {"a.whl", "SHA256SUMS"}


# ------------------------------------------------------------------------------ verify of them


def _bad_subject(statement: dict[str, Any]) -> None:
    statement["subject"].append({"name": "../etc/passwd", "digest": {"sha256": "f" * 64}})


def _duplicate(statement: dict[str, Any]) -> None:
    statement["subject"].append(dict(statement["subject"][0]))


def _short_digest(statement: dict[str, Any]) -> None:
    statement["subject"][0]["digest"]["sha256"] = "ab" * 16


def _not_vsa(statement: dict[str, Any]) -> None:
    statement["predicateType"] = "https://slsa.dev/provenance/v1"


def _failed_verdict(statement: dict[str, Any]) -> None:
    statement["predicate"]["verificationResult"] = "FAILED"


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (_bad_subject, "has a path separator"),
        (_duplicate, "duplicate name"),
        (_short_digest, "is not 64 hex digits"),
        (_not_vsa, "is not https://slsa.dev/verification_summary/v1"),
        (_failed_verdict, "the gate's verdict is FAILED"),
    ],
    ids=["path", "duplicate", "short-digest", "not-vsa", "failed"],
)
def test_verify_names_a_bad_signed_statement_and_exits_1(
    release_kit: ReleaseKit,
    release_dir: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: Any,
    named: str,
) -> None:
    """Signed by the release's own identity, so only its content is wrong."""
    statement = kit_statement(release_dir)
    mutate(statement)
    release_kit.signer.sign_statement(statement, release_dir / RELEASE_STATEMENT)
    capsys.readouterr()
    code = main(
        ["verify", str(release_dir), "--repository", REPOSITORY, "--ref", TAG, "--offline"]
        + ["--trust-config", str(release_kit.trust_config)]
        + ["--gpg-public-key", str(release_kit.gpg.public_key)]
    )
    captured = capsys.readouterr()
    assert code == 1, captured.out
    assert f"{RELEASE_STATEMENT}: " in captured.err and named in captured.err
    assert "Traceback" not in captured.out + captured.err


__all__ = ["release_dir", "release_kit"]  # the kit's fixtures
