"""The composite actions and the reusable workflow, run by act against the local stand-ins.

act (``.venv/bin/act``, no Docker: ``-P ubuntu-latest=-self-hosted``) runs each step on this
host. The workspace is a fresh git repository holding this checkout's actions and ``upm_ci``;
the released project is a copy of ``examples/upm-sample`` elsewhere on disk; the stand-ins
(GitHub, OSV, PyPI, Sigstore, the runner's OIDC endpoint) are the rehearsal's. Third-party
actions are stubbed with ``--local-repository`` by a stub that fails if a step ever runs it:
the Docker steps must all be skipped when ``image`` is empty. The tool venv is prepared once
(see ``prepared_tool_venv``) so no run reinstalls the lock.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, REPO_ROOT, git, make_git_project
from tests.test_actions import ACTIONS, WORKFLOWS, all_uses, prepared_tool_venv
from upm_ci.project import load_project
from upm_ci.rehearse_workflow import STUBS as SERVED_STUBS
from upm_ci.standins.oidc import UPM_RELEASE_WORKFLOW

pytestmark = pytest.mark.slow

ACT = Path(sys.executable).parent / "act"
STUBS = REPO_ROOT / "tests" / "act" / "stubs"
#: Stubs that do their action's job on this host (the ones ``rehearse --workflow`` serves);
#: every other third-party action gets ``stubs/unused``, which fails if it ever runs.
WORKING_STUBS = {
    "actions/upload-artifact": SERVED_STUBS / "upload-artifact",
    "actions/download-artifact": SERVED_STUBS / "download-artifact",
}
WORKSPACE_PARTS = [
    "action.yml", "gate", "build", "sbom", "sign", "publish", "verify", "actions", "upm_ci",
    ".github", "tests/act",
]  # fmt: skip
TAG = "v1.2.0"


@dataclass
class ActRun:
    """One act run: exit code, the whole log, and where the release output went."""

    returncode: int
    log: str
    out: Path
    seconds: float

    def ran(self, phase: str) -> bool:
        """Whether act started the step that runs ``upm-ci <phase>``."""
        return re.search(rf"⭐ Run Main upm-ci {re.escape(phase)}$", self.log, re.M) is not None


def third_party_uses(*, include_checkout: bool) -> set[str]:
    """Every remote ``owner/name@sha`` the actions and workflows use (to stub for act)."""
    refs = {u for path in [*ACTIONS.values(), *WORKFLOWS] for u in all_uses(path)}
    skip = ("./",) if include_checkout else ("./", "actions/checkout@")
    return {
        "/".join(ref.split("@")[0].split("/")[:2]) + "@" + ref.split("@")[1]
        for ref in refs
        if not ref.startswith(skip)
    }


@pytest.fixture(scope="module")
def tool_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_tool_venv(tmp_path_factory.mktemp("tool") / "venv")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A repository with this checkout's actions and tool, as a user's runner downloads it."""
    ws = tmp_path / "ws"
    for part in WORKSPACE_PARTS:
        src = REPO_ROOT / part
        if not src.exists():
            continue
        if src.is_dir():
            shutil.copytree(src, ws / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (ws / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, ws / part)
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "upm-release under test")
    return ws


@contextlib.contextmanager
def standins(project_dir: Path, out: Path) -> Iterator[dict[str, str]]:
    """The rehearsal's stand-ins for ``project_dir``: variables and secrets for act."""
    from upm_ci.rehearse import local_services

    project = load_project(project_dir)
    with local_services(
        project, out, rekor_version=1, github_fault_rate=0.0, osv_url=""
    ) as services:
        yield {
            "UPM_ACT_GITHUB_API_URL": services.github_api_url,
            "UPM_ACT_REPOSITORY": services.repository,
            "UPM_ACT_OSV_URL": services.osv_url,
            "UPM_ACT_PYPI_UPLOAD_URL": services.pypi_upload_url,
            "UPM_ACT_PYPI_INDEX_URL": services.pypi_index_url,
            "UPM_ACT_TRUST_CONFIG": str(services.trust_config),
            "secret:UPM_ACT_GITHUB_TOKEN": services.github_token,
            "secret:UPM_ACT_PYPI_TOKEN": services.pypi_token,
            **services.oidc_env,
            # The example names an audit bucket: the local S3+KMS, its dummy AWS credentials
            # in the job's environment (as configure-aws-credentials leaves them), and its
            # endpoint and key for the workflows' audit inputs.
            **{k: v for k, v in services.audit_env.items() if k.startswith("AWS_")},
            "UPM_ACT_AUDIT_ENDPOINT_URL": services.audit_env.get("UPM_AUDIT_ENDPOINT_URL", ""),
            "UPM_ACT_AUDIT_KMS_KEY": services.audit_env.get("UPM_AUDIT_KMS_KEY", ""),
            "UPM_ACT_AUDIT_REGION": services.audit_env.get("UPM_AUDIT_REGION", ""),
        }


def run_act(
    workspace: Path,
    workflow: str,
    env: dict[str, str],
    out: Path,
    *,
    repository: str,
    stub_checkout: bool = False,
) -> ActRun:
    """``act push -W <workflow>`` on this host with every third-party action stubbed.

    ``env`` keys prefixed ``secret:`` or ``var:`` become act secrets and variables. The
    workspace's ``origin`` names ``repository``: act takes ``github.repository`` from it,
    and the signing identity is built from that. With ``stub_checkout``, checkouts of other
    repositories copy from ``$UPM_ACT_SOURCES`` (act still checks out the workspace itself).
    """
    git(workspace, "remote", "add", "origin", f"https://github.com/{repository}.git")
    event_file = out / "event.json"
    event_file.write_text(json.dumps({"ref": f"refs/tags/{TAG}"}))
    args = [
        str(ACT), "push", "-W", workflow, "-P", "ubuntu-latest=-self-hosted",
        "-e", str(event_file), "--no-cache-server", "--action-offline-mode",
    ]  # fmt: skip
    stubs = dict(WORKING_STUBS)
    if stub_checkout:
        stubs["actions/checkout"] = STUBS / "checkout"
    for ref in sorted(third_party_uses(include_checkout=stub_checkout)):
        args += ["--local-repository", f"{ref}={stubs.get(ref.split('@')[0], STUBS / 'unused')}"]
    for name, value in env.items():
        kind, _, key = name.rpartition(":")
        flag = {"secret": "-s", "var": "--var", "": "--env"}[kind]
        args += [flag, f"{key}={value}"]
    home = out / "home"
    home.mkdir(exist_ok=True)
    (home / ".actrc").write_text("-P ubuntu-latest=-self-hosted\n")
    start = time.monotonic()
    proc = subprocess.run(
        args,
        cwd=workspace,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    (out / "act.log").write_text(log)
    return ActRun(proc.returncode, log, out, time.monotonic() - start)


def phase_env(
    project: Path, out: Path, tool_venv: Path, services: dict[str, str]
) -> dict[str, str]:
    return {
        **services,
        "UPM_ACT_PROJECT": str(project),
        "UPM_ACT_OUT": str(out),
        "UPM_ACT_TAG": TAG,
        "UPM_ACT_PYTHON": str(tool_venv / "bin" / "python"),
        "UPM_ACT_TOOL_VENV": str(tool_venv),
    }


def test_every_phase_action_in_order_publishes_a_verified_release(
    workspace: Path, tool_venv: Path, tmp_path: Path
) -> None:
    project = make_git_project(EXAMPLE, tmp_path / "upm-sample")
    out = tmp_path / "out"
    out.mkdir()
    with standins(project, out) as services:
        run = run_act(
            workspace,
            "tests/act/phases.yml",
            phase_env(project, out, tool_venv, services),
            out,
            repository=services["UPM_ACT_REPOSITORY"],
        )
        github_url = services["UPM_ACT_GITHUB_API_URL"]
        token = services["secret:UPM_ACT_GITHUB_TOKEN"]
        repository = services["UPM_ACT_REPOSITORY"]
        release = release_state(github_url, token, repository)
    assert run.returncode == 0, run.log[-6000:]
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert run.ran(phase), phase
    assert not release["draft"]
    names = {a["name"] for a in release["assets"]}
    assert {"upm_sample-1.2.0-py3-none-any.whl", "SHA256SUMS"} <= names
    assert any(n.endswith(".sigstore.json") for n in names)
    assert json.loads((out / "verify-report.json").read_text())["passed"] is True
    assert "act-outputs gate-passed=true verify-passed=true" in run.log
    assert re.search(r"act-outputs release-url=\S+/releases/tag/v1\.2\.0$", run.log, re.M)
    assert token not in run.log
    assert services["secret:UPM_ACT_PYPI_TOKEN"] not in run.log
    assert "stubbed third-party action ran" not in run.log


def test_a_broken_gate_stops_the_release_before_anything_is_built(
    workspace: Path, tool_venv: Path, tmp_path: Path
) -> None:
    project = make_git_project(EXAMPLE, tmp_path / "upm-sample")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.2.0"', 'version = "1.2.1"'))
    git(project, "commit", "-q", "-am", "Bump the version without the changelog")
    out = tmp_path / "out"
    out.mkdir()
    with standins(project, out) as services:
        run = run_act(
            workspace,
            "tests/act/phases.yml",
            phase_env(project, out, tool_venv, services),
            out,
            repository=services["UPM_ACT_REPOSITORY"],
        )
        release = release_state(
            services["UPM_ACT_GITHUB_API_URL"],
            services["secret:UPM_ACT_GITHUB_TOKEN"],
            services["UPM_ACT_REPOSITORY"],
        )
    assert run.returncode != 0
    assert run.ran("gate")
    for phase in ("build", "sbom", "sign", "publish", "verify"):
        assert not run.ran(phase), phase
    assert release == {}
    assert not (out / "dist").exists()
    assert json.loads((out / "gate-report.json").read_text())["passed"] is False


def release_state(api_url: str, token: str, repository: str) -> dict[str, Any]:
    """The release of TAG as the GitHub stand-in has it (drafts included), or {}."""
    import requests

    response = requests.get(
        f"{api_url}/repos/{repository}/releases",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return next((r for r in response.json() if r["tag_name"] == TAG), {})


#: The called workflow as a caller's token names it: GitHub mints the jobs of upm-release.yml
#: tokens whose job_workflow_ref is this, while repository/ref/workflow_ref are the caller's.
CALLED = f"{UPM_RELEASE_WORKFLOW}@refs/tags/v1"


def run_reusable(
    workspace: Path, tool_venv: Path, tmp_path: Path
) -> tuple[ActRun, dict[str, Any], dict[str, str]]:
    """A project's release.yml calls upm-release.yml (tests/act/reusable-caller.yml); every
    job's OIDC token is the one GitHub mints for a job in a called workflow."""
    from upm_ci.standins.oidc import OidcStandIn

    project = make_git_project(EXAMPLE, tmp_path / "upm-sample")
    (project / ".github" / "workflows").mkdir(parents=True)
    shutil.copy2(
        REPO_ROOT / ".github" / "workflows" / "upm-release.yml", project / ".github" / "workflows"
    )
    (project / ".act").mkdir()
    shutil.copy2(
        REPO_ROOT / "tests" / "act" / "reusable-caller.yml", project / ".act" / "caller.yml"
    )
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Release with upm-release's reusable workflow")
    out = tmp_path / "out"
    sources = out / "sources" / "unexpected"
    sources.mkdir(parents=True)
    shutil.copytree(workspace, sources / "upm-release", ignore=shutil.ignore_patterns(".git"))
    (out / "artifacts").mkdir()
    with standins(project, out) as services:
        repository = services["UPM_ACT_REPOSITORY"]
        assert not repository.startswith("unexpected/upm-release")
        with OidcStandIn(
            repository=repository,
            ref=f"refs/tags/{TAG}",
            sha=git(project, "rev-parse", "HEAD"),
            reusable_workflow=CALLED,
        ) as oidc:
            env = {
                **{f"var:{k}": v for k, v in services.items() if k.startswith("UPM_ACT_")},
                **{k: v for k, v in services.items() if not k.startswith("UPM_ACT_")},
                **oidc.env(),
                "var:UPM_ACT_TAG": TAG,
                "var:UPM_ACT_TOOL_VENV": str(tool_venv),
                # Its dry run is the docs' dry-run snippet's path, rehearsed in
                # tests/test_rehearse_workflow.py (test_the_dry_run_dispatched_before_the_tag_...).
                "var:UPM_ACT_DRY_RUN": "false",
                "secret:GITHUB_TOKEN": services["secret:UPM_ACT_GITHUB_TOKEN"],
                "UPM_ACT_SOURCES": str(out / "sources"),
                "UPM_ACT_ARTIFACTS": str(out / "artifacts"),
            }
            env = {k.replace("var:secret:", "secret:"): v for k, v in env.items()}
            run = run_act(
                project, ".act/caller.yml", env, out, repository=repository, stub_checkout=True
            )
        release = release_state(
            services["UPM_ACT_GITHUB_API_URL"], services["secret:UPM_ACT_GITHUB_TOKEN"], repository
        )
    return run, release, services


def test_the_reusable_workflow_releases_from_a_callers_repository(
    workspace: Path, tool_venv: Path, tmp_path: Path
) -> None:
    """A project calls upm-release.yml; its jobs pass the release on as artifacts. Signatures
    carry upm-release.yml's identity, pinned to the caller's repository and tag, with no
    expected-identity input, and the workflow's own verify job accepts them."""
    from sigstore.models import Bundle

    from upm_ci.sigstore_common import certificate_identities

    run, release, services = run_reusable(workspace, tool_venv, tmp_path)
    assert run.returncode == 0, run.log[-6000:]
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert run.ran(phase), phase
    assert "merged 1 manifests" in run.log
    assert release and not release["draft"]
    signed = run.out / "artifacts" / "upm-signed"
    phase = json.loads((signed / "release-manifest.json").read_text())["phases"]["sign"]
    assert (phase["identity"], phase["repository"], phase["ref"]) == (
        f"https://github.com/{CALLED}",
        services["UPM_ACT_REPOSITORY"],
        f"refs/tags/{TAG}",
    )
    bundle = Bundle.from_json((signed / "dist" / "SHA256SUMS.sigstore.json").read_bytes())
    assert certificate_identities(bundle.signing_certificate) == {f"https://github.com/{CALLED}"}
    assert services["secret:UPM_ACT_GITHUB_TOKEN"] not in run.log
    assert "stubbed third-party action ran" not in run.log


def test_the_root_action_releases_in_one_job(
    workspace: Path, tool_venv: Path, tmp_path: Path
) -> None:
    project = make_git_project(EXAMPLE, tmp_path / "upm-sample")
    out = tmp_path / "out"
    out.mkdir()
    with standins(project, out) as services:
        run = run_act(
            workspace,
            "tests/act/whole.yml",
            phase_env(project, out, tool_venv, services),
            out,
            repository=services["UPM_ACT_REPOSITORY"],
        )
        release = release_state(
            services["UPM_ACT_GITHUB_API_URL"],
            services["secret:UPM_ACT_GITHUB_TOKEN"],
            services["UPM_ACT_REPOSITORY"],
        )
    assert run.returncode == 0, run.log[-6000:]
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert run.ran(phase), phase
    assert release and not release["draft"]
    assert re.search(
        r"act-outputs passed=true release-url=\S+/releases/tag/v1\.2\.0$", run.log, re.M
    )
    assert services["secret:UPM_ACT_PYPI_TOKEN"] not in run.log
