"""``--format json``: the report the files hold, on stdout, and nothing else there (logs,
annotations and even ``::add-mask::`` go to stderr)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.release_kit import REPOSITORY, TAG, WHEEL, ReleaseKit, release_dir, release_kit
from tests.test_artifact_policy import community_signer, files, project
from tests.test_gate_cli import audit_passes, break_plugin, in_tmp
from upm_ci.cli import main
from upm_ci.verify.report import SCHEMA

__all__ = [
    "audit_passes",
    "community_signer",
    "files",
    "in_tmp",
    "project",
    "release_dir",
    "release_kit",
]

UPM_CI = str(Path(sys.executable).with_name("upm-ci"))
TOKEN = "ghs_jsonOutputToken0123456789abcdefABCD"


def _verify_cmd(kit: ReleaseKit, dist: Path) -> str:
    args = [UPM_CI, "verify", str(dist), "--project", str(dist.parent)]
    args += ["--repository", REPOSITORY, "--ref", TAG, "--offline", "--format", "json"]
    args += ["--trust-config", str(kit.trust_config)]
    return " ".join(f"'{a}'" for a in args)


@pytest.mark.parametrize("in_actions", [False, True])
def test_verify_json_pipes_into_json_tool(
    release_kit: ReleaseKit, release_dir: Path, tmp_path: Path, in_actions: bool
) -> None:
    env = {**os.environ, "UPM_GPG_FINGERPRINT": release_kit.gpg.fingerprint}
    env["UPM_GITHUB_TOKEN"] = TOKEN  # masked: in Actions an ::add-mask:: line, on stderr
    if in_actions:
        env["GITHUB_ACTIONS"] = "true"
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"{_verify_cmd(release_kit, release_dir)} --report-json '{report}'"
            f" | {sys.executable} -m json.tool",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data == json.loads(report.read_text())  # the same report the file holds
    assert data["schema"] == SCHEMA and data["passed"] is True
    names = [a["name"] for a in data["artifacts"]]
    on_disk = sorted(p.name for p in release_dir.iterdir() if p.is_file())
    assert sorted(names) == on_disk  # one entry per file
    assert "verification passed" in proc.stderr
    logged = [x for x in proc.stderr.splitlines() if not x.startswith("::add-mask::")]
    assert TOKEN not in proc.stdout + "\n".join(logged)
    if in_actions:
        assert f"::add-mask::{TOKEN}" in proc.stderr


def test_verify_json_of_a_failing_release_still_is_the_report(
    release_kit: ReleaseKit, release_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (release_dir / WHEEL).write_bytes(b"tampered")
    args = [
        "verify",
        str(release_dir),
        "--project",
        str(release_dir.parent),
        "--repository",
        REPOSITORY,
        "--ref",
        TAG,
        "--offline",
        "--trust-config",
        str(release_kit.trust_config),
        "--gpg-fingerprint",
        release_kit.gpg.fingerprint,
        "--format",
        "json",
    ]
    assert main(args) == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["passed"] is False
    (wheel,) = [a for a in data["artifacts"] if a["name"] == WHEEL]
    assert wheel["passed"] is False
    assert "verification FAILED" in err and "error: " in err


def test_trust_json(
    release_kit: ReleaseKit, files: Path, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["trust", "--project", str(project), "--trust-config", str(release_kit.trust_config)]
        + [str(files / WHEEL), str(files / "random-tool.tar.gz"), "--format", "json"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    data = json.loads(out)
    assert data["schema"] == "upm-release/trust-report/v1" and data["accepted"] is False
    decisions = {Path(d["artifact"]).name: d["decision"] for d in data["decisions"]}
    assert decisions == {WHEEL: "accepted", "random-tool.tar.gz": "blocked"}
    assert "random-tool.tar.gz" in err  # the annotation, on stderr


def test_gate_json(
    sample_copy: Path,
    sample_junit: Path,
    in_tmp: Path,
    audit_passes: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    break_plugin(sample_copy)
    code = main(
        ["gate", "--project", str(sample_copy), "--junit-xml", str(sample_junit)]
        + ["--report-json", "gate.json", "--format", "json"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    data = json.loads(out)
    assert data == json.loads((in_tmp / "gate.json").read_text())
    assert data["passed"] is False
    status = {c["id"]: c["status"] for c in data["checks"]}
    assert status["plugin-entrypoint"] == "fail"
    assert "release blocked by the gate: plugin-entrypoint" in err
