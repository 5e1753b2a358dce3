"""A host that cannot be reached is not a rate limit: one quick retry, then exit 3 naming the
whole host and saying it is unreachable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from upm_ci.errors import ServiceError
from upm_ci.retry import RetryPolicy, call_with_retry, classify, unreachable

UPM_CI = str(Path(sys.executable).with_name("upm-ci"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def test_dns_failure_and_refused_connection_are_unreachable() -> None:
    port = _closed_port()
    with pytest.raises(requests.ConnectionError) as refused:
        requests.get(f"http://127.0.0.1:{port}/x", timeout=5)
    assert unreachable(refused.value) == (f"127.0.0.1:{port}", "connection refused")
    with pytest.raises(requests.ConnectionError) as nxdomain:
        requests.get("https://api.upm-release-test.invalid/repos/o/n", timeout=5)
    assert unreachable(nxdomain.value) == (
        "api.upm-release-test.invalid",
        "its name does not resolve",
    )
    assert unreachable(ConnectionResetError("reset")) is None  # a reset is retried as before


def test_one_quick_retry_then_a_service_error_naming_the_host() -> None:
    port = _closed_port()
    calls: list[float] = []
    policy = RetryPolicy(attempts=6, base_delay=5.0, sleep=calls.append)

    def get() -> None:
        calls.append(-1)
        requests.get(f"http://127.0.0.1:{port}/x", timeout=5)

    with pytest.raises(ServiceError) as err:
        call_with_retry(get, what="GitHub API", classify=classify, policy=policy)
    assert calls.count(-1) == 2  # two attempts, not six
    (pause,) = [c for c in calls if c >= 0]
    assert pause <= 1.0  # a quick retry, whatever the backoff would say
    assert str(err.value).startswith(
        f"GitHub API: host unreachable: 127.0.0.1:{port} (connection refused)"
    )
    assert "rate-limiting" not in str(err.value)


def _verify(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPM_", "GITHUB_"))}
    return subprocess.run(
        [UPM_CI, "verify", "--github-release", "v1", "--repository", "o/n", *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=5,  # the promise: an unreachable host is reported within 5 s
    )


def test_verify_against_githubs_real_host_without_network_exits_3(tmp_path: Path) -> None:
    if _resolves("api.github.com"):
        pytest.skip("api.github.com resolves here: this machine has a network")
    proc = _verify(tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "host unreachable: api.github.com (its name does not resolve)" in proc.stderr
    assert "rate-limiting" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("where", ["nxdomain", "refused"])
def test_verify_against_an_unreachable_api_exits_3(tmp_path: Path, where: str) -> None:
    if where == "nxdomain":
        host, why = "api.upm-release-test.invalid", "its name does not resolve"
        url = f"https://{host}"
    else:
        host, why = f"127.0.0.1:{_closed_port()}", "connection refused"
        url = f"http://{host}"
    proc = _verify(tmp_path, "--github-api-url", url)
    assert proc.returncode == 3, proc.stderr
    assert f"host unreachable: {host} ({why})" in proc.stderr
    (error,) = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert error.startswith("upm-ci: error: GitHub release v1 of o/n: host unreachable:"), error


def test_verify_without_a_trust_config_names_the_tuf_host(tmp_path: Path) -> None:
    if _resolves("tuf-repo-cdn.sigstore.dev"):
        pytest.skip("tuf-repo-cdn.sigstore.dev resolves here: this machine has a network")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "a.txt").write_text("x")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPM_", "GITHUB_"))}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "c"))
    env["XDG_DATA_HOME"] = str(tmp_path / "d")  # no TUF root cached: it must be fetched
    proc = subprocess.run(
        [UPM_CI, "verify", "dist", "--repository", "o/n", "--ref", "v1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 3, proc.stderr
    assert "host unreachable: tuf-repo-cdn.sigstore.dev (its name does not resolve)" in proc.stderr
