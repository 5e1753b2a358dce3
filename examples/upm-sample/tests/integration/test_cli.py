"""The console script end to end: argument parsing, sandboxed run, exit codes."""

from __future__ import annotations

import json

import pytest
from upm_sample.cli import main


def test_cli_runs_a_plugin_in_the_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checksum", json.dumps({"text": ""})]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sha256"].startswith("e3b0c442")


def test_cli_reports_a_failing_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version_info", json.dumps({"version": "not a version"})]) == 1
    assert "version_info exited with 1" in capsys.readouterr().err


def test_cli_usage_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["--version"]) == 0
    assert "upm-sample 1.2.0" in capsys.readouterr().out
