"""The whole ``upm-ci rehearse examples/upm-sample`` beside the plain tools run by hand.

The baseline is what a maintainer would type for the same checklist without upm-release:
a venv with the project and its test extra (``pip install .[test]``) and ``pytest`` in it (the
checklist's first row); ``python -m build``; a venv with the wheel and ``cyclonedx-py
environment`` over it; ``pip-audit --strict`` of that venv against OSV; ``sigstore sign`` of
the sdist, the wheel and the SBOM; ``twine upload`` of the two artifacts. It runs against the
same local services (OSV, Sigstore, pypiserver), started before its clock starts; the
rehearsal's time includes starting all of its stand-ins (GitHub, OSV, PyPI, Sigstore, OIDC,
S3).

Two rounds, as a maintainer runs them: the first makes every venv (both sides); the second is
the run again before tagging, where the maintainer reuses their test venv (``pip install
.[test]`` again refreshes the project in it) and the rehearsal reuses its cached test venv
(the project reinstalled). The second round's ratio is the one held to the target; the
first's is printed beside it. The rehearsal also does what the baseline does not: the gate's
other rows, a reproducibility rebuild, twine check, metadata and smoke-test checks, an SPDX
SBOM, provenance and SBOM attestations, a draft-first GitHub release, an audit log in S3 and
verification of everything it published (and, with a Docker engine, the container image).

The row runs with and without a Docker engine: with one, both sides build the example's image
on the same local base (and the rehearsal signs, pushes and verifies it); without one neither
does. ``UPM_BENCH_DOCKER=off python -m benchmarks rehearsal`` forces the case without one on a
machine that has an engine (``DOCKER_HOST`` points at a socket that is not there, for both
sides); the note says which case ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import BenchResult, stopwatch

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "upm-sample"
ROUNDS = 2
#: ``UPM_BENCH_DOCKER=off``: the engine address both sides get, where no engine is.
NO_ENGINE = "unix:///nonexistent/upm-bench-no-docker.sock"
_IGNORE = shutil.ignore_patterns("dist", "build", "*.egg-info", "__pycache__", ".venv")


def _clean_env() -> dict[str, str]:
    """The caller's environment without anything that would make a tool think it is in CI."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACTIONS_", "UPM_"))
    }


def _run(argv: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{what} exited {proc.returncode}: {tail[0][:200]}")


def rehearse_seconds(work: Path, cache: Path) -> tuple[float, str]:
    """Wall time of ``upm-ci rehearse`` and its phases' times; raises unless it passes."""
    out = work / "rehearsal"
    start = time.perf_counter()
    env = {**_clean_env(), "UPM_CACHE_DIR": str(cache)}
    env.pop("CI", None)  # a maintainer's machine: the rehearsal may reuse its test venv
    proc = subprocess.run(
        # --image-base standin: with a Docker engine the image is built from a local base
        # (nothing can be pulled here); without one the image step is skipped either way.
        [str(BIN / "upm-ci"), "rehearse", str(EXAMPLE), "--out", str(out)]
        + ["--image-base", "standin"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        failed = [ln.split()[0] for ln in proc.stdout.splitlines() if " fail " in f" {ln} "]
        errors = [ln for ln in proc.stderr.splitlines() if "error" in ln][-1:]
        why = f"phase {failed[0]} failed" if failed else (errors or ["no phase table"])[0]
        raise RuntimeError(
            f"upm-ci rehearse exited {proc.returncode} ({why[:200]}); "
            "this benchmark runs once the rehearsal passes"
        )
    phases = json.loads((out / "rehearsal.json").read_text(encoding="utf-8"))["phases"]
    return seconds, ", ".join(f"{p['phase']} {p['seconds']:.1f} s" for p in phases)


def by_hand_seconds(work: Path, test_venv: Path, image_base: str) -> float:
    """Wall time of the plain tools, in order, against already running local services.

    ``test_venv`` is the maintainer's test venv: made when it does not exist yet, reused
    (the project reinstalled into it) when it does. With ``image_base`` (a Docker engine is
    here), it also builds the example's image on that base and runs syft over it."""
    from upm_ci.image.sbom import syft_command
    from upm_ci.standins.oidc import mint_github_token
    from upm_ci.standins.osv import OsvStandIn
    from upm_ci.standins.pypi import PypiStandIn
    from upm_ci.standins.sigstore_server import SigstoreStandIn

    project = work / "by-hand"
    shutil.copytree(EXAMPLE, project, ignore=_IGNORE)
    env = {**_clean_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    dist = project / "dist"
    token = mint_github_token(repository="rehearsal/upm-sample", ref="refs/tags/v1.2.0")
    with (
        OsvStandIn() as osv,
        PypiStandIn(password="pypi-bench-token") as pypi,
        SigstoreStandIn(workdir=work / "sigstore") as sigstore,
        stopwatch() as elapsed,
    ):
        tests_python = test_venv / "bin" / "python"
        if not tests_python.exists():
            _run([sys.executable, "-m", "venv", str(test_venv)], project, env, "test venv")
        _run([str(tests_python), "-m", "pip", "install", "-q", ".[test]"], project, env, "pip")
        _run([str(tests_python), "-m", "pytest", "-q"], project, env, "pytest")
        _run([sys.executable, "-m", "build", "--outdir", str(dist), "."], project, env, "build")
        wheel = next(dist.glob("*.whl"))
        sdist = next(dist.glob("*.tar.gz"))
        venv = project / ".venv"
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], project, env, "venv")
        python = venv / "bin" / "python"
        pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)]
        _run(pip, project, env, "pip install")
        sbom = dist / "upm_sample-1.2.0.cdx.json"
        cdx = [str(BIN / "cyclonedx-py"), "environment", str(python), "-o", str(sbom)]
        _run(cdx, project, env, "cyclonedx-py")
        site = next((venv / "lib").glob("python*/site-packages"))
        audit = [str(BIN / "pip-audit"), "--strict", "-s", "osv", "--osv-url", osv.query_url]
        _run(audit + ["--path", str(site)], project, env, "pip-audit")
        sign = [str(BIN / "sigstore"), "--trust-config", str(sigstore.trust_config_path)]
        sign += ["sign", "--identity-token", token, str(sdist), str(wheel), str(sbom)]
        _run(sign, project, env, "sigstore sign")
        if image_base:  # with a Docker engine the rehearsal builds the image: so does this side
            wheels = [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(dist)]
            _run(wheels + [str(wheel)], project, env, "pip wheel")
            build = ["docker", "build", "--network", "none", "-t", "upm-sample:bench"]
            _run(build + ["--build-arg", f"BASE_IMAGE={image_base}", "."], project, env, "docker")
            archive = work / "image.tar"
            _run(["docker", "save", "-o", str(archive), "upm-sample:bench"], project, env, "save")
            syft = [*syft_command(), "scan", f"docker-archive:{archive}", "-q"]
            _run(syft + ["-o", f"cyclonedx-json={dist / 'image.cdx.json'}"], project, env, "syft")
        twine = [str(BIN / "twine"), "upload", "--non-interactive"]
        twine += ["--repository-url", pypi.upload_url, "-u", "__token__", "-p", pypi.password]
        _run(twine + [str(sdist), str(wheel)], project, env, "twine upload")
    return elapsed[0]


def docker_case() -> tuple[str, str]:
    """With a Docker engine: the local base image both sides build on (made before either
    clock starts) and ""; without one (or with ``UPM_BENCH_DOCKER=off``, which points
    ``DOCKER_HOST`` nowhere for both sides): "" and why there is no engine."""
    from upm_ci.image.engine import engine_problem

    if os.environ.get("UPM_BENCH_DOCKER", "").strip().lower() in ("off", "0", "no", "false"):
        os.environ["DOCKER_HOST"] = NO_ENGINE  # the rehearsal's own process inherits it
    problem = engine_problem()
    if problem:
        return "", problem
    from upm_ci.standins.base_image import make_base_image

    return make_base_image(), ""


def run() -> list[BenchResult]:
    if shutil.which("node") is None:
        raise RuntimeError("the rehearsal needs Node.js for the local Sigstore")
    image_base, no_engine = docker_case()
    rounds: list[tuple[float, float, str]] = []  # (ours, theirs, phases), first run first
    with tempfile.TemporaryDirectory(prefix="upm-bench-rehearsal-cache-") as keep:
        cache, test_venv = Path(keep) / "cache", Path(keep) / "maintainer-test-venv"
        for _ in range(ROUNDS):  # alternating, so drift (network, page cache) hits both sides
            with tempfile.TemporaryDirectory(prefix="upm-bench-rehearsal-") as tmp:
                theirs = by_hand_seconds(Path(tmp), test_venv, image_base)
            with tempfile.TemporaryDirectory(prefix="upm-bench-rehearsal-") as tmp:
                ours, phases = rehearse_seconds(Path(tmp), cache)
            rounds.append((ours, theirs, phases))
    (first_ours, first_theirs, _), (ours, theirs, phases) = rounds[0], rounds[-1]
    return [
        BenchResult(
            name="rehearse examples/upm-sample (run again)",
            ours=ours,
            theirs=theirs,
            baseline="venv + pytest + build + cyclonedx-py + pip-audit + sigstore sign + twine",
            target=1.3,
            note=(
                f"second of {ROUNDS} alternating runs: both sides reuse their test venv. "
                f"First run (every venv new): ours {first_ours:.1f} s, theirs "
                f"{first_theirs:.1f} s, ratio {first_ours / first_theirs:.2f}. Ours also runs "
                "the gate's other rows, a reproducibility rebuild, twine check, metadata and "
                "smoke test, writes SPDX, provenance and SBOM attestations, makes a GitHub "
                "release, an S3 audit log and verifies everything published"
                + (
                    f"; both build the image on {image_base} and run syft, ours also signs, "
                    "pushes and verifies it"
                    if image_base
                    else f"; {no_engine}: neither side builds the image"
                )
                + "; its time "
                f"includes starting six local stand-ins, the baseline's does not. Phases: {phases}."
            ),
        )
    ]
