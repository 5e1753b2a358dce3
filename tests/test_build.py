"""``upm-ci build``: real ``python -m build`` runs, real twine, real venvs, real ``sha256sum``."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import subprocess
import tarfile
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from tests.conftest import EXAMPLE, git, make_git_project
from upm_ci import gha
from upm_ci.build import BuildResult, archive_differences, build_release, clean
from upm_ci.cli import main
from upm_ci.manifest import Artifact, Manifest
from upm_ci.project import load_project
from upm_ci.release import release_info

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "demo-pkg"
version = "1.2.0"
description = "A demo package for upm-ci build tests"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["packaging>=24"]

[project.entry-points."demo_pkg.plugins"]
hello = "demo_pkg.plugins.hello:main"

[tool.hatch.build.targets.wheel]
packages = ["src/demo_pkg"]
"""


def make_project(root: Path, *, pyproject: str = PYPROJECT, in_git: bool = True) -> Path:
    """A small real project (hatchling, one dependency, one plugin entry point)."""
    (root / "src/demo_pkg/plugins").mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    (root / "README.md").write_text("# demo-pkg\n\nA demo.\n")
    (root / "src/demo_pkg/__init__.py").write_text('__version__ = "1.2.0"\n')
    (root / "src/demo_pkg/plugins/__init__.py").write_text("")
    (root / "src/demo_pkg/plugins/hello.py").write_text("def main() -> int:\n    return 0\n")
    if in_git:
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "demo 1.2.0")
    return root


@dataclass
class CliRun:
    code: int
    project: Path
    manifest: Path
    outputs: str
    summary: str


def shared_once(
    factory: pytest.TempPathFactory, name: str, make: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """Run ``make(directory)`` once per session, even across xdist workers (a file lock), and
    share its directory and JSON-able result: real builds are too slow to repeat per worker."""
    base = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's directory, common to all workers
    target, done = base / name, base / f"{name}.json"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            done.write_text(json.dumps(make(target)))
    return target, json.loads(done.read_text())


def example_build(factory: pytest.TempPathFactory) -> CliRun:
    """The example built once per session through the CLI, reproducibility checked (read-only:
    tests that change anything copy it)."""

    def make(base: Path) -> dict[str, Any]:
        assert EXAMPLE.is_dir(), "examples/upm-sample is missing"
        project = make_git_project(EXAMPLE, base / "upm-sample")
        outputs, summary = base / "outputs.txt", base / "summary.md"
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("GITHUB_OUTPUT", str(outputs))
            mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
            for name in ("GITHUB_REF", "UPM_TAG", "UPM_CHECK_REPRODUCIBLE", "UPM_DIST_DIR"):
                mp.delenv(name, raising=False)
            manifest = base / "release-manifest.json"
            args = ["build", "--project", str(project), "--manifest", str(manifest)]
            code = main([*args, "--check-reproducible"])
        return {"code": code, "outputs": outputs.read_text(), "summary": summary.read_text()}

    base, result = shared_once(factory, "example-build", make)
    return CliRun(
        result["code"],
        base / "upm-sample",
        base / "release-manifest.json",
        result["outputs"],
        result["summary"],
    )


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    return example_build(tmp_path_factory)


# --- the example, through the CLI -------------------------------------------------------------
@pytest.mark.slow
def test_example_builds_reproducibly_and_is_recorded(sample_build: CliRun) -> None:
    assert sample_build.code == 0
    m = Manifest.load(sample_build.manifest)
    assert {a.kind for a in m.artifacts} == {"sdist", "wheel", "checksums"}
    assert [a.name for a in m.distributions()] == [
        "upm_sample-1.2.0.tar.gz",
        "upm_sample-1.2.0-py3-none-any.whl",
    ]
    assert m.project.commit == git(sample_build.project, "rev-parse", "HEAD")
    assert m.project.tag == "v1.2.0"
    assert m.phases["build"]["status"] == "pass"
    assert m.phases["build"]["reproducible_checked"] is True
    for artifact in m.artifacts:
        assert m.resolve(artifact).is_file()


@pytest.mark.slow
def test_sha256sum_accepts_the_checksums_file(sample_build: CliRun) -> None:
    dist = sample_build.project / "dist"
    done = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=dist, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [
        "upm_sample-1.2.0-py3-none-any.whl: OK",
        "upm_sample-1.2.0.tar.gz: OK",
    ]


@pytest.mark.slow
def test_wheel_timestamps_come_from_the_commit(sample_build: CliRun) -> None:
    """SOURCE_DATE_EPOCH is the commit time (2026-11-01T12:00:00Z in make_git_project)."""
    wheel = sample_build.project / "dist/upm_sample-1.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        assert {i.date_time for i in z.infolist()} == {(2026, 11, 1, 12, 0, 0)}
    epoch = Manifest.load(sample_build.manifest).phases["build"]["source_date_epoch"]
    assert epoch == git(sample_build.project, "log", "-1", "--format=%ct")


@pytest.mark.slow
def test_actions_outputs_and_summary(sample_build: CliRun) -> None:
    out = sample_build.outputs
    dist = sample_build.project / "dist"
    assert f"wheel={dist / 'upm_sample-1.2.0-py3-none-any.whl'}\n" in out
    assert f"sdist={dist / 'upm_sample-1.2.0.tar.gz'}\n" in out
    assert f"manifest={sample_build.manifest}\n" in out
    sums = (dist / "SHA256SUMS").read_text().rstrip("\n")
    head, _, rest = out.partition("sha256sums<<")
    delimiter, _, body = rest.partition("\n")
    assert body.startswith(sums + "\n" + delimiter + "\n")
    assert "reproducible (built twice, identical)" in sample_build.summary
    assert "`upm_sample-1.2.0-py3-none-any.whl`" in sample_build.summary


# --- generated projects -----------------------------------------------------------------------
@pytest.mark.slow
def test_plain_function_builds_a_generated_project(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path / "demo"))
    manifest = Manifest.load_or_new(tmp_path / "m.json", release_info(project, None))
    result = build_release(
        project, manifest, dist_dir=tmp_path / "out", check_reproducible=False, tag=None
    )
    assert result.smoke_tested and result.version == "1.2.0" and result.tag == "v1.2.0"
    assert (tmp_path / "out/SHA256SUMS").read_text() == result.sums_text
    assert [line.split("  ")[1] for line in result.sums_text.splitlines()] == [
        "demo_pkg-1.2.0-py3-none-any.whl",
        "demo_pkg-1.2.0.tar.gz",
    ]
    saved = json.loads((tmp_path / "m.json").read_text())
    assert [a["name"] for a in saved["artifacts"]][-1] == "SHA256SUMS"
    assert saved["artifacts"][0]["path"] == "out/demo_pkg-1.2.0.tar.gz"
    # A re-run (a retried job) replaces the same entries with the same bytes.
    (tmp_path / "out/stale.whl").write_text("from another run")
    again = build_release(
        project,
        manifest,
        dist_dir=tmp_path / "out",
        check_reproducible=False,
        tag=None,
        smoke=False,
    )
    assert again.sums_text == result.sums_text
    assert len(Manifest.load(tmp_path / "m.json").artifacts) == 3
    assert (tmp_path / "out/stale.whl").exists(), "a dist-dir outside the project is never emptied"


@pytest.mark.slow
def test_cli_prints_a_table_and_tag_normalisation_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "demo", pyproject=PYPROJECT.replace("1.2.0", "1.3.0rc1"))
    args = ["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")]
    code = main([*args, "--tag", "v1.3.0-RC.1", "--no-smoke-test"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[0].split() == ["name", "size", "sha256"]
    wheel = root / "dist/demo_pkg-1.3.0rc1-py3-none-any.whl"
    line = next(x for x in out.splitlines() if x.startswith(wheel.name))
    assert line.split()[1:] == [str(wheel.stat().st_size), subprocess_sha256(wheel)]
    assert "smoke test skipped" in out


def subprocess_sha256(path: Path) -> str:
    """The digest coreutils computes, to check ours against."""
    done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.split()[0]


@pytest.mark.slow
def test_version_not_matching_the_tag_fails_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "demo")
    (root / "dist").mkdir()
    (root / "dist/demo_pkg-1.1.0.tar.gz").write_text("from an earlier run\n")
    args = ["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")]
    code = main([*args, "--tag", "v1.2.1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "'1.2.0'" in err and "'1.2.1'" in err and "v1.2.1" in err
    assert (root / "dist/demo_pkg-1.1.0.tar.gz").exists(), "a failed build must not empty dist/"
    assert not (tmp_path / "m.json").exists()


@pytest.mark.slow
def test_non_reproducible_build_fails_naming_the_member(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "demo")
    (root / "src/demo_pkg/_hooks.py").write_text("")
    (root / "hatch_build.py").write_text(
        textwrap.dedent(
            """\
            import tempfile
            import time

            from hatchling.builders.hooks.plugin.interface import BuildHookInterface

            class StampHook(BuildHookInterface):
                def initialize(self, version, build_data):
                    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
                        f.write(str(time.time_ns()))
                    build_data["force_include"][f.name] = "demo_pkg/stamp.txt"
            """
        )
    )
    pyproject = (
        PYPROJECT + '\n[tool.hatch.build.targets.wheel.hooks.custom]\npath = "hatch_build.py"\n'
    )
    (root / "pyproject.toml").write_text(pyproject)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "stamp")
    args = ["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")]
    code = main([*args, "--check-reproducible", "--no-smoke-test"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "not reproducible" in err
    assert "demo_pkg-1.2.0-py3-none-any.whl: demo_pkg/stamp.txt (content)" in err
    assert not (root / "dist").exists()


def test_check_reproducible_comes_from_config_unless_the_option_says(
    tmp_path: Path, mocker: MockerFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(
        tmp_path / "demo",
        pyproject=PYPROJECT + "\n[tool.upm-release]\ncheck-reproducible = true\n",
        in_git=False,
    )
    built = mocker.patch("upm_ci.build.build_release", autospec=True)
    artifact = Artifact(name="a", path="a", sha256="0" * 64, size=1, kind="wheel")
    built.return_value = BuildResult(
        *(artifact, artifact, artifact),
        sums_text="x  y\n",
        version="1.2.0",
        tag="v1.2.0",
        commit="",
        source_date_epoch="",
        reproducible_checked=True,
        smoke_tested=True,
        removed=(),
    )
    args = ["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")]
    seen = []
    for extra in ([], ["--no-check-reproducible"], ["--check-reproducible"]):
        assert main([*args, *extra]) == 0
        seen.append(built.call_args.kwargs["check_reproducible"])
    assert seen == [True, False, True]
    assert built.call_args.kwargs["dist_dir"] == root / "dist"


def test_broken_build_backend_exits_2_with_the_build_output_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(
        tmp_path / "demo",
        pyproject=PYPROJECT.replace(
            'build-backend = "hatchling.build"', 'build-backend = "no_such_backend_xyz"'
        ),
    )
    (root / "dist").mkdir()
    (root / "dist/old.whl").write_bytes(b"previous")
    manifest = tmp_path / "m.json"
    code = main(["build", "--project", str(root), "--manifest", str(manifest)])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not build" in err and "no_such_backend_xyz" in err
    assert "Traceback (most recent call last)" not in err.split("last lines of its output")[0]
    assert (root / "dist/old.whl").read_bytes() == b"previous"
    assert not manifest.exists()


@pytest.mark.slow
def test_smoke_test_fails_on_a_broken_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(
        tmp_path / "demo",
        pyproject=PYPROJECT.replace("demo_pkg.plugins.hello:main", "demo_pkg.plugins.gone:main"),
    )
    code = main(["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert "smoke test failed" in err
    assert "entry point hello = demo_pkg.plugins.gone:main [demo_pkg.plugins]" in err
    assert "ModuleNotFoundError" in err


@pytest.mark.slow
def test_twine_check_strict_fails_without_a_long_description(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(
        tmp_path / "demo", pyproject=PYPROJECT.replace('readme = "README.md"\n', "")
    )
    code = main(["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert "twine check --strict failed" in err and "long_description" in err


# --- bad input --------------------------------------------------------------------------------
def test_malformed_manifest_exits_2_and_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "demo", in_git=False)
    manifest = tmp_path / "m.json"
    manifest.write_text('{"schema": "upm-release/manifest/v1", "project": ')
    code = main(["build", "--project", str(root), "--manifest", str(manifest)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and str(manifest) in captured.err
    assert manifest.read_text() == '{"schema": "upm-release/manifest/v1", "project": '
    assert not (root / "dist").exists()


def test_manifest_of_another_release_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "demo", in_git=False)
    other = Manifest.load_or_new(tmp_path / "m.json", release_info(load_project(root), None))
    other.project.version = "0.9.0"
    other.save()
    code = main(["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")])
    assert code == 2
    assert "not demo-pkg 1.2.0" in capsys.readouterr().err


def test_malformed_tag_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(tmp_path / "demo", in_git=False)
    code = main(["build", "--project", str(root), "--tag", "release-banana"])
    assert code == 2
    assert "'release-banana'" in capsys.readouterr().err


def test_secrets_in_build_output_are_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "ghp_S3cretTokenValue1234567890"
    gha.mask(secret)
    root = make_project(
        tmp_path / "demo",
        pyproject=PYPROJECT.replace('"hatchling.build"', f'"backend_{secret}"'),
    )
    code = main(["build", "--project", str(root), "--manifest", str(tmp_path / "m.json")])
    captured = capsys.readouterr()
    assert code == 2
    assert secret not in captured.out + captured.err
    assert "backend_***" in captured.err


# --- the clean step ---------------------------------------------------------------------------
def test_clean_never_deletes_tracked_files(tmp_path: Path) -> None:
    root = make_project(tmp_path / "demo")
    (root / "build").mkdir()
    (root / "build/action.yml").write_text("name: build\n")
    git(root, "add", "build/action.yml")
    git(root, "commit", "-q", "-m", "the build action")
    junk = [
        "build/lib/demo_pkg/__init__.py",
        "dist/demo_pkg-0.1.tar.gz",
        ".eggs/x.egg",
        "src/demo_pkg/__pycache__/x.cpython-311.pyc",
        "src/demo_pkg/stray.pyc",
    ]
    for rel in junk:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("junk")
    venv_cache = root / ".venv/lib/__pycache__/keep.pyc"
    venv_cache.parent.mkdir(parents=True)
    (root / ".venv/pyvenv.cfg").write_text("home = /usr\n")
    venv_cache.write_text("the venv's own")
    removed = clean(root)
    assert (root / "build/action.yml").read_text() == "name: build\n"
    assert venv_cache.exists()
    for rel in junk:
        assert not (root / rel).exists(), rel
    assert not (root / "dist").exists() and not (root / ".eggs").exists()
    assert "build/lib/" in removed and "build/" not in removed
    assert git(root, "status", "--porcelain") == "?? .venv/"


def test_clean_outside_git_and_never_outside_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep me")
    root = make_project(tmp_path / "demo", in_git=False)
    (root / "build").symlink_to(outside, target_is_directory=True)
    (root / "dist").mkdir()
    (root / "dist/old.whl").write_text("old")
    (root / "pyproject.toml.pyc").write_text("x")
    removed = clean(root)
    assert (outside / "data.txt").read_text() == "keep me"
    assert not (root / "build").exists() and not (root / "dist").exists()
    assert sorted(removed) == ["build", "dist/", "dist/old.whl", "pyproject.toml.pyc"]
    assert (root / "pyproject.toml").exists()


# --- archive comparison (unit) ----------------------------------------------------------------
def _zip(
    path: Path, members: dict[str, bytes], date: tuple[int, ...] = (2026, 1, 1, 0, 0, 0)
) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=date), data)  # type: ignore[arg-type]
    return path


def _tar(path: Path, members: dict[str, bytes], mtime: int = 0) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            t.addfile(info, io.BytesIO(data))
    return path


def test_archive_differences_name_members(tmp_path: Path) -> None:
    a = _zip(tmp_path / "a.whl", {"p/x.py": b"1", "p/y.py": b"2"})
    assert (
        archive_differences(a, _zip(tmp_path / "same.whl", {"p/x.py": b"1", "p/y.py": b"2"})) == []
    )
    b = _zip(tmp_path / "b.whl", {"p/x.py": b"1", "p/y.py": b"3"})
    assert archive_differences(a, b) == ["p/y.py (content)"]
    c = _zip(tmp_path / "c.whl", {"p/x.py": b"1", "p/y.py": b"2"}, date=(2026, 1, 2, 0, 0, 0))
    assert [d.split(" (")[0] for d in archive_differences(a, c)] == ["p/x.py", "p/y.py"]
    d = _zip(tmp_path / "d.whl", {"p/x.py": b"1", "p/z.py": b"2"})
    assert archive_differences(a, d)[0] == "member list or order (p/y.py, p/z.py)"
    t1 = _tar(tmp_path / "t1.tar.gz", {"d/PKG-INFO": b"x"}, mtime=1)
    t2 = _tar(tmp_path / "t2.tar.gz", {"d/PKG-INFO": b"x"}, mtime=2)
    assert archive_differences(t1, t2)[0].startswith("d/PKG-INFO (metadata")


def test_github_ref_tag_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "demo", in_git=False)
    monkeypatch.setenv("GITHUB_REF", "refs/tags/v7.0.0")
    assert release_info(load_project(root), None).tag == "v7.0.0"
    monkeypatch.setenv("GITHUB_REF", "refs/heads/main")
    assert release_info(load_project(root), None).tag == "v1.2.0"
    assert release_info(load_project(root), "refs/tags/v3.0.0").tag == "v3.0.0"
