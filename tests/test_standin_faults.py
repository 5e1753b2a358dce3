"""The one fault-injection interface of the stand-ins (``upm_ci.standins.faults``).

The plan is deterministic (same seed, same faults), every stand-in injects each kind it claims
(real requests to the real servers, the plan's counts saying which kind each request got), and
a whole rehearsal with ``--fault-seed 7`` passes through upm-ci's retries while every stand-in
injected faults.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import EXAMPLE
from upm_ci.cli import main
from upm_ci.standins import github as github_module
from upm_ci.standins import osv as osv_module
from upm_ci.standins.faults import FaultPlan, FaultRule
from upm_ci.standins.github import GITHUB_FAULT_KINDS, GitHubStandIn
from upm_ci.standins.osv import OsvStandIn
from upm_ci.standins.pypi import PypiStandIn
from upm_ci.standins.s3 import S3_FAULT_KINDS, S3StandIn
from upm_ci.standins.sigstore_server import SigstoreStandIn

REQUESTS = [("GET", f"/repos/o/r/releases/{n % 7}") for n in range(60)] + [
    ("POST", "/v1/query")
] * 40


def decisions(plan: FaultPlan) -> list[str | None]:
    return [plan.decide(method, path) for method, path in REQUESTS]


# --- the plan ------------------------------------------------------------------------------
def test_same_seed_same_faults_and_counts() -> None:
    kinds = ("5xx", "429", "reset", "slow")
    first, second = FaultPlan(0.3, 7, kinds), FaultPlan(0.3, 7, kinds)
    made = decisions(first)
    assert made == decisions(second)
    assert made != decisions(FaultPlan(0.3, 8, kinds))
    injected = [kind for kind in made if kind is not None]
    assert 0 < len(injected) < len(made)
    assert set(injected) <= {"500", "502", "503", "429", "reset", "slow"}
    assert first.counts() == second.counts() == {k: injected.count(k) for k in set(injected)}
    assert first.total == len(injected)


def test_same_seed_same_faults_whatever_the_threads() -> None:
    """Decisions hash the request and how often it was seen, not one shared random stream."""
    plan = FaultPlan(0.5, 3, ("503",))
    alone = FaultPlan(0.5, 3, ("503",))
    paths = [f"/p{n}" for n in range(20)]
    expected = {p: [alone.decide("GET", p) for _ in range(5)] for p in paths}
    got: dict[str, list[str | None]] = {}

    def worker(path: str) -> None:
        got[path] = [plan.decide("GET", path) for _ in range(5)]

    threads = [threading.Thread(target=worker, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == expected


def test_rules_win_skip_and_run_out() -> None:
    plan = FaultPlan()  # no random faults
    plan.add_rule(FaultRule("reset", method="POST", path_regex=r"/entries$", count=2, skip=1))
    plan.add_rule(FaultRule("403", path_regex=r"/simple/"))
    seen = [plan.decide("POST", "/api/v1/log/entries") for _ in range(4)]
    assert seen == [None, "reset", "reset", None]
    assert plan.decide("GET", "/api/v1/log/entries") is None
    assert plan.decide("GET", "/simple/x/") == "403"
    assert plan.decide("GET", "/simple/x/") is None
    assert plan.counts() == {"403": 1, "reset": 2}
    assert not plan.active


@pytest.mark.parametrize(
    "make",
    [
        lambda: FaultPlan(kinds=("teapot",)),
        lambda: FaultPlan(rate=1.5),
        lambda: FaultRule("nonsense"),
        lambda: OsvStandIn(fault_rate=0.1, fault_kinds=["secondary"]),
        lambda: S3StandIn(fault_rate=0.1, fault_kinds=["429"]),
    ],
)
def test_unknown_or_unsupported_kinds_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


# --- every stand-in injects what it claims -------------------------------------------------
def _probe_each_kind(
    plan: FaultPlan, request: Callable[[], requests.Response], normal: set[int]
) -> dict[str, requests.Response | None]:
    """Send requests until every kind of ``plan`` (rate 1) was injected at least once; check
    each answer against the kind the plan counted for it. Returns one answer per kind."""
    wanted = {k for k in plan.kinds if k != "5xx"} | ({"500", "502", "503"} & set(_concrete(plan)))
    seen: dict[str, requests.Response | None] = {}
    for _ in range(300):
        before = plan.counts()
        try:
            answer: requests.Response | None = request()
        except requests.ConnectionError:
            answer = None
        after = plan.counts()
        (kind,) = [k for k in after if after[k] != before.get(k, 0)]
        if kind in ("reset", "reset_after"):
            assert answer is None, f"{kind}: expected a dropped connection"
        elif kind == "slow":
            assert answer is not None and answer.status_code in normal, kind
        else:
            status = 403 if kind in ("secondary", "primary") else int(kind)
            assert answer is not None and answer.status_code == status, kind
            if kind == "429":
                assert answer.headers.get("Retry-After") == str(plan.retry_after)
        seen.setdefault(kind, answer)
        if wanted <= set(seen):
            return seen
    raise AssertionError(f"not every kind was injected: {sorted(wanted - set(seen))}")


def _concrete(plan: FaultPlan) -> tuple[str, ...]:
    return ("500", "502", "503") if "5xx" in plan.kinds else tuple(plan.kinds)


def _fresh_get(url: str, **kwargs: Any) -> requests.Response:
    with requests.Session() as session:  # a new connection: a reset never poisons the next
        return session.get(url, timeout=30, **kwargs)


def test_github_injects_each_kind() -> None:
    kinds = [k for k in GITHUB_FAULT_KINDS if k not in ("5xx",)]
    with GitHubStandIn(
        "s3cr3t-github-faults", fault_rate=1.0, fault_seed=5, fault_kinds=kinds, retry_after=0
    ) as gh:
        gh.add_repo("o", "r")
        seen = _probe_each_kind(
            gh.faults, lambda: _fresh_get(f"{gh.api_url}/repos/o/r"), normal={200}
        )
    secondary = seen["secondary"]
    assert secondary is not None and "secondary rate limit" in secondary.text
    primary = seen["primary"]
    assert primary is not None and primary.headers["X-RateLimit-Remaining"] == "0"


COMMON = ("5xx", "429", "reset", "slow")


def test_osv_injects_each_kind() -> None:
    query = {"package": {"name": "idna", "ecosystem": "PyPI"}, "version": "3.6"}

    def ask(osv: OsvStandIn) -> requests.Response:
        with requests.Session() as session:
            return session.post(osv.query_url, json=query, timeout=30)

    with OsvStandIn(fault_rate=1.0, fault_seed=5, fault_kinds=COMMON, retry_after=0) as osv:
        seen = _probe_each_kind(osv.faults, lambda: ask(osv), normal={200})
        assert osv.queries, "the slow answers were real answers"
    answer = seen["503"]
    assert answer is not None and answer.json()["code"] == 14


def test_pypi_injects_each_kind() -> None:
    with PypiStandIn(fault_rate=1.0, fault_seed=5, fault_kinds=COMMON, retry_after=0) as pypi:
        _probe_each_kind(
            pypi.faults, lambda: _fresh_get(pypi.simple_url, auth=pypi.auth), normal={200}
        )


def test_sigstore_injects_each_kind_in_front_of_the_node_server() -> None:
    with SigstoreStandIn(fault_rate=1.0, fault_seed=5, fault_kinds=COMMON, retry_after=0) as sig:
        assert sig.url != sig.node_url
        _probe_each_kind(sig.faults, lambda: _fresh_get(f"{sig.url}/healthz"), normal={200})
        config = json.loads(sig.trust_config_path.read_text())
        signing = json.dumps(config["signingConfig"])
        assert sig.url in signing and sig.node_url not in signing
        assert sig.node_url in json.dumps(config["trustedRoot"]), "the root is unchanged"
        # the Node server's own targeted rules still work beside the plan
        sig.inject_fault(418, path_prefix="/healthz")
        assert _fresh_get(f"{sig.node_url}/healthz").status_code == 418


def test_s3_injects_each_kind_with_s3_error_bodies() -> None:
    kinds = tuple(k for k in S3_FAULT_KINDS if k in COMMON)
    with S3StandIn(fault_rate=1.0, fault_seed=5, fault_kinds=kinds, retry_after=0) as s3:
        assert s3.url != s3.moto_url
        seen = _probe_each_kind(s3.faults, lambda: _fresh_get(s3.url), normal={200})
        s3.create_bucket("setup-bypasses-the-faults")  # moto directly
    answer = seen["503"]
    assert answer is not None and "<Code>SlowDown</Code>" in answer.text


def test_no_faults_asked_no_proxy() -> None:
    with S3StandIn() as s3:
        assert s3.url == s3.moto_url


@pytest.fixture
def osv_cli(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "upm_ci.standins.osv", "--ready-file", str(ready)]
        + ["--fault-rate", "1", "--fault-seed", "3", "--fault-kinds", "503"],
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), proc.stderr.read().decode() if proc.stderr else ""
        yield json.loads(ready.read_text())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_osv_command_line_takes_the_same_fault_flags(osv_cli: dict[str, Any]) -> None:
    query = {"package": {"name": "idna", "ecosystem": "PyPI"}, "version": "3.6"}
    answer = requests.post(osv_cli["query_url"], json=query, timeout=30)
    assert answer.status_code == 503


@pytest.mark.parametrize("module", [github_module, osv_module], ids=["github", "osv"])
def test_standin_command_lines_refuse_a_kind_they_cannot_inject(
    module: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert module.main(["--fault-rate", "0.1", "--fault-kinds", "5xx,teapot"]) == 2
    err = capsys.readouterr().err
    assert "cannot inject teapot" in err and "Traceback" not in err


def test_rehearse_refuses_an_unknown_fault_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["rehearse", str(EXAMPLE), "--out", str(tmp_path / "r")]
        + ["--fault-seed", "7", "--fault-kinds", "5xx,teapot"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--fault-kinds" in err and "teapot" in err and "Traceback" not in err


# --- a whole rehearsal with faults ---------------------------------------------------------
@pytest.mark.slow
def test_rehearsal_with_fault_seed_passes_and_every_standin_injected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rehearsal"
    code = main(
        ["rehearse", str(EXAMPLE), "--out", str(out), "--fault-seed", "7"]
        + ["--image-base", "standin"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    summary = json.loads((out / "rehearsal.json").read_text())
    injected = summary["faults_injected"]
    assert set(injected) == {"GitHub", "OSV", "PyPI", "Sigstore", "S3"}
    for label, counts in injected.items():
        assert sum(counts.values()) > 0, label
        assert f"faults injected by the {label} stand-in: {sum(counts.values())} (" in captured.out
    assert summary["passed"] is True
