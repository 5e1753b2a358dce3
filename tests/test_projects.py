"""Any Python project, released as the README says: ``upm-ci rehearse DIR`` and nothing else.

The projects under ``tests/projects/`` look like other people's, not like the UPM example:
setuptools-scm, hatch-vcs, flit and setuptools ``attr:`` versions; flat and src layouts; test
dependencies in an extra or a PEP 735 group; no conftest; changelogs in towncrier, Keep a
Changelog, "Version x / Released date" and reStructuredText style. Each is copied into its own
git repository (the previous release tagged, HEAD untagged), released with
``upm-ci rehearse COPY --out OUT`` as a subprocess and no other option or variable, and must
pass every phase with the changelog's top version. A broken copy of each must stop at the
gate, and the check that names the breakage must be the one that fails.

A full rehearsal takes tens of seconds, so each project is rehearsed once per session (even
across xdist workers, see :func:`_once`) and several tests read its output.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from tests.conftest import git

pytestmark = pytest.mark.slow

PROJECTS_DIR = Path(__file__).resolve().parent / "projects"
PHASES = ("gate", "build", "sbom", "sign", "publish", "verify")
#: One rehearsal's limit; pytest-timeout (300 s a test) is the outer one.
REHEARSAL_TIMEOUT = 280


@dataclass(frozen=True)
class Fixture:
    """A project under ``tests/projects/`` and the release it is prepared for."""

    dir: str
    dist: str  # the distribution name in file names
    version: str  # the changelog's top version: the one being released
    previous: str  # the tag of the release before it
    changelog: str
    heading: str  # how a version's heading line starts, ``{v}`` for the version
    tests: int  # how many test cases the project's own suite has

    def heading_line(self, text: str, version: str) -> int:
        start = self.heading.format(v=version)
        lines = text.splitlines(keepends=True)
        return next(i for i, line in enumerate(lines) if line.startswith(start))


PROJECTS = {
    "flat-scm": Fixture(
        "flat-scm", "slugkit", "1.4.0", "v1.3.0", "CHANGELOG.md", "## [{v}](https://", 11
    ),
    "src-hatchvcs": Fixture(
        "src-hatchvcs", "tallyho", "2.0.0", "v1.9.0", "CHANGELOG.md", "## [{v}] - ", 13
    ),
    "flit-version": Fixture(
        "flit-version", "quickflit", "0.9.0", "v0.8.0", "CHANGES.md", "## Version {v}", 12
    ),
    "setuptools-rst": Fixture(
        "setuptools-rst", "rstproj", "1.1.0", "v1.0.0", "docs/changelog.rst", "{v} (", 5
    ),
}


# --- preparing and rehearsing a copy -----------------------------------------------------------
def make_repo(fixture: Fixture, dest: Path) -> Path:
    """``dest``: the project as its own repository. The previous release (its changelog without
    the top section) is a tagged commit; HEAD adds the top section and has no tag."""
    shutil.copytree(
        PROJECTS_DIR / fixture.dir,
        dest,
        ignore=shutil.ignore_patterns(
            "dist", "build", "*.egg-info", "__pycache__", ".venv", ".pytest_cache", ".hypothesis"
        ),
    )
    changelog = dest / fixture.changelog
    text = changelog.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    top = fixture.heading_line(text, fixture.version)
    previous = fixture.heading_line(text, fixture.previous.removeprefix("v"))
    changelog.write_text("".join(lines[:top] + lines[previous:]), encoding="utf-8")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", f"Release {fixture.previous}")
    git(dest, "tag", fixture.previous)
    changelog.write_text(text, encoding="utf-8")
    git(dest, "commit", "-q", "-am", f"Changelog for {fixture.version}")
    return dest


@dataclass
class Rehearsal:
    """What ``upm-ci rehearse`` left: its exit code, its output and the output directory."""

    project: Path
    out: Path
    returncode: int | None  # None: it did not finish within REHEARSAL_TIMEOUT
    output: str

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / "rehearsal.json").read_text())
        return data

    def phases(self) -> dict[str, str]:
        return {p["phase"]: p["status"] for p in self.summary()["phases"]}

    def checks(self) -> dict[str, dict[str, Any]]:
        report = json.loads((self.out / "gate-report.json").read_text())
        return {c["id"]: c for c in report["checks"]}

    def explain(self) -> str:
        """The rehearsal's own output and the tail of every phase log that did not pass."""
        parts = [f"exit {self.returncode}; output:\n{self.output[-3000:]}"]
        for log in sorted((self.out / "logs").glob("*.log")):
            if (self.out / "rehearsal.json").is_file() and self.phases().get(log.stem) == "pass":
                continue
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)


def rehearse(project: Path, out: Path) -> Rehearsal:
    """``python -m upm_ci rehearse PROJECT --out OUT``: no other option, no ``UPM_*`` variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPM_", "GITHUB_", "ACTIONS_"))}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "upm_ci", "rehearse", str(project), "--out", str(out)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=REHEARSAL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return Rehearsal(project, out, None, output + f"\n(timed out after {e.timeout} s)")
    return Rehearsal(project, out, proc.returncode, proc.stdout + proc.stderr)


def _once(root: Path, key: str, make: Callable[[Path], Rehearsal]) -> Rehearsal:
    """``make(root/key)`` once per session even across xdist workers (they share ``root``);
    a worker that comes second waits for the first and reads its result."""
    target = root / key
    with (root / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = target / "rehearsal-result.json"
        if not record.is_file():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            result = make(target)
            record.write_text(
                json.dumps({"returncode": result.returncode, "output": result.output})
            )
        data = json.loads(record.read_text())
    return Rehearsal(target / "project", target / "out", data["returncode"], data["output"])


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's temporary directory that every xdist worker sees."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="module", params=list(PROJECTS))
def release(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The full rehearsal of one project (shared by every test of that project)."""
    fixture = PROJECTS[request.param]

    def make(target: Path) -> Rehearsal:
        return rehearse(make_repo(fixture, target / "project"), target / "out")

    return fixture, _once(_shared_root(tmp_path_factory), f"release-{fixture.dir}", make)


# --- every project is released ---------------------------------------------------------------
def test_rehearsal_exits_0_and_every_phase_passes(release: tuple[Fixture, Rehearsal]) -> None:
    _, run = release
    assert run.returncode == 0, run.explain()
    assert run.phases() == {phase: "pass" for phase in PHASES}, run.explain()
    assert run.summary()["passed"] is True


def test_the_rehearsal_leaves_the_project_as_it_was(release: tuple[Fixture, Rehearsal]) -> None:
    """Nothing new in the maintainer's tree, not even an ignored file (setuptools' metadata
    hook, asked for a dynamic version, writes ``*.egg-info`` where it runs)."""
    _, run = release
    assert git(run.project, "status", "--porcelain", "--ignored") == "", run.explain()


def test_the_gate_ran_the_projects_own_tests(release: tuple[Fixture, Rehearsal]) -> None:
    fixture, run = release
    assert (run.out / "gate-report.json").is_file(), run.explain()
    checks = run.checks()
    failed = {id_: c["reason"] for id_, c in checks.items() if c["status"] == "fail"}
    assert not failed, run.explain()
    assert checks["tests"]["status"] == "pass", checks["tests"]
    # Exactly the project's own tests ran, every one of them.
    assert checks["tests"]["reason"].startswith(f"{fixture.tests} passed"), checks["tests"]
    if fixture.dir == "src-hatchvcs":
        assert checks["plugin-entrypoint"]["status"] == "pass", checks["plugin-entrypoint"]
        assert checks["plugin-sandbox"]["status"] == "pass", checks["plugin-sandbox"]
        assert "3 plugins" in checks["plugin-sandbox"]["reason"], checks["plugin-sandbox"]


def test_the_release_has_the_changelogs_top_version(release: tuple[Fixture, Rehearsal]) -> None:
    fixture, run = release
    path = run.out / "release-manifest.json"
    assert path.is_file(), run.explain()
    manifest = json.loads(path.read_text())
    assert manifest["project"]["version"] == fixture.version, run.explain()
    names = [a["name"] for a in manifest["artifacts"]]
    wheels = [n for n in names if n.endswith(".whl")]
    sdists = [n for n in names if n.endswith(".tar.gz")]
    assert len(wheels) == 1 and len(sdists) == 1, names
    name, version, _, _ = parse_wheel_filename(wheels[0])
    assert (name, version) == (fixture.dist, Version(fixture.version)), wheels
    assert parse_sdist_filename(sdists[0]) == (fixture.dist, Version(fixture.version)), sdists


#: What years of history left in the fixtures' changelogs, as in real projects (issue 23): a
#: towncrier section written twice, ``### Fixed`` written as ``## Fixed``. Each is a warning of
#: the docs row, at (file, the line starting so, its nth occurrence), and blocks nothing.
HISTORY = {
    "flat-scm": [("CHANGELOG.md", "## [1.2.0](", 2, "a second section for 1.2.0")],
    "src-hatchvcs": [
        ("CHANGELOG.md", "## Fixed", 1, "cannot read a version in heading 'Fixed'"),
        ("CHANGELOG.md", "## Fixed", 2, "cannot read a version in heading 'Fixed'"),
    ],
}


def _nth_line(text: str, start: str, nth: int) -> int:
    numbers = [i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start)]
    return numbers[nth - 1]


def test_old_changelog_history_is_a_warning_with_file_and_line(
    release: tuple[Fixture, Rehearsal],
) -> None:
    fixture, run = release
    docs = run.checks()["docs"]
    expected = HISTORY.get(fixture.dir)
    if not expected:
        assert docs["status"] == "pass", docs
        return
    assert docs["status"] == "warn", docs
    found = [(f["file"], f["line"], f["message"]) for f in docs["findings"]]
    assert len(found) == len(expected), found
    for (file, line, message), (name, start, nth, words) in zip(found, expected, strict=True):
        text = (run.project / name).read_text(encoding="utf-8")
        assert (file, line) == (name, _nth_line(text, start, nth)), found
        assert message.startswith(f"in an older section, does not block: {words}"), message


def test_verify_passed_for_the_published_release(release: tuple[Fixture, Rehearsal]) -> None:
    fixture, run = release
    path = run.out / "verify-report.json"
    assert path.is_file(), run.explain()
    report = json.loads(path.read_text())
    assert report["passed"] is True, run.explain()
    verified = {a["name"] for a in report["artifacts"] if a.get("passed")}
    assert f"{fixture.dist}-{fixture.version}-py3-none-any.whl" in verified, verified


# --- a broken copy of each stops at the gate, at the right check -----------------------------
# Each project gets one broken copy holding all of its breakages (a rehearsal's gate costs
# tens of seconds); the gate runs every check, and each breakage must fail its own check with
# a finding that names it.
def _fail_a_test(project: Path) -> None:
    test = project / "tests" / "test_core.py"
    text = test.read_text()
    assert '== "hello-world"' in text
    test.write_text(text.replace('== "hello-world"', '== "hello_world"'))


def _drop_entrypoint_block(project: Path) -> None:
    plugin = project / "src" / "tallyho" / "plugins" / "linecount.py"
    text = plugin.read_text()
    plugin.write_text(text[: text.index('if __name__ == "__main__":')].rstrip() + "\n")


def _add_plugin_without_sandbox_test(project: Path) -> None:
    (project / "src" / "tallyho" / "plugins" / "charcount.py").write_text(
        '"""Plugin ``charcount``: the number of characters of a text."""\n\n'
        "from __future__ import annotations\n\n"
        "from typing import Any\n\n\n"
        "def main(payload: dict[str, Any]) -> dict[str, int]:\n"
        '    return {"chars": len(str(payload["text"]))}\n\n\n'
        'if __name__ == "__main__":\n'
        "    from upm.sandbox import run_sandboxed\n\n"
        "    run_sandboxed(main)\n"
    )


def _bump_only_dunder_version(project: Path) -> None:
    init = project / "quickflit" / "__init__.py"
    text = init.read_text()
    assert '__version__ = "0.9.0"' in text
    init.write_text(text.replace('__version__ = "0.9.0"', '__version__ = "0.9.1"'))


def _drop_test_extra(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    extra = '[project.optional-dependencies]\ntests = ["pytest>=7", "hypothesis>=6.100"]\n\n'
    assert extra in text
    pyproject.write_text(text.replace(extra, ""))


def _changelog_top_for_another_version(project: Path) -> None:
    changelog = project / "docs" / "changelog.rst"
    text = changelog.read_text()
    newer = "1.2.0 (2026-12-15)\n------------------\n\n- Tables with merged cells.\n\n"
    changelog.write_text(text.replace("1.1.0 (2026-09-30)", newer + "1.1.0 (2026-09-30)", 1))


def _changelog_release_written_twice(project: Path) -> None:
    changelog = project / "CHANGELOG.md"
    text = changelog.read_text()
    again = "## [1.4.0](https://github.com/example/slugkit/tree/1.4.0) - 2026-11-20\n\n- Again.\n"
    changelog.write_text(text + "\n\n" + again)


def _stray_heading_in_the_releases_section(project: Path) -> None:
    changelog = project / "CHANGELOG.md"
    text = changelog.read_text()
    assert "### Changed\n\n- Plugins take" in text
    changelog.write_text(
        text.replace("### Changed\n\n- Plugins take", "## Changed\n\n- Plugins take")
    )


@dataclass(frozen=True)
class Breakage:
    project: str
    apply: Callable[[Path], None]
    check: str  # the gate check that must fail
    names: str  # what that check's report must name


BROKEN = {
    "failing-test": Breakage(
        "flat-scm", _fail_a_test, "tests", "test_words_are_lowercased_and_joined"
    ),
    "plugin-without-entrypoint": Breakage(
        "src-hatchvcs", _drop_entrypoint_block, "plugin-entrypoint", "plugins/linecount.py"
    ),
    "plugin-without-sandbox-test": Breakage(
        "src-hatchvcs", _add_plugin_without_sandbox_test, "plugin-sandbox", "charcount"
    ),
    "dunder-version-differs": Breakage(
        "flit-version", _bump_only_dunder_version, "version-bump", "0.9.1"
    ),
    "test-extra-missing": Breakage("flit-version", _drop_test_extra, "tests", "hypothesis"),
    # History below the release warns; the release's own section (and above) still blocks.
    "changelog-release-written-twice": Breakage(
        "flat-scm", _changelog_release_written_twice, "docs", "a second section for 1.4.0"
    ),
    "changelog-stray-heading-in-the-release": Breakage(
        "src-hatchvcs",
        _stray_heading_in_the_releases_section,
        "docs",
        "cannot read a version in heading 'Changed'",
    ),
    "changelog-top-is-another-version": Breakage(
        "setuptools-rst", _changelog_top_for_another_version, "version-bump", "1.2.0"
    ),
}


def _broken_copy(project_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Rehearsal:
    """The rehearsal of ``project_dir`` with every breakage of BROKEN for it, committed."""

    def make(target: Path) -> Rehearsal:
        project = make_repo(PROJECTS[project_dir], target / "project")
        cases = [case for case, b in BROKEN.items() if b.project == project_dir]
        for case in cases:
            BROKEN[case].apply(project)
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", f"break: {', '.join(cases)}")
        return rehearse(project, target / "out")

    return _once(_shared_root(tmp_path_factory), f"broken-{project_dir}", make)


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_copy_stops_at_the_gate(
    case: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    breakage = BROKEN[case]
    run = _broken_copy(breakage.project, tmp_path_factory)

    assert run.returncode == 1, run.explain()
    assert run.phases() == {"gate": "fail", **{p: "not run" for p in PHASES[1:]}}, run.explain()
    check = run.checks()[breakage.check]
    assert check["status"] == "fail", run.explain()
    # The check fails for this breakage, not for another reason.
    assert breakage.names in json.dumps(check), check
