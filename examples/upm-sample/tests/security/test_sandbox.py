"""Process isolation: one ``test_sandbox_<plugin>`` per plugin (see PLUGINS.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from upm_sample.sandbox import EXIT_UNSANDBOXED, SandboxError, SandboxRun, run_plugin

SRC = Path(__file__).resolve().parents[2] / "src"
PLUGINS = ["checksum", "idna_encode", "version_info"]


def _assert_isolated(run: SandboxRun) -> None:
    assert run.pid != os.getpid()
    assert Path(run.cwd).name.startswith("upm-sandbox-")
    assert "SECRET_TOKEN" not in run.env_keys
    assert "HOME" not in run.env_keys


@pytest.fixture(autouse=True)
def _secret_in_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "must-not-leak")


def test_sandbox_checksum() -> None:
    run = run_plugin("checksum", {"text": "abc"})
    assert run.result["sha256"].startswith("ba7816bf")
    _assert_isolated(run)


def test_sandbox_idna_encode() -> None:
    run = run_plugin("idna_encode", {"domain": "münchen.example"})
    assert run.result == {"ascii": "xn--mnchen-3ya.example"}
    _assert_isolated(run)


def test_sandbox_version_info() -> None:
    run = run_plugin("version_info", {"version": "1.2.0"})
    assert run.result == {"normalized": "1.2.0", "prerelease": False}
    _assert_isolated(run)


@pytest.mark.parametrize(
    "plugin", [pytest.param(name, marks=pytest.mark.sandbox(name)) for name in PLUGINS]
)
def test_plugin_refuses_to_run_unsandboxed(plugin: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"upm_sample.plugins.{plugin}"],
        input="{}",
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == EXIT_UNSANDBOXED
    assert "refusing to run unsandboxed" in proc.stderr


def test_plugin_names_cannot_escape_the_plugin_package() -> None:
    with pytest.raises(SandboxError, match="invalid plugin name"):
        run_plugin("../os", {})
