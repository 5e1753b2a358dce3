"""The project's code never sits next to a credential (issue 20, docs/security.md).

The hostile fixture ``tests/projects/hostile`` runs a spy from its test, its hatch build hook
and its import (the smoke test): it walks ``/proc/<ppid>/environ`` up to pid 1, dumps its own
environment and tries to mint an OIDC token. upm-ci gate and build run it without privilege:
as root here, through ``setpriv`` with every capability dropped (bounding set included, so no
exec gets one back): the same uid as upm-ci, no CAP_SYS_PTRACE, which is the case
non-dumpable is for (a user's own processes on a maintainer's machine or a self-hosted
runner). Dropping to another uid is no test of it: another uid is kept out anyway (and the
tool's Python lives under /root here). The job's secrets and credentials in URL values are
in upm-ci's environment; what the spy found must hold none of them.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, git
from tests.test_actions import ACTIONS, load, steps_of
from upm_ci import child_env
from upm_ci.errors import InputError
from upm_ci.gate.checklist import run_gate
from upm_ci.gate.model import CheckResult
from upm_ci.project import load_project, pinned_to

REUSABLE = REPO_ROOT / ".github" / "workflows" / "upm-release.yml"
HOSTILE = Path(__file__).resolve().parent / "projects" / "hostile"

SECRETS = {
    "UPM_GITHUB_TOKEN": "ghs_spyGithubToken0001",
    "GITHUB_TOKEN": "ghs_spyGithubToken0002",
    "TWINE_PASSWORD": "pypi-spyTwinePassword",
    "PYPI_API_TOKEN": "pypi-spyApiToken",
    "UPM_PYPI_TOKEN": "pypi-spyUpmToken",
    "AWS_ACCESS_KEY_ID": "AKIASPYACCESSKEY0001",
    "AWS_SECRET_ACCESS_KEY": "spyAwsSecretAccessKey",
    "AWS_SESSION_TOKEN": "spyAwsSessionToken",
    "GPG_PRIVATE_KEY": "-----BEGIN PGP PRIVATE KEY BLOCK-----spyGpgKey",
    "UPM_GPG_PASSPHRASE": "spyGpgPassphrase",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "spyOidcRequestToken",
}
#: Credentials inside URL values: the userinfo must go, the rest may stay.
URL_SECRETS = ("spyproxypass", "spyindexpass", "spyextrapass")


# --- unit seams -------------------------------------------------------------------------------
def test_url_userinfo_is_removed_and_the_rest_kept() -> None:
    strip = child_env.strip_url_credentials
    assert strip("http://u:p@proxy.example:3128/") == "http://proxy.example:3128/"
    assert (
        strip("https://tok@idx.example/simple a://x:y@b/c") == "https://idx.example/simple a://b/c"
    )
    assert strip("http://proxy.example:3128") == "http://proxy.example:3128"
    env = child_env.project_env(
        base={"HTTPS_PROXY": "http://u:spyproxypass@p:1/", "PIP_INDEX_URL": "https://u:x@i/s"}
    )
    assert env == {"HTTPS_PROXY": "http://p:1/", "PIP_INDEX_URL": "https://i/s"}
    # upm-ci's own wheel-only install keeps the index's login, never a token
    install = child_env.install_env(
        {"PIP_INDEX_URL": "https://u:x@i/s", "HTTPS_PROXY": "http://u:y@p/", "GITHUB_TOKEN": "t"}
    )
    assert install["PIP_INDEX_URL"] == "https://u:x@i/s"
    assert install["HTTPS_PROXY"] == "http://p/" and "GITHUB_TOKEN" not in install


def test_isolate_process_drops_credentials_from_its_own_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "http://127.0.0.1:1/oidc")
    monkeypatch.setenv("UPM_KEEP_ME", "x")
    dropped = child_env.isolate_process(keep={"GITHUB_TOKEN"})
    assert set(dropped) == (set(SECRETS) - {"GITHUB_TOKEN"}) | {"ACTIONS_ID_TOKEN_REQUEST_URL"}
    assert os.environ["GITHUB_TOKEN"] == SECRETS["GITHUB_TOKEN"]
    assert os.environ["UPM_KEEP_ME"] == "x"
    assert not (set(SECRETS) - {"GITHUB_TOKEN"}) & set(os.environ)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_non_dumpable_in_a_fresh_process() -> None:
    code = (
        "import ctypes; from upm_ci import child_env; libc = ctypes.CDLL(None);"
        "before = libc.prctl(3, 0, 0, 0, 0); ok = child_env.make_non_dumpable();"
        "print(before, ok, libc.prctl(3, 0, 0, 0, 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "True", "0"]


def test_gate_skip_takes_the_recorded_result_and_fails_without_one(tmp_path: Path) -> None:
    loaded = load_project(_hostile_copy(tmp_path / "p", tmp_path / "spy"))

    def gate(**rows: Any) -> list[CheckResult]:
        report = run_gate(
            loaded, tag=None, junit_xml=None, github=None, osv_url="http://127.0.0.1:1",
            work_dir=tmp_path, only={"code-review"}, **rows,
        )  # fmt: skip
        return report.checks

    assert [c.id for c in gate()] == ["code-review"]
    [unrecorded] = gate(skip={"code-review"})
    assert unrecorded.status == "fail" and "--only code-review" in unrecorded.reason
    recorded = {"code-review": CheckResult("code-review", "Code review", "pass", "reviewed")}
    assert gate(skip={"code-review"}, recorded=recorded) == [recorded["code-review"]]
    with pytest.raises(InputError, match="--skip: no gate check nope"):
        gate(skip={"nope"})


# --- the hostile project, for real ------------------------------------------------------------
def _hostile_copy(dest: Path, spy_out: Path) -> Path:
    shutil.copytree(HOSTILE, dest)
    spy_out.mkdir(parents=True, exist_ok=True)
    (dest / "hostile_pkg" / "spy_target.txt").write_text(f"{spy_out}\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "hostile 0.1.0")
    return dest


def _unprivileged() -> list[str]:
    """The command prefix that runs a process with no capability (same uid)."""
    if os.getuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root and no setpriv to drop the capabilities")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


class _OidcTrap(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"value": "minted-oidc-token"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def oidc_trap() -> Iterator[tuple[str, list[str]]]:
    _OidcTrap.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OidcTrap)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oidc", _OidcTrap.hits
    finally:
        server.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("through", ["gate-and-build", "rehearse"])
def test_the_hostile_projects_code_finds_no_credential(
    through: str, oidc_trap: tuple[str, list[str]]
) -> None:
    drop = _unprivileged()
    trap_url, hits = oidc_trap
    work = Path(tempfile.mkdtemp(prefix="upm-hostile-"))
    try:
        project = _hostile_copy(work / "project", work / "spy")
        (work / "tmp").mkdir()
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(work),
            "TMPDIR": str(work / "tmp"),
            "LANG": "C.UTF-8",
            "PIP_RETRIES": "0",
            "UPM_RETRY_BASE_DELAY": "0.01",
            "HTTPS_PROXY": "http://spy:spyproxypass@127.0.0.1:9/",
            "HTTP_PROXY": "http://spy:spyproxypass@127.0.0.1:9/",
            "NO_PROXY": "127.0.0.1,localhost",
            "PIP_INDEX_URL": "http://spy:spyindexpass@127.0.0.1:9/simple/",
            "PIP_EXTRA_INDEX_URL": "http://spy:spyextrapass@127.0.0.1:9/simple/ "
            + " ".join(f"file://{p}/simple" for p in ("/opt/pypi", "/opt/pypi-more")),
            "ACTIONS_ID_TOKEN_REQUEST_URL": trap_url,
            **SECRETS,
        }
        upm = [*drop, sys.executable, "-m", "upm_ci"]
        outputs = []
        if through == "rehearse":
            # the stand-ins' caches (the Sigstore stand-in's npm packages) are the user's
            env["HOME"] = os.environ.get("HOME", str(work))
            env.update(
                {k: v for k, v in os.environ.items() if k.lower().startswith(("npm_", "xdg_"))}
            )
            # the project fails the gate (no changelog): the rehearsal stops after its tests
            expected = {"tests"}
            rehearsal = subprocess.run(
                [*upm, "rehearse", str(project), "--out", str(work / "rehearsal")]
                + ["--test-python", sys.executable],
                env=env, cwd=work, capture_output=True, text=True, timeout=280,
            )  # fmt: skip
            outputs.append(rehearsal.stdout[-2000:] + rehearsal.stderr[-2000:])
        else:
            expected = {"tests", "build-hook-sdist", "build-hook-wheel", "import"}
            manifest = str(work / "release-manifest.json")
            common = ["--project", str(project), "--manifest", manifest]
            gate = subprocess.run(
                [*upm, "gate", *common, "--test-python", sys.executable, "--skip", "code-review"]
                + ["--osv-url", "http://127.0.0.1:9", "--repository", "example/hostile"],
                env=env, cwd=work, capture_output=True, text=True, timeout=240,
            )  # fmt: skip
            build = subprocess.run(
                [*upm, "build", *common, "--dist-dir", str(project / "dist")],
                env=env, cwd=work, capture_output=True, text=True, timeout=240,
            )  # fmt: skip
            outputs += [gate.stdout[-2000:] + gate.stderr[-2000:], build.stdout + build.stderr]
            assert build.returncode == 0, outputs
        reports = {p.name: json.loads(p.read_text()) for p in (work / "spy").glob("*.json")}
        labels = {r["label"] for r in reports.values()}
        # the spy ran where the project's code runs: its tests, the build hook, the smoke test
        assert expected <= labels, (reports.keys(), outputs)
        upm_seen = readable = 0
        for name, report in reports.items():
            assert report["uid"] == os.getuid(), name
            assert report["oidc"] == [], (name, report["oidc"])
            text = json.dumps(report)
            for secret in [*SECRETS.values(), *URL_SECRETS, trap_url]:
                assert secret not in text, (name, secret)
            own = report["own"]
            assert own.get("HTTPS_PROXY") == "http://127.0.0.1:9/", (name, own.get("HTTPS_PROXY"))
            for ancestor in report["ancestors"]:
                if " -m upm_ci " in ancestor["cmdline"]:
                    upm_seen += 1
                    # non-dumpable while the project's code runs
                    assert ancestor["environ"] == "PermissionError", (name, ancestor["cmdline"])
                elif isinstance(ancestor["environ"], dict):
                    readable += 1
        assert upm_seen >= len(reports), reports.keys()  # every run is below an upm-ci
        if through != "rehearse":  # there every ancestor is upm-ci's or this test's (caps)
            assert readable, "the spy read no ancestor's environ: the hunt itself is broken"
        assert hits == []
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the YAML: which job and step holds what --------------------------------------------------
#: The phase actions whose upm-ci step runs the project's code: tests (gate), build backend and
#: smoke test (build), the venv of the wheel whose .pth files start with its python (sbom).
PROJECT_CODE_ACTIONS = ("gate", "build", "sbom")
_SECRET_REF = re.compile(r"secrets\.|inputs\.[\w-]*(token|passphrase|password|gpg-key)", re.I)
_READ_ONLY = {"contents": "read", "pull-requests": "read"}


def test_reusable_workflow_jobs_that_run_project_code_hold_no_credential() -> None:
    workflow = load(REUSABLE)
    for name, job in workflow["jobs"].items():
        steps = job.get("steps", [])
        uses = [str(s.get("uses", "")) for s in steps]
        runs_code = any(
            u.startswith(f"./.upm-release/{a}") for u in uses for a in PROJECT_CODE_ACTIONS
        )
        text = yaml.safe_dump(job)
        for step in steps:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (name, step)
        if not runs_code:
            continue
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{name}: set least-privilege permissions"
        assert set(permissions.items()) <= set(_READ_ONLY.items()), (name, permissions)
        assert not _SECRET_REF.search(text), f"{name}: a job that runs project code gets a secret"
        assert "configure-aws-credentials" not in text and "environment" not in job, name
    # and the other way round: what holds write, id-token or secrets runs no project code
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions") or {}
        powerful = "write" in permissions.values() or _SECRET_REF.search(yaml.safe_dump(job))
        if powerful:
            uses = [str(s.get("uses", "")) for s in job.get("steps", [])]
            assert not [u for u in uses for a in PROJECT_CODE_ACTIONS if f"/{a}" in u], name
    assert workflow["jobs"]["gate"]["permissions"] == _READ_ONLY


@pytest.mark.parametrize("action", [*PROJECT_CODE_ACTIONS, "."])
def test_steps_that_run_project_code_get_no_token_and_exec_the_tool(action: str) -> None:
    phases = PROJECT_CODE_ACTIONS
    code_steps = [
        step for step in steps_of(ACTIONS[action])
        if re.search(rf"-m upm_ci ({'|'.join(phases)})\b", step.get("run", ""))
        and "--only code-review" not in step["run"]
    ]  # fmt: skip
    assert code_steps, action
    for step in code_steps:
        env = step.get("env", {})
        assert not [k for k in env if child_env.is_credential(k)], (action, step["name"])
        assert not _SECRET_REF.search(json.dumps(env)), (action, step["name"])
        assert step["run"].lstrip().splitlines()[-1].startswith("exec "), (action, step["name"])
        # act-based runners (act, Gitea, Forgejo) hand a composite's steps its inputs as INPUT_*
        for name in load(ACTIONS[action]).get("inputs", {}):
            if child_env.is_credential(name.upper().replace("-", "_")):
                assert f"-u INPUT_{name.upper()} " in step["run"], (action, step["name"], name)
    if action in ("gate", "."):
        # the code-review check is a step of its own, the only one of the gate with the token
        review = [s for s in steps_of(ACTIONS[action]) if "--only code-review" in s.get("run", "")]
        assert len(review) == 1 and "UPM_GITHUB_TOKEN" in review[0]["env"], action
        assert review[0]["run"].startswith("exec ")
        gate = [s for s in code_steps if "upm_ci gate" in s["run"]]
        assert len(gate) == 1 and "--skip code-review" in gate[0]["run"], action


def test_sign_and_publish_take_a_dynamic_version_from_the_manifest(tmp_path: Path) -> None:
    """Their jobs hold the signing identity and the upload credentials: no build backend (the
    project's code) runs there. Outside a git checkout hatch-vcs could not compute a version
    at all, so a version here proves the backend was not asked."""
    project = tmp_path / "tallyho"
    shutil.copytree(REPO_ROOT / "tests" / "projects" / "src-hatchvcs", project)
    loaded = load_project(project)
    assert loaded.version_is_dynamic
    pinned = pinned_to(loaded, "2.0.0")
    assert pinned.version == "2.0.0" and pinned.tag == "v2.0.0"
    static = load_project(HOSTILE)
    assert pinned_to(static, "9.9.9") is static  # a static version is the project's own
