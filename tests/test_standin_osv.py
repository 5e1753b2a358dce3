"""The OSV stand-in: range matching, the HTTP API pip-audit uses, faults, its command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from upm_ci.standins.osv import OsvStandIn, affects, demo_db, load_db

TWO_RANGES = {
    "id": "GHSA-test-0001",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Some_Pkg"},
            "ranges": [
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.26.19"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "2.0.0"}, {"fixed": "2.2.2"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "3.0"}, {"last_affected": "3.1"}]},
            ],
            "versions": ["9.9.9"],
        }
    ],
}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.0", True),
        ("1.26.19", False),
        ("1.30", False),
        ("2.0.0", True),
        ("2.2.1", True),
        ("2.2.2", False),
        ("3.1", True),
        ("3.1.1", False),
        ("9.9.9", True),
        ("not-a-version", False),
    ],
)
def test_ranges_follow_osv_semantics(version: str, expected: bool) -> None:
    assert affects(TWO_RANGES, "some-pkg", version, "PyPI") is expected


def test_other_ecosystems_and_withdrawn_advisories_never_match() -> None:
    assert not affects(TWO_RANGES, "some-pkg", "1.0", "npm")
    assert not affects(
        {**TWO_RANGES, "withdrawn": "2024-01-01T00:00:00Z"}, "some-pkg", "1.0", "PyPI"
    )


def test_demo_db_holds_real_advisories() -> None:
    ids = {a["id"] for a in demo_db()}
    assert {"GHSA-jjg7-2v4v-x38h", "GHSA-9wx4-h78v-vm56", "GHSA-h75v-3vvj-5mfj"} <= ids
    idna = next(a for a in demo_db() if a["id"] == "GHSA-jjg7-2v4v-x38h")
    assert "CVE-2024-3651" in idna["aliases"]


def test_query_answers_matching_vulns_and_empty_object_otherwise(osv_standin: OsvStandIn) -> None:
    hit = requests.post(
        osv_standin.query_url,
        json={"package": {"name": "IDNA", "ecosystem": "PyPI"}, "version": "3.6"},
        timeout=5,
    )
    assert hit.status_code == 200
    assert [v["id"] for v in hit.json()["vulns"]] == ["GHSA-jjg7-2v4v-x38h"]
    miss = requests.post(
        osv_standin.query_url,
        json={"package": {"name": "idna", "ecosystem": "PyPI"}, "version": "3.7"},
        timeout=5,
    )
    assert miss.json() == {}
    assert [(q.name, q.version) for q in osv_standin.queries] == [("IDNA", "3.6"), ("idna", "3.7")]


def test_querybatch_and_vuln_lookup(osv_standin: OsvStandIn) -> None:
    batch = requests.post(
        f"{osv_standin.url}/v1/querybatch",
        json={
            "queries": [
                {"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.31.0"},
                {"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.32.0"},
            ]
        },
        timeout=5,
    ).json()
    assert batch["results"][0]["vulns"][0]["id"] == "GHSA-9wx4-h78v-vm56"
    assert batch["results"][1] == {}
    found = requests.get(f"{osv_standin.url}/v1/vulns/GHSA-9wx4-h78v-vm56", timeout=5)
    assert found.json()["aliases"] == ["CVE-2024-35195"]
    assert requests.get(f"{osv_standin.url}/v1/vulns/GHSA-nope", timeout=5).status_code == 404


def test_malformed_query_is_400(osv_standin: OsvStandIn) -> None:
    answer = requests.post(osv_standin.query_url, data=b"{not json", timeout=5)
    assert answer.status_code == 400
    answer = requests.post(osv_standin.query_url, json={"version": "1"}, timeout=5)
    assert answer.status_code == 400


def test_failing_answers_503_until_switched_off(osv_standin: OsvStandIn) -> None:
    query = {"package": {"name": "idna", "ecosystem": "PyPI"}, "version": "3.6"}
    osv_standin.set_failing(True)
    assert requests.post(osv_standin.query_url, json=query, timeout=5).status_code == 503
    osv_standin.set_failing(False)
    osv_standin.fail_next(1)
    assert requests.post(osv_standin.query_url, json=query, timeout=5).status_code == 503
    assert requests.post(osv_standin.query_url, json=query, timeout=5).status_code == 200
    with OsvStandIn(fail=True) as broken:
        assert requests.post(broken.query_url, json=query, timeout=5).status_code == 503


def test_custom_db_replaces_the_demo(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    db.write_text(json.dumps({"vulns": [TWO_RANGES]}))
    with OsvStandIn(load_db(db)) as osv:
        answer = requests.post(
            osv.query_url,
            json={"package": {"name": "some-pkg", "ecosystem": "PyPI"}, "version": "2.1"},
            timeout=5,
        ).json()
        assert answer["vulns"][0]["id"] == "GHSA-test-0001"
    db.write_text('[{"no": "id"}]')
    with pytest.raises(ValueError, match="each with an id"):
        load_db(db)


def test_command_line_serves_until_terminated(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "upm_ci.standins.osv", "--port", "0", "--ready-file", str(ready)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        answer = requests.post(
            info["query_url"],
            json={"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "3.1.3"},
            timeout=5,
        ).json()
        assert answer["vulns"][0]["id"] == "GHSA-h75v-3vvj-5mfj"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0


def test_command_line_rejects_a_bad_db(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    done = subprocess.run(
        [sys.executable, "-m", "upm_ci.standins.osv", "--db", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "bad.json" in done.stderr and "Traceback" not in done.stderr
