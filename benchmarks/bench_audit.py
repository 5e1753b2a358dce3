"""The dependency audit beside ``pip-audit -r requirements.txt``, the command a user would run.

Both audit the same 20 direct requirements (40 packages once resolved, three of them with
known advisories) against the same local OSV stand-in, offline from the same wheelhouse of
metadata-only wheels. Ours resolves with ``pip install --dry-run --report`` and audits the
exact pins with ``--no-deps --disable-pip``; pip-audit's own resolution builds a throw-away
venv and installs into it. A second row compares our audit of already-known pins with the raw
pip-audit call it wraps, to show what fail-closed report checking costs. Each run checks that
both sides found the same vulnerabilities, so the work compared is the same.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks._harness import BenchResult, timed
from tests.fixtures.osv import write_wheel
from upm_ci.standins.osv import OsvStandIn
from upm_ci.vulnerability_audit import audit_packages, resolve_pins

DIRECT = 20
VULNERABLE = {"idna": "3.6", "requests": "2.31.0", "jinja2": "3.1.3"}


@contextmanager
def _offline_index(root: Path) -> Iterator[list[str]]:
    """A wheelhouse with ``DIRECT`` packages each needing one helper, plus the vulnerable pins
    (and real pip, wheel, setuptools, downloaded from PyPI once); pip, ours and pip-audit's,
    reads only it while the context is open."""
    wheels = root / "wheels"
    wheels.mkdir()
    # pip-audit's venv upgrades pip, wheel and setuptools before it resolves: give it those.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary",
            ":all:",
            "--dest",
            str(wheels),
            "pip",
            "wheel",
            "setuptools",
        ],
        check=True,
    )
    requirements = []
    for n in range(DIRECT - len(VULNERABLE)):
        write_wheel(wheels, f"bench-lib{n}", "1.0", [f"bench-helper{n}>=1"])
        write_wheel(wheels, f"bench-helper{n}", "1.2")
        requirements.append(f"bench-lib{n}>=1")
    for name, version in VULNERABLE.items():
        write_wheel(wheels, name, version, [f"bench-{name}-helper"])
        write_wheel(wheels, f"bench-{name}-helper", "0.1")
        requirements.append(f"{name}=={version}")
    saved = {k: os.environ.get(k) for k in ("PIP_NO_INDEX", "PIP_FIND_LINKS")}
    os.environ.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))
    try:
        yield requirements
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _pip_audit(args: list[str], osv: OsvStandIn, out: Path) -> set[tuple[str, str]]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            *args,
            "-s",
            "osv",
            "--osv-url",
            osv.query_url,
            "-f",
            "json",
            "--progress-spinner",
            "off",
            "-o",
            str(out),
        ],
        capture_output=True,
        check=False,
    )
    report = json.loads(out.read_text())
    return {
        (dep["name"].lower(), vuln["id"])
        for dep in report["dependencies"]
        for vuln in dep.get("vulns", [])
    }


def run() -> list[BenchResult]:
    today = dt.date.today()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp, OsvStandIn() as osv:
        root = Path(tmp)
        with _offline_index(root) as requirements:
            (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
            found: dict[str, set[tuple[str, str]]] = {}

            def ours() -> None:
                pins = resolve_pins(requirements)
                outcome = audit_packages(pins, osv_url=osv.query_url, allow=[], today=today)
                found["ours"] = {(v.package.lower(), v.id) for v in outcome.vulnerabilities}

            def theirs() -> None:
                found["theirs"] = _pip_audit(
                    ["-r", str(root / "requirements.txt")], osv, root / "theirs.json"
                )

            ours_resolve = timed(ours, repeat=2)
            theirs_resolve = timed(theirs, repeat=2)
            assert found["ours"] == found["theirs"] and len(found["ours"]) == len(VULNERABLE)

            pins = resolve_pins(requirements)
            (root / "pins.txt").write_text("".join(f"{n}=={v}\n" for n, v in pins))
            ours_pins = timed(
                lambda: audit_packages(pins, osv_url=osv.query_url, allow=[], today=today),
                repeat=5,
            )
            raw_pins = timed(
                lambda: _pip_audit(
                    ["-r", str(root / "pins.txt"), "--no-deps", "--disable-pip", "--strict"],
                    osv,
                    root / "raw.json",
                ),
                repeat=5,
            )
    return [
        BenchResult(
            name=f"resolve + audit {DIRECT} requirements ({len(pins)} pins)",
            ours=ours_resolve,
            theirs=theirs_resolve,
            baseline="pip-audit -r requirements.txt (venv resolve)",
            target=0.5,
            note="same OSV stand-in, same offline wheelhouse; same vulnerabilities found",
        ),
        BenchResult(
            name=f"audit {len(pins)} known pins",
            ours=ours_pins,
            theirs=raw_pins,
            baseline="pip-audit -r pins --no-deps --disable-pip --strict",
            target=1.15,
            note="our overhead: allow-list, report and skip checking, temp files",
        ),
    ]
