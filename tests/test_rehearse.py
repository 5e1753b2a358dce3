"""``upm-ci rehearse``: the whole release of the example against the local stand-ins.

The full run is the product's promise ("try the release before you tag it"); the broken
copies show it stops where CI would, with the exit code and the failing check named.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, git
from upm_ci.cli import main
from upm_ci.image.engine import engine_problem
from upm_ci.manifest import Manifest
from upm_ci.standins.registry import registry_problem


def _checks(out: Path) -> dict[str, dict[str, object]]:
    report = json.loads((out / "gate-report.json").read_text())
    return {c["id"]: c for c in report["checks"]}


@pytest.mark.slow
def test_whole_release_of_the_example_with_rekor_v2_and_flaky_github(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rehearsal"
    monkeypatch.setenv("COLUMNS", "100")
    # no --image-base: the README's line as written; offline the stand-in base is taken
    code = main(
        ["rehearse", str(EXAMPLE), "--out", str(out), "--rekor-version", "2"]
        + ["--github-fault-rate", "0.1", "--timings"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    for line in captured.out.splitlines():
        assert len(line) <= 100 and line == line.rstrip(), line
    # --timings: where the time went, in the summary and in rehearsal.json
    steps = [t["step"] for t in json.loads((out / "rehearsal.json").read_text())["timings"]]
    for step in ("start Sigstore stand-in", "start PyPI stand-in", "gate", "gate: tests"):
        assert step in steps, steps
        assert re.search(rf"^{re.escape(step)} +\d+\.\d\d", captured.out, re.M), captured.out
    assert steps.index("build: python -m build") > steps.index("build") > steps.index("gate")
    # the example names an image: rehearsed through a local registry, or skipped with why
    image = json.loads((out / "rehearsal.json").read_text())["image"]
    if engine_problem() or registry_problem():
        assert image == [f"image: skipped ({engine_problem() or registry_problem()})"]
    else:
        assert image[0].startswith("image 127.0.0.1:") and "@sha256:" in image[0], image
        assert image[1].startswith("  base: "), image  # which base the rehearsal chose
        assert "  signed: signature, provenance, sbom-attestation" in image, image
        assert image[-1].endswith("3/3 referrers stored; verified from the registry"), image
        assert "image 127.0.0.1:" in captured.out
        # one signer for the whole release: the image's bundles carry the release's certificate
        dist = out / "dist"

        def certificate(bundle: Path) -> str:
            material = json.loads(bundle.read_text())["verificationMaterial"]
            chain = material.get("x509CertificateChain", {}).get("certificates", [{}])
            return str(material.get("certificate", {}).get("rawBytes") or chain[0]["rawBytes"])

        release_cert = certificate(dist / "upm_sample-1.2.0.tar.gz.sigstore.json")
        suffixes = (".image.sigstore.json", ".image.intoto.jsonl", ".image.cdx.intoto.jsonl")
        image_bundles = [p for p in dist.iterdir() if p.name.endswith(suffixes)]
        assert len(image_bundles) == 3, image_bundles
        assert {certificate(b) for b in image_bundles} == {release_cert}
    table = captured.out
    for phase in ("gate", "build", "sbom", "sign", "publish", "verify"):
        assert re.search(rf"^{phase}\s+pass\s", table, re.M), table
    assert "every phase passed" in table

    assert all(c["status"] == "pass" for c in _checks(out).values())
    dist = out / "dist"
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, check=True, capture_output=True)
    manifest = Manifest.load(out / "release-manifest.json")
    kinds = {a.kind for a in manifest.artifacts}
    assert {"sdist", "wheel", "checksums", "sbom", "sigstore-bundle", "provenance"} <= kinds
    assert {p: r["status"] for p, r in manifest.phases.items()} == {
        p: "pass" for p in ("gate", "build", "sbom", "sign", "publish", "verify")
    }

    verify = json.loads((out / "verify-report.json").read_text())
    assert verify["passed"] is True
    names = [a["name"] for a in verify["artifacts"]]
    assert len(names) == len(set(names)) and "upm_sample-1.2.0-py3-none-any.whl" in names

    published = json.loads((out / "published.json").read_text())
    assets = {a["name"] for a in published["github"]["assets"]}
    assert assets == {a.name for a in manifest.artifacts}
    assert published["github"]["draft"] is False
    digests = {a.name: a.sha256 for a in manifest.distributions()}
    assert published["pypi"]["files"] == digests
    # The stand-ins' secrets never reach the user's terminal or the output directory.
    assert "ghs_" not in table + captured.err
    for path in out.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert b"ghs_" not in path.read_bytes(), path

    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)  # a consumer's machine, not CI
    _verify_offline_as_the_readme_says(out, tmp_path, capsys)


def _verify_offline_as_the_readme_says(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stand-ins stopped: the README's command verifies the rehearsal's output offline. The
    audit log's S3 copy (the pipeline's own read-back) is reported not checked, never passed;
    asked for, it fails closed; a changed file still fails."""
    from tests.test_readme import snippet

    command = snippet("rehearsal-offline-verify").replace("\\\n", " ")
    args = shlex.split(command.replace("rehearsal/", f"{out}/"))
    assert args[:2] == ["upm-ci", "verify"]
    consumer = tmp_path / "consumer"  # no project, no AWS, no UPM_* settings
    consumer.mkdir()
    report_path = consumer / "report.json"
    code = main([*args[1:], "--project", str(consumer), "--report-json", str(report_path)])
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    assert "audit log S3 copy: not checked (" in printed.out + printed.err
    assert "verification passed for what was checked" in printed.out
    report = json.loads(report_path.read_text())
    assert report["passed"] is True
    assert any(n.endswith(".audit.jsonl: audit log S3 copy") for n in report["not_checked"])
    rows = {a["name"]: a for a in report["artifacts"]}
    s3_rows = [a for n, a in rows.items() if n.startswith("s3://")]
    assert s3_rows and all(a["passed"] is False for a in s3_rows)  # not checked is no pass
    audit = next(n for n in rows if n.endswith(".audit.jsonl") and not n.startswith("s3://"))
    assert rows[audit]["passed"] and "sigstore" in {c["check"] for c in rows[audit]["checks"]}

    # Asked for explicitly, the S3 copy is checked or the verification fails (no key: exit 2).
    s3_url = s3_rows[0]["name"]
    assert main([*args[1:], "--project", str(consumer), "--audit-log", s3_url]) == 2
    assert "KMS key" in capsys.readouterr().err

    # The rest still runs: a changed wheel in a copy fails, naming it.
    copy = tmp_path / "dist-copy"
    shutil.copytree(out / "dist", copy)
    wheel = next(copy.glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    changed = [a if a != f"{out}/dist" else str(copy) for a in args[1:]]
    assert main([*changed, "--project", str(consumer)]) == 1
    assert wheel.name in capsys.readouterr().out


def _rehearse_gate_only(project: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(["rehearse", str(project), "--out", str(out), *extra])
    return code, (out / "rehearsal.json").read_text()


def test_changed_version_stops_at_the_gate(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pyproject = sample_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.2.0"', 'version = "1.2.1"'))
    git(sample_copy, "commit", "-qam", "bump only pyproject")
    code, summary = _rehearse_gate_only(sample_copy, tmp_path / "out")
    assert code == 1
    checks = _checks(tmp_path / "out")
    assert checks["version-bump"]["status"] == "fail"
    phases = {p["phase"]: p["status"] for p in json.loads(summary)["phases"]}
    assert phases == {
        "gate": "fail",
        "build": "not run",
        "sbom": "not run",
        "sign": "not run",
        "publish": "not run",
        "verify": "not run",
    }
    assert not (tmp_path / "out" / "dist").exists()
    # the phase ran as in Actions; the terminal shows its annotations as plain text
    err = capsys.readouterr().err
    assert "  gate | error: " in err and "version" in err, err
    assert "::error" not in err and "%0A" not in err, err


def test_missing_entrypoint_block_names_file_and_line(
    sample_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = sample_copy / "src" / "upm_sample" / "plugins" / "checksum.py"
    text = plugin.read_text()
    plugin.write_text(text[: text.index('if __name__ == "__main__":')])
    git(sample_copy, "commit", "-qam", "drop the sandbox entrypoint")
    code, _ = _rehearse_gate_only(sample_copy, tmp_path / "out")
    assert code == 1
    check = _checks(tmp_path / "out")["plugin-entrypoint"]
    assert check["status"] == "fail"
    findings = check["findings"]
    assert isinstance(findings, list) and len(findings) == 1
    assert findings[0]["file"].endswith("plugins/checksum.py")
    assert isinstance(findings[0]["line"], int) and findings[0]["line"] >= 1


def test_vulnerable_pin_fails_the_dependency_audit(sample_copy: Path, tmp_path: Path) -> None:
    pyproject = sample_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"idna>=3.7"', '"idna==3.6"'))
    git(sample_copy, "commit", "-qam", "pin a vulnerable idna")
    code, _ = _rehearse_gate_only(sample_copy, tmp_path / "out")
    assert code == 1
    check = _checks(tmp_path / "out")["dependency-audit"]
    assert check["status"] == "fail"
    assert "GHSA-jjg7-2v4v-x38h" in json.dumps(check) or "CVE-2024-3651" in json.dumps(check)


def test_ci_true_around_the_rehearsal_still_checks_reviews_with_the_standin_token(
    sample_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI sets CI=true (and may set GITHUB_ACTIONS): a rehearsal there is still green on
    review, because it hands the gate the GitHub stand-in's token; no token reaches it from
    outside, and a missing one would fail the row in CI (issue 27)."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_TOKEN", "")
    pyproject = sample_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"idna>=3.7"', '"idna==3.6"'))
    git(sample_copy, "commit", "-qam", "pin a vulnerable idna (stops the rehearsal at the gate)")
    code, _ = _rehearse_gate_only(sample_copy, tmp_path / "out")
    assert code == 1
    checks = _checks(tmp_path / "out")
    assert checks["dependency-audit"]["status"] == "fail"
    assert checks["code-review"]["status"] == "pass", checks["code-review"]


def test_unreachable_vulnerability_service_fails_closed(sample_copy: Path, tmp_path: Path) -> None:
    code, _ = _rehearse_gate_only(
        sample_copy, tmp_path / "out", "--osv-url", "http://127.0.0.1:9/v1/query"
    )
    assert code == 1
    assert _checks(tmp_path / "out")["dependency-audit"]["status"] == "fail"


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        ("resign:idna", ["idna", "publisher changed", "kjd/idna", "mallory/idna"]),
        ("drop:packaging", ["packaging", "provenance disappeared", "pypa/packaging"]),
    ],
)
def test_a_provenance_switch_blocks_the_gate_naming_the_package(
    sample_copy: Path, tmp_path: Path, switch: str, expected: list[str]
) -> None:
    code, summary = _rehearse_gate_only(sample_copy, tmp_path / "out", "--provenance-fault", switch)
    assert code == 1
    check = _checks(tmp_path / "out")["dependency-provenance"]
    assert check["status"] == "fail"
    reason = str(check["reason"])
    for words in expected:
        assert words in reason, reason
    assert json.loads(summary)["provenance"].startswith("dependency-provenance: fail")


def test_a_bad_provenance_switch_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["rehearse", str(EXAMPLE), "--out", str(out), "--provenance-fault", "x"]) == 2
    assert "expected drop:PACKAGE or resign:PACKAGE" in capsys.readouterr().err
    assert not out.exists()


def test_refuses_an_output_directory_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert main(["rehearse", str(EXAMPLE), "--out", str(out)]) == 2
    assert (out / "thesis.tex").read_text() == "years of work"
    err = capsys.readouterr().err
    assert "not an earlier rehearsal's output" in err and "Traceback" not in err


def test_provenance_that_could_not_be_signed_releases_the_index_and_is_a_service_error() -> None:
    """The index holds its Integrity API while the dependencies' provenance is signed beside
    the gate; when signing fails, the index answers again (nothing waits forever) and the
    rehearsal stops with why, as when a stand-in does not start."""
    from concurrent.futures import Future

    from upm_ci import rehearse
    from upm_ci.errors import ServiceError
    from upm_ci.standins.integrity import IntegrityStore
    from upm_ci.standins.sigstore_server import StandInError

    class Index:
        integrity = IntegrityStore()

    index = Index()
    index.integrity.hold()
    resolved: Future[list[object]] = Future()
    resolved.set_exception(StandInError("the local Sigstore went away"))
    serving: Future[None] = Future()
    try:
        rehearse._serve_held(None, resolved, index, None, None)  # type: ignore[arg-type]
    except StandInError as e:
        serving.set_exception(e)
    answer = index.integrity.answer("GET", "/integrity/a/1/a-1.whl/provenance")
    assert answer is not None and answer[0] == 404
    with pytest.raises(ServiceError, match="did not start: the local Sigstore went away"):
        rehearse._provenance_served(serving)
