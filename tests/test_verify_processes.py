"""Bundles verified in forked processes: same report as one process, a failed worker's share
redone here, and the choice of how many processes; --processes through the CLI."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from tests.fixtures.release_kit import (
    REPOSITORY,
    SDIST,
    TAG,
    WHEEL,
    ReleaseKit,
    release_dir,
    release_kit,
    release_policy,
)
from upm_ci.cli import main
from upm_ci.errors import InputError
from upm_ci.verify import checks as verify
from upm_ci.verify.checks import ForkError, bundle_processes, forked_map
from upm_ci.verify.phase import verify_release

__all__ = ["release_dir", "release_kit"]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux")


def report(kit: ReleaseKit, dist: Path, processes: int) -> dict[str, object]:
    return verify_release(
        dist,
        policy=release_policy(),
        trust_config=kit.trust_config,
        offline=True,
        manifest=None,
        gpg_public_key=None,
        gpg_fingerprint=kit.gpg.fingerprint,
        processes=processes,
    ).to_json()


@linux_only
def test_forked_and_single_process_reports_are_identical(
    release_kit: ReleaseKit, release_dir: Path, mocker: MockerFixture
) -> None:
    (release_dir / WHEEL).write_bytes(b"changed")  # one bundle must fail, in a worker or here
    mocker.patch.object(verify, "MIN_BUNDLES_PER_PROCESS", 1)
    fork = mocker.spy(os, "fork")

    single = report(release_kit, release_dir, processes=1)
    assert fork.call_count == 0
    forked = report(release_kit, release_dir, processes=3)

    assert fork.call_count == 2  # this process takes the third share itself
    assert forked == single and forked["passed"] is False
    checks = {a["name"]: a["checks"] for a in forked["artifacts"]}  # type: ignore[attr-defined]
    (wheel,) = [c for c in checks[WHEEL] if c["check"] == "sigstore"]
    assert wheel["status"] == "fail" and "digest mismatch" in wheel["reason"]
    (sdist,) = [c for c in checks[SDIST] if c["check"] == "sigstore"]
    assert sdist["status"] == "pass"


@linux_only
def test_a_failed_worker_s_bundles_are_verified_here(
    release_kit: ReleaseKit,
    release_dir: Path,
    mocker: MockerFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mocker.patch.object(verify, "MIN_BUNDLES_PER_PROCESS", 1)
    mocker.patch.object(verify, "forked_map", autospec=True, side_effect=ForkError("worker 7"))

    forked = report(release_kit, release_dir, processes=2)

    assert forked == report(release_kit, release_dir, processes=1) and forked["passed"] is True
    assert "worker 7; verifying its bundles here" in caplog.text


@linux_only
def test_forked_map_returns_results_in_order() -> None:
    parent = os.getpid()
    chunks = [["a"], ["b", "c"], ["d"]]
    results = forked_map(lambda chunk: [(c, os.getpid() == parent) for c in chunk], chunks)
    assert results == [[("a", True)], [("b", False), ("c", False)], [("d", False)]]


@linux_only
def test_with_fewer_workers_this_process_takes_the_chunks_no_worker_started() -> None:
    """A worker the machine slows down (here: 5x) holds nobody up: this process, done with
    the first chunk, takes the last unstarted ones; the results stay in chunk order."""
    parent = os.getpid()

    def work(chunk: list[str]) -> list[tuple[str, bool]]:
        time.sleep(0.02 if os.getpid() == parent else 0.1)
        return [(c, os.getpid() == parent) for c in chunk]

    chunks = [[str(i)] for i in range(20)]
    results = forked_map(work, chunks, workers=1)
    assert [r[0][0] for r in results] == [str(i) for i in range(20)]
    here = [i for i, r in enumerate(results) if r[0][1]]
    assert 0 in here and len(here) >= 5, here  # the worker took at most 15
    assert len(here) < 20, "the worker took some"


@linux_only
@pytest.mark.parametrize(
    ("fail", "message"),
    [
        (lambda: 1 / 0, "exit 1"),
        (lambda: os.kill(os.getpid(), signal.SIGKILL), f"killed by signal {signal.SIGKILL}"),
    ],
    ids=["exception", "killed"],
)
def test_forked_map_raises_when_a_worker_fails(fail: object, message: str) -> None:
    parent = os.getpid()

    def work(chunk: list[str]) -> list[str]:
        if os.getpid() != parent and chunk == ["b"]:
            fail()  # type: ignore[operator]
        return chunk

    with pytest.raises(ForkError, match=message):
        forked_map(work, [["a"], ["b"], ["c"]])


def test_how_many_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    per = verify.MIN_BUNDLES_PER_PROCESS
    monkeypatch.setattr(sys, "platform", "linux")
    assert bundle_processes(500, 2) == min(2, 500 // per)
    assert bundle_processes(per * 2 - 1, 4) == 1  # too few bundles to pay for a fork
    assert bundle_processes(per * 8, 4) == 4
    assert bundle_processes(per * 8, 1) == 1
    monkeypatch.setattr(sys, "platform", "darwin")
    assert bundle_processes(per * 8, 4) == 1


def test_processes_below_one_is_bad_input(
    release_kit: ReleaseKit,
    release_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(InputError, match="--processes 0"):
        report(release_kit, release_dir, processes=0)

    out = tmp_path / "report.json"
    args = ["verify", str(release_dir), "--project", str(tmp_path), "--repository", REPOSITORY]
    args += ["--ref", TAG, "--gpg-fingerprint", release_kit.gpg.fingerprint]
    args += ["--trust-config", str(release_kit.trust_config), "--report-json", str(out)]
    assert main([*args, "--processes", "0"]) == 2
    err = capsys.readouterr().err
    assert "--processes" in err and "Traceback" not in err and not out.exists()

    monkeypatch.setenv("UPM_PROCESSES", "2")
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["passed"] is True
