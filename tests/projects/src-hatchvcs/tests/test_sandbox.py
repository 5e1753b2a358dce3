"""Every plugin runs as the UPM host runs it: ``python -m``, a child process, no secrets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.security

HOST = Path(__file__).parent / "sandbox_host"


def run_plugin(name, payload, cwd, sandbox=True):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(HOST)}
    if sandbox:
        env["UPM_SANDBOX"] = "1"
    return subprocess.run(
        [sys.executable, "-m", f"tallyho.plugins.{name}"],
        input=json.dumps(payload),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(autouse=True)
def _host_secret(monkeypatch):
    monkeypatch.setenv("TALLYHO_API_TOKEN", "must-not-reach-a-plugin")


def sandboxed(name, payload, tmp_path):
    proc = run_plugin(name, payload, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    seen = out["process"]
    assert seen["pid"] != os.getpid()
    assert Path(seen["cwd"]) == tmp_path
    assert "TALLYHO_API_TOKEN" not in seen["env"]
    return out["result"]


@pytest.mark.sandbox("wordcount")
def test_wordcount_in_the_sandbox(tmp_path):
    assert sandboxed("wordcount", {"text": "one two three"}, tmp_path) == {"words": 3}


@pytest.mark.sandbox("linecount")
def test_linecount_in_the_sandbox(tmp_path):
    assert sandboxed("linecount", {"text": "a\n\nb"}, tmp_path) == {"lines": 3, "blank": 1}


@pytest.mark.sandbox("hashtags")
def test_hashtags_in_the_sandbox(tmp_path):
    assert sandboxed("hashtags", {"text": "#a #b #a"}, tmp_path) == {"tags": ["a", "b"]}


@pytest.mark.parametrize("name", ["wordcount", "linecount", "hashtags"])
def test_plugins_refuse_to_run_unsandboxed(name, tmp_path):
    proc = run_plugin(name, {"text": ""}, tmp_path, sandbox=False)
    assert proc.returncode == 3
    assert "refusing to run outside the sandbox" in proc.stderr
