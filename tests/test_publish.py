"""``upm-ci publish`` end to end: real PyGithub and real uploads against the local stand-ins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.github import GITHUB_TOKEN, SAMPLE_NAME, SAMPLE_OWNER
from tests.fixtures.publish import publish_args, pypi_args
from tests.fixtures.pypi import PYPI_TOKEN, make_distributions, make_release
from upm_ci.cli import main
from upm_ci.publish import pypi
from upm_ci.publish.audit_log import AuditLog
from upm_ci.standins.github import GitHubStandIn
from upm_ci.standins.pypi import PypiStandIn

REPO = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"


@pytest.fixture
def gh(github_standin: GitHubStandIn) -> GitHubStandIn:
    r = github_standin.add_repo(SAMPLE_OWNER, SAMPLE_NAME, immutable_releases=True)
    github_standin.add_commit(r, message="init", author="alice")
    return github_standin


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    return make_release(tmp_path / "proj")


def _args(manifest: Path, gh: GitHubStandIn, pypi_standin: PypiStandIn, *extra: str) -> list[str]:
    return publish_args(manifest, gh, *pypi_args(pypi_standin), "--no-sign-audit-log", *extra)


def _releases(gh: GitHubStandIn) -> list[dict[str, Any]]:
    return gh.snapshot()["repos"][0]["releases"]  # type: ignore[no-any-return]


def _expected(manifest: Path) -> dict[str, str]:
    doc = json.loads(manifest.read_text())
    return {a["name"]: a["sha256"] for a in doc["artifacts"]}


def test_publish_then_second_run_changes_nothing(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = tmp_path / "gh-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "1")
    published = tmp_path / "published.json"
    assert main(_args(manifest_path, gh, pypi_standin, "--published-json", str(published))) == 0
    out = capsys.readouterr().out
    assert "uploaded" in out and "release: " in out

    [release] = _releases(gh)
    assert release["draft"] is False and release["immutable"] is True
    expected = _expected(manifest_path)  # now includes the audit log
    audit_name = "upm-sample-1.2.0.audit.jsonl"
    assert audit_name in expected
    assert {a["name"]: a["digest"][7:] for a in release["assets"]} == expected
    assert set(pypi_standin.files()) == {n for n in expected if n.endswith((".whl", ".tar.gz"))}

    doc = json.loads(published.read_text())
    assert doc["github"]["draft"] is False
    assert {a["name"]: a["sha256"] for a in doc["github"]["assets"]} == expected
    assert doc["pypi"]["files"] == pypi_standin.files()
    assert f"release-id={release['id']}" in outputs.read_text()
    assert "release-url=" in outputs.read_text()

    audit = AuditLog(manifest_path.parent / audit_name).entries()
    assert {e["run_id"] for e in audit} == {"4242.1"}
    whats = [e["what"] for e in audit]
    assert whats[0] == "github-draft-created" and whats[-1] == "github-release-publish-requested"
    assert whats.count("pypi-uploaded") == 2
    ledger = json.loads(manifest_path.read_text())["ledger"]
    assert ledger["github-release"]["v1.2.0"]["state"] == "done"
    assert all(e["state"] == "done" for e in ledger["github"].values())
    assert all(e["state"] == "done" for e in ledger["pypi"].values())

    before_manifest = manifest_path.read_text()
    writes_before = len([r for r in gh.requests if r.method != "GET"])
    uploads_before = len(pypi_standin.uploads)
    assert main(_args(manifest_path, gh, pypi_standin)) == 0
    out = capsys.readouterr().out
    assert f"nothing to do: {len(expected)} assets already published" in out
    assert len([r for r in gh.requests if r.method != "GET"]) == writes_before
    assert len(pypi_standin.uploads) == uploads_before
    assert manifest_path.read_text() == before_manifest
    assert _releases(gh) == [release]


def test_release_notes_carry_changelog_checksums_and_verify_commands(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, manifest_path: Path
) -> None:
    assert main(_args(manifest_path, gh, pypi_standin, "--skip-pypi")) == 0
    import requests

    [snap] = _releases(gh)
    release = requests.get(
        f"{gh.api_url}/repos/{REPO}/releases/{snap['id']}",
        headers={"Authorization": f"token {GITHUB_TOKEN}"},
        timeout=10,
    ).json()
    body = release["body"]
    assert "Greeting plugin." in body and "Typo." not in body
    sums = (manifest_path.parent / "dist" / "SHA256SUMS").read_text().strip()
    assert sums in body
    identity = f"https://github.com/{REPO}/.github/workflows/release.yml@refs/tags/v1.2.0"
    pins = f"--repository {REPO} --ref refs/tags/v1.2.0 --identity {identity}"
    assert f"upm-ci verify --github-release v1.2.0 {pins}" in body
    assert f"upm-ci verify . {pins}" in body
    [line] = [ln for ln in body.splitlines() if ln.startswith("sigstore verify github ")]
    assert line.startswith(
        f"sigstore verify github --cert-identity {identity} --repository {REPO}"
        " --ref refs/tags/v1.2.0 SHA256SUMS "
    )
    assert " upm_sample-1.2.0-py3-none-any.whl " in line
    assert line.endswith(" && sha256sum -c SHA256SUMS")
    assert f"gh release download v1.2.0 --repo {REPO}" in body
    assert release["prerelease"] is False


def test_prerelease_from_version_and_make_latest(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, tmp_path: Path
) -> None:
    manifest = make_release(tmp_path / "rc", version="2.0.0rc1")
    args = _args(manifest, gh, pypi_standin, "--skip-pypi", "--make-latest", "false")
    assert main([*args, "--tag", "v2.0.0rc1"]) == 0
    [release] = _releases(gh)
    assert release["prerelease"] is True


def test_index_conflict_fails_and_uploads_nothing(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = make_distributions(tmp_path / "other", "upm-sample", "1.2.0", extra="rebuilt")
    wheel = other[1]
    target = pypi.IndexTarget(pypi_standin.upload_url, pypi_standin.simple_url, PYPI_TOKEN)
    plan = [pypi.PlannedFile(wheel.name, wheel, "", "upload")]
    pypi.upload(target, "upm-sample", plan)
    before = pypi_standin.files()
    assert main(_args(manifest_path, gh, pypi_standin)) == 1
    err = capsys.readouterr().err
    assert "upm_sample-1.2.0-py3-none-any.whl" in err and "nothing was uploaded" in err
    assert pypi_standin.files() == before  # the sdist was not uploaded either
    assert _releases(gh) == []  # and GitHub was not touched


def test_bad_pypi_token_is_exit_2(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, manifest_path: Path
) -> None:
    args = _args(manifest_path, gh, pypi_standin)
    args[args.index(PYPI_TOKEN)] = "pypi-wrong-token-value"
    assert main(args) == 2
    assert pypi_standin.files() == {}


def test_missing_manifest_is_exit_2(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_release(tmp_path / "proj")
    missing = tmp_path / "proj" / "nope.json"
    assert main(_args(missing, gh, pypi_standin)) == 2
    assert "release manifest not found" in capsys.readouterr().err
    assert gh.requests == []


def test_manifest_file_missing_on_disk_is_exit_2_and_nothing_sent(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (manifest_path.parent / "dist" / "upm_sample-1.2.0.tar.gz").unlink()
    before = manifest_path.read_text()
    assert main(_args(manifest_path, gh, pypi_standin)) == 2
    err = capsys.readouterr().err
    assert "upm_sample-1.2.0.tar.gz is listed but" in err and "Traceback" not in err
    assert gh.requests == [] and pypi_standin.uploads == []
    assert manifest_path.read_text() == before


def test_changed_file_on_disk_is_exit_2(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (manifest_path.parent / "dist" / "SHA256SUMS").write_text("tampered\n")
    assert main(_args(manifest_path, gh, pypi_standin)) == 2
    assert "sha256 differs from the manifest" in capsys.readouterr().err


def test_bad_github_token_is_exit_2(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _args(manifest_path, gh, pypi_standin, "--skip-pypi")
    args[args.index(GITHUB_TOKEN)] = "ghp_notavalidtoken123"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "401 Bad credentials" in err and "ghp_notavalidtoken123" not in err


def test_github_down_is_exit_3_after_retries(
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UPM_RETRY_ATTEMPTS", "3")
    with GitHubStandIn(
        token={GITHUB_TOKEN: "bot"}, fault_rate=1.0, fault_kinds=["5xx"], retry_after=0
    ) as down:
        down.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
        assert main(_args(manifest_path, down, pypi_standin, "--skip-pypi")) == 3
        assert len(down.requests) == 3
    assert "still failing after 3 attempts" in capsys.readouterr().err


def test_two_drafts_exit_1(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = gh.repo(REPO)
    a, b = gh.add_release(r, "v1.2.0", draft=True), gh.add_release(r, "v1.2.0", draft=True)
    assert main(_args(manifest_path, gh, pypi_standin, "--skip-pypi")) == 1
    err = capsys.readouterr().err
    assert str(a.id) in err and str(b.id) in err
    assert len(_releases(gh)) == 2


def test_published_release_that_differs_is_exit_1(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gh.add_release(gh.repo(REPO), "v1.2.0", assets={"SHA256SUMS": b"other"})
    assert main(_args(manifest_path, gh, pypi_standin, "--skip-pypi")) == 1
    assert "already published and differs" in capsys.readouterr().err


def test_dry_run_prints_plan_and_changes_nothing(
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = manifest_path.read_text()
    assert main(_args(manifest_path, gh, pypi_standin, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "pypi: upload upm_sample-1.2.0.tar.gz" in out and "[CANNOT BE UNDONE]" in out
    assert "github: publish v1.2.0" in out and "immutable" in out
    assert gh.requests == [] and pypi_standin.uploads == []
    assert manifest_path.read_text() == before


def test_dry_run_writes_published_json_saying_so(
    gh: GitHubStandIn, pypi_standin: PypiStandIn, manifest_path: Path, tmp_path: Path
) -> None:
    """The reusable workflow uploads published.json after a dry run too: it is the plan."""
    out = tmp_path / "published.json"
    args = _args(manifest_path, gh, pypi_standin, "--dry-run", "--published-json", str(out))
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["dry_run"] is True and doc["tag"] == "v1.2.0"
    assert "github" not in doc and "pypi" not in doc
    assert any("upm_sample-1.2.0.tar.gz" in step for step in doc["plan"])
    assert gh.requests == [] and pypi_standin.uploads == []


def test_secrets_never_in_output_manifest_or_files(
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    github_secret = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    published = tmp_path / "published.json"
    with GitHubStandIn(token={github_secret: "bot"}) as gh:
        gh.add_commit(gh.add_repo(SAMPLE_OWNER, SAMPLE_NAME), message="init", author="a")
        args = _args(manifest_path, gh, pypi_standin, "--published-json", str(published))
        args[args.index(GITHUB_TOKEN)] = github_secret
        assert main(["--debug", *args]) == 0
        pypi_standin.fail_next(403)  # a refused index read on a re-run: a message, no token
        assert main(["--debug", *args]) == 2
    captured = capsys.readouterr()
    assert "refused the credentials" in captured.err
    texts = [captured.out, captured.err, summary.read_text(), published.read_text()]
    texts += [p.read_text(errors="replace") for p in manifest_path.parent.rglob("*") if p.is_file()]
    for secret in (github_secret, PYPI_TOKEN):
        assert not any(secret in text for text in texts)


def test_help_does_not_import_github_or_twine() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from upm_ci.cli import main; main(['publish', '--help']); "
        "print(sorted(m for m in ('github', 'twine') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("[]")


def _drop_wheel_signature(m: Any) -> None:
    m.signatures = [s for s in m.signatures if "whl" not in s.subject]


def _stale_signatures(m: Any) -> None:
    for s in m.signatures:
        s.subject_sha256 = "0" * 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.phases.pop("gate"), "phase gate has not run"),
        (lambda m: m.record_phase("sbom", "fail"), "phase sbom ended with 'fail'"),
        (lambda m: m.phases.pop("sign"), "phase sign has not run"),
        (_drop_wheel_signature, "no Sigstore signature over upm_sample-1.2.0-py3-none-any.whl"),
        (_stale_signatures, "no Sigstore signature over"),
    ],
)
def test_publish_refuses_a_release_whose_earlier_phases_did_not_pass(
    change: Any,
    message: str,
    gh: GitHubStandIn,
    pypi_standin: PypiStandIn,
    manifest_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Fail closed before the irreversible step: nothing reaches GitHub or the index."""
    from upm_ci.manifest import Manifest

    manifest = Manifest.load(manifest_path)
    change(manifest)
    manifest.save()
    gh.clear_log()
    assert main(_args(manifest_path, gh, pypi_standin)) == 1
    assert message in capsys.readouterr().err
    assert [r for r in gh.requests if r.method != "GET"] == []
    assert pypi_standin.files() == {} and pypi_standin.uploads == []
