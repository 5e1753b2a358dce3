"""Static checks of the composite actions and workflows users call.

What they guard: every third-party action pinned by full SHA, inputs reaching scripts only
through ``env:``, every ``UPM_*`` variable a real option of the phase it feeds, Docker steps
off unless ``image`` is set, READMEs that match their action.yml, the hash-pinned lock
covering the package's dependencies, and zizmor / check-jsonschema with nothing to report.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO_ROOT
from upm_ci.cli import cli
from upm_ci.project import read_toml

BIN = Path(sys.executable).parent
PHASES = ("gate", "build", "sbom", "sign", "publish", "verify")
ACTION_DIRS = [*PHASES, "actions/setup", "."]
ACTIONS = {d: REPO_ROOT / d / "action.yml" for d in ACTION_DIRS}
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
ACT_WORKFLOWS = sorted((REPO_ROOT / "tests" / "act").glob("*.yml"))
ACT_STUBS = sorted(
    [
        *(REPO_ROOT / "tests" / "act" / "stubs").glob("*/action.yml"),
        *(REPO_ROOT / "upm_ci" / "standins" / "actions").glob("*/action.yml"),
    ]
)
SETUP = REPO_ROOT / "actions" / "setup"
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
#: Environment variables the action scripts themselves read (not upm-ci options).
SCRIPT_ENV = {"UPM_PYTHON", "UPM_SMOKE_TEST", "UPM_VERIFY_DIRECTORY"}
DOCKER_ACTIONS = ("docker/", "aquasecurity/trivy-action")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def steps_of(path: Path) -> list[dict[str, Any]]:
    """Every step of an action or a workflow (all jobs)."""
    data = load(path)
    if "runs" in data:
        return list(data["runs"].get("steps", []))
    return [s for job in data.get("jobs", {}).values() for s in job.get("steps", [])]


def all_uses(path: Path) -> list[str]:
    """Every ``uses:`` of a file: steps, and jobs that call reusable workflows."""
    data = load(path)
    found = [s["uses"] for s in steps_of(path) if "uses" in s]
    found += [j["uses"] for j in data.get("jobs", {}).values() if "uses" in j]
    return found


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- the external linters ---------------------------------------------------------------------
def test_actions_match_the_github_actions_schema() -> None:
    proc = run_tool(
        "check-jsonschema",
        "--builtin-schema",
        "vendor.github-actions",
        *map(str, [*ACTIONS.values(), *ACT_STUBS]),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_match_the_github_workflows_schema() -> None:
    files = [*WORKFLOWS, *ACT_WORKFLOWS]
    assert files, "no workflows found"
    proc = run_tool(
        "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, files)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_auditor_finds_nothing() -> None:
    targets = [str(p) for p in [*ACTIONS.values(), *WORKFLOWS]]
    proc = run_tool("zizmor", "--offline", "--persona", "auditor", "--no-progress", *targets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


def test_the_schema_check_catches_a_broken_action(tmp_path: Path) -> None:
    """The schema test is not vacuous: a composite step without `shell:` is rejected."""
    bad = tmp_path / "action.yml"
    text = ACTIONS["gate"].read_text(encoding="utf-8")
    bad.write_text(text.replace("      shell: bash\n", "", 1), encoding="utf-8")
    proc = run_tool("check-jsonschema", "--builtin-schema", "vendor.github-actions", str(bad))
    assert proc.returncode != 0


def test_zizmor_catches_an_expression_in_a_script(tmp_path: Path) -> None:
    """The zizmor test is not vacuous: an input expanded inside `run:` is a finding."""
    bad = tmp_path / "action.yml"
    text = ACTIONS["gate"].read_text(encoding="utf-8")
    bad.write_text(
        text.replace('"$UPM_PYTHON" -I -m upm_ci gate', 'echo "${{ inputs.tag }}"'),
        encoding="utf-8",
    )
    proc = run_tool("zizmor", "--offline", "--persona", "auditor", "--no-progress", str(bad))
    assert proc.returncode != 0
    assert "template-injection" in proc.stdout + proc.stderr


# --- our own rules --------------------------------------------------------------------------
@pytest.mark.parametrize("path", [*ACTIONS.values(), *WORKFLOWS], ids=lambda p: p.parent.name)
def test_every_uses_is_local_or_pinned_by_full_sha_with_a_version(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for ref in all_uses(path):
        if ref.startswith("./"):
            continue
        assert SHA_PIN.match(ref), f"{path}: {ref} is not pinned by a 40-hex commit SHA"
        line = next(ln for ln in text.splitlines() if ref in ln)
        assert re.search(r"# v?\d+\.\d+\.\d+", line), f"{path}: {ref} has no # vX.Y.Z comment"


@pytest.mark.parametrize("path", [*ACTIONS.values(), *WORKFLOWS], ids=lambda p: p.parent.name)
def test_no_expression_inside_any_script(path: Path) -> None:
    for step in steps_of(path):
        assert "${{" not in step.get("run", ""), f"{path}: step {step.get('id')} expands ${{{{"


def test_composites_reach_shared_code_through_the_action_path() -> None:
    """A composite's `uses: ./x` would resolve against the caller's workspace."""
    for name, path in ACTIONS.items():
        for step in steps_of(path):
            assert not step.get("uses", "").startswith("./"), f"{name}: {step['uses']}"
            assert "github.action_path" not in step.get("run", "")


@pytest.mark.parametrize("phase", PHASES)
def test_every_upm_variable_is_an_option_of_its_phase(phase: str) -> None:
    command = cli.commands[phase]
    known = {p.envvar for p in command.params if isinstance(p.envvar, str)}
    # the steps that run the phase (the gate's code-review check has a step of its own)
    runs = [s for s in steps_of(ACTIONS[phase]) if f"-m upm_ci {phase}" in s.get("run", "")]
    assert any(s.get("id") == "run" for s in runs), f"{phase}: no step `run`"
    exported: set[str] = set()
    for run in runs:
        exported |= {k for k in run["env"] if k.startswith("UPM_")} - SCRIPT_ENV
        exported |= set(re.findall(r"export (UPM_\w+)=", run["run"]))
        flags = re.findall(r" --([a-z][a-z-]*)", run["run"])
        exported |= {"UPM_" + flag.upper().replace("-", "_") for flag in flags}
    assert exported - known == set(), f"{phase}: not options of upm-ci {phase}"
    options = {p.envvar for p in command.params if isinstance(p, click.Option) and p.envvar}
    assert options - exported == set(), f"{phase}: options the action cannot set"


def test_the_whole_release_action_sets_only_real_options() -> None:
    for step in steps_of(ACTIONS["."]):
        phase = step.get("id")
        if phase not in PHASES:
            continue
        known = {p.envvar for p in cli.commands[phase].params if isinstance(p.envvar, str)}
        assert set(step["env"]) - SCRIPT_ENV - known == set(), phase
        assert re.match(
            rf'exec (env (-u INPUT_[A-Z-]+ )+)?"\$UPM_PYTHON" -I -m upm_ci {phase}', step["run"]
        )


@pytest.mark.parametrize("path", list(ACTIONS.values()), ids=lambda p: p.parent.name)
def test_docker_steps_run_only_with_an_image(path: Path) -> None:
    """Third-party Docker steps only with `image` or once upm-ci says it built an image; the
    upm-ci steps always run and decide themselves from `image` or the project's config."""
    for step in steps_of(path):
        upm_ci = r'^(exec )?(env (-u INPUT_[A-Z-]+ )+)?"\$UPM_PYTHON" -I -m upm_ci \w+'
        if re.search(upm_ci, step.get("run", ""), re.M):
            continue
        uses_docker = step.get("uses", "").startswith(DOCKER_ACTIONS)
        runs_docker = re.search(r"\b(cosign|docker)\b", step.get("run", ""))
        image_step = "inputs.image" in str(step.get("env", {})) or step.get("id") == "image"
        if uses_docker or runs_docker or image_step:
            condition = step.get("if", "")
            built = re.search(r"steps\.\w+\.outputs\.image-[\w-]+ != ''", condition)
            assert "inputs.image != ''" in condition or built, f"{path}: {step}"


def test_trivy_is_pinned_to_the_release_made_after_the_tag_rewrite() -> None:
    text = ACTIONS["sbom"].read_text(encoding="utf-8")
    assert "aquasecurity/trivy-action@57a97c7e7821a5776cebc9bb87c984fa69cba8f1 # v0.35.0" in text
    assert "force-pushed" in text


def test_phase_actions_describe_themselves() -> None:
    for name, path in ACTIONS.items():
        data = load(path)
        assert data["name"].startswith("upm-release") and data["description"], name
        assert data["runs"]["using"] == "composite", name
        assert {"icon", "color"} <= set(data["branding"]), name
        for input_name, spec in data.get("inputs", {}).items():
            assert re.fullmatch(r"[a-z][a-z0-9-]*", input_name), f"{name}: {input_name}"
            assert spec.get("description") and "default" in spec, f"{name}: {input_name}"


# --- READMEs ----------------------------------------------------------------------------------
def readme_table(text: str, heading: str) -> list[list[str]]:
    """Rows of the Markdown table under ``## heading``."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")]
    return [
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        for row in rows[2:]
    ]


def unquote(cell: str) -> str:
    return "" if cell == '`""`' else cell.strip("`")


@pytest.mark.parametrize("directory", [*PHASES, "actions/setup"])
def test_readme_tables_match_the_action(directory: str) -> None:
    data = load(ACTIONS[directory])
    text = (REPO_ROOT / directory / "README.md").read_text(encoding="utf-8")
    inputs = {unquote(r[0]): (unquote(r[1]), r[2]) for r in readme_table(text, "Inputs")}
    expected = {n: (str(s["default"]), s["description"]) for n, s in data["inputs"].items()}
    assert inputs == expected
    outputs = {unquote(r[0]): r[1] for r in readme_table(text, "Outputs")}
    assert outputs == {n: s["description"] for n, s in data["outputs"].items()}


def test_the_readme_check_notices_drift() -> None:
    text = (REPO_ROOT / "gate" / "README.md").read_text(encoding="utf-8")
    drifted = text.replace("| `report-json` | `gate-report.json` |", "| `report-json` | `x` |")
    assert drifted != text
    rows = {unquote(r[0]): unquote(r[1]) for r in readme_table(drifted, "Inputs")}
    assert rows["report-json"] != load(ACTIONS["gate"])["inputs"]["report-json"]["default"]


# --- the tool venv's lock and setup scripts ---------------------------------------------------
def lock_pins() -> dict[str, list[str]]:
    """Package -> pinned versions (one per environment marker) in requirements.txt."""
    pins: dict[str, list[str]] = {}
    for line in (SETUP / "requirements.txt").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", line)
        if match:
            pins.setdefault(canonicalize_name(match[1]), []).append(match[2])
    return pins


def test_lock_pins_every_dependency_with_hashes() -> None:
    project = read_toml(REPO_ROOT / "pyproject.toml")
    pins = lock_pins()
    extras = project["project"]["optional-dependencies"]
    # the light install and every extra a phase needs: the actions run them all
    for spec in project["project"]["dependencies"] + extras["pipeline"] + extras["image"]:
        req = Requirement(spec)
        assert canonicalize_name(req.name) in pins, f"{req.name} is not in the lock"
        for version in pins[canonicalize_name(req.name)]:
            assert req.specifier.contains(version, prereleases=True), f"{req.name}=={version}"
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (SETUP / "requirements.txt").read_text())
    for block in blocks:
        if re.match(r"^[A-Za-z0-9_.-]+==", block):
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_lock_covers_python_310_to_313_on_every_os() -> None:
    """A universal lock: markers, not one platform's resolution, choose the backports."""
    text = (SETUP / "requirements.txt").read_text(encoding="utf-8")
    assert "python_full_version < '3.11'" in text  # tomli and friends for 3.10
    assert "sys_platform == 'win32'" in text
    assert "os_name == 'nt'" in text


def test_make_lock_regenerates_the_universal_lock_it_is_checked_against() -> None:
    """The lock has no header naming its command; ``make lock`` is where the command lives."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    for flag in ("uv pip compile pyproject.toml", "--generate-hashes", "--universal"):
        assert flag in recipe
    assert "--python-version 3.10" in recipe and "-o actions/setup/requirements.txt" in recipe
    assert "uv pip compile -" in recipe and "-o actions/setup/uv.txt" in recipe


def uv_lock_hashes() -> tuple[str, list[str]]:
    """The uv version pinned in uv.txt and the sha256 of each of its files."""
    text = (SETUP / "uv.txt").read_text(encoding="utf-8")
    pinned = re.findall(r"^uv==([^ \\]+)", text, re.M)
    assert len(pinned) == 1, "uv.txt pins exactly one uv"
    return pinned[0], re.findall(r"--hash=sha256:([0-9a-f]{64})", text)


def test_uv_lock_pins_uv_for_every_runner_platform() -> None:
    """uv.txt holds only uv, ``==`` with a hash for each wheel: every hosted runner is covered."""
    version, hashes = uv_lock_hashes()
    requirements = [
        line for line in (SETUP / "uv.txt").read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    ]  # fmt: skip
    assert requirements == [f"uv=={version} \\"]
    # manylinux x86_64/aarch64, musllinux x86_64 (aarch64 shares a wheel), macOS x86_64/arm64,
    # Windows x86_64/arm64 at least; uv publishes more (armv7, i686, ppc64le, s390x, ...).
    assert len(set(hashes)) >= 7


def run_script(
    name: str, env: dict[str, str], tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    output = tmp_path / f"{name}.output"
    output.write_text("")
    proc = subprocess.run(
        ["bash", str(SETUP / name)],
        env={**os.environ, "GITHUB_OUTPUT": str(output), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return proc, outputs


def test_find_python_reports_a_recent_python(tmp_path: Path) -> None:
    proc, outputs = run_script("find-python.sh", {"UPM_BASE_PYTHON": sys.executable}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert outputs == {"found": "true", "python": sys.executable}


def test_find_python_reports_none_when_only_an_old_python_exists(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3", "python"):  # what a Python < 3.10 answers to the version check
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    output = tmp_path / "out"
    bash = shutil.which("bash")
    assert bash
    proc = subprocess.run(
        [bash, str(SETUP / "find-python.sh")],
        env={"PATH": str(bin_dir), "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert output.read_text().splitlines() == ["found=false", "python="]
    assert "setting one up" in proc.stdout


def prepared_tool_venv(venv: Path) -> Path:
    """A tool venv carrying the lock's key whose packages are this test environment's.

    What setup.sh would install from the lock is already installed here; a ``.pth`` file
    lends it, so tests exercise the reuse path without downloading the lock again. The same
    venv ``upm-ci rehearse --workflow`` gives its act runs.
    """
    from upm_ci.rehearse_workflow import tool_venv

    return tool_venv(REPO_ROOT, venv)


def test_setup_reuses_a_venv_whose_key_matches(tmp_path: Path) -> None:
    venv = prepared_tool_venv(tmp_path / "venv")
    env = {
        "UPM_BASE_PYTHON": str(Path(sys.base_prefix) / "bin" / "python3"),
        "UPM_TOOL_VENV": str(venv),
    }
    proc, outputs = run_script("setup.sh", env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "reusing tool venv" in proc.stdout
    assert outputs == {"python": str(venv / "bin" / "python")}
    version = subprocess.run(
        [outputs["python"], "-I", "-m", "upm_ci", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and "upm-ci" in version.stdout


def test_setup_refuses_a_directory_that_is_not_its_venv(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    env = {"UPM_BASE_PYTHON": sys.executable, "UPM_TOOL_VENV": str(precious)}
    proc, outputs = run_script("setup.sh", env, tmp_path)
    assert proc.returncode == 2
    assert "is not an upm-release tool venv" in proc.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    assert outputs == {}


@pytest.mark.slow
def test_setup_installs_the_lock_and_then_reuses_it(tmp_path: Path) -> None:
    """The real install from the hash-pinned lock (uv when on PATH, else pip)."""
    venv = tmp_path / "tool"
    base = str(Path(sys.base_prefix) / "bin" / "python3")
    env = {"UPM_BASE_PYTHON": base, "UPM_TOOL_VENV": str(venv)}
    if shutil.which("uv", path=os.environ["PATH"]) is None and (BIN / "uv").exists():
        env["PATH"] = f"{BIN}:{os.environ['PATH']}"
    first, outputs = run_script("setup.sh", env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "tool venv ready" in first.stdout
    second, _ = run_script("setup.sh", env, tmp_path)
    assert "reusing tool venv" in second.stdout
    check = subprocess.run(
        [outputs["python"], "-I", "-c", "import sigstore, github, pip_audit, upm_ci.cli"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def env_without_uv(runner_temp: Path) -> dict[str, str]:
    """PATH with no directory that holds a ``uv``, UPM_NO_UV unset: a hosted runner's case."""
    keep = [p for p in os.environ["PATH"].split(os.pathsep) if p and not (Path(p) / "uv").exists()]
    runner_temp.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.pathsep.join(keep), "UPM_NO_UV": "", "RUNNER_TEMP": str(runner_temp)}


def setup_copy(tmp_path: Path) -> Path:
    """actions/setup and upm_ci copied as an action checkout holds them; returns its setup."""
    copy = tmp_path / "upm-release"
    shutil.copytree(SETUP, copy / "actions" / "setup")
    shutil.copytree(REPO_ROOT / "upm_ci", copy / "upm_ci", ignore=shutil.ignore_patterns("*.pyc"))
    return copy / "actions" / "setup"


@pytest.mark.slow
def test_setup_without_uv_on_path_installs_with_the_bootstrapped_uv(tmp_path: Path) -> None:
    """No uv on PATH: uv.txt's uv is downloaded once, installs the lock, and is reused."""
    env = env_without_uv(tmp_path / "runner-temp")
    assert shutil.which("uv", path=env["PATH"]) is None
    base = str(Path(sys.base_prefix) / "bin" / "python3")
    version, _ = uv_lock_hashes()
    first, outputs = run_script(
        "setup.sh", {**env, "UPM_BASE_PYTHON": base, "UPM_TOOL_VENV": str(tmp_path / "a")}, tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert f"installed with uv {version}" in first.stdout
    cached = list((tmp_path / "runner-temp").glob("upm-release-uv-*/uv"))
    assert len(cached) == 1
    check = subprocess.run(
        [outputs["python"], "-I", "-c", "import sigstore, github, pip_audit, upm_ci.cli"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    freeze = subprocess.run(
        [outputs["python"], "-I", "-m", "pip", "freeze", "--all"], capture_output=True, text=True
    ).stdout
    assert "sigstore==" in freeze and not re.search(r"^uv==", freeze, re.M)  # uv is not a dep
    second, _ = run_script(
        "setup.sh", {**env, "UPM_BASE_PYTHON": base, "UPM_TOOL_VENV": str(tmp_path / "b")}, tmp_path
    )
    assert second.returncode == 0, second.stderr
    assert f"reusing uv from {cached[0].parent}" in second.stderr
    assert f"installed with uv {version}" in second.stdout


@pytest.mark.slow
def test_setup_refuses_a_uv_that_does_not_match_uv_lock(tmp_path: Path) -> None:
    """A tampered uv.txt hash: exit 2 naming uv.txt, no pip fallback, nothing installed."""
    setup = setup_copy(tmp_path)
    _, hashes = uv_lock_hashes()
    text = (setup / "uv.txt").read_text()
    for digest in hashes:  # every platform's wheel, so whichever one pip picks here
        text = text.replace(digest, digest[::-1])
    (setup / "uv.txt").write_text(text)
    venv = tmp_path / "tool"
    env = {
        **os.environ,
        **env_without_uv(tmp_path / "runner-temp"),
        "UPM_BASE_PYTHON": str(Path(sys.base_prefix) / "bin" / "python3"),
        "UPM_TOOL_VENV": str(venv),
    }
    proc = subprocess.run(
        ["bash", str(setup / "setup.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "does not match the hashes in" in proc.stderr and "uv.txt" in proc.stderr
    assert "with pip" not in proc.stdout
    assert not venv.exists()
    assert not list((tmp_path / "runner-temp").rglob("uv")), "a refused uv was kept"
    assert not list((tmp_path / "runner-temp").rglob("*.whl"))


@pytest.mark.slow
def test_setup_says_so_and_uses_pip_when_no_uv_can_be_had(tmp_path: Path) -> None:
    """No index and no wheel for uv: one line, then plain venv + pip (here also offline)."""
    wheels = tmp_path / "no-wheels"
    wheels.mkdir()
    venv = tmp_path / "tool"
    env = {
        **env_without_uv(tmp_path / "runner-temp"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_CONFIG_FILE": os.devnull,
        "UPM_BASE_PYTHON": str(Path(sys.base_prefix) / "bin" / "python3"),
        "UPM_TOOL_VENV": str(venv),
    }
    proc, outputs = run_script("setup.sh", env, tmp_path)
    assert "pip download of uv failed" in proc.stderr
    assert "no uv for this runner (see above); installing the lock with pip" in proc.stdout
    assert (venv / "bin" / "python").exists()  # the venv pip made; offline, pip then fails
    assert proc.returncode != 0 and outputs == {}
    assert not (venv / ".upm-release-key").exists()


def test_the_reusable_workflow_refuses_an_upm_release_ref_that_is_not_a_commit_sha(
    tmp_path: Path,
) -> None:
    """A branch or tag moves after review; only a full SHA pins the phase actions that run."""
    workflow = load(REPO_ROOT / ".github" / "workflows" / "upm-release.yml")
    first = workflow["jobs"]["guard"]["steps"][0]
    assert first["env"] == {"UPM_RELEASE_REF": "${{ inputs.upm-release-ref }}"}
    assert "${{" not in first["run"]
    script = tmp_path / "check.sh"
    script.write_text(first["run"])

    def check(value: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "UPM_RELEASE_REF": value}
        return subprocess.run(
            ["bash", "-e", str(script)], env=env, capture_output=True, text=True, check=False
        )

    sha = "0123456789abcdef0123456789abcdef01234567"
    assert check(sha).returncode == 0
    for value in (
        "main",
        "v1",
        sha[:7],
        sha.upper(),
        sha + "0",
        f"{sha}\nmain",
        "",
        "refs/heads/main",
    ):
        done = check(value)
        assert done.returncode == 1, value
        assert done.stdout.startswith("::error::upm-release-ref must be the full"), done.stdout
