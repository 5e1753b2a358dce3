"""What a person at a terminal sees: tables fit the width, no trailing spaces, no workflow
commands and no Python reprs outside GitHub Actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.release_kit import ReleaseKit, release_dir, release_kit
from tests.test_verify import cli_args
from upm_ci import gha
from upm_ci.cli import main
from upm_ci.cli.rehearse import summary_text
from upm_ci.rehearse import PhaseOutcome, RehearsalResult
from upm_ci.tables import table

__all__ = ["release_dir", "release_kit"]


def _assert_fits(text: str, width: int) -> None:
    for line in text.splitlines():
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}"
        assert line == line.rstrip(), f"trailing spaces: {line!r}"


def _rehearsal(out: Path) -> RehearsalResult:
    """A rehearsal's result with the produced cells a real one of the example has."""
    produced = {
        "gate": "gate-report.json: 12 checks: 12 pass",
        "build": "dist/: upm_sample-1.2.0.tar.gz, upm_sample-1.2.0-py3-none-any.whl, SHA256SUMS "
        "(reproducible: 2 builds, same digests); image 127.0.0.1:43121/upm-sample built",
        "sbom": "upm_sample-1.2.0.cdx.json, upm_sample-1.2.0.spdx.json: 3 components, 0 findings",
        "sign": "9 Sigstore bundles, provenance, SBOM attestation, 2 PEP 740 attestations, "
        "3 GPG signatures",
        "publish": "published.json: release published with 21 assets; 2 files on index; audit "
        "log in s3://upm-audit/upm-sample/v1.2.0/audit-log.jsonl (aws:kms "
        "arn:aws:kms:us-east-1:000000000000:key/6f2c1f9e-3a4b-4c8d-9e0f-1a2b3c4d5e6f)",
        "verify": "verify-report.json: 21/21 artifacts verified",
    }
    phases = [PhaseOutcome(p, "pass", 0, 3.25, produced=text) for p, text in produced.items()]
    return RehearsalResult(
        out_dir=out,
        phases=phases,
        faults={"GitHub": {"500": 3, "429": 1, "secondary": 2}, "PyPI": {}},
        image=[
            "image 127.0.0.1:43121/upm-sample@sha256:" + "ab" * 32,
            "  signed: signature, provenance, sbom-attestation",
        ],
        test_venv="test venvs cached in /root/.cache/upm-release/test-venvs (reused while the "
        "dependencies are unchanged)",
    )


def test_rehearsal_summary_fits_100_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = summary_text(Path("examples/upm-sample"), _rehearsal(tmp_path / "rehearsal"))
    _assert_fits(text, 100)
    # each phase is still one greppable row; the long cell moved below it, whole
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert any(line.split()[:2] == [phase, "pass"] for line in text.splitlines()), text
    joined = " ".join(line.strip() for line in text.splitlines())
    assert "arn:aws:kms:us-east-1:000000000000:key/6f2c1f9e-3a4b-4c8d-9e0f-1a2b3c4d5e6f" in joined
    assert "    produced: published.json: release published" in text
    assert "every phase passed" in text


def test_table_keeps_short_rows_as_they_are_and_wraps_only_what_is_long() -> None:
    short = table(["a", "bb"], [["x", "y"], ["long-ish", "z"]], width=80)
    assert short.splitlines() == ["a         bb", "--------  --", "x         y", "long-ish  z"]
    text = table(["name", "detail"], [["w", "d" * 150], ["s", "ok"]], width=60)
    _assert_fits(text, 60)
    lines = text.splitlines()
    assert lines[2] == "w" and lines[3].startswith("    detail: ddd")
    assert lines[-1] == "s     ok"
    # a cell with a newline is always shown below its row
    multi = table(["k", "v"], [["a", "one\ntwo"]], width=80)
    assert multi.splitlines()[2:] == ["a", "    v: one", "    two"]


def test_annotations_are_plain_text_outside_actions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gha.annotate("error", "first line\nsecond", file="pyproject.toml", line=3)
    err = capsys.readouterr().err
    assert err == "error: pyproject.toml:3: first line\nsecond\n"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    gha.annotate("error", "first line\nsecond", file="pyproject.toml", line=3)
    raw = capsys.readouterr().out
    assert raw == "::error file=pyproject.toml,line=3::first line%0Asecond\n"
    # the rehearsal shows a phase's logged annotations as a terminal would
    assert gha.plain_annotation(raw) == "error: pyproject.toml:3: first line\nsecond"
    assert gha.plain_annotation("::warning::50%25 done") == "warning: 50% done"
    assert gha.plain_annotation("just a line") == "just a line"


def test_verify_summary_prints_no_python_repr(
    release_kit: ReleaseKit,
    release_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("UPM_GPG_FINGERPRINT", release_kit.gpg.fingerprint)
    code = main(cli_args(release_kit, release_dir))
    out = capsys.readouterr().out
    assert code == 0, out
    _assert_fits(out, 100)
    verdict = out[out.index("verification passed: ") :]
    assert "; policy: identity https://github.com/" in " ".join(verdict.split()), verdict
    assert "{" not in out and "'" not in verdict, out
