"""The docs are the tests: the workflow snippets of README.md and docs/actions.md, run by act.

Each snippet is read from between its ``<!-- snippet:NAME:start -->`` markers and turned into
the fixture project's own workflow with as little change as possible, and the test checks the
change is only that (:func:`assert_only_additions`):

- ``<sha>`` becomes :data:`FAKE_SHA`, a made-up commit that act maps to a copy of this checkout
  with ``--local-repository unexpected/upm-release@<FAKE_SHA>=<copy>``. act loads the phase
  actions, the root action *and the remote reusable workflow*
  ``unexpected/upm-release/.github/workflows/upm-release.yml@<FAKE_SHA>`` from there, so the
  ``uses:`` lines stay exactly as the docs write them (nothing is copied into the project).
- the stand-ins' addresses (:data:`STANDIN_INPUTS`) are added as ``with:`` inputs wherever the
  snippet has none and the called workflow or action declares them; no key of the snippet is
  removed or altered.
- the phase-actions snippet is a list of steps: it goes into the job of
  ``tests/act/docs/phase-actions-job.yml`` after its checkout, with the permissions its
  comments name.

The projects are ``tests/projects`` fixtures, not the example: each becomes its own git
repository with a previous release tag (``tests.test_projects.make_repo``), the workflow is
committed, and a tag push tags that commit ``v<changelog top version>`` (setuptools-scm and
hatch-vcs take the version from it). Stand-ins, stubs and the tool venv are those of
``tests/test_actions_act.py``. Two act runs here: the reusable workflow on a tag push
(flat-scm) and the root action with PyPI Trusted Publishing (src-hatchvcs, at the PyPI
stand-in's token exchange). The other snippets run once each, through ``upm-ci rehearse
--workflow`` in ``tests/test_rehearse_workflow.py``, whose tests make this module's checks of
what the stand-ins hold as well: the reusable workflow dispatched as a dry run
(setuptools-rst), the phase actions (flit-version) and the recommended split (flat-scm: the
reusable workflow signs, the caller's job publishes with Trusted Publishing), also with one
file of the hand-off changed. What that command gives act is this module's runnable workflow
(``test_the_runnable_copy_is_the_users_file_plus_the_standin_inputs_the_docs_tests_add``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import REPO_ROOT, git
from tests.test_actions import prepared_tool_venv
from tests.test_actions_act import (
    ACT,
    STUBS,
    WORKING_STUBS,
    WORKSPACE_PARTS,
    ActRun,
    standins,
    third_party_uses,
)
from tests.test_projects import PROJECTS, Fixture, make_repo
from tests.test_readme import DOCS, README, snippet
from upm_ci.publish.pypi import preflight_claims
from upm_ci.rehearse_workflow import STANDIN_INPUTS
from upm_ci.standins.oidc import (
    UPM_RELEASE_WORKFLOW,
    OidcStandIn,
    github_claims,
)
from upm_ci.standins.pypi import PypiStandIn, TrustedPublisher

ACTIONS_MD = DOCS / "actions.md"
#: The made-up upm-release commit every ``<sha>`` of the docs becomes.
FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"
UPM_RELEASE = "unexpected/upm-release"
PHASE_JOB = REPO_ROOT / "tests" / "act" / "docs" / "phase-actions-job.yml"
PERMISSION = re.compile(r"\b(contents|id-token|pull-requests|packages): (read|write)\b")


# --- YAML as GitHub reads it ---------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans only: ``on:`` is a key, not ``True``."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass


def pinned(value: Any) -> Any:
    """``value`` with every ``<sha>`` replaced by FAKE_SHA."""
    if isinstance(value, dict):
        return {k: pinned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pinned(v) for v in value]
    if isinstance(value, str):
        return value.replace("<sha>", FAKE_SHA)
    return value


def declared_inputs(uses: str) -> set[str]:
    """Inputs of the upm-release action or reusable workflow ``uses`` names (``@FAKE_SHA``)."""
    path = uses.split("@", 1)[0].removeprefix(UPM_RELEASE).lstrip("/")
    if path.endswith(".yml"):
        doc = load_yaml((REPO_ROOT / path).read_text())
        return set(doc["on"]["workflow_call"]["inputs"])
    return set(load_yaml((REPO_ROOT / path / "action.yml").read_text())["inputs"])


def add_standin_inputs(node: dict[str, Any]) -> None:
    """Give a job or step that calls upm-release the stand-in inputs it declares and lacks."""
    uses = node.get("uses", "")
    if not uses.startswith(UPM_RELEASE):
        return
    wanted = [name for name in STANDIN_INPUTS if name in declared_inputs(uses)]
    if wanted:
        inputs = node.setdefault("with", {})
        for name in wanted:
            variable = "UPM_ACT_" + name.upper().replace("-", "_")
            inputs.setdefault(name, "${{ vars." + variable + " }}")


def runnable_workflow(name: str) -> tuple[dict[str, Any], Any]:
    """The snippet ``name`` (parsed) and the workflow a project commits to run it."""
    if name == "phase-actions":
        steps = load_yaml(snippet(name, ACTIONS_MD))
        workflow = load_yaml(PHASE_JOB.read_text())
        job = workflow["jobs"]["release"]
        wanted: dict[str, str] = {}
        for scope, level in PERMISSION.findall(snippet(name, ACTIONS_MD)):
            wanted[scope] = "write" if "write" in (level, wanted.get(scope)) else level
        job["permissions"] = wanted
        job["steps"] += pinned(steps)
        for step in job["steps"]:
            add_standin_inputs(step)
        return steps, workflow
    doc = load_yaml(snippet(name, ACTIONS_MD))
    workflow = pinned(doc)
    for job in workflow["jobs"].values():
        add_standin_inputs(job)
        for step in job.get("steps", []):
            add_standin_inputs(step)
    return doc, workflow


def additions(original: Any, runnable: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the keys ``runnable`` adds to ``original``; AssertionError on any other change."""
    if isinstance(original, dict):
        assert isinstance(runnable, dict), path
        added = [path + (k,) for k in runnable if k not in original]
        for key, value in original.items():
            assert key in runnable, f"{'.'.join(path + (key,))} was removed"
            added += additions(value, runnable[key], path + (key,))
        return added
    if isinstance(original, list):
        assert isinstance(runnable, list) and len(runnable) == len(original), path
        return [
            p for i, v in enumerate(original) for p in additions(v, runnable[i], path + (str(i),))
        ]
    assert runnable == pinned(original), f"{'.'.join(path)}: {original!r} became {runnable!r}"
    return []


def assert_only_additions(name: str) -> None:
    """The runnable workflow is the snippet plus stand-in inputs, ``<sha>`` pinned."""
    original, workflow = runnable_workflow(name)
    if name == "phase-actions":
        job = workflow["jobs"]["release"]
        wrapper = load_yaml(PHASE_JOB.read_text())
        n = len(wrapper["jobs"]["release"]["steps"])
        assert job["steps"][:n] == wrapper["jobs"]["release"]["steps"]
        runnable, base = job["steps"][n:], ["jobs", "release", "steps"]
    else:
        runnable, base = workflow, []
    assert "<sha>" not in json.dumps(workflow)
    for added in additions(original, runnable):
        where = ".".join(base + list(added))
        if added[-1] == "with":
            keys = set(_at(runnable, added))
            assert keys <= set(STANDIN_INPUTS), f"{where}: {keys}"
        else:
            assert added[-2:-1] == ("with",) and added[-1] in STANDIN_INPUTS, where


def _at(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


# --- one act run of a snippet --------------------------------------------------------------
@pytest.fixture(scope="module")
def tool_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_tool_venv(tmp_path_factory.mktemp("tool") / "venv")


def upm_release_copy(dest: Path) -> Path:
    """This checkout's actions, workflow and tool: what ``unexpected/upm-release@FAKE_SHA`` is."""
    for part in WORKSPACE_PARTS:
        src = REPO_ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    return dest


def workflow_file(name: str) -> str:
    """Where the snippet's first comment puts it (``# .github/workflows/X.yml of your project``);
    the phase-actions job is ``release.yml``."""
    if name == "phase-actions":
        return ".github/workflows/release.yml"
    found = re.match(r"# (\.github/workflows/[\w.-]+\.yml) ", snippet(name, ACTIONS_MD))
    assert found, f"snippet {name} does not say where it goes"
    return found[1]


def project_with_workflow(
    fixture: Fixture, dest: Path, path: str, workflow: Any, *, tag: bool
) -> Path:
    """The fixture as its own repository, ``workflow`` committed at ``path``, and (``tag``)
    that commit tagged ``v<changelog top version>``. ``origin`` names ``example/<dist>``."""
    project = make_repo(fixture, dest)
    git(project, "remote", "add", "origin", f"https://github.com/example/{fixture.dist}.git")
    (project / path).parent.mkdir(parents=True)
    (project / path).write_text(yaml.safe_dump(workflow, sort_keys=False, width=200))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Release with upm-release")
    if tag:
        git(project, "tag", f"v{fixture.version}")
    return project


def run_act(
    project: Path,
    workflow: str,
    out: Path,
    upm_release: Path,
    env: dict[str, str],
    *,
    event: str,
    ref: str,
    inputs: dict[str, str] | None = None,
    stub_checkout: bool,
) -> ActRun:
    """``act EVENT -W WORKFLOW`` in ``project`` on this host: upm-release
    from ``upm_release``, every other remote action stubbed (as ``test_actions_act.run_act``).
    ``env`` keys prefixed ``secret:`` or ``var:`` become act secrets and variables."""
    event_file = out / "event.json"
    event_file.write_text(json.dumps({"ref": ref}))
    args = [
        str(ACT), event, "-W", workflow, "-P", "ubuntu-latest=-self-hosted",
        "-e", str(event_file), "--no-cache-server", "--action-offline-mode",
        "--local-repository", f"{UPM_RELEASE}@{FAKE_SHA}={upm_release}",
    ]  # fmt: skip
    stubs = dict(WORKING_STUBS)
    if stub_checkout:
        stubs["actions/checkout"] = STUBS / "checkout"
    for uses in sorted(third_party_uses(include_checkout=stub_checkout)):
        args += ["--local-repository", f"{uses}={stubs.get(uses.split('@')[0], STUBS / 'unused')}"]
    for name, value in (inputs or {}).items():
        args += ["--input", f"{name}={value}"]
    for name, value in env.items():
        kind, _, key = name.rpartition(":")
        args += [{"secret": "-s", "var": "--var", "": "--env"}[kind], f"{key}={value}"]
    home = out / "home"
    home.mkdir()
    (home / ".actrc").write_text("-P ubuntu-latest=-self-hosted\n")
    start = time.monotonic()
    proc = subprocess.run(
        args,
        cwd=project,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    (out / "act.log").write_text(log)
    return ActRun(proc.returncode, log, out, time.monotonic() - start)


def act_env(services: dict[str, str], tool_venv: Path, out: Path) -> dict[str, str]:
    """Stand-ins as act variables, the job's token and the index token as secrets, the
    runner's OIDC endpoint and the stubs' directories as environment."""
    return {
        **{f"var:{k}": v for k, v in services.items() if k.startswith("UPM_ACT_")},
        **{k: v for k, v in services.items() if not k.startswith(("UPM_ACT_", "secret:"))},
        "var:UPM_ACT_TOOL_VENV": str(tool_venv),
        "secret:GITHUB_TOKEN": services["secret:UPM_ACT_GITHUB_TOKEN"],
        "secret:PYPI_TOKEN": services["secret:UPM_ACT_PYPI_TOKEN"],
        "UPM_ACT_SOURCES": str(out / "sources"),
        "UPM_ACT_ARTIFACTS": str(out / "artifacts"),
    }


def release_of(services: dict[str, str], tag: str) -> dict[str, Any]:
    """The GitHub stand-in's release of ``tag`` (drafts included), or {}."""
    response = requests.get(
        f"{services['UPM_ACT_GITHUB_API_URL']}/repos/{services['UPM_ACT_REPOSITORY']}/releases",
        headers={"Authorization": f"token {services['secret:UPM_ACT_GITHUB_TOKEN']}"},
        timeout=10,
    )
    response.raise_for_status()
    return next((r for r in response.json() if r["tag_name"] == tag), {})


def index_files(services: dict[str, str], dist: str) -> list[str]:
    """File names the PyPI stand-in holds for ``dist``."""
    response = requests.get(
        f"{services['UPM_ACT_PYPI_INDEX_URL']}{dist}/",
        auth=("__token__", services["secret:UPM_ACT_PYPI_TOKEN"]),
        timeout=10,
    )
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return re.findall(r">([^<]+\.(?:whl|tar\.gz))</a>", response.text)


def consumer_verify(project: Path, services: dict[str, str], tag: str, out: Path) -> dict[str, Any]:
    """``upm-ci verify --github-release TAG --repository OWNER/REPO``, as README tells consumers."""
    report = out / "consumer-verify.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "upm_ci",
            "verify",
            "--project",
            str(project),
            "--github-release",
            tag,
            "--repository",
            services["UPM_ACT_REPOSITORY"],
            "--github-api-url",
            services["UPM_ACT_GITHUB_API_URL"],
            "--trust-config",
            services["UPM_ACT_TRUST_CONFIG"],
            "--offline",
            "--report-json",
            str(report),
            str(out / "consumer-download"),
        ],  # fmt: skip
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("UPM_", "GITHUB_"))},
            "GITHUB_TOKEN": services["secret:UPM_ACT_GITHUB_TOKEN"],
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data: dict[str, Any] = json.loads(report.read_text())
    return data


@contextlib.contextmanager
def released_with(
    snippet_name: str, fixture: Fixture, tmp_path: Path, *, tag: bool
) -> Iterator[tuple[Path, str, Path, Path, dict[str, str]]]:
    """The project (with the snippet's workflow committed where its comment says), the
    workflow's path, an output directory, this checkout as upm-release, and the stand-ins."""
    assert_only_additions(snippet_name)
    _, workflow = runnable_workflow(snippet_name)
    path = workflow_file(snippet_name)
    project = project_with_workflow(fixture, tmp_path / fixture.dir, path, workflow, tag=tag)
    out = tmp_path / "out"
    (out / "artifacts").mkdir(parents=True)
    upm_release = upm_release_copy(out / "sources" / "unexpected" / "upm-release")
    with standins(project, out) as services:
        assert services["UPM_ACT_REPOSITORY"] == f"example/{fixture.dist}"
        yield project, path, out, upm_release, services


def assert_no_secret_in(run: ActRun, services: dict[str, str]) -> None:
    assert services["secret:UPM_ACT_GITHUB_TOKEN"] not in run.log
    assert services["secret:UPM_ACT_PYPI_TOKEN"] not in run.log
    assert "stubbed third-party action ran" not in run.log


# --- fast: the snippets are there and the runnable workflows only add stand-in inputs -------
def test_readme_recommends_the_trusted_publishing_snippet_of_docs_actions() -> None:
    """README's recommended path is docs/actions.md's split one, word for word: no PyPI token
    secret anywhere, Trusted Publishing in the caller's own job, the only job (with the
    reusable workflow's cap) that may write contents or mint an ID token."""
    readme = snippet("trusted-publishing", README)
    assert readme == snippet("trusted-publishing", ACTIONS_MD)
    assert "reusable-workflow" not in re.findall(r"<!-- snippet:([\w-]+):start", README.read_text())
    assert "pypi-token" not in readme and "PYPI_TOKEN" not in readme and "secrets" not in readme
    doc = load_yaml(readme)
    release, publish = doc["jobs"]["release"], doc["jobs"]["publish"]
    assert release["with"]["publish"] is False and "secrets" not in release
    assert publish["permissions"] == {"contents": "write", "id-token": "write"}
    assert doc["permissions"] == {}
    steps = {s["uses"].split("@")[0]: s.get("with", {}) for s in publish["steps"]}
    published = steps[f"{UPM_RELEASE}/publish"]
    assert published["trusted-publishing"] == "true"
    assert published["expect-signer"] == "reusable"
    assert published["handoff-digest"] == "${{ needs.release.outputs.signed-artifact-digest }}"
    assert steps["actions/download-artifact"]["name"] == (
        "${{ needs.release.outputs.signed-artifact }}"
    )
    assert f"{UPM_RELEASE}/verify" in steps
    # The caller's publish job's token is one PyPI takes; the reusable workflow's is not.
    caller = github_claims(repository="example/slugkit", workflow_path=workflow_file_of(readme))
    assert not preflight_claims(caller)
    called = release["uses"].replace("<sha>", FAKE_SHA)
    assert preflight_claims(github_claims(repository="example/slugkit", reusable_workflow=called))


def workflow_file_of(text: str) -> str:
    found = re.match(r"# (\.github/workflows/[\w.-]+\.yml) ", text)
    assert found, "the snippet does not say where it goes"
    return found[1]


@pytest.mark.parametrize("name", ["reusable-workflow", "reusable-workflow-dry-run"])
def test_the_reusable_workflow_snippets_do_not_ask_for_trusted_publishing(name: str) -> None:
    """PyPI cannot take a workflow of another repository as a trusted publisher, and publish
    refuses such a token before uploading: the docs pass ``pypi-token`` instead."""
    job = load_yaml(snippet(name, ACTIONS_MD))["jobs"]["release"]
    assert not job["with"].get("trusted-publishing")
    assert job["secrets"]["pypi-token"] == "${{ secrets.PYPI_TOKEN }}"
    called = job["uses"].replace("<sha>", FAKE_SHA)
    claims = github_claims(repository="example/slugkit", reusable_workflow=called)
    assert preflight_claims(claims), "publish would try Trusted Publishing here"


@pytest.mark.parametrize(
    "name",
    [
        "trusted-publishing",
        "reusable-workflow",
        "reusable-workflow-dry-run",
        "root-action",
        "phase-actions",
    ],
)
def test_the_runnable_workflow_only_adds_standin_inputs_to_the_snippet(name: str) -> None:
    assert_only_additions(name)
    _, workflow = runnable_workflow(name)
    text = yaml.safe_dump(workflow, sort_keys=False)
    assert f"{UPM_RELEASE}" in text and FAKE_SHA in text


# --- slow: act runs ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_reusable_workflow_snippet_releases_flat_scm_on_a_tag_push(
    tool_venv: Path, tmp_path: Path
) -> None:
    """docs/actions.md's reusable-workflow snippet as flat-scm's release.yml (setuptools-scm,
    flat layout, no plugins, tests needing the ``test`` extra), on a push of its tag."""
    fixture = PROJECTS["flat-scm"]
    tag = f"v{fixture.version}"
    with released_with("reusable-workflow", fixture, tmp_path, tag=True) as found:
        project, workflow, out, upm_release, services = found
        with OidcStandIn(
            repository=services["UPM_ACT_REPOSITORY"],
            ref=f"refs/tags/{tag}",
            sha=git(project, "rev-parse", "HEAD"),
            reusable_workflow=f"{UPM_RELEASE_WORKFLOW}@{FAKE_SHA}",
        ) as oidc:
            env = {**act_env(services, tool_venv, out), **oidc.env()}
            run = run_act(
                project, workflow, out, upm_release, env, event="push", ref=f"refs/tags/{tag}",
                stub_checkout=True,
            )  # fmt: skip
        release = release_of(services, tag)
        files = index_files(services, fixture.dist)
        verified = consumer_verify(project, services, tag, out) if run.returncode == 0 else {}
    print(f"reusable workflow, tag push: act ran {run.seconds:.0f} s")
    assert run.returncode == 0, run.log[-8000:]
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert run.ran(phase), phase
    assert release and not release["draft"], release
    wheel = f"{fixture.dist}-{fixture.version}-py3-none-any.whl"
    assert wheel in {a["name"] for a in release["assets"]}
    assert wheel in files
    assert verified["passed"] is True
    # The pinned SHA is the identity: what README tells consumers to expect.
    signed = json.loads((out / "artifacts" / "upm-signed" / "release-manifest.json").read_text())
    assert signed["phases"]["sign"]["identity"] == (
        f"https://github.com/{UPM_RELEASE_WORKFLOW}@{FAKE_SHA}"
    )
    assert_no_secret_in(run, services)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_root_action_snippet_releases_src_hatchvcs_with_trusted_publishing(
    tool_venv: Path, tmp_path: Path
) -> None:
    """docs/actions.md's root-action job as src-hatchvcs's release.yml (hatch-vcs, src layout,
    UPM plugins), on a push of its tag; its ``trusted-publishing: "true"`` exchanges the job's
    OIDC token at the PyPI stand-in, whose trusted publisher is ``release.yml``."""
    fixture = PROJECTS["src-hatchvcs"]
    tag = f"v{fixture.version}"
    with released_with("root-action", fixture, tmp_path, tag=True) as found:
        project, workflow, out, upm_release, services = found
        with PypiStandIn(
            password=services["secret:UPM_ACT_PYPI_TOKEN"],
            trusted_publisher=TrustedPublisher(
                services["UPM_ACT_REPOSITORY"], ".github/workflows/release.yml"
            ),
        ) as index:
            env = {
                **act_env(services, tool_venv, out),
                "var:UPM_ACT_PYPI_UPLOAD_URL": index.upload_url,
                "var:UPM_ACT_PYPI_INDEX_URL": index.simple_url,
            }
            run = run_act(
                project, workflow, out, upm_release, env, event="push", ref=f"refs/tags/{tag}",
                stub_checkout=False,
            )  # fmt: skip
            files = sorted(index.files())
        release = release_of(services, tag)
        verified = consumer_verify(project, services, tag, out) if run.returncode == 0 else {}
    assert run.returncode == 0, run.log[-8000:]
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert run.ran(phase), phase
    assert index.minted and not index.refused
    assert release and not release["draft"], release
    assert f"{fixture.dist}-{fixture.version}-py3-none-any.whl" in files
    assert verified["passed"] is True
    assert_no_secret_in(run, services)
