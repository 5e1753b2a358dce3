"""The PyPI stand-in: real pypiserver answers as PyPI does for the cases publish relies on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.fixtures.pypi import PYPI_TOKEN, make_distributions
from upm_ci.errors import InputError, PolicyError
from upm_ci.publish import pypi
from upm_ci.standins.pypi import PypiStandIn


def _target(
    standin: PypiStandIn, password: str = PYPI_TOKEN, *, attestations: bool = False
) -> pypi.IndexTarget:
    return pypi.IndexTarget(
        standin.upload_url, standin.simple_url, password, attestations=attestations
    )


def _plan(paths: list[Path]) -> list[pypi.PlannedFile]:
    return [
        pypi.PlannedFile(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest(), "upload")
        for p in paths
    ]


def test_upload_lands_and_index_lists_sha256(pypi_standin: PypiStandIn, tmp_path: Path) -> None:
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    pypi.upload(_target(pypi_standin), "upm-sample", _plan(dists))
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dists}
    assert pypi_standin.files() == expected
    assert pypi.index_files(_target(pypi_standin), "upm-sample") == expected
    assert [u.status for u in pypi_standin.uploads] == [200, 200]


def test_same_file_twice_is_refused_and_reported_as_already_there(
    pypi_standin: PypiStandIn, tmp_path: Path
) -> None:
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    pypi.upload(_target(pypi_standin), "upm-sample", _plan(dists[:1]))
    # The same bytes again (an attempt whose answer was lost): the index refuses (pypiserver
    # 409, PyPI 400), and publish treats it as landed because the digests agree.
    pypi.upload(_target(pypi_standin), "upm-sample", _plan(dists[:1]))
    assert pypi_standin.uploads[-1].status in (400, 409)
    assert len(pypi_standin.files()) == 1


def test_wrong_password_is_403_and_an_input_error(
    pypi_standin: PypiStandIn, tmp_path: Path
) -> None:
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    with pytest.raises(InputError, match="refused the credentials"):
        pypi.upload(_target(pypi_standin, "wrong-token"), "upm-sample", _plan(dists))
    assert pypi_standin.uploads[0].status == 403
    assert pypi_standin.files() == {}


def test_capture_proxy_records_attestations(pypi_standin: PypiStandIn, tmp_path: Path) -> None:
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    for dist in dists:
        Path(f"{dist}.publish.attestation").write_text(json.dumps({"version": 1}))
    pypi.upload(_target(pypi_standin, attestations=True), "upm-sample", _plan(dists))
    assert all(
        json.loads(u.fields["attestations"][0]) == [{"version": 1}] for u in pypi_standin.uploads
    )
    assert {u.filename for u in pypi_standin.uploads} == {p.name for p in dists}


def test_attestations_requested_but_missing_is_bad_input(
    pypi_standin: PypiStandIn, tmp_path: Path
) -> None:
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    with pytest.raises(InputError, match="attestation missing"):
        pypi.upload(_target(pypi_standin, attestations=True), "upm-sample", _plan(dists))
    assert pypi_standin.uploads == []


def test_503_and_dropped_connection_are_retried(pypi_standin: PypiStandIn, tmp_path: Path) -> None:
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    pypi_standin.fail_next(503, 0)
    pypi.upload(_target(pypi_standin), "upm-sample", _plan(dists))
    assert len(pypi_standin.files()) == 2


def test_index_down_is_a_service_error(pypi_standin: PypiStandIn) -> None:
    from upm_ci.errors import ServiceError
    from upm_ci.retry import RetryPolicy

    pypi_standin.fail_next(*[503] * 3)
    with pytest.raises(ServiceError, match="still failing after 3 attempts"):
        pypi.index_files(
            _target(pypi_standin), "upm-sample", policy=RetryPolicy(attempts=3, base_delay=0)
        )


def test_plan_refuses_everything_on_one_conflict(tmp_path: Path) -> None:
    dists = make_distributions(tmp_path, "upm-sample", "1.2.0")
    items = [(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in dists]
    existing = {items[0][0]: items[0][2], items[1][0]: "0" * 64}
    with pytest.raises(PolicyError, match="nothing was uploaded") as err:
        pypi.plan_uploads(items, existing)
    assert items[1][0] in str(err.value)
    plan = pypi.plan_uploads(items, {items[0][0]: items[0][2]})
    assert [p.action for p in plan] == ["skip", "upload"]
