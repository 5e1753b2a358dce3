"""``pip install upm-release`` without extras: a consumer's ``upm-ci`` that verifies a signed
release, decides trust and checks a config with a third of the full install's packages, and
says which extra a release phase needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, REPO_ROOT
from tests.fixtures.release_kit import REPOSITORY, TAG, WHEEL, ReleaseKit, release_dir, release_kit
from tests.test_actions import lock_pins

__all__ = ["release_dir", "release_kit"]

#: What a venv has before anything is installed into it.
_SEEDED = {"pip", "setuptools", "wheel"}


def _run(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPM_", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel and no extras."""
    base = tmp_path_factory.mktemp("light")
    _run(sys.executable, "-m", "build", "--wheel", "-o", base / "wheel", REPO_ROOT)
    (wheel,) = (base / "wheel").glob("upm_release-*.whl")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin/python", "-m", "pip", "install", "--quiet", wheel, timeout=900)
    return venv


@pytest.mark.slow
def test_the_light_install_verifies_a_signed_release_and_names_the_extras(
    light_venv: Path, release_kit: ReleaseKit, release_dir: Path, tmp_path: Path
) -> None:
    listed = json.loads(_run(light_venv / "bin/python", "-m", "pip", "list", "--format", "json"))
    installed = {p["name"].lower() for p in listed} - _SEEDED
    full = len(lock_pins())  # the actions' lock: every package of the full install
    assert len(installed) <= full / 3, f"{len(installed)} of {full}: {sorted(installed)}"
    heavy = {"pygithub", "boto3", "botocore", "pip-audit", "cyclonedx-bom", "twine", "oras"}
    assert not installed & heavy, installed & heavy

    upm_ci = light_venv / "bin/upm-ci"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = _run(
        upm_ci,
        "verify",
        release_dir,
        "--repository",
        REPOSITORY,
        "--ref",
        TAG,
        "--offline",
        "--trust-config",
        release_kit.trust_config,
        "--gpg-fingerprint",
        release_kit.gpg.fingerprint,
        "--format",
        "json",
        cwd=cwd,
    )
    report = json.loads(out)
    assert report["passed"] is True
    assert WHEEL in {a["name"] for a in report["artifacts"]}

    trust = json.loads(
        _run(
            upm_ci,
            "trust",
            release_dir / WHEEL,
            "--repository",
            REPOSITORY,
            "--trust-config",
            release_kit.trust_config,
            "--format",
            "json",
            cwd=cwd,
        )
    )
    assert trust["accepted"] is True
    assert "is valid" in _run(upm_ci, "check-config", EXAMPLE)

    for command, extra in (("gate", "pipeline"), ("publish", "pipeline"), ("rehearse", "rehearse")):
        done = subprocess.run(
            [str(upm_ci), command, "--project", str(EXAMPLE)]
            if command != "rehearse"
            else [str(upm_ci), command, str(EXAMPLE)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"upm-ci: error: upm-ci {command} needs the [{extra}] extra"), line
        assert line.endswith(f"(pip install 'upm-release[{extra}]')"), line
    assert not list(cwd.iterdir()), "nothing is written before the extra is checked"


def test_a_missing_extra_is_one_line_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from upm_ci.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "github", None)  # as if PyGithub were not installed
    assert main(["gate", "--project", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "upm-ci: error: upm-ci gate needs the [pipeline] extra (github not installed) "
        "(pip install 'upm-release[pipeline]')\n"
    )
    assert not list(tmp_path.iterdir())
    monkeypatch.setitem(sys.modules, "oras", None)
    assert main(["trust", "oci://127.0.0.1:1/x:1"]) == 2
    assert "upm-ci trust of an image needs the [image] extra" in capsys.readouterr().err


def test_an_extras_module_missing_anywhere_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The net under the explicit checks: a lazy import of an extra's module that fails."""
    import upm_ci.cli.check_config as check_config
    from upm_ci.cli import main

    def load(*args: object, **kwargs: object) -> None:
        import boto3  # noqa: F401  - None in sys.modules: ModuleNotFoundError

    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.setattr("upm_ci.project.load_project", load)
    assert check_config.command.name == "check-config"
    assert main(["check-config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "upm-ci check-config needs the [pipeline] extra (boto3 not installed)" in err
