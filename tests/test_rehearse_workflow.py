"""``upm-ci rehearse --workflow FILE``: the docs' snippets as a project's own workflow file,
committed as a user would (``<sha>`` a commit of upm-release, no stand-in input), run by the
command with act against the stand-ins. The test writes only the project; the command writes
its OUT directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import git
from tests.test_actions_act import third_party_uses
from tests.test_docs_act import (
    ACTIONS_MD,
    FAKE_SHA,
    PERMISSION,
    PHASE_JOB,
    load_yaml,
    pinned,
    workflow_file,
)
from tests.test_docs_act import runnable_workflow as docs_runnable_workflow
from tests.test_projects import PROJECTS, make_repo
from tests.test_readme import snippet
from upm_ci.cli import main
from upm_ci.rehearse_workflow import (
    SERVED,
    STUBS,
    JobOutcome,
    job_outcomes,
    plan_actions,
    runnable_workflow,
    upm_release_root,
)
from upm_ci.standins.oidc import UPM_RELEASE_WORKFLOW


def user_workflow(name: str) -> Any:
    """The workflow a user commits for the docs' snippet ``name``: ``<sha>`` pinned, nothing
    added (the phase-actions steps in a job after its checkout, with the permissions their
    comments name)."""
    text = snippet(name, ACTIONS_MD)
    if name != "phase-actions":
        return pinned(load_yaml(text))
    workflow = load_yaml(PHASE_JOB.read_text())
    job = workflow["jobs"]["release"]
    wanted: dict[str, str] = {}
    for scope, level in PERMISSION.findall(text):
        wanted[scope] = "write" if "write" in (level, wanted.get(scope)) else level
    job["permissions"] = wanted
    job["steps"] += pinned(load_yaml(text))
    return workflow


def project_with(name: str, fixture: str, dest: Path, *, tag: bool) -> tuple[Path, str]:
    found = PROJECTS[fixture]
    project = make_repo(found, dest / found.dir)
    git(project, "remote", "add", "origin", f"https://github.com/example/{found.dist}.git")
    path = workflow_file(name)
    (project / path).parent.mkdir(parents=True)
    (project / path).write_text(yaml.safe_dump(user_workflow(name), sort_keys=False, width=200))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Release with upm-release")
    if tag:
        git(project, "tag", f"v{found.version}")
    return project, path


def rehearse(
    project: Path, path: str, out: Path, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "upm_ci",
            "rehearse",
            "--workflow",
            path,
            "--out",
            str(out),
            *extra,
            str(project),
        ],
        cwd=project,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("UPM_", "GITHUB_"))},
            **env,
        },
        capture_output=True,
        text=True,
        timeout=900,
    )


# --- fast ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["phase-actions", "reusable-workflow", "reusable-workflow-dry-run", "trusted-publishing"],
)
def test_the_runnable_copy_is_the_users_file_plus_the_standin_inputs_the_docs_tests_add(
    name: str,
) -> None:
    """What the command gives act is what tests/test_docs_act.py checks is only additions."""
    assert (
        runnable_workflow(user_workflow(name), upm_release_root())
        == (docs_runnable_workflow(name)[1])
    )


def test_every_remote_action_is_served_stubbed_or_named(tmp_path: Path) -> None:
    doc = load_yaml(
        "on: push\njobs:\n  release:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@" + "1" * 40 + "\n"
        "      - uses: example/lint-action@" + "2" * 40 + "\n"
        "      - uses: example/other-action/sub@" + "3" * 40 + "\n"
        "      - uses: unexpected/upm-release/gate@" + FAKE_SHA + "\n"
    )
    root = upm_release_root()
    plan = plan_actions(
        doc, root, tmp_path / "copy", tmp_path / "stubs", skip_steps=("example/other-action",)
    )
    targets = dict(a.split("=", 1) for a in plan.args[1::2])
    assert targets["actions/checkout@" + "1" * 40] == str(STUBS / "checkout")
    assert targets["unexpected/upm-release@" + FAKE_SHA] == str(tmp_path / "copy")
    # upm-release's own third-party actions: each served or a failing stub, never fetched.
    for ref in third_party_uses(include_checkout=True):
        target = Path(targets[ref])
        if ref.split("@")[0] in SERVED:
            assert target == STUBS / SERVED[ref.split("@")[0]][0]
        else:
            assert "cannot be served offline" in (target / "action.yml").read_text()
    lint = "example/lint-action@" + "2" * 40
    assert plan.unserved == [
        (
            lint,
            "cannot be served offline: rehearse with --network, or --skip-step example/lint-action",
        )
    ]
    stub = (Path(targets[lint]) / "action.yml").read_text()
    assert "example/lint-action cannot be served offline" in stub and "exit 1" in stub
    skipped = (Path(targets["example/other-action@" + "3" * 40]) / "action.yml").read_text()
    assert "skipped example/other-action (--skip-step)" in skipped and "exit 1" not in skipped
    said = dict(plan.replaced)
    assert said["example/other-action@" + "3" * 40] == "skipped (--skip-step)"
    assert "installed upm-release" in said["unexpected/upm-release@" + FAKE_SHA]
    online = plan_actions(doc, root, tmp_path / "copy", tmp_path / "stubs2", network=True)
    assert not any(a.startswith("example/lint-action@") for a in online.args)
    other = "example/other-action@" + "3" * 40
    assert online.unserved == [(r, "fetched by act (--network)") for r in (lint, other)]


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    project, path = project_with("phase-actions", "flit-version", tmp_path, tag=True)
    missing = rehearse(project, ".github/workflows/nope.yml", tmp_path / "out")
    (project / "notes.yml").write_text("just: a mapping\n")
    not_a_workflow = rehearse(project, "notes.yml", tmp_path / "out2")
    for proc, said in (
        (missing, "no such workflow file"),
        (not_a_workflow, "not a GitHub Actions workflow"),
    ):
        assert proc.returncode == 2, proc.stderr
        assert said in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_without_act_it_exits_3_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project, path = project_with("phase-actions", "flit-version", tmp_path, tag=True)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(project)
    code = main(["rehearse", "--workflow", path, "--out", str(tmp_path / "out"), str(project)])
    assert code == 3
    assert "upm-release[rehearse]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_each_job_is_one_line_as_act_ended_it() -> None:
    doc = pinned(load_yaml(snippet("trusted-publishing", ACTIONS_MD)))
    doc["jobs"]["notify"] = {"needs": "publish", "runs-on": "ubuntu-latest", "steps": []}
    log = (
        "[release/upm-release/Sign] ⭐ Run Main upm-ci sign\n"
        "[release/upm-release/Sign] 🏁  Job succeeded\n"
        "[release/publish]   ❌  Failure - Main unexpected/upm-release/publish\n"
        "[release/publish                 ] 🏁  Job failed\n"
    )
    assert job_outcomes(log, doc) == [
        JobOutcome("release/upm-release/Sign", "succeeded"),
        JobOutcome("publish", "failed"),
        JobOutcome("notify", "not run"),
    ]


def test_readme_shows_the_commands_the_tests_run() -> None:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    assert "upm-ci rehearse --workflow .github/workflows/release.yml\n" in text
    assert (
        "upm-ci rehearse --workflow .github/workflows/release-dry-run.yml --input dry-run=true\n"
        in (text)
    )


# --- slow: act runs ------------------------------------------------------------------------
def assert_project_untouched(project: Path) -> None:
    """Nothing changed or added; of ignored files only what asking setuptools for a dynamic
    version leaves (``load_project``, as ``upm-ci rehearse`` does too)."""
    lines = git(project, "status", "--porcelain", "--ignored").splitlines()
    assert all(line.startswith("!! ") and line.endswith(".egg-info/") for line in lines), lines


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_phase_actions_in_the_users_job_rehearse_green(tmp_path: Path) -> None:
    project, path = project_with("phase-actions", "flit-version", tmp_path, tag=True)
    proc = rehearse(project, path, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert re.search(r"^release +succeeded *$", proc.stdout, re.M), proc.stdout
    assert "every job passed" in proc.stdout
    assert f"replaced unexpected/upm-release@{FAKE_SHA}: the installed upm-release" in proc.stdout
    assert "replaced actions/checkout@" in proc.stdout
    assert "replaced actions/setup-python@" in proc.stdout  # in upm-release's own actions
    log = (tmp_path / "out" / "logs" / "act.log").read_text()
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert f"✅  Success - Main upm-ci {phase}" in log, phase
    assert_project_untouched(project)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_reusable_workflow_rehearses_green_with_its_jobs_claims(tmp_path: Path) -> None:
    project, path = project_with("reusable-workflow", "flat-scm", tmp_path, tag=True)
    proc = rehearse(project, path, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for job in ("Gate", "Sign", "Publish", "Verify the published release"):
        assert re.search(rf"^release/upm-release/{job}\S* .*succeeded *$", proc.stdout, re.M), job
    signed = tmp_path / "out" / "act" / "artifacts" / "upm-signed" / "release-manifest.json"
    identity = json.loads(signed.read_text())["phases"]["sign"]["identity"]
    assert identity == f"https://github.com/{UPM_RELEASE_WORKFLOW}@{FAKE_SHA}"
    assert_project_untouched(project)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_dry_run_dispatched_before_the_tag_rehearses_green(tmp_path: Path) -> None:
    project, path = project_with("reusable-workflow-dry-run", "setuptools-rst", tmp_path, tag=False)
    assert path == ".github/workflows/release-dry-run.yml"
    proc = rehearse(project, path, tmp_path / "out", "--input", "dry-run=true")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert re.search(r"^release/upm-release/Publish\S* .*succeeded *$", proc.stdout, re.M), (
        proc.stdout
    )
    published = tmp_path / "out" / "act" / "artifacts" / "upm-published" / "published.json"
    assert json.loads(published.read_text())["dry_run"] is True
    assert_project_untouched(project)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_split_publishes_with_trusted_publishing_green(tmp_path: Path) -> None:
    project, path = project_with("trusted-publishing", "flat-scm", tmp_path, tag=True)
    proc = rehearse(project, path, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert re.search(r"^publish +succeeded *$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^release/upm-release/Sign\S* .*succeeded *$", proc.stdout, re.M), proc.stdout
    log = (tmp_path / "out" / "logs" / "act.log").read_text()
    assert "✅  Success - Main upm-ci verify" in log
    assert_project_untouched(project)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_file_changed_between_the_jobs_of_the_split_fails_it(tmp_path: Path) -> None:
    """The trusted-publishing split (the reusable workflow signs, the caller's job publishes
    with Trusted Publishing): one byte of the wheel changed as the publish job downloads it."""
    fixture = PROJECTS["flat-scm"]
    wheel = f"{fixture.dist}-{fixture.version}-py3-none-any.whl"
    project, path = project_with("trusted-publishing", "flat-scm", tmp_path, tag=True)
    proc = rehearse(project, path, tmp_path / "out", UPM_ACT_TAMPER=f"upm-signed:dist/{wheel}")
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert re.search(r"^publish +failed *$", proc.stdout, re.M), proc.stdout
    assert "the release would fail" in proc.stdout
    log = (tmp_path / "out" / "logs" / "act.log").read_text()
    assert "tampered with" in log
    assert "the handed-over release does not verify" in log


def test_upm_release_is_the_checkout_or_the_copy_the_wheel_carries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import upm_ci
    from upm_ci.errors import InputError

    assert (upm_release_root() / ".github" / "workflows" / "upm-release.yml").is_file()
    package = tmp_path / "site-packages" / "upm_ci"
    package.mkdir(parents=True)
    monkeypatch.setattr(upm_ci, "__file__", str(package / "__init__.py"))
    with pytest.raises(InputError, match="carries no action files"):
        upm_release_root()
    carried = package / "upm_release"  # pyproject.toml's force-include
    (carried / ".github" / "workflows").mkdir(parents=True)
    (carried / "action.yml").write_text("name: upm-release\n")
    (carried / ".github" / "workflows" / "upm-release.yml").write_text("on: workflow_call\n")
    assert upm_release_root() == carried
