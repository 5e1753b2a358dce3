"""``upm-ci rehearse --workflow FILE``: the docs' snippets as a project's own workflow file,
committed as a user would (``<sha>`` a commit of upm-release, no stand-in input), run by the
command with act against the stand-ins. The test writes only the project; the command writes
its OUT directory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    assert_only_additions,
    load_yaml,
    pinned,
    workflow_file,
)
from tests.test_docs_act import consumer_verify as docs_consumer_verify
from tests.test_docs_act import index_files as docs_index_files
from tests.test_docs_act import release_of as docs_release_of
from tests.test_docs_act import runnable_workflow as docs_runnable_workflow
from tests.test_projects import PROJECTS, Fixture, make_repo
from tests.test_readme import snippet
from upm_ci.cli import main
from upm_ci.rehearse_workflow import (
    SERVED,
    STUBS,
    JobOutcome,
    job_outcomes,
    load_workflow,
    plan_actions,
    runnable_workflow,
    runner_env,
    upm_release_root,
    with_runner_credentials,
)
from upm_ci.standins.oidc import UPM_RELEASE_WORKFLOW, OidcStandIn
from upm_ci.standins.pypi import PypiStandIn


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


def project_with(
    name: str,
    fixture: str | Fixture,
    dest: Path,
    *,
    tag: bool,
    files: dict[str, str] | None = None,
) -> tuple[Path, str]:
    found = PROJECTS[fixture] if isinstance(fixture, str) else fixture
    project = make_repo(found, dest / found.dir)
    git(project, "remote", "add", "origin", f"https://github.com/example/{found.dist}.git")
    for relative, text in (files or {}).items():
        (project / relative).write_text(text)
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


# --- one act run: the command's output and what the stand-ins hold after it ------------------
@dataclass
class Rehearsed:
    """``upm-ci rehearse --workflow`` run in this process (its exit code and stdout), and what
    its stand-ins held when act had ended: the GitHub release of the tag, the PyPI files of the
    project, a consumer's verification of the release, the Trusted Publishing index and the
    runner's OIDC requests (the checks tests/test_docs_act.py makes of its own act runs)."""

    code: int
    stdout: str
    out: Path
    log: str
    release: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    verified: dict[str, Any] = field(default_factory=dict)
    trusted_index: PypiStandIn | None = None
    oidc_requests: list[dict[str, Any]] = field(default_factory=list)
    secrets: tuple[str, ...] = ()


def rehearse_here(
    project: Path,
    path: str,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    verify: bool = False,
    tamper: str = "",
) -> Rehearsed:
    """The command in this process (``rehearse`` runs it as a subprocess), the stand-ins it
    starts recorded: the real ones, read before they stop (``verify``: the consumer's
    ``upm-ci verify --github-release`` while the GitHub stand-in still answers)."""
    import upm_ci.rehearse
    import upm_ci.standins.oidc
    import upm_ci.standins.pypi

    fixture = next(f for f in PROJECTS.values() if project.name == f.dir)
    tag = f"v{fixture.version}"
    seen = Rehearsed(0, "", out, "")
    indexes: list[PypiStandIn] = []
    tokens: list[OidcStandIn] = []
    held: dict[int, list[str]] = {}
    failures: list[BaseException] = []

    class RecordedPypi(upm_ci.standins.pypi.PypiStandIn):
        def start(self) -> RecordedPypi:
            indexes.append(self)
            super().start()
            return self

        def stop(self) -> None:
            if self.package_dir is not None and self.package_dir.is_dir():
                held[id(self)] = sorted(self.files())
            super().stop()

    class RecordedOidc(upm_ci.standins.oidc.OidcStandIn):
        def __enter__(self) -> RecordedOidc:
            tokens.append(self)
            super().__enter__()
            return self

    real_services = upm_ci.rehearse.local_services

    @contextlib.contextmanager
    def observed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real_services(*args, **kwargs) as services:
            yield services
            # act has ended; the stand-ins still answer (a failed check is raised after
            # the command returns, not into it)
            try:
                shaped = {
                    "UPM_ACT_GITHUB_API_URL": services.github_api_url,
                    "UPM_ACT_REPOSITORY": services.repository,
                    "UPM_ACT_PYPI_INDEX_URL": services.pypi_index_url,
                    "UPM_ACT_TRUST_CONFIG": str(services.trust_config),
                    "secret:UPM_ACT_GITHUB_TOKEN": services.github_token,
                    "secret:UPM_ACT_PYPI_TOKEN": services.pypi_token,
                }
                assert services.repository == f"example/{fixture.dist}"
                seen.secrets = (services.github_token, services.pypi_token)
                seen.release = docs_release_of(shaped, tag)
                trusted = [i for i in indexes if i.trusted_publisher is not None]
                if trusted:
                    seen.trusted_index = trusted[0]
                    seen.files = held.get(id(trusted[0]), [])
                else:
                    seen.files = docs_index_files(shaped, fixture.dist)
                if verify and seen.release and not seen.release["draft"]:
                    seen.verified = docs_consumer_verify(project, shaped, tag, out.parent)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                failures.append(e)

    for name in list(os.environ):
        if name.startswith(("UPM_", "GITHUB_")):
            monkeypatch.delenv(name)
    if tamper:
        monkeypatch.setenv("UPM_ACT_TAMPER", tamper)
    monkeypatch.setattr(upm_ci.rehearse, "local_services", observed)
    monkeypatch.setattr(upm_ci.standins.pypi, "PypiStandIn", RecordedPypi)
    monkeypatch.setattr(upm_ci.standins.oidc, "OidcStandIn", RecordedOidc)
    monkeypatch.chdir(project)
    capsys.readouterr()
    seen.code = main(["rehearse", "--workflow", path, "--out", str(out), *extra, str(project)])
    seen.stdout = capsys.readouterr().out
    seen.log = (
        (out / "logs" / "act.log").read_text() if (out / "logs" / "act.log").is_file() else ""
    )
    seen.oidc_requests = [r for t in tokens for r in t.requests]
    if failures:
        raise failures[0]
    return seen


def assert_no_secret_in(run: Rehearsed) -> None:
    """Neither token in act's log, and no stub of an action that cannot be served ran."""
    assert run.secrets and all(secret not in run.log for secret in run.secrets)
    assert "cannot be served offline" not in run.log


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


def test_the_runners_credentials_reach_only_the_jobs_granted_id_token_write() -> None:
    """act gives every job its --env; GitHub gives the token endpoint (and so the AWS role's
    keys) only to a job with id-token: write, and a self-hosted runner's own credentials to none
    of upm-release's jobs."""
    reusable = load_workflow(upm_release_root() / ".github" / "workflows" / "upm-release.yml")
    names = ["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "AWS_SECRET_ACCESS_KEY"]
    scoped = with_runner_credentials(reusable, names)
    given = {name for name, job in scoped["jobs"].items() if set(names) <= set(job.get("env", {}))}
    assert given == {"sign", "publish"}
    assert scoped["jobs"]["sign"]["env"]["AWS_SECRET_ACCESS_KEY"] == (
        "${{ vars.UPM_ACT_RUNNER_AWS_SECRET_ACCESS_KEY }}"
    )
    assert reusable == load_workflow(upm_release_root() / ".github/workflows/upm-release.yml")
    caller = {"on": "push", "permissions": "write-all", "jobs": {"a": {"steps": []}}}
    assert "env" in with_runner_credentials(caller, names)["jobs"]["a"]
    env = runner_env(
        {"PATH": "/bin", "GH_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "s", "TWINE_PASSWORD": "p"}
        | {"HTTPS_PROXY": "http://u:pw@proxy:3128/", "AWS_DEFAULT_REGION": "eu-west-1"}
    )
    assert env == {
        "PATH": "/bin",
        "HTTPS_PROXY": "http://proxy:3128/",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    project, path = project_with("phase-actions", "flit-version", tmp_path, tag=True)
    missing = rehearse(project, ".github/workflows/nope.yml", tmp_path / "out")
    (project / "notes.yml").write_text("just: a mapping\n")
    not_a_workflow = rehearse(project, "notes.yml", tmp_path / "out2")
    bad_secret = rehearse(project, path, tmp_path / "out3", "--secret", "ghs_notNamedSecret")
    for proc, said in (
        (missing, "no such workflow file"),
        (not_a_workflow, "not a GitHub Actions workflow"),
        (bad_secret, "--secret: not NAME=VALUE with a value (the value is not shown)"),
    ):
        assert proc.returncode == 2, proc.stderr
        assert said in proc.stderr and "Traceback" not in proc.stderr
    assert "ghs_notNamedSecret" not in bad_secret.stdout + bad_secret.stderr
    assert not [p for p in ("out", "out2", "out3") if (tmp_path / p).exists()]


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
def test_the_phase_actions_in_the_users_job_rehearse_green(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also docs/actions.md's "One phase at a time" steps in one job of flit-version's
    release.yml (flit ``__version__``, ``tests`` extra, CHANGES.md), on a push of its tag:
    released, on the index, and verified as a consumer checks it (this run was
    tests/test_docs_act.py's ``test_the_phase_actions_snippet_releases_flit_version``)."""
    fixture = PROJECTS["flit-version"]
    assert_only_additions("phase-actions")
    project, path = project_with("phase-actions", "flit-version", tmp_path, tag=True)
    run = rehearse_here(project, path, tmp_path / "out", monkeypatch, capsys, verify=True)
    assert run.code == 0, run.stdout + run.log[-8000:]
    assert re.search(r"^release +succeeded *$", run.stdout, re.M), run.stdout
    assert "every job passed" in run.stdout
    assert f"replaced unexpected/upm-release@{FAKE_SHA}: the installed upm-release" in run.stdout
    assert "replaced actions/checkout@" in run.stdout
    assert "replaced actions/setup-python@" in run.stdout  # in upm-release's own actions
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert f"✅  Success - Main upm-ci {phase}" in run.log, phase
        assert re.search(rf"⭐ Run Main upm-ci {phase}$", run.log, re.M), phase
    assert_project_untouched(project)
    assert run.release and not run.release["draft"], run.release
    assert f"{fixture.dist}-{fixture.version}-py3-none-any.whl" in run.files
    assert run.verified["passed"] is True
    assert_no_secret_in(run)


#: tests/projects/hostile, released as 0.2.0 over its tag v0.1.0: a test, a hatch build hook
#: and its import (the smoke test) that hunt for credentials (hostile_pkg/spy.py).
HOSTILE_DIR = Path(__file__).parent / "projects" / "hostile"
HOSTILE = Fixture("hostile", "hostile_pkg", "0.2.0", "v0.1.0", "CHANGELOG.md", "## [{v}] - ", 1)
#: The secrets the reusable-workflow snippet passes, as canaries (the GitHub and PyPI stand-ins
#: take these as their tokens; the GPG key is a real one, made by the test).
CANARIES = {
    "GITHUB_TOKEN": "ghs_canaryGithubTokenOfTheRun000000000",
    "PYPI_TOKEN": "pypi-canaryPypiTokenOfTheRun0000",
}
#: Credentials in the caller's own environment: act's host environment must not carry them.
CALLER_CANARIES = {
    "AWS_ACCESS_KEY_ID": "AKIACANARYCALLERKEY01",
    "AWS_SECRET_ACCESS_KEY": "canaryCallerAwsSecretAccessKey",
    "AWS_SESSION_TOKEN": "canaryCallerAwsSessionToken",
    "TWINE_PASSWORD": "pypi-canaryCallerTwinePassword",
    "GH_TOKEN": "ghp_canaryCallerGhToken",
}
#: Where the project's code runs: each job of the reusable workflow and the spy labels it must
#: have left there (the gate's test venv builds the wheel, so its hook runs there too).
PROJECT_CODE_JOBS = {"gate": {"tests"}, "build": {"build-hook-sdist", "build-hook-wheel", "import"}}


def act_index(ancestors: list[dict[str, Any]]) -> int | None:
    """Index of act's process among a spy's ancestors (nearest first), or None."""
    for i, ancestor in enumerate(ancestors):
        argv0 = str(ancestor.get("cmdline", "")).split(" ", 1)[0]
        if Path(argv0).name == "act":
            return i
    return None


def findings_problems(report: dict[str, Any], canaries: dict[str, str]) -> list[str]:
    """What a spy's report shows that the project's code must not reach: a canary's value (or
    a line of a multi-line one) in its own environment or in the environ of any ancestor below
    act (act stands in for the runner: its environ and what is above it are out of scope), in
    the command line of act or any process below it (which every process can read), an
    ID-token endpoint there, or a minted token. A report that was not written under act, or
    whose hunt broke, is a problem too (fail closed)."""
    if "error" in report or "ancestors" not in report:
        return [f"the spy's hunt broke: {report.get('error')}"]
    ancestors = report["ancestors"]
    top = act_index(ancestors)
    if top is None:
        return ["no act process among the ancestors: not a run under act"]
    in_scope = [("own", report["own"])] + [
        (f"ancestor {a['pid']} ({a['cmdline'][:60]})", a["environ"]) for a in ancestors[:top]
    ]
    needles = {
        f"{name} ({line[:12]}...)": line
        for name, value in canaries.items()
        for line in (part.strip() for part in value.splitlines())
        if len(line) >= 12
    }
    problems = [
        f"command line of {a['pid']} ({Path(str(a['cmdline']).split(' ', 1)[0]).name}): {what}"
        for a in ancestors[: top + 1]
        for what, needle in needles.items()
        if needle in str(a["cmdline"])
    ]
    for where, environ in in_scope:
        if not isinstance(environ, dict):
            continue  # unreadable: nothing found there
        text = json.dumps(environ)
        problems += [f"{where}: {what}" for what, needle in needles.items() if needle in text]
        problems += [
            f"{where}: {name} is set"
            for name in ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
            if environ.get(name)
        ]
    if report.get("oidc_minted") is not False:
        problems.append(f"an OIDC token was minted: {report.get('oidc')}")
    return problems


def job_of_report(report: dict[str, Any]) -> str | None:
    """``GITHUB_JOB`` of the nearest process that has one (the spy's own or an ancestor's)."""
    for environ in [report.get("own"), *(a["environ"] for a in report.get("ancestors", []))]:
        if isinstance(environ, dict) and environ.get("GITHUB_JOB"):
            return str(environ["GITHUB_JOB"])
    return None


def test_the_findings_checker_catches_a_leak_below_act_and_only_there() -> None:
    act = {"pid": 10, "cmdline": "/venv/bin/act push -s GITHUB_TOKEN=ghs_x", "environ": {}}
    clean = {"pid": 20, "cmdline": "python -I -m upm_ci gate", "environ": {"GITHUB_JOB": "gate"}}
    canaries = {
        "GITHUB_TOKEN": "ghs_canaryTokenValue",
        "KEY": "-----BEGIN-----\nbody0123456789ab\n",
    }

    def report(**change: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"label": "tests", "own": {"PATH": "/bin"}}
        base["ancestors"] = [clean, act]
        base.update(oidc=[], oidc_minted=False)
        return {**base, **change}

    assert findings_problems(report(), canaries) == []
    assert job_of_report(report()) == "gate"
    # act's command line is readable by every process: a secret there is a leak
    loud = {**act, "cmdline": "/venv/bin/act push -s GITHUB_TOKEN=ghs_canaryTokenValue"}
    [problem] = findings_problems(report(ancestors=[clean, loud]), canaries)
    assert problem.startswith("command line of 10 (act): GITHUB_TOKEN")
    # act's own environ (the runner) is out of scope, and so is everything above it
    runner = {**act, "environ": {"GITHUB_TOKEN": "ghs_canaryTokenValue"}}
    assert findings_problems(report(ancestors=[clean, runner]), canaries) == []
    leaked = {**clean, "environ": {"UPM_GITHUB_TOKEN": "ghs_canaryTokenValue"}}
    [problem] = findings_problems(report(ancestors=[leaked, act]), canaries)
    assert "ancestor 20" in problem and "GITHUB_TOKEN" in problem
    [problem] = findings_problems(report(own={"K": "x body0123456789ab y"}), canaries)
    assert problem.startswith("own: KEY")  # one line of a multi-line secret is enough
    endpoint = {**clean, "environ": {"ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:1/t"}}
    assert findings_problems(report(ancestors=[endpoint, act]), canaries) == [
        "ancestor 20 (python -I -m upm_ci gate): ACTIONS_ID_TOKEN_REQUEST_URL is set"
    ]
    assert findings_problems(report(oidc_minted=True), canaries)[0].startswith("an OIDC token")
    assert findings_problems(report(ancestors=[clean]), canaries) == [
        "no act process among the ancestors: not a run under act"
    ]
    assert findings_problems({"label": "x", "error": "boom"}, canaries)
    assert findings_problems(report(oidc_minted=None), canaries)  # not recorded: not a pass


def gpg_private_key(home: Path) -> tuple[str, str]:
    """A new ASCII-armoured GPG private key without passphrase (the canary GPG key), and its
    fingerprint (the project pins it, so verify can check the signatures)."""
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    try:
        subprocess.run(
            [*gpg, "--quick-gen-key", "Canary Release Key <canary@example.com>"]
            + ["ed25519", "sign", "never"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        key = subprocess.run(
            [*gpg, "--armor", "--export-secret-keys", "canary@example.com"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        listed = subprocess.run(
            [*gpg, "--with-colons", "--list-secret-keys", "canary@example.com"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    return key, fingerprint


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the spy reads /proc")
def test_the_reusable_workflow_releases_the_hostile_project_and_its_code_finds_no_credential(
    tmp_path: Path,
) -> None:
    """The docs' reusable-workflow snippet releases tests/projects/hostile on a tag push, with
    every secret it passes a canary (and credentials in the caller's environment): the release
    passes, every job with its claims, and where the project's code runs (the gate's tests,
    the build backend, the smoke test) its spy found none of them in its own environment or
    any process of its job, no ID-token endpoint, and minted no token. The code-review step's
    own process holds the token; it is not in the project's code's tree."""
    if not shutil.which("gpg"):
        pytest.skip("no gpg to make the canary GPG key")
    spy = tmp_path / "spy"
    spy.mkdir()
    gpg_key, fingerprint = gpg_private_key(tmp_path / "gnupg")
    pyproject = (HOSTILE_DIR / "pyproject.toml").read_text()  # [tool.upm-release] is last
    files = {
        "hostile_pkg/spy_target.txt": f"{spy}\n",
        "pyproject.toml": pyproject + f'gpg-fingerprint = "{fingerprint}"\n',
    }
    project, path = project_with("reusable-workflow", HOSTILE, tmp_path, tag=True, files=files)
    canaries = {**CANARIES, "RELEASE_GPG_KEY": gpg_key}
    secrets = [f"--secret={name}={value}" for name, value in canaries.items()]
    proc = rehearse(project, path, tmp_path / "out", *secrets, **CALLER_CANARIES)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for job in ("Gate", "Build", "SBOM", "Sign", "Publish", "Verify the published release"):
        assert re.search(rf"^release/upm-release/{job}\S* .*succeeded *$", proc.stdout, re.M), job
    assert "every job passed" in proc.stdout
    signed = tmp_path / "out" / "act" / "artifacts" / "upm-signed" / "release-manifest.json"
    identity = json.loads(signed.read_text())["phases"]["sign"]["identity"]
    assert identity == f"https://github.com/{UPM_RELEASE_WORKFLOW}@{FAKE_SHA}"
    assert list(signed.parent.rglob(f"{HOSTILE.dist}-{HOSTILE.version}.tar.gz.asc")), "no GPG"
    assert_project_untouched(project)

    reports = [json.loads(p.read_text()) for p in sorted(spy.glob("*.json"))]
    by_job: dict[str, set[str]] = {}
    for report in reports:
        by_job.setdefault(job_of_report(report) or "?", set()).add(report["label"])
    for job, labels in PROJECT_CODE_JOBS.items():
        assert labels <= by_job.get(job, set()), (job, by_job)  # the spy ran where it should
    # The run was given the canaries (the index took the PyPI one, the GPG key signed, the
    # sign job's token named the reusable workflow: asserted above), through act's pipes: act's
    # command line, which every process reads, holds none of them and no runner credential.
    runner = reports[0]["ancestors"][act_index(reports[0]["ancestors"]) or 0]["cmdline"]
    for option in ("--secret-file", "--var-file", "--env-file"):
        assert option in runner, option
    assert "ACTIONS_ID_TOKEN_REQUEST" not in runner and "AWS_SECRET" not in runner
    assert not list((tmp_path / "out" / "act").glob("secrets")), "a pipe outlived act"
    everything = {**canaries, **CALLER_CANARIES}
    problems = {
        f"{report['label']} in {job_of_report(report)}": findings_problems(report, everything)
        for report in reports
    }
    assert not any(problems.values()), problems
    # and the spy really looked: it read its job's processes' environment up to act
    for report in reports:
        below_act = report["ancestors"][: act_index(report["ancestors"])]
        assert any(isinstance(a["environ"], dict) for a in below_act), report["label"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_dry_run_dispatched_before_the_tag_rehearses_green(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also docs/actions.md's dry-run snippet in setuptools-rst (``attr:`` version, RST
    changelog), dispatched with ``dry-run: true`` from ``main`` before the release is tagged:
    nothing released, nothing on the index (this run was tests/test_docs_act.py's
    ``test_the_dry_run_snippet_dispatched_from_main_publishes_nothing``)."""
    assert_only_additions("reusable-workflow-dry-run")
    project, path = project_with("reusable-workflow-dry-run", "setuptools-rst", tmp_path, tag=False)
    assert path == ".github/workflows/release-dry-run.yml"
    run = rehearse_here(
        project, path, tmp_path / "out", monkeypatch, capsys, "--input", "dry-run=true"
    )
    assert run.code == 0, run.stdout + run.log[-8000:]
    assert re.search(r"^release/upm-release/Publish\S* .*succeeded *$", run.stdout, re.M), (
        run.stdout
    )
    published = tmp_path / "out" / "act" / "artifacts" / "upm-published" / "published.json"
    assert json.loads(published.read_text())["dry_run"] is True
    assert json.loads(published.read_text())["plan"]
    assert_project_untouched(project)
    for phase in ("gate", "build", "sbom", "sign", "publish"):
        assert re.search(rf"⭐ Run Main upm-ci {phase}$", run.log, re.M), phase
    assert not re.search(r"⭐ Run Main upm-ci verify$", run.log, re.M)
    assert run.release == {} and run.files == []
    assert_no_secret_in(run)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_split_publishes_with_trusted_publishing_green(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Also docs/actions.md's trusted-publishing snippet as flat-scm's release.yml on a push of
    its tag: the reusable workflow (``publish: false``) signs, the ``publish`` job publishes
    with Trusted Publishing at a PyPI stand-in whose trusted publisher is release.yml, with
    PEP 740 attestations; released and verified (this run was tests/test_docs_act.py's
    ``test_the_trusted_publishing_snippet_releases_flat_scm_on_a_tag_push``)."""
    fixture = PROJECTS["flat-scm"]
    assert_only_additions("trusted-publishing")
    project, path = project_with("trusted-publishing", "flat-scm", tmp_path, tag=True)
    run = rehearse_here(project, path, tmp_path / "out", monkeypatch, capsys, verify=True)
    assert run.code == 0, run.stdout + run.log[-8000:]
    assert re.search(r"^publish +succeeded *$", run.stdout, re.M), run.stdout
    assert re.search(r"^release/upm-release/Sign\S* .*succeeded *$", run.stdout, re.M), run.stdout
    assert "✅  Success - Main upm-ci verify" in run.log
    assert_project_untouched(project)
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert re.search(rf"⭐ Run Main upm-ci {phase}$", run.log, re.M), phase
    # Each job's own token: sign's names the reusable workflow, publish's the caller's.
    jobs = {r.get("job") for r in run.oidc_requests if r.get("status") == 200}
    assert {None, "publish"} <= jobs
    index = run.trusted_index
    assert index is not None
    [claims] = index.minted
    assert claims["job_workflow_ref"].split("@")[0].endswith("/.github/workflows/release.yml")
    assert not index.refused
    wheel = f"{fixture.dist}-{fixture.version}-py3-none-any.whl"
    assert wheel in run.files
    sent = {u.filename: u.fields.get("attestations", []) for u in index.uploads}
    assert sent[wheel] and all(sent.values()), sent
    assert index.rejected_attestations == []  # PyPI's check of them against the publisher
    assert run.release and not run.release["draft"], run.release
    assert wheel in {a["name"] for a in run.release["assets"]}
    assert run.verified["passed"] is True
    assert_no_secret_in(run)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_file_changed_between_the_jobs_of_the_split_fails_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trusted-publishing split (the reusable workflow signs, the caller's job publishes
    with Trusted Publishing): one byte of the wheel changed as the publish job downloads it.
    Nothing released, nothing on the index, not even an upload token asked for (this run was
    also tests/test_docs_act.py's
    ``test_the_trusted_publishing_snippet_stops_on_a_file_changed_between_the_jobs``)."""
    fixture = PROJECTS["flat-scm"]
    wheel = f"{fixture.dist}-{fixture.version}-py3-none-any.whl"
    project, path = project_with("trusted-publishing", "flat-scm", tmp_path, tag=True)
    run = rehearse_here(
        project, path, tmp_path / "out", monkeypatch, capsys, tamper=f"upm-signed:dist/{wheel}"
    )
    assert run.code == 1, run.stdout + run.log[-8000:]
    assert re.search(r"^publish +failed *$", run.stdout, re.M), run.stdout
    assert "the release would fail" in run.stdout
    assert "tampered with" in run.log
    assert "the handed-over release does not verify" in run.log
    assert wheel in run.log
    assert run.release == {} and run.files == []
    index = run.trusted_index
    assert index is not None
    assert index.exchanges == [] and index.uploads == []
    assert_no_secret_in(run)


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


def test_act_s_pipes_hand_their_text_once_and_never_hang(tmp_path: Path) -> None:
    """The secrets' pipe gives its text to the first reader (act, at its start) and nothing to
    a later one (the project's code, which runs as the same user); one nobody read does not
    keep its writer waiting, and no pipe outlives the run."""
    import stat
    import threading

    from upm_ci.rehearse_workflow import dotenv, read_once

    text = dotenv({"TOKEN": "pypi-canary", "KEY": "line 1\nit's $HOME"})
    with read_once(tmp_path / "secrets", text) as pipe:
        assert stat.S_ISFIFO(pipe.stat().st_mode) and stat.S_IMODE(pipe.stat().st_mode) == 0o600
        assert pipe.read_text(encoding="utf-8") == text
        later: list[str] = []
        reader = threading.Thread(target=lambda: later.append(pipe.read_text()), daemon=True)
        reader.start()
        reader.join(0.5)
        if reader.is_alive():  # waiting for a writer that never comes: be one with nothing
            with open(pipe, "w"):
                pass
            reader.join(5)
        assert later == [""]  # a second reader gets nothing of it
    assert not pipe.exists()
    with read_once(tmp_path / "unread", text) as unread:
        pass  # nobody opened it
    assert not unread.exists()
    assert 'KEY="line 1\\nit\'s \\$HOME"' in text and "TOKEN='pypi-canary'" in text
