"""``upm-ci sbom``: real venvs, cyclonedx-py, both validators, pip-audit on the OSV stand-in."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from tests.test_build import example_build, shared_once
from upm_ci import gha
from upm_ci.cli import main
from upm_ci.errors import PolicyError
from upm_ci.jsonschema_formats import fast_iri_reference_check
from upm_ci.manifest import Artifact, Manifest
from upm_ci.project import load_project
from upm_ci.release import release_info
from upm_ci.sbom import bind_to_wheel, make_sboms
from upm_ci.sbom_validation import validate_cyclonedx
from upm_ci.standins.osv import OsvStandIn

CDX = "upm_sample-1.2.0.cdx.json"
SPDX = "upm_sample-1.2.0.spdx.json"
WHEEL = "upm_sample-1.2.0-py3-none-any.whl"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example built once per session (shared with test_build); copy before changing."""
    run = example_build(tmp_path_factory)
    assert run.code == 0
    return run.manifest.parent


@dataclass
class Release:
    project: Path
    manifest: Path

    @property
    def dist(self) -> Path:
        return self.project / "dist"

    def args(self, *extra: str) -> list[str]:
        return ["sbom", "--project", str(self.project), "--manifest", str(self.manifest), *extra]


@pytest.fixture
def release(built: Path, tmp_path: Path) -> Release:
    """A private copy of the built release (project, dist and manifest)."""
    shutil.copytree(built, tmp_path / "r", symlinks=True)
    return Release(tmp_path / "r/upm-sample", tmp_path / "r/release-manifest.json")


@dataclass
class SbomRun:
    code: int
    out: str
    summary: str
    release: Release
    queried: list[tuple[str, str]]


@pytest.fixture(scope="session")
def sbom_run(built: Path, tmp_path_factory: pytest.TempPathFactory) -> SbomRun:
    """``upm-ci sbom`` on the example once per session, against a clean OSV stand-in."""

    def make(base: Path) -> dict[str, Any]:
        shutil.copytree(built, base / "r", symlinks=True)
        rel = Release(base / "r/upm-sample", base / "r/release-manifest.json")
        summary = base / "summary.md"
        out = io.StringIO()
        with OsvStandIn() as osv, pytest.MonkeyPatch.context() as mp:
            mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
            with contextlib.redirect_stdout(out):
                code = main(rel.args("--osv-url", osv.query_url))
            queried = sorted((q.name, q.version) for q in osv.queries)
        return {"code": code, "out": out.getvalue(), "summary": summary.read_text(), "q": queried}

    base, r = shared_once(tmp_path_factory, "example-sbom", make)
    rel = Release(base / "r/upm-sample", base / "r/release-manifest.json")
    return SbomRun(r["code"], r["out"], r["summary"], rel, [tuple(q) for q in r["q"]])


# --- happy path -------------------------------------------------------------------------------
@pytest.mark.slow
def test_sboms_are_written_recorded_and_bound_to_the_wheel(sbom_run: SbomRun) -> None:
    assert sbom_run.code == 0, sbom_run.out
    m = Manifest.load(sbom_run.release.manifest)
    wheel = m.artifact(WHEEL)
    assert wheel is not None
    assert {(s.file, s.format) for s in m.sboms} == {
        (CDX, "cyclonedx-1.6+json"),
        (SPDX, "spdx-2.3+json"),
    }
    assert {(s.describes, s.describes_sha256) for s in m.sboms} == {(WHEEL, wheel.sha256)}
    assert {a.name for a in m.of_kind("sbom")} == {CDX, SPDX}
    assert m.phases["sbom"]["status"] == "pass"
    cdx = json.loads((sbom_run.release.dist / CDX).read_text())
    subject = cdx["metadata"]["component"]
    assert (subject["name"], subject["version"], subject["purl"]) == (
        "upm-sample",
        "1.2.0",
        "pkg:pypi/upm-sample@1.2.0",
    )
    assert subject["hashes"] == [{"alg": "SHA-256", "content": wheel.sha256}]


@pytest.mark.slow
def test_cyclonedx_is_valid_and_lists_exactly_the_runtime_closure(sbom_run: SbomRun) -> None:
    text = (sbom_run.release.dist / CDX).read_text()
    validate_cyclonedx(text)
    cdx = json.loads(text)
    names = {c["name"] for c in cdx["components"]}
    assert {"packaging", "idna"} <= names
    assert not names & {"pip", "setuptools", "wheel", "upm-sample"}
    assert all(c["purl"].startswith("pkg:pypi/") for c in cdx["components"])
    root = next(
        d for d in cdx["dependencies"] if d["ref"] == cdx["metadata"]["component"]["bom-ref"]
    )
    assert {ref.split("==")[0] for ref in root["dependsOn"]} == {"packaging", "idna"}


@pytest.mark.slow
def test_spdx_is_valid_and_describes_the_wheel(sbom_run: SbomRun) -> None:
    from spdx_tools.spdx.model.relationship import RelationshipType
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    path = sbom_run.release.dist / SPDX
    doc = parse_file(str(path))
    assert validate_full_spdx_document(doc) == []
    wheel = Manifest.load(sbom_run.release.manifest).artifact(WHEEL)
    assert wheel is not None
    by_id = {p.spdx_id: p for p in doc.packages}
    (described,) = [
        r.related_spdx_element_id
        for r in doc.relationships
        if r.relationship_type == RelationshipType.DESCRIBES
    ]
    root = by_id[str(described)]
    assert (root.name, root.version, root.file_name) == ("upm-sample", "1.2.0", WHEEL)
    assert [c.value for c in root.checksums] == [wheel.sha256]
    deps = {
        by_id[str(r.related_spdx_element_id)].name
        for r in doc.relationships
        if r.relationship_type == RelationshipType.DEPENDS_ON and r.spdx_element_id == described
    }
    assert deps == {"packaging", "idna"}
    purls = {p.name: p.external_references[0].locator for p in doc.packages}
    assert purls["idna"].startswith("pkg:pypi/idna@")


@pytest.mark.slow
def test_audit_covers_exactly_the_sbom_components(sbom_run: SbomRun) -> None:
    cdx = json.loads((sbom_run.release.dist / CDX).read_text())
    assert sbom_run.queried == sorted((c["name"], c["version"]) for c in cdx["components"])
    assert "audit: pass: no known vulnerabilities" in sbom_run.out
    assert "**Audit: pass**" in sbom_run.summary
    assert f"`{CDX}`" in sbom_run.summary


@pytest.mark.slow
def test_transient_osv_outage_is_retried_and_a_rerun_is_identical(
    release: Release, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "3")
    with OsvStandIn() as osv:
        osv.fail_next(1)
        assert main(release.args("--osv-url", osv.query_url)) == 0, capsys.readouterr()
        first = {name: (release.dist / name).read_bytes() for name in (CDX, SPDX)}
        assert main(release.args("--osv-url", osv.query_url)) == 0
    assert {name: (release.dist / name).read_bytes() for name in (CDX, SPDX)} == first
    m = Manifest.load(release.manifest)
    assert len(m.sboms) == 2 and len(m.of_kind("sbom")) == 2


# --- policy failures --------------------------------------------------------------------------
def _idna_advisory() -> dict[str, Any]:
    return {
        "id": "GHSA-test-idna-0001",
        "aliases": ["CVE-2099-0001"],
        "summary": "test advisory against every idna",
        "modified": "2026-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "idna"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }


@pytest.mark.slow
def test_vulnerable_component_fails_with_exit_1(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    with OsvStandIn([_idna_advisory()]) as osv:
        code = main(release.args("--osv-url", osv.query_url))
    captured = capsys.readouterr()
    assert code == 1
    finding = next(line for line in captured.out.splitlines() if "GHSA-test-idna-0001" in line)
    assert "CVE-2099-0001" in finding and " in idna " in finding and finding.endswith("blocking")
    assert "vulnerability audit of the SBOM's components failed" in captured.err
    m = Manifest.load(release.manifest)
    assert m.phases["sbom"]["status"] == "fail"
    assert (release.dist / CDX).exists() and len(m.sboms) == 2


@pytest.mark.slow
def test_allow_listed_vulnerability_passes(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    pyproject = release.project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + '\naudit-allow = [{ id = "CVE-2099-0001", reason = "not reachable",'
        + " expires = 2099-12-31 }]\n"
    )
    with OsvStandIn([_idna_advisory()]) as osv:
        code = main(release.args("--osv-url", osv.query_url))
    out = capsys.readouterr().out
    assert code == 0, out
    finding = next(line for line in out.splitlines() if "GHSA-test-idna-0001" in line)
    assert " in idna " in finding and finding.endswith("allowed")


@pytest.mark.slow
def test_osv_down_fails_closed_and_secrets_stay_hidden(
    release: Release, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "osv-S3cret-Passw0rd-xyz"
    gha.mask(secret)
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "2")
    summary = release.project / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with OsvStandIn(fail=True) as osv:
        url = osv.query_url.replace("http://", f"http://user:{secret}@")
        code = main(release.args("--osv-url", url))
    captured = capsys.readouterr()
    assert code == 1
    assert "audit: FAIL" in captured.out and "audit failed" in captured.out
    assert secret not in captured.out + captured.err + summary.read_text()
    assert Manifest.load(release.manifest).phases["sbom"]["status"] == "fail"


@pytest.mark.slow
def test_wheel_changed_after_build_writes_nothing(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = release.dist / WHEEL
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    code = main(release.args("--osv-url", "http://127.0.0.1:9/v1/query"))
    assert code == 1
    assert "not the one the build recorded" in capsys.readouterr().err
    assert not (release.dist / CDX).exists() and not (release.dist / SPDX).exists()


# --- bad input --------------------------------------------------------------------------------
def test_malformed_manifest_exits_2_writing_nothing(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    release.manifest.write_text("{not json")
    code = main(release.args())
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "not valid JSON" in err
    assert release.manifest.read_text() == "{not json"
    assert not list(release.dist.glob("*.json"))


def test_manifest_without_a_wheel_exits_2(
    release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    m = Manifest.load(release.manifest)
    m.artifacts = [a for a in m.artifacts if a.kind != "wheel"]
    m.save()
    assert main(release.args()) == 2
    assert "expected one wheel in the manifest, found 0" in capsys.readouterr().err


# --- units: binding, closure, validation ------------------------------------------------------
def _raw_bom() -> dict[str, Any]:
    """What cyclonedx-py reports for a venv: the wheel, its dep, and a stray pip."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {},
        "components": [
            {
                "bom-ref": "demo-pkg==1.2.0",
                "type": "library",
                "name": "demo-pkg",
                "version": "1.2.0",
            },
            {
                "bom-ref": "packaging==26.4",
                "type": "library",
                "name": "packaging",
                "version": "26.4",
                "purl": "pkg:pypi/packaging@26.4",
            },
            {"bom-ref": "pip==25.0", "type": "library", "name": "pip", "version": "25.0"},
        ],
        "dependencies": [
            {"ref": "demo-pkg==1.2.0", "dependsOn": ["packaging==26.4"]},
            {"ref": "packaging==26.4"},
            {"ref": "pip==25.0"},
        ],
    }


WHEEL_ART = Artifact(
    name="demo_pkg-1.2.0-py3-none-any.whl",
    path="dist/demo_pkg-1.2.0-py3-none-any.whl",
    sha256="ab" * 32,
    size=10,
    kind="wheel",
)


def test_bind_keeps_the_closure_and_names_the_wheel_digest() -> None:
    bom, components = bind_to_wheel(_raw_bom(), name="demo-pkg", version="1.2.0", wheel=WHEEL_ART)
    assert [(c.name, c.version, c.purl) for c in components] == [
        ("packaging", "26.4", "pkg:pypi/packaging@26.4")
    ]
    assert [c["name"] for c in bom["components"]] == ["packaging"]
    assert bom["metadata"]["component"]["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert bom["dependencies"] == [
        {"ref": "demo-pkg==1.2.0", "dependsOn": ["packaging==26.4"]},
        {"ref": "packaging==26.4", "dependsOn": []},
    ]
    validate_cyclonedx(json.dumps(bom))


def test_invalid_cyclonedx_is_refused() -> None:
    bom, _ = bind_to_wheel(_raw_bom(), name="demo-pkg", version="1.2.0", wheel=WHEEL_ART)
    bom["components"][0]["type"] = "not-a-type"
    with pytest.raises(PolicyError, match="CycloneDX SBOM failed schema validation"):
        validate_cyclonedx(json.dumps(bom))


#: Values the IRI-reference check must judge as rfc3987-syntax does: URLs as the SBOMs carry
#: them, relative and odd-but-valid references, and invalid ones (space, bad escape, bracket).
IRI_CASES = [
    "https://example.com/a?b=c#d",
    "pkg:pypi/idna@3.7",
    "http://127.0.0.1:39029/integrity/idna/3.21/idna-3.21-py3-none-any.whl/provenance",
    "",
    "relative/path",
    "//host/path",
    "http://[::1]:80/",
    "http://example.com/%7Efoo",
    "a:b:c",
    "http://exa mple.com",
    "http://%zz",
    "http://[::1",
    "https://example.com/\u00fc",
    "http://example.com/<tag>",
    "https://example.com/\u00fc space",
]


def test_the_fast_iri_reference_check_judges_as_the_stock_one() -> None:
    from jsonschema import Draft7Validator  # type: ignore[import-untyped]
    from rfc3987_syntax import is_valid_syntax  # type: ignore[import-untyped]

    fast_iri_reference_check()
    check = Draft7Validator.FORMAT_CHECKER.checkers["iri-reference"][0]
    assert getattr(check, "upm_fast_path", False)
    rng = random.Random(26)
    alphabet = "ab:/?#[]@!$&'()*+,;=%-._~1F "
    fuzzed = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(60)]
    for value in IRI_CASES + fuzzed + ["http://" + v for v in fuzzed]:
        assert bool(check(value)) == bool(is_valid_syntax("iri_reference", value)), value


#: Run in a new interpreter (jsonschema not yet imported): what each of jsonschema's IRI checks
#: says of each value on stdin, and whether rfc3987-syntax was imported before the first value
#: the fast check could not settle.
_DEFERRED_IRI_SCRIPT = """
import json, sys
values = json.load(sys.stdin)
from upm_ci.jsonschema_formats import fast_iri_reference_check, import_jsonschema
import_jsonschema()
fast_iri_reference_check()
loaded_at_import = "rfc3987_syntax" in sys.modules
import jsonschema
checkers = {
    "draft7": jsonschema.Draft7Validator.FORMAT_CHECKER,
    "draft2019": jsonschema.Draft201909Validator.FORMAT_CHECKER,
    "draft2020": jsonschema.Draft202012Validator.FORMAT_CHECKER,
    "default": jsonschema.FormatChecker(),
}
ok = checkers["draft7"].conforms("https://example.com/a", "iri-reference")
loaded_after_fast = "rfc3987_syntax" in sys.modules
verdicts = {
    f"{label}:{fmt}": [checker.conforms(v, fmt) for v in values]
    for label, checker in checkers.items()
    for fmt in ("iri", "iri-reference")
}
print(json.dumps({"at_import": loaded_at_import, "after_fast": loaded_after_fast, "ok": ok,
                  "verdicts": verdicts}))
"""


def test_jsonschema_checks_iris_as_rfc3987_syntax_does_with_its_parser_loaded_on_first_need() -> (
    None
):
    """The validators' import skips rfc3987-syntax's seconds-long grammar build; every draft's
    ``iri`` and ``iri-reference`` check still judges each value as rfc3987-syntax does."""
    from rfc3987_syntax import is_valid_syntax

    rng = random.Random(2026)
    alphabet = "ab:/?#[]@!$&'()*+,;=%-._~1F \u00fc"
    fuzzed = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))) for _ in range(15)]
    values = IRI_CASES + fuzzed + ["http://" + v for v in fuzzed]
    proc = subprocess.run(
        [sys.executable, "-c", _DEFERRED_IRI_SCRIPT],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(proc.stdout)
    assert got["at_import"] is False and got["after_fast"] is False and got["ok"] is True
    for key, verdicts in got["verdicts"].items():
        rule = "iri" if key.endswith(":iri") else "iri_reference"
        expected = [bool(is_valid_syntax(rule, v)) for v in values]
        assert verdicts == expected, key
    assert not all(got["verdicts"]["draft7:iri-reference"])  # some values are refused


def test_an_invalid_url_in_a_component_is_refused() -> None:
    bom, _ = bind_to_wheel(_raw_bom(), name="demo-pkg", version="1.2.0", wheel=WHEEL_ART)
    validate_cyclonedx(json.dumps(bom))  # valid as it is
    bom["components"][0]["externalReferences"] = [{"type": "website", "url": "http://a b"}]
    with pytest.raises(PolicyError, match="CycloneDX SBOM failed schema validation"):
        validate_cyclonedx(json.dumps(bom))


def test_invalid_spdx_is_never_written(tmp_path: Path, mocker: MockerFixture) -> None:
    """A purl the CycloneDX schema accepts but SPDX rejects: no file, no manifest record."""
    root = tmp_path / "demo"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "demo-pkg"\nversion = "1.2.0"\n')
    wheel = root / "dist" / WHEEL_ART.name
    wheel.parent.mkdir()
    wheel.write_bytes(b"not really a wheel")
    project = load_project(root)
    manifest = Manifest.load_or_new(tmp_path / "m.json", release_info(project, None))
    manifest.add_file(wheel, "wheel")
    manifest.save()
    raw = _raw_bom()
    raw["components"][1]["purl"] = "packaging at 26.4"
    mocker.patch("upm_ci.sbom.environment_bom", autospec=True, return_value=raw)
    auditor = mocker.MagicMock()
    with pytest.raises(PolicyError, match="SPDX SBOM failed validation, not written"):
        make_sboms(
            project,
            manifest,
            dist_dir=wheel.parent,
            osv_url="",
            today=dt.date(2026, 11, 1),
            auditor=auditor,
        )
    assert sorted(p.name for p in wheel.parent.iterdir()) == [WHEEL_ART.name]
    assert Manifest.load(tmp_path / "m.json").sboms == []
    auditor.assert_not_called()


# --- PEP 740 publishers from the gate's dependency-provenance record -------------------------
def _gate_phases(publisher: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "gate": {
            "status": "pass",
            "dependencies": [
                {
                    "name": "packaging",
                    "version": "26.4",
                    "file": "packaging-26.4-py3-none-any.whl",
                    "sha256": "cd" * 32,
                    "decision": "accepted" if publisher else "approved-unsigned",
                    "publisher": publisher,
                    "provenance": "https://pypi.example/integrity/packaging/26.4/"
                    "packaging-26.4-py3-none-any.whl/provenance"
                    if publisher
                    else "",
                    "log_index": "7",
                },
                {"name": "bogus", "sha256": "not hex"},  # a hand-edited manifest: left out
            ],
        }
    }


PYPA = {"kind": "GitHub", "repository": "pypa/packaging", "workflow": "release.yml",
        "environment": "pypi"}  # fmt: skip


def test_sboms_carry_each_components_publisher_and_attestation() -> None:
    from upm_ci.dependency_provenance import recorded_dependencies
    from upm_ci.sbom import (
        PUBLISHER_PROPERTY,
        annotate_provenance,
        provenance_by_ref,
        spdx_document,
    )
    from upm_ci.sbom_validation import validate_spdx

    bom, components = bind_to_wheel(_raw_bom(), name="demo-pkg", version="1.2.0", wheel=WHEEL_ART)
    shipped = recorded_dependencies(_gate_phases(PYPA))
    assert [d.name for d in shipped] == ["packaging"]
    provenance = provenance_by_ref(components, shipped)
    annotate_provenance(bom, provenance)
    validate_cyclonedx(json.dumps(bom))
    (comp,) = bom["components"]
    assert {"name": PUBLISHER_PROPERTY, "value": "GitHub pypa/packaging release.yml, "
            "environment pypi"} in comp["properties"]  # fmt: skip
    (ref,) = [r for r in comp["externalReferences"] if r["type"] == "attestation"]
    assert ref["url"].endswith("/packaging-26.4-py3-none-any.whl/provenance")
    assert ref["hashes"] == [{"alg": "SHA-256", "content": "cd" * 32}]
    doc = spdx_document(
        name="demo-pkg", version="1.2.0", wheel=WHEEL_ART, root_ref="demo-pkg==1.2.0",
        root_depends_on=["packaging==26.4"], components=components,
        created=dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc), provenance=provenance,
    )  # fmt: skip
    spdx = json.loads(validate_spdx(doc))
    (pkg,) = [p for p in spdx["packages"] if p["name"] == "packaging"]
    assert (
        pkg["comment"] == "PEP 740 publisher: GitHub pypa/packaging release.yml, environment pypi"
    )
    refs = {r["referenceType"]: r["referenceLocator"] for r in pkg["externalRefs"]}
    assert refs["pep740-provenance"] == ref["url"]


def test_an_approved_unsigned_component_says_so() -> None:
    from upm_ci.dependency_provenance import recorded_dependencies
    from upm_ci.sbom import PUBLISHER_PROPERTY, annotate_provenance, provenance_by_ref

    bom, components = bind_to_wheel(_raw_bom(), name="demo-pkg", version="1.2.0", wheel=WHEEL_ART)
    annotate_provenance(
        bom, provenance_by_ref(components, recorded_dependencies(_gate_phases(None)))
    )
    (comp,) = bom["components"]
    assert comp["properties"] == [
        {"name": PUBLISHER_PROPERTY, "value": "unsigned (no PEP 740 provenance)"}
    ]
    assert not any(r["type"] == "attestation" for r in comp.get("externalReferences", []))
    validate_cyclonedx(json.dumps(bom))
