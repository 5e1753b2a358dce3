"""Rehearse a whole release before tagging it: every phase, against local stand-ins.

Each phase runs as its own ``python -m upm_ci <phase>`` process with the environment a GitHub
runner would give that job (``GITHUB_*``, ``ACTIONS_ID_TOKEN_REQUEST_*`` for the jobs that
get ``id-token: write``, ``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY`` files), so the code paths
are the ones CI takes. The services are the stand-ins in :mod:`upm_ci.standins`: GitHub
(seeded with the project's git history), OSV, PyPI (pypiserver), Sigstore and the runner's
OIDC endpoint. Nothing leaves 127.0.0.1.

A project that is not the top of its own git repository (e.g. ``examples/upm-sample`` inside
this one) is first copied into ``DIR/source`` as a one-commit repository, so the rehearsal
never sees another project's tags. A project whose version is dynamic and whose HEAD carries
no release tag (setuptools-scm, hatch-vcs: the tag *is* the version) is copied with its history
into ``DIR/source``, uncommitted changes committed there, and that copy is tagged with the
release about to be made: ``--tag``, else ``tag-prefix`` + the changelog's top version. The
project's own repository is never changed. A snapshot commit is dated by its newest file (not
the clock), so rehearsing unchanged code again builds the same sdist and wheel: the cached wheel
venv and the image's build cache are used as they are.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from upm_ci import gha
from upm_ci.child_env import isolate_process
from upm_ci.errors import InputError, ServiceError
from upm_ci.gate.testenv import CACHE_ENV
from upm_ci.identity import tag_ref
from upm_ci.manifest import DEFAULT_NAME, Manifest
from upm_ci.project import Project, git, load_project
from upm_ci.standins.faults import COMMON_KINDS
from upm_ci.timings import TIMINGS_ENV, Timing
from upm_ci.timings import read as read_timings
from upm_ci.venvs import CACHE_ENV as WHEEL_VENV_CACHE_ENV
from upm_ci.venvs import rehearsal_installer_env

if TYPE_CHECKING:
    from upm_ci.standins.pypi import PypiStandIn
    from upm_ci.standins.sigstore_server import SigstoreStandIn
    from upm_ci.vulnerability_audit import ResolvedFile

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PHASES = ("gate", "build", "sbom", "sign", "publish", "verify")
#: Jobs that get ``id-token: write`` in the reusable workflow.
OIDC_PHASES = ("sign", "publish")
#: Jobs that get a GitHub token.
TOKEN_PHASES = ("gate", "publish", "verify")
REVIEWER = "rehearsal-reviewer"
#: The local Sigstore's trust root, one TrustedRoot per line, as gh's --custom-trusted-root reads.
TRUSTED_ROOT_JSONL = "trusted_root.jsonl"
_BUILD_OUTPUT = (
    "dist", "build", ".venv", "venv", "__pycache__", "*.egg-info", "node_modules",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", "rehearsal",
)  # fmt: skip
_SNAPSHOT_IGNORE = shutil.ignore_patterns(".git", *_BUILD_OUTPUT)


@dataclass
class PhaseOutcome:
    """How one phase went."""

    phase: str
    status: str  # pass, fail, error, not run
    exit_code: int | None
    seconds: float
    produced: str = ""
    log_file: str = ""


@dataclass
class RehearsalResult:
    """All phases, in order; ``exit_code`` is the first failing phase's. ``faults``: per
    stand-in, the faults it injected by kind (``--fault-seed``)."""

    out_dir: Path
    phases: list[PhaseOutcome] = field(default_factory=list)
    faults: dict[str, dict[str, int]] = field(default_factory=dict)
    #: One line per image step (or why the image was skipped); empty without ``image``.
    image: list[str] = field(default_factory=list)
    #: Where the time went: each stand-in's start-up, each phase, the steps inside them.
    timings: list[Timing] = field(default_factory=list)
    #: The gate's test venv: reused from the cache, or why not (``--fresh``, CI).
    test_venv: str = ""
    #: ``dependency-provenance: pass (...)``: the gate's row with each package's publisher.
    provenance: str = ""

    @property
    def exit_code(self) -> int:
        return next((p.exit_code or 0 for p in self.phases if p.exit_code), 0)

    @property
    def passed(self) -> bool:
        return all(p.status == "pass" for p in self.phases)


@dataclass
class Services:
    """URLs and secrets of the running stand-ins."""

    repository: str
    github_api_url: str
    github_token: str
    osv_url: str
    pypi_upload_url: str
    pypi_index_url: str
    pypi_token: str
    trust_config: Path
    oidc_env: dict[str, str]
    #: ``AWS_*``/``UPM_AUDIT_*`` of the local S3+KMS for publish and verify; empty: no upload.
    audit_env: dict[str, str] = field(default_factory=dict)
    #: Each stand-in's fault plan (``FaultPlan``), by label: what it injected so far.
    fault_plans: dict[str, Any] = field(default_factory=dict)
    #: Waits until the dependencies' provenance is served (the index's Integrity API holds its
    #: answers till then); raises what stopped it.
    provenance_served: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class FaultSettings:
    """``rehearse --fault-seed``: every stand-in fails ``rate`` of its requests, seeded.

    ``kinds`` empty: each stand-in's kinds that its clients are meant to survive
    (:data:`REHEARSAL_FAULT_KINDS`); else each takes those of ``kinds`` it can inject.
    """

    seed: int
    rate: float = 0.2
    kinds: tuple[str, ...] = ()

    def for_standin(self, label: str) -> dict[str, Any]:
        """The ``fault_rate/fault_seed/fault_kinds/retry_after`` keywords for ``label``."""
        own = REHEARSAL_FAULT_KINDS[label]
        kinds = own if not self.kinds else tuple(k for k in self.kinds if k in SUPPORTED[label])
        rate = self.rate if kinds else 0.0
        return {"fault_rate": rate, "fault_seed": self.seed, "fault_kinds": kinds, "retry_after": 0}


#: What each stand-in injects in a rehearsal by default (faults its clients retry) ...
REHEARSAL_FAULT_KINDS = {
    "GitHub": ("5xx", "429", "secondary", "reset", "slow"),
    "PyPI": ("5xx", "429", "reset", "slow"),
    "OSV": ("5xx", "429", "reset", "slow"),
    "Sigstore": ("5xx", "429", "reset", "slow"),
    "S3": ("5xx", "reset", "slow"),
}
#: ... and everything it can inject (``--fault-kinds`` picks from these). None for the OIDC
#: token endpoint: sigstore-python's ambient-credential request is not retried.
SUPPORTED = {
    "GitHub": (*COMMON_KINDS, "secondary", "primary"),
    "PyPI": COMMON_KINDS,
    "OSV": COMMON_KINDS,
    "Sigstore": COMMON_KINDS,
    "S3": tuple(k for k in COMMON_KINDS if k != "429"),  # S3 throttles with 503 SlowDown
}


def rehearse(
    project_dir: Path,
    out_dir: Path,
    *,
    rekor_version: int = 1,
    github_fault_rate: float = 0.0,
    osv_url: str = "",
    test_python: str = "",
    tag: str = "",
    on_progress: Callable[[str], None] = lambda line: None,
    faults: FaultSettings | None = None,
    image_base: str = "",
    fresh: bool = False,
    provenance_fault: str = "",
) -> RehearsalResult:
    """Run every phase of ``project_dir``'s release into ``out_dir`` against local stand-ins.

    ``osv_url`` replaces the local OSV stand-in with another vulnerability service (the real
    OSV where there is internet, or an unreachable URL to see the audit fail closed).
    ``test_python`` runs the project's tests with that interpreter instead of the gate's new
    test venv; ``tag`` is the release tag (default: the project's version with its prefix).
    ``faults`` makes every stand-in fail some requests transiently (the retries rehearsed).
    ``image_base`` is the Dockerfile's ``BASE_IMAGE`` build arg (``standin``: a base made
    locally from this machine's Python, for engines that cannot pull); "" (the default) is
    the Dockerfile's own base when the engine already has it, else the stand-in base: a
    rehearsal pulls nothing, as it reaches no other service (:func:`auto_base`).
    ``fresh`` makes the gate's test venv and the venv with the wheel anew instead of reusing
    the cached ones (which are never used in CI: :func:`gate_venv_cache`).
    ``provenance_fault`` (``drop:NAME`` or ``resign:NAME``) makes the index's Integrity API
    serve no provenance for package NAME, or provenance from another publisher.
    """
    provenance_switch = parse_provenance_fault(provenance_fault)
    # The phases below run the project's code and get the stand-ins' credentials only: none of
    # the caller's reaches them, and this process (whose environ holds the caller's) is
    # non-dumpable, out of reach of the project's processes.
    isolate_process()
    out_dir = prepare_out_dir(out_dir)
    source, wanted = prepare_source(load_project(project_dir), out_dir, tag)
    project = load_project(source)
    release_tag = wanted or project.tag
    result = RehearsalResult(out_dir=out_dir)
    timings_file = out_dir / ".timings.jsonl"
    timings_file.unlink(missing_ok=True)
    result.test_venv = gate_venv_cache(fresh)[1]
    with (
        local_services(
            project,
            out_dir,
            rekor_version,
            github_fault_rate,
            osv_url,
            faults=faults,
            timings=result.timings,
            tag=release_tag,
            provenance_fault=provenance_switch,
        ) as services,
        _image_registry(project, image_base) as (image_env, skipped, base_note),
    ):
        env = _runner_env(project, out_dir, services, release_tag)
        env.update(image_env)
        if test_python:
            env["UPM_TEST_PYTHON"] = test_python
        env.update(phase_cache_env(fresh))
        env.update(rehearsal_installer_env())
        env[TIMINGS_ENV] = str(timings_file)
        if faults is not None:
            # Faults follow the requests' paths; the audit log's S3 key holds the run id, so a
            # run id of the seed's (not the clock's) keeps the same seed giving the same faults.
            env["GITHUB_RUN_ID"] = str(1_000_000 + faults.seed)
        steps_read = 0
        for phase in PHASES:
            if result.exit_code:
                result.phases.append(PhaseOutcome(phase, "not run", None, 0.0))
                continue
            on_progress(f"{phase}: running")
            outcome = _run_phase(phase, project, out_dir, services, env, on_progress)
            if phase == "gate":  # its provenance row read what the index served, or waited
                services.provenance_served()
            result.phases.append(outcome)
            result.timings.append(Timing(phase, outcome.seconds))
            recorded = read_timings(timings_file)
            result.timings += recorded[steps_read:]
            steps_read = len(recorded)
            on_progress(f"{phase}: {outcome.status} ({outcome.seconds:.1f} s)")
        result.faults = {label: plan.counts() for label, plan in services.fault_plans.items()}
    result.image = _image_summary(project, out_dir, skipped)
    if base_note and not skipped and result.image[0].startswith("image "):
        result.image.insert(1, f"  base: {base_note}")
    result.provenance = _provenance_line(out_dir)
    _write_summary(result)
    return result


# --- preparation -----------------------------------------------------------------------------
#: Beside the test venvs in the cache: the venvs with the built wheel that build's smoke test and
#: sbom share (:mod:`upm_ci.venvs`), under the same rule (never in CI, never with ``--fresh``).
WHEEL_VENVS = "wheel-venvs"


def gate_venv_cache(fresh: bool) -> tuple[Path | None, str]:
    """The cache of the gate's test venvs for this run, or None; and a line saying which.

    Outside CI a rehearsal is run again and again, so the gate reuses a venv whose dependency
    set and interpreter are unchanged (:mod:`upm_ci.gate.testenv`). In CI (``CI`` or
    ``GITHUB_ACTIONS`` set) never: a release's tests always run in a venv made for them.
    """
    if fresh:
        return None, "a new test venv (--fresh)"
    if any(
        os.environ.get(name, "").lower() in ("1", "true", "yes")
        for name in ("CI", "GITHUB_ACTIONS")
    ):
        return None, "a new test venv (CI: never reused)"
    base = os.environ.get("UPM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "upm-release"
    )
    cache = Path(base) / "test-venvs"
    return cache, f"test venvs cached in {cache} (reused while the dependencies are unchanged)"


def phase_cache_env(fresh: bool) -> dict[str, str]:
    """The phases' venv caches (the gate's test venvs, build and sbom's venvs with the wheel),
    as the environment hands them over; none in CI or with ``fresh``."""
    cache = gate_venv_cache(fresh)[0]
    if cache is None:
        return {}
    return {CACHE_ENV: str(cache), WHEEL_VENV_CACHE_ENV: str(cache.parent / WHEEL_VENVS)}


def prepare_out_dir(out_dir: Path) -> Path:
    """Use ``out_dir`` if it is new, empty or an earlier rehearsal's; never anything else."""
    out_dir = out_dir.resolve()
    marker = out_dir / ".upm-rehearsal"
    if out_dir.exists() and any(out_dir.iterdir()) and not marker.exists():
        raise InputError(
            f"{out_dir}: exists and is not an earlier rehearsal's output",
            hint="pass an empty or new --out directory",
        )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "logs").mkdir(parents=True)
    marker.write_text("upm-ci rehearse output; safe to delete\n")
    return out_dir


def prepare_source(project: Project, out_dir: Path, tag: str) -> tuple[Path, str]:
    """The project itself if it can be released as it is, else a copy (see the module doc);
    and the tag it releases (``""``: the project's own)."""
    try:
        top = Path(git(project.root, "rev-parse", "--show-toplevel")).resolve()
    except InputError:
        top = None
    source = out_dir / "source"
    if top == project.root:
        wanted = tag or _vcs_release_tag(project)
        if not wanted or _head_has_tag(project.root, wanted):
            return project.root, wanted
        _copy_checkout(project.root, source)
        if git(source, "status", "--porcelain"):
            _git_snapshot(source, ["add", "-A"], ["commit", "-q", "-m", "rehearsal snapshot"])
    else:
        shutil.copytree(project.root, source, ignore=_SNAPSHOT_IGNORE, symlinks=True)
        _git_snapshot(
            source, ["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]
        )
        wanted = tag or _vcs_release_tag(project)
    if wanted and not _head_has_tag(source, wanted):
        _git_snapshot(source, ["tag", wanted])
    return source, wanted


def _copy_checkout(root: Path, dest: Path) -> None:
    """Copy a checkout as git sees it: its history, and every file not ignored."""
    shutil.copytree(root / ".git", dest / ".git", symlinks=True)
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in filter(None, listed.split("\0")):
        src = root / rel
        if src.is_symlink() or src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)


def _snapshot_date(source: Path) -> str:
    """A git date for a snapshot commit: its newest file's mtime (or HEAD's time if later).

    The commit time becomes the build's ``SOURCE_DATE_EPOCH``; taken from the clock it would
    make every rehearsal of the same code a different wheel and image."""
    newest = 0
    for path in source.rglob("*"):
        if ".git" in path.relative_to(source).parts or not path.is_file():
            continue
        newest = max(newest, int(path.lstat().st_mtime))
    if (source / ".git").exists():  # a copied checkout: never older than its HEAD
        with contextlib.suppress(InputError):
            newest = max(newest, int(git(source, "log", "-1", "--format=%ct") or 0))
    return f"@{newest} +0000"


def _git_snapshot(source: Path, *commands: list[str]) -> None:
    date = _snapshot_date(source)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "upm-ci rehearse",
        "GIT_AUTHOR_EMAIL": "rehearse@localhost",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": "upm-ci rehearse",
        "GIT_COMMITTER_EMAIL": "rehearse@localhost",
        "GIT_COMMITTER_DATE": date,
    }
    for args in commands:
        subprocess.run(["git", *args], cwd=source, env=env, check=True, capture_output=True)


def _vcs_release_tag(project: Project) -> str:
    """For a dynamic version: the tag of the release being prepared, or "".

    A static version needs no tag in the repository (the rehearsal's runner says which tag it
    releases). A dynamic one may be computed from the tag (setuptools-scm, hatch-vcs: HEAD
    without a tag gives a ``.devN+g<sha>`` version), so the copy must carry the tag of the
    release: the changelog's top version. Any other dynamic version is the release's own.
    A HEAD that already carries a release tag is that release, whatever the version computes
    to (a wrong ``__version__`` is then the gate's version disagreement, not a second tag).
    """
    if not project.version_is_dynamic:
        return ""
    from packaging.version import InvalidVersion, Version

    prefix = project.config.tag_prefix
    at_head: list[tuple[Version, str]] = []
    for name in _own_head_tags(project.root):
        try:
            at_head.append((Version(name.removeprefix(prefix)), name))
        except InvalidVersion:
            continue
    if at_head:
        return max(at_head)[1]

    from upm_ci.changelog import released_sections

    built = Version(project.version)
    if not (built.is_devrelease or built.local):
        # A dynamic version that is not derived from git (flit's __version__, setuptools
        # attr:, hatch path): the release is that version, whatever the changelog says.
        return f"{project.config.tag_prefix}{built}"

    changelog = project.path(project.config.changelog)
    try:
        top = released_sections(changelog)[0].version if changelog.is_file() else ""
    except (InputError, IndexError):
        top = ""
    if not top:
        raise InputError(
            f"{changelog}: no released section to take the version from; the version is "
            "dynamic, so the rehearsal must know which tag it releases",
            hint="add the release's changelog section, or pass --tag",
        )
    return f"{project.config.tag_prefix}{top.removeprefix(project.config.tag_prefix)}"


def _own_head_tags(root: Path) -> list[str]:
    """HEAD's tags when ``root`` is the top of its own repository (never a parent's tags)."""
    try:
        if Path(git(root, "rev-parse", "--show-toplevel")).resolve() != root.resolve():
            return []
        return git(root, "tag", "--points-at", "HEAD").splitlines()
    except InputError:
        return []


def _head_has_tag(root: Path, tag: str) -> bool:
    return tag in git(root, "tag", "--points-at", "HEAD").splitlines()


@contextlib.contextmanager
def local_services(
    project: Project,
    out_dir: Path,
    rekor_version: int,
    github_fault_rate: float,
    osv_url: str,
    *,
    faults: FaultSettings | None = None,
    timings: list[Timing] | None = None,
    tag: str = "",
    provenance_fault: tuple[str, str] | None = None,
    github_token: str = "",
    pypi_token: str = "",
) -> Iterator[Services]:
    """Start every stand-in for ``project``; stop them all on the way out, whatever happened.

    ``github_token``/``pypi_token``: the tokens the GitHub and PyPI stand-ins accept (a
    rehearsal's secrets, ``rehearse --workflow --secret``); empty, new random ones.

    They start side by side (each waits on its own server process); ``timings`` gets how long
    each took.

    With ``faults``, every stand-in (not the OIDC endpoint) runs that seeded fault plan.
    Public because the act tests run the composite actions against the same services.
    """
    from upm_ci.standins.github import GitHubStandIn
    from upm_ci.standins.oidc import OidcStandIn
    from upm_ci.standins.osv import OsvStandIn
    from upm_ci.standins.pypi import PypiStandIn
    from upm_ci.standins.sigstore_server import SigstoreStandIn, StandInError

    repository = project.repository or f"rehearsal/{project.normalized_name}"
    owner, name = repository.split("/", 1)
    token = github_token or f"ghs_{secrets.token_hex(18)}"
    head = git(project.root, "rev-parse", "HEAD")

    def plan(label: str) -> dict[str, Any]:
        return faults.for_standin(label) if faults is not None else {}

    pypi_token = pypi_token or f"pypi-{secrets.token_hex(16)}"
    github_plan = plan("GitHub") or {
        "fault_rate": github_fault_rate,
        "fault_seed": 7,
        "retry_after": 0,
    }
    servers: dict[str, Any] = {
        "GitHub": GitHubStandIn(token, **github_plan),
        "PyPI": PypiStandIn(password=pypi_token, integrity=True, **plan("PyPI")),
        "Sigstore": SigstoreStandIn(workdir=out_dir / ".sigstore", **plan("Sigstore")),
        "OIDC": OidcStandIn(
            repository=repository,
            ref=tag_ref(tag or project.tag),
            workflow_path=project.config.release_workflow,
            sha=head,
        ),
    }
    if not osv_url:
        servers["OSV"] = OsvStandIn(**plan("OSV"))
    s3_bucket = _audit_s3(project, servers, plan("S3"))
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=3) as side:
        # What needs no server runs while they start: pip's resolution of the files whose
        # provenance the index serves (and the Sigstore imports signing it needs). Signing
        # that provenance goes on while the phases start: the index's Integrity API holds its
        # answers until it is done.
        resolved = side.submit(
            _timed_call, timings, "resolve dependencies to serve", _to_serve, project
        )
        try:
            started = _start_all(stack, servers, timings)
            github, pypi, sigstore, oidc = (
                started["GitHub"],
                started["PyPI"],
                started["Sigstore"],
                started["OIDC"],
            )
            plans = {"GitHub": github.faults}
            repo = github.add_repo(owner, name, default_branch="main")
            seeded = side.submit(
                _timed_call,
                timings,
                "seed GitHub stand-in",
                _seed_history,
                github,
                repo,
                project.root,
            )
            if "OSV" in started:
                osv_url, plans["OSV"] = started["OSV"].query_url, started["OSV"].faults
            pypi.integrity.hold()
            serving = side.submit(_serve_held, timings, resolved, pypi, sigstore, provenance_fault)
            plans.update(PyPI=pypi.faults, Sigstore=sigstore.faults)
            # for `gh attestation verify --bundle ... --custom-trusted-root trusted_root.jsonl`
            sigstore.write_trusted_root_jsonl(out_dir / TRUSTED_ROOT_JSONL)
            audit_env = _audit_store(project, started["S3"], s3_bucket, plans) if s3_bucket else {}
            seeded.result()
        except StandInError as e:
            raise ServiceError(f"rehearse: a local stand-in did not start: {e}") from None
        yield Services(
            repository=repository,
            github_api_url=github.api_url,
            github_token=token,
            osv_url=osv_url,
            pypi_upload_url=pypi.upload_url,
            pypi_index_url=pypi.simple_url,
            pypi_token=pypi_token,
            trust_config=sigstore.trust_config_path_for(rekor_version),
            oidc_env=oidc.env(),
            audit_env=audit_env,
            fault_plans=plans if faults is not None else {},
            provenance_served=functools.partial(_provenance_served, serving),
        )
        _provenance_served(serving)


def _serve_held(
    timings: list[Timing] | None,
    resolved: Future[list[ResolvedFile]],
    pypi: PypiStandIn,
    sigstore: SigstoreStandIn,
    switch: tuple[str, str] | None,
) -> None:
    """:func:`_serve_provenance` of the resolved files, then the Integrity API answers again
    (also when it failed: :func:`_provenance_served` raises why)."""
    try:
        with _timed_into(timings, "serve dependency provenance"):
            _serve_provenance(resolved.result(), pypi, sigstore, switch)
    finally:
        pypi.integrity.release()


def _provenance_served(serving: Future[None]) -> None:
    """Wait for :func:`_serve_held`; a stand-in that failed is a ServiceError, as at start."""
    from upm_ci.standins.sigstore_server import StandInError

    try:
        serving.result()
    except StandInError as e:
        raise ServiceError(f"rehearse: a local stand-in did not start: {e}") from None


def _start_all(
    stack: contextlib.ExitStack[Any], servers: dict[str, Any], timings: list[Timing] | None
) -> dict[str, Any]:
    """Enter every stand-in at once; each started one is stopped by ``stack``, even when
    another failed to start (the first failure is raised once all have settled)."""

    def start(label: str, server: Any) -> Any:
        begin = time.monotonic()
        try:
            entered = server.__enter__()
        except RuntimeError as e:  # a server process that exited or never answered
            raise ServiceError(f"rehearse: the local {label} stand-in did not start: {e}") from None
        if timings is not None:
            timings.append(Timing(f"start {label} stand-in", time.monotonic() - begin))
        return entered

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = {label: pool.submit(start, label, server) for label, server in servers.items()}
        wait(futures.values())
    failure: BaseException | None = None
    started: dict[str, Any] = {}
    for label, future in futures.items():
        error = future.exception()
        if error is None:
            started[label] = future.result()
            stack.push(servers[label])
        elif failure is None:
            failure = error
    if failure is not None:
        raise failure
    return started


@contextlib.contextmanager
def _timed_into(timings: list[Timing] | None, step: str) -> Iterator[None]:
    begin = time.monotonic()
    try:
        yield
    finally:
        if timings is not None:
            timings.append(Timing(step, time.monotonic() - begin))


def _timed_call(timings: list[Timing] | None, step: str, fn: Callable[..., _T], *args: Any) -> _T:
    with _timed_into(timings, step):
        return fn(*args)


def parse_provenance_fault(text: str) -> tuple[str, str] | None:
    """``drop:NAME``/``resign:NAME`` as (action, canonical name); "" is None."""
    if not text:
        return None
    from packaging.utils import canonicalize_name

    action, _, name = text.partition(":")
    if action not in ("drop", "resign") or not name.strip():
        raise InputError(
            f"--provenance-fault {text!r}: expected drop:PACKAGE or resign:PACKAGE",
            hint="e.g. --provenance-fault resign:idna",
        )
    return action, canonicalize_name(name.strip())


def _to_serve(project: Project) -> list[ResolvedFile]:
    """The files the project's dependencies resolve to (the gate resolves the same way); the
    Sigstore modules that sign their provenance are imported meanwhile, off the clock."""
    from upm_ci.dependency_provenance import shipped_files

    with ThreadPoolExecutor(max_workers=1) as imports:
        imports.submit(importlib.import_module, "pypi_attestations")
        return shipped_files(project)


def _serve_provenance(
    files: list[ResolvedFile],
    pypi: PypiStandIn,
    sigstore: SigstoreStandIn,
    switch: tuple[str, str] | None = None,
) -> None:
    """The index's Integrity API serves PEP 740 provenance for ``files`` (:func:`_to_serve`):
    signed through the local
    Sigstore by each package's demo publisher; a package without one has no provenance.
    ``switch``: that package's provenance is dropped, or signed by another publisher."""
    from packaging.utils import canonicalize_name

    from upm_ci.retry import call_with_retry
    from upm_ci.sigstore_common import classify_sigstore
    from upm_ci.standins.integrity import DEMO_PUBLISHERS, DemoPublisher

    pypi.integrity.trust_config = sigstore.trust_config()
    for file in files:
        key = canonicalize_name(file.name)
        publisher = DEMO_PUBLISHERS.get(key)
        if switch == ("drop", key):
            continue
        if switch == ("resign", key):
            publisher = DemoPublisher(f"mallory/{key}", "release.yml", "pypi")
        if publisher is not None and file.filename and file.sha256:
            # The local Sigstore may run a fault plan too: sign as a client would, retrying.
            call_with_retry(
                functools.partial(
                    pypi.integrity.publish,
                    file.name,
                    file.version,
                    file.filename,
                    file.sha256,
                    publisher,
                ),
                what=f"stand-in provenance of {file.filename}",
                classify=classify_sigstore,
            )


@contextlib.contextmanager
def _image_registry(project: Project, image_base: str) -> Iterator[tuple[dict[str, str], str, str]]:
    """With ``image`` configured: a local registry the image is pushed to instead of the
    configured one (same name under the local host), and the build's base image. Yields the
    phases' environment, when the image cannot be rehearsed here why (never silent), and
    which base the build uses when upm-ci chose it."""
    if not project.config.image:
        yield {}, "", ""
        return
    from upm_ci.image.engine import engine_problem
    from upm_ci.image.registry import parse_reference
    from upm_ci.standins.registry import RegistryStandIn, registry_problem

    problem = engine_problem() or registry_problem()
    if problem:
        # The build must not make an image no registry here can take: off for this rehearsal.
        yield {"UPM_SKIP_IMAGE": "true"}, problem, ""
        return
    env: dict[str, str] = {}
    note = ""
    if not image_base:
        image_base, note = auto_base(project)
    if image_base == "standin":
        from upm_ci.standins.base_image import make_base_image

        image_base = make_base_image()
    if image_base:
        env["UPM_IMAGE_BASE"] = image_base
    name = parse_reference(project.config.image, where="[tool.upm-release] image").name
    with RegistryStandIn() as registry:
        env["UPM_IMAGE"] = f"{registry.host}/{name}"
        yield env, "", note


def auto_base(project: Project) -> tuple[str, str]:
    """The rehearsal's base image when ``--image-base`` is not given, and a line saying so:
    "" (the Dockerfile's own) when the engine already has it, else ``standin``. A Dockerfile
    without ``ARG BASE_IMAGE`` in its ``FROM`` cannot take another base: "" as well."""
    from upm_ci.image.build import dockerfile_base, dockerfile_path
    from upm_ci.image.engine import image_exists

    try:
        dockerfile = dockerfile_path(project)
    except InputError:
        return "", ""  # the build phase names the missing Dockerfile
    own = dockerfile_base(dockerfile)
    if not own or dockerfile_base(dockerfile, "standin") != "standin":
        return "", ""
    if image_exists(own):
        return "", f"{own} (the Dockerfile's, on this engine)"
    return "standin", (
        f"stand-in for {own} (not on this engine, and a rehearsal pulls nothing; "
        "--image-base IMAGE uses another)"
    )


def _image_summary(project: Project, out_dir: Path, skipped: str) -> list[str]:
    """Each image step as the phases recorded it: built, SBOMs, signed, pushed, verified."""
    if not project.config.image:
        return []
    if skipped:
        return [f"image: skipped ({skipped})"]
    try:
        manifest = Manifest.load(out_dir / DEFAULT_NAME)
    except InputError:
        return ["image: no manifest (the build did not run)"]
    if not manifest.images:
        build = manifest.phases.get("build", {}).get("image", "")
        return [str(build) or "image: not built"]
    report = {
        str(a.get("name")): a
        for a in _read_json(out_dir / "verify-report.json").get("artifacts", [])
        if isinstance(a, dict)
    }
    lines = []
    for image in manifest.images:
        pinned = f"{image.repository or image.ref}@{image.digest}"
        pushed = [r for r in image.referrers if r.digest]
        row = report.get(pinned)
        verified = (
            "not verified"
            if row is None
            else "verified from the registry"
            if row.get("passed")
            else "verification FAILED"
        )
        lines += [
            f"image {pinned}",
            f"  built: layout {image.layout or '-'}, tags {', '.join(image.tags) or '-'}",
            f"  sbom: {', '.join(image.sboms) or 'none'}",
            f"  signed: {', '.join(r.kind for r in image.referrers) or 'no'}",
            f"  pushed: {len(pushed)}/{len(image.referrers)} referrers stored; {verified}",
        ]
    return lines


def _audit_s3(project: Project, servers: dict[str, Any], fault_plan: dict[str, Any]) -> str:
    """When the project names an ``audit-bucket``: a local S3+KMS (moto) among ``servers`` to
    start, and the bucket's name; "" without one."""
    config = project.config
    if not config.audit_bucket:
        return ""
    from upm_ci.publish.audit_store import AuditStoreSettings
    from upm_ci.standins.s3 import REGION, S3StandIn

    bucket, _ = AuditStoreSettings(config.audit_bucket, config.audit_kms_key).location()
    servers["S3"] = S3StandIn(region=config.audit_region or REGION, **fault_plan)
    return bucket


def _audit_store(project: Project, s3: Any, bucket: str, plans: dict[str, Any]) -> dict[str, str]:
    """The started S3+KMS with ``bucket`` (versioned, Object Lock) and a new KMS key, which
    replaces the configured one; the phases' ``AWS_*``/``UPM_AUDIT_*`` environment."""
    plans["S3"] = s3.faults
    try:
        key_arn = s3.create_key(f"rehearsal of {project.name}'s audit log")
        s3.create_bucket(bucket, object_lock_days=1)
    except RuntimeError as e:
        raise ServiceError(f"rehearse: the local S3+KMS did not start: {e}") from None
    env = {**s3.env(), "UPM_AUDIT_KMS_KEY": key_arn}
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        gha.mask(env[name])
    return env


def _seed_history(github: Any, repo: Any, root: Path) -> None:
    """Import the git history; every commit not merged through a PR gets an approved one.

    The rehearsal cannot know who reviewed what on the real GitHub: ``code-review`` runs
    against this simulated history, and the real check happens in CI.
    """
    seeded = github.seed_from_git(repo, root, approve_pulls_as=REVIEWER)
    covered = {sha for pull in repo.pulls.values() for sha in pull.commits}
    for sha, commit in list(repo.commits.items()):
        if sha not in covered:
            github.add_pull(
                repo,
                author=commit.author,
                commits=[sha],
                merge_commit_sha=sha,
                reviews=[(REVIEWER, "APPROVED")],
            )
    log.debug("seeded GitHub stand-in: %s", seeded)


def _runner_env(project: Project, out_dir: Path, services: Services, tag: str) -> dict[str, str]:
    """What a GitHub-hosted runner sets for a push of ``tag``, pointed at the stand-ins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACTIONS_", "UPM_"))}
    gha_dir = out_dir / ".gha"
    (gha_dir / "tmp").mkdir(parents=True, exist_ok=True)
    ref = tag_ref(tag)
    env.update(
        {
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_REPOSITORY": services.repository,
            "GITHUB_REPOSITORY_OWNER": services.repository.split("/")[0],
            "GITHUB_REF": ref,
            "GITHUB_REF_NAME": tag,
            "GITHUB_REF_TYPE": "tag",
            "GITHUB_SHA": git(project.root, "rev-parse", "HEAD"),
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_WORKFLOW_REF": (
                f"{services.repository}/{project.config.release_workflow}@{ref}"
            ),
            "GITHUB_RUN_ID": str(int(time.time())),
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_API_URL": services.github_api_url,
            "GITHUB_STEP_SUMMARY": str(gha_dir / "summary.md"),
            "RUNNER_TEMP": str(gha_dir / "tmp"),
            "UPM_PROJECT": str(project.root),
            "UPM_MANIFEST": str(out_dir / DEFAULT_NAME),
            "UPM_DIST_DIR": str(out_dir / "dist"),
            "UPM_TAG": tag,
            "UPM_REPOSITORY": services.repository,
            "UPM_GITHUB_API_URL": services.github_api_url,
            "UPM_OSV_URL": services.osv_url,
            "UPM_TRUST_CONFIG": str(services.trust_config),
            "UPM_PYPI_UPLOAD_URL": services.pypi_upload_url,
            "UPM_PYPI_INDEX_URL": services.pypi_index_url,
        }
    )
    return env


# --- running phases --------------------------------------------------------------------------
def _phase_args(phase: str, out_dir: Path) -> list[str]:
    """Per-phase arguments beyond the ``UPM_*`` environment every phase reads."""
    if phase == "gate":
        return ["--report-json", str(out_dir / "gate-report.json")]
    if phase == "publish":
        return ["--published-json", str(out_dir / "published.json")]
    if phase == "verify":
        return [
            str(out_dir / "downloaded"),
            "--github-release",
            "",  # filled with the tag below
            "--report-json",
            str(out_dir / "verify-report.json"),
            "--offline",
        ]
    return []


def _run_phase(
    phase: str,
    project: Project,
    out_dir: Path,
    services: Services,
    base_env: dict[str, str],
    on_progress: Callable[[str], None],
) -> PhaseOutcome:
    env = dict(base_env)
    env["GITHUB_OUTPUT"] = str(out_dir / ".gha" / f"{phase}.output")
    if phase in TOKEN_PHASES:
        env["UPM_GITHUB_TOKEN"] = services.github_token
    if phase in OIDC_PHASES:
        env.update(services.oidc_env)
    if phase == "publish":
        env["UPM_PYPI_TOKEN"] = services.pypi_token
    if phase in ("publish", "verify"):
        env.update(services.audit_env)
    args = _phase_args(phase, out_dir)
    if phase == "verify":
        args[2] = base_env["UPM_TAG"]
    log_file = out_dir / "logs" / f"{phase}.log"
    start = time.monotonic()
    with log_file.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "upm_ci", phase, *args],
            cwd=out_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            # Act as the runner does: take ``::add-mask::`` commands, never log them, and
            # redact masked values from everything after.
            if raw.startswith("::add-mask::"):
                gha.remember_secret(raw.removeprefix("::add-mask::").rstrip("\n"))
                continue
            line = gha.redact(raw)
            sink.write(line)
            if line.startswith("upm-ci: "):
                on_progress(f"  {phase}: {line.removeprefix('upm-ci: ').rstrip()}")
        code = proc.wait()
    seconds = time.monotonic() - start
    status = "pass" if code == 0 else "fail" if code == 1 else "error"
    if code:
        tail = log_file.read_text(encoding="utf-8").splitlines()[-15:]
        for line in tail:
            # the phase ran as in Actions; a terminal shows its annotations as plain text
            for shown in gha.plain_annotation(line).splitlines() or [""]:
                on_progress(f"  {phase} | {shown}")
    return PhaseOutcome(
        phase,
        status,
        code,
        seconds,
        produced=_produced(phase, out_dir) if code == 0 else f"see {log_file.name}",
        log_file=str(log_file.relative_to(out_dir)),
    )


def _produced(phase: str, out_dir: Path) -> str:
    """One line of what a phase left behind, read from its report or the manifest."""
    try:
        manifest = Manifest.load(out_dir / DEFAULT_NAME)
    except InputError:
        manifest = None
    if phase == "gate":
        report = _read_json(out_dir / "gate-report.json")
        checks = report.get("checks", [])
        counts: dict[str, int] = {}
        for check in checks:
            counts[str(check.get("status"))] = counts.get(str(check.get("status")), 0) + 1
        shown = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"gate-report.json: {len(checks)} checks: {shown}"
    if phase == "verify":
        report = _read_json(out_dir / "verify-report.json")
        arts = report.get("artifacts", [])
        ok = sum(1 for a in arts if a.get("passed"))
        return f"verify-report.json: {ok}/{len(arts)} artifacts verified"
    if phase == "publish":
        published = _read_json(out_dir / "published.json")
        rel = published.get("github", {}) or {}
        index = published.get("pypi", {}) or {}
        stored = published.get("audit_store", {}) or {}
        objects = [o for o in stored.get("objects", []) if isinstance(o, dict)]
        audit = (
            f"; audit log in {objects[0].get('url')} ({objects[0].get('encryption')} "
            f"{objects[0].get('kms_key_id')})"
            if objects
            else "; audit log not uploaded to S3 (no audit-bucket)"
        )
        return (
            f"published.json: release {'draft' if rel.get('draft') else 'published'} with "
            f"{len(rel.get('assets', []))} assets; {len(index.get('files', []))} files on index"
            + audit
        )
    if manifest is None:
        return ""
    kinds = {
        "build": ("sdist", "wheel", "checksums"),
        "sbom": ("sbom",),
        "sign": (
            "sigstore-bundle",
            "provenance",
            "sbom-attestation",
            "pep740-attestation",
            "gpg-signature",
        ),
    }[phase]
    files = manifest.of_kind(*kinds)
    names = ", ".join(a.name for a in files[:3])
    more = f" +{len(files) - 3} more" if len(files) > 3 else ""
    return f"{len(files)} files: {names}{more}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _provenance_line(out_dir: Path) -> str:
    """The gate's dependency-provenance row in one line, or "" when the gate did not run."""
    checks = _read_json(out_dir / "gate-report.json").get("checks", [])
    row = next((c for c in checks if c.get("id") == "dependency-provenance"), None)
    return f"dependency-provenance: {row.get('status')} ({row.get('reason')})" if row else ""


def _write_summary(result: RehearsalResult) -> None:
    from upm_ci.manifest import write_json_atomic

    write_json_atomic(
        result.out_dir / "rehearsal.json",
        {
            "schema": "upm-release/rehearsal/v1",
            "passed": result.passed,
            "exit_code": result.exit_code,
            "phases": [p.__dict__ for p in result.phases],
            "faults_injected": result.faults,
            "image": result.image,
            "test_venv": result.test_venv,
            "timings": [{"step": t.step, "seconds": round(t.seconds, 3)} for t in result.timings],
            "provenance": result.provenance,
        },
    )
