"""The venv with the built wheel (upm_ci.venvs): made once a rehearsal, shared by build's smoke
test and sbom, reused across runs while the wheel's dependencies and the interpreter are the
same, and never cached in CI or with --fresh.

The wheels are real (written here, with a correct RECORD) and installed by real uv or pip from a
local find-links directory: no index is asked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from upm_ci import timings
from upm_ci.rehearse import phase_cache_env
from upm_ci.venvs import CACHE_ENV, wheel_key, wheel_venv


def write_wheel(
    dest: Path, name: str, version: str, *, requires: tuple[str, ...] = (), value: int = 1
) -> Path:
    """A pure-Python wheel of module ``name`` (``VALUE = value``) requiring ``requires``."""
    dest.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Dependencies ``depa`` and ``depb`` in a find-links directory, the only index there is."""
    links = tmp_path / "links"
    write_wheel(links, "depa", "1.0")
    write_wheel(links, "depb", "2.0")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    return links


def run(python: Path, code: str) -> str:
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_key_changes_with_requires_dist_and_the_interpreter_not_with_the_code(
    tmp_path: Path,
) -> None:
    first = wheel_key(write_wheel(tmp_path / "a", "minipkg", "0.3.0", requires=("depa",)))
    rebuilt = write_wheel(tmp_path / "b", "minipkg", "0.3.1", requires=("depa",), value=2)
    assert wheel_key(rebuilt) == first  # new code, new version: the same dependencies
    more = write_wheel(tmp_path / "c", "minipkg", "0.3.0", requires=("depa", "depb"))
    assert wheel_key(more) != first
    pinned = write_wheel(tmp_path / "d", "minipkg", "0.3.0", requires=("depa==1.0",))
    assert wheel_key(pinned) != first
    other = tmp_path / "python3"  # another interpreter: a new venv
    other.write_text("#!/bin/sh\n")
    assert wheel_key(rebuilt, interpreter=str(other)) != first


@pytest.mark.parametrize("variable", ["CI", "GITHUB_ACTIONS"])
def test_ci_gets_no_wheel_venv_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("UPM_CACHE_DIR", str(tmp_path))
    assert CACHE_ENV in phase_cache_env(fresh=False)
    monkeypatch.setenv(variable, "true")
    assert phase_cache_env(fresh=False) == {}


def test_fresh_gets_no_wheel_venv_cache_and_a_local_run_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.setenv("UPM_CACHE_DIR", str(tmp_path))
    assert phase_cache_env(fresh=True) == {}
    assert phase_cache_env(fresh=False)[CACHE_ENV] == str(tmp_path / "wheel-venvs")


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_reused_venv_holds_the_current_wheel_and_new_dependencies_make_a_new_one(
    tmp_path: Path, local_index: Path, monkeypatch: pytest.MonkeyPatch, installer: str
) -> None:
    if installer == "pip":
        monkeypatch.setenv("UPM_NO_UV", "true")
    cache = tmp_path / "cache"
    wheel = write_wheel(tmp_path / "w1", "minipkg", "0.3.0", requires=("depa",))
    with wheel_venv(wheel, phase="build", cache=cache) as first:
        assert first.how == "new" and first.installed.returncode == 0, first.installed.stderr
        assert run(first.python, "import depa, minipkg; print(minipkg.VALUE)") == "1"
    with wheel_venv(wheel, phase="sbom", cache=cache) as again:  # the same wheel: as it is
        assert again.how == "reused" and again.python == first.python

    rebuilt = write_wheel(tmp_path / "w2", "minipkg", "0.3.0", requires=("depa",), value=2)
    with wheel_venv(rebuilt, phase="build", cache=cache) as replaced:
        assert replaced.how == "reused, wheel replaced" and replaced.python == first.python
        assert run(replaced.python, "import minipkg; print(minipkg.VALUE)") == "2"

    more = write_wheel(tmp_path / "w3", "minipkg", "0.3.0", requires=("depa", "depb"), value=3)
    with wheel_venv(more, phase="build", cache=cache) as changed:
        assert changed.how == "new" and changed.python != first.python
        assert run(changed.python, "import depb, minipkg; print(minipkg.VALUE)") == "3"
    # only the wheel's closure, no pip of the venv's own
    code = "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))"
    listed = run(changed.python, code)
    assert listed == "['depa', 'depb', 'minipkg']"


@pytest.mark.slow
def test_without_a_cache_each_use_is_a_new_venv_removed_after(
    tmp_path: Path, local_index: Path
) -> None:
    wheel = write_wheel(tmp_path / "w", "minipkg", "0.3.0", requires=("depa",))
    with wheel_venv(wheel, phase="build") as first:
        assert first.how == "new" and run(first.python, "import depa, minipkg; print(1)") == "1"
    with wheel_venv(wheel, phase="sbom") as second:
        assert second.how == "new" and second.python != first.python
    assert not first.python.exists() and not second.python.exists()


@pytest.mark.slow
def test_build_smoke_test_and_sbom_share_one_venv_in_a_rehearsal(
    tmp_path: Path, local_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from upm_ci.build import smoke_test
    from upm_ci.project import load_project
    from upm_ci.sbom import environment_bom

    root = tmp_path / "minipkg"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "minipkg"\nversion = "0.3.0"\ndependencies = ["depa"]\n'
    )
    wheel = write_wheel(tmp_path / "dist", "minipkg", "0.3.0", requires=("depa",))
    steps = tmp_path / "timings.jsonl"
    monkeypatch.setenv(timings.TIMINGS_ENV, str(steps))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert "loaded 1 modules" in smoke_test(load_project(root), wheel)
    bom = environment_bom(wheel)
    names = {c["name"] for c in bom["components"]}
    assert {"minipkg", "depa"} <= names and "pip" not in names
    venv_steps = [t.step for t in timings.read(steps) if "venv with the wheel" in t.step]
    assert venv_steps == ["build: venv with the wheel (new)", "sbom: venv with the wheel (reused)"]
    ready = json.loads(next((tmp_path / "cache").glob("*/.upm-ready")).read_text())
    assert ready["key"] == wheel_key(wheel)


def test_a_file_that_is_no_wheel_gets_no_cached_venv(tmp_path: Path, local_index: Path) -> None:
    broken = tmp_path / "minipkg-0.3.0-py3-none-any.whl"
    broken.write_bytes(b"not really a wheel")
    assert wheel_key(broken) == ""
    with wheel_venv(broken, phase="sbom", cache=tmp_path / "cache") as made:
        assert made.how == "new" and made.installed.returncode != 0
    assert not (tmp_path / "cache").exists()


def test_uv_gets_the_settings_pip_reads_from_its_configuration_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv reads no pip.conf: each setting pip has there (``install`` over ``global``) reaches uv
    under uv's name and list separator; a PIP_* variable and a UV_* one still win."""
    from upm_ci.venvs import uv_env

    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://global.example/simple\n"
        "extra-index-url = https://a.example/simple\n  https://b.example/simple\n"
        "find-links = /links/one /links/two\nconstraint = /c/constraints.txt\n"
        "[install]\nindex-url = https://install.example/simple\n"
    )
    env = {"PIP_CONFIG_FILE": str(conf), "HOME": str(tmp_path)}
    got = uv_env(env)
    assert got["UV_INDEX_URL"] == "https://install.example/simple"
    assert got["UV_EXTRA_INDEX_URL"] == "https://a.example/simple https://b.example/simple"
    assert got["UV_FIND_LINKS"] == "/links/one,/links/two"
    assert got["UV_CONSTRAINT"] == "/c/constraints.txt"
    assert got["UV_INDEX_STRATEGY"] == "unsafe-best-match"  # pip's: best match of all indexes
    assert "UV_NO_INDEX" not in got
    assert uv_env({**env, "UV_INDEX_STRATEGY": "first-index"})["UV_INDEX_STRATEGY"] == "first-index"
    env |= {"PIP_INDEX_URL": "https://env.example/simple", "UV_FIND_LINKS": "/uv/own"}
    got = uv_env(env)
    assert got["UV_INDEX_URL"] == "https://env.example/simple"
    assert got["UV_FIND_LINKS"] == "/uv/own"
    assert "UV_INDEX_URL" not in uv_env({"PIP_CONFIG_FILE": os.devnull, "HOME": str(tmp_path)})


def test_a_wheel_whose_dependency_only_pip_conf_can_find_installs_with_uv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from upm_ci.venvs import uv_binary, venv_with_wheel

    if not uv_binary():
        pytest.skip("no uv here: the pip path reads pip.conf itself")
    links = tmp_path / "links"
    write_wheel(links, "depconf", "1.0")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nno-index = true\nfind-links = {links}\n")
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    wheel = write_wheel(tmp_path / "w", "minipkg", "0.3.0", requires=("depconf",))
    with caplog.at_level("INFO", logger="upm_ci.venvs"):
        python, installed = venv_with_wheel(tmp_path / "venv", wheel)
    assert installed.returncode == 0, installed.stderr
    assert "using pip" not in caplog.text  # uv made it, from pip.conf's find-links alone
    assert run(python, "import depconf, minipkg; print(minipkg.VALUE)") == "1"
